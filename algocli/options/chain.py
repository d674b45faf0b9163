"""One option-chain model for every broker: per strike, a call leg and a put leg.

Both brokers' chain APIs map onto it without loss of what PCR needs (the mapping table is
in the adapters' ``options`` modules). Units:

* prices in rupees; ``volume``, ``oi`` and ``prev_oi`` in units (contracts x lot size), as
  both APIs send them;
* ``iv_pct`` in percent (31.4 = 31.4 %), as both chain APIs send it;
* ``theta`` per calendar day, ``vega`` per 1 volatility point, as both brokers send them.

A leg a broker sent with ``iv == 0`` (deep in the money, no time value, or no trade) keeps
its delta (±1) but stores ``iv_pct`` and the other greeks as None: "not computable", not
true zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime

from algocli.domain.hrn import derivative_hrn

__all__ = ["INDEX_OPTION_SYMBOLS", "Leg", "OptionChain", "StrikeRow", "option_symbol", "parse_expiry", "resolve_expiry"]

# The index's name in our HRN → the symbol its options trade under (NSE/BSE contract specs,
# https://www.nseindia.com/products-services/equity-derivatives-nifty50-index-options).
INDEX_OPTION_SYMBOLS = {"NIFTY 50": "NIFTY", "NIFTY BANK": "BANKNIFTY", "NIFTY FIN SERVICE": "FINNIFTY",
                        "NIFTY MID SELECT": "MIDCPNIFTY", "NIFTY NEXT 50": "NIFTYNXT50", "SENSEX": "SENSEX",
                        "BANKEX": "BANKEX"}


def option_symbol(underlying: str) -> tuple[str, str]:
    """``NSE:NIFTY 50`` → ``("NSE", "NIFTY")``; an equity ``NSE:RELIANCE`` keeps its symbol."""
    exchange, _, name = underlying.partition(":")
    name = " ".join(name.upper().split())
    return exchange.upper(), INDEX_OPTION_SYMBOLS.get(name, name)


def parse_expiry(spec: str | date) -> str | date:
    """``current`` or ``next`` (lower-cased), or the date ``spec`` names; checkable before any broker is asked.

    Raises:
        ValueError: Neither.
    """
    if isinstance(spec, date):
        return spec
    text = str(spec).strip().lower()
    if text in ("current", "next"):
        return text
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expiry {spec!r} is not current, next or a YYYY-MM-DD date") from None


def resolve_expiry(spec: str | date, expiries: list[date]) -> date:
    """``current`` (the nearest live expiry), ``next`` (the one after) or a date that is listed.

    Raises:
        ValueError: ``spec`` is none of these (``parse_expiry``), the broker lists no (or too few)
            expiries, or the date is not one of them; the message lists the ones it has.
    """
    wanted = parse_expiry(spec)
    listed = sorted(expiries)
    have = ", ".join(d.isoformat() for d in listed[:8]) or "none"
    if isinstance(wanted, str):
        i = 0 if wanted == "current" else 1
        if len(listed) <= i:
            raise ValueError(f"no {wanted} expiry: the broker lists {have}")
        return listed[i]
    if wanted not in listed:
        raise ValueError(f"no contracts expire on {wanted.isoformat()}; live expiries: {have}")
    return wanted


@dataclass(slots=True)
class Leg:
    """One option (a call or a put) at one strike, as the broker reported it.

    Attributes:
        instrument: The broker's id: Upstox ``NSE_FO|51059``, Dhan ``str(security_id)``.
        name: Our human-readable name, ``NSE:NIFTY 27 JUN 2024 23500 CE``.
        ltp: Last traded price.
        prev_close: The previous session's close.
        volume: Today's traded volume in units.
        oi: Open interest now, in units.
        prev_oi: Open interest at the previous session's close, in units.
        bid, bid_qty, ask, ask_qty: Best bid and ask.
        iv_pct: Implied volatility in percent, or None when not given or not computable.
        delta, gamma, theta, vega: Greeks (theta per day, vega per vol point), or None.
        prev_volume: The previous session's volume (Dhan only).
        avg_price: Average traded price (Dhan only).
        pop_pct: Probability of profit in percent (Upstox only).
    """

    instrument: str
    name: str
    ltp: float = 0.0
    prev_close: float = 0.0
    volume: int = 0
    oi: int = 0
    prev_oi: int = 0
    bid: float = 0.0
    bid_qty: int = 0
    ask: float = 0.0
    ask_qty: int = 0
    iv_pct: float | None = None
    delta: float | None = None
    gamma: float | None = None
    theta: float | None = None
    vega: float | None = None
    prev_volume: int | None = None
    avg_price: float | None = None
    pop_pct: float | None = None

    @property
    def change_in_oi(self) -> int:
        """``oi - prev_oi``: positive is build-up, negative unwinding."""
        return self.oi - self.prev_oi

    @property
    def has_greeks(self) -> bool:
        return self.iv_pct is not None and self.delta is not None


@dataclass(slots=True)
class StrikeRow:
    """Both legs at one strike; either may be missing (far strikes often list one)."""

    strike: float
    ce: Leg | None = None
    pe: Leg | None = None


@dataclass(slots=True)
class OptionChain:
    """Every strike of one underlying's expiry at one moment.

    Attributes:
        source: ``upstox``, ``dhan`` or ``replay``.
        underlying: Our name of the underlying, ``NSE:NIFTY 50``.
        expiry: The contracts' expiry day.
        spot: The underlying's price when the chain was taken.
        fetched_at: When we took it (neither API stamps its answer), tz-aware.
        rows: One row per strike, ascending.
    """

    source: str
    underlying: str
    expiry: date
    spot: float
    fetched_at: datetime
    rows: list[StrikeRow] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rows.sort(key=lambda r: r.strike)  # Dhan's object keys come in no promised order

    @property
    def strikes(self) -> list[float]:
        return [r.strike for r in self.rows]

    def legs(self):
        """Every leg present, as ``(strike, "CE"|"PE", leg)``."""
        for row in self.rows:
            if row.ce is not None:
                yield row.strike, "CE", row.ce
            if row.pe is not None:
                yield row.strike, "PE", row.pe

    def with_rows(self, rows: list[StrikeRow]) -> OptionChain:
        """A copy holding ``rows`` (a window of strikes) instead of all of them."""
        return replace(self, rows=list(rows))

    def contract_name(self, strike: float, right: str) -> str:
        """The HRN of the ``right`` (``CE``/``PE``) option at ``strike`` of this expiry."""
        exchange, symbol = option_symbol(self.underlying)
        return derivative_hrn(exchange, symbol, self.expiry, right, strike)
