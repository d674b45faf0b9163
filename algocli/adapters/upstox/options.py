"""Upstox option chains and live expiries, as ``algocli.options`` models.

* Chain: ``GET /v2/option/chain?instrument_key=<underlying>&expiry_date=YYYY-MM-DD``
  (https://upstox.com/developer/api-documentation/get-pc-option-chain), one element per
  strike with ``call_options``/``put_options`` (either may be missing), each
  ``{instrument_key, market_data, option_greeks}``.
* Expiries: Upstox has no live-expiry endpoint; they are the distinct ``expiry`` values of
  ``GET /v2/option/contract?instrument_key=<underlying>``
  (https://upstox.com/developer/api-documentation/get-option-contracts).

Traps: the per-strike ``pcr`` field is put OI / call OI at that strike, not the chain's PCR,
so it is ignored (``algocli.options.pcr`` computes PCR from the legs). ``option_greeks.iv``
is in percent; ``oi`` and ``prev_oi`` arrive as floats and are stored as whole units. A leg
with ``iv`` 0 keeps its delta and gets None for IV, gamma, theta and vega.
"""

from __future__ import annotations

from datetime import date, datetime
from urllib.parse import quote

from algocli.adapters.upstox.http import UpstoxRest
from algocli.errors import BrokerError, UsageError
from algocli.options.chain import Leg, OptionChain, StrikeRow, option_symbol
from algocli.options.fields import number as _num
from algocli.options.fields import optional as _opt
from algocli.options.greeks import IST
from algocli.domain.hrn import derivative_hrn, normalise

__all__ = ["CHAIN_PATH", "CONTRACT_PATH", "UNDERLYING_KEYS", "fetch_chain", "fetch_expiries", "parse_chain",
           "parse_expiries", "underlying_key", "underlying_name"]

CHAIN_PATH = "/v2/option/chain"
CONTRACT_PATH = "/v2/option/contract"
# The indices whose chains Upstox serves, by our name (https://upstox.com/developer/api-documentation/get-pc-option-chain).
UNDERLYING_KEYS = {"NSE:NIFTY 50": "NSE_INDEX|Nifty 50", "NSE:NIFTY BANK": "NSE_INDEX|Nifty Bank",
                   "NSE:NIFTY FIN SERVICE": "NSE_INDEX|Nifty Fin Service",
                   "NSE:NIFTY MID SELECT": "NSE_INDEX|NIFTY MID SELECT", "BSE:SENSEX": "BSE_INDEX|SENSEX"}


def underlying_name(underlying: str) -> str | None:
    """Our name of an index in ``UNDERLYING_KEYS`` from our name, a short alias (``NSE:NIFTY``) or
    its Upstox key in any case (``NSE_INDEX|Nifty 50``); None for anything else."""
    from algocli.instruments.brokers import index_name

    if "|" in underlying:
        key = " ".join(underlying.split()).upper()
        return next((n for n, k in UNDERLYING_KEYS.items() if k.upper() == key), None)
    exchange, sep, rest = normalise(underlying).partition(":")
    name = f"{exchange}:{index_name(rest)}" if sep else ""
    return name if name in UNDERLYING_KEYS else None


def underlying_key(underlying: str) -> str:
    """Upstox's key of an index (``NSE:NIFTY 50``, ``NSE:NIFTY``) or an Upstox key given as is (``NSE_EQ|INE...``).

    Raises:
        UsageError: Neither.
    """
    known = underlying_name(underlying)
    if known is not None:
        return UNDERLYING_KEYS[known]
    if "|" in underlying:
        return underlying
    raise UsageError(f"no Upstox option chain known for {underlying!r}; use one of "
                     f"{', '.join(UNDERLYING_KEYS)} or an Upstox instrument key (NSE_EQ|<ISIN>)")


def _leg(raw: object, name: str) -> Leg | None:
    if not isinstance(raw, dict):
        return None
    md = raw.get("market_data") if isinstance(raw.get("market_data"), dict) else {}
    gk = raw.get("option_greeks") if isinstance(raw.get("option_greeks"), dict) else {}
    iv = _opt(gk, "iv")
    leg = Leg(str(raw.get("instrument_key", "")), name, ltp=_num(md, "ltp"), prev_close=_num(md, "close_price"),
              volume=int(_num(md, "volume")), oi=int(round(_num(md, "oi"))), prev_oi=int(round(_num(md, "prev_oi"))),
              bid=_num(md, "bid_price"), bid_qty=int(_num(md, "bid_qty")), ask=_num(md, "ask_price"),
              ask_qty=int(_num(md, "ask_qty")), delta=_opt(gk, "delta"), pop_pct=_opt(gk, "pop"))
    if iv:  # 0 or missing: not computable; keep the delta (±1 deep in the money)
        leg.iv_pct, leg.gamma, leg.theta, leg.vega = iv, _opt(gk, "gamma"), _opt(gk, "theta"), _opt(gk, "vega")
    return leg


def parse_chain(data: object, underlying: str, expiry: date, fetched_at: datetime | None = None) -> OptionChain:
    """The ``data`` array of an option-chain answer as an ``OptionChain``.

    Args:
        data: The answer's ``data`` (a list of per-strike objects).
        underlying: Our name of the underlying (``NSE:NIFTY 50``), for the contracts' names.
        expiry: The expiry asked for.
        fetched_at: When the answer arrived; default now.

    Raises:
        BrokerError: ``data`` is not a list of objects.
    """
    if not isinstance(data, list):
        raise BrokerError(f"Upstox option chain: data is {type(data).__name__}, not a list of strikes")
    exchange, symbol = option_symbol(underlying)
    rows, spot = [], 0.0
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("strike_price"), (int, float)):
            continue
        strike = float(item["strike_price"])
        spot = _num(item, "underlying_spot_price") or spot
        rows.append(StrikeRow(strike, _leg(item.get("call_options"), derivative_hrn(exchange, symbol, expiry, "CE", strike)),
                              _leg(item.get("put_options"), derivative_hrn(exchange, symbol, expiry, "PE", strike))))
    return OptionChain("upstox", normalise(underlying), expiry, spot, fetched_at or datetime.now(IST), rows)


def parse_expiries(data: object) -> list[date]:
    """The distinct expiries (ascending) of an option-contract answer's ``data`` rows."""
    out = set()
    for row in data if isinstance(data, list) else []:
        try:
            out.add(date.fromisoformat(str(row.get("expiry"))[:10]))
        except (AttributeError, ValueError):
            continue
    return sorted(out)


async def fetch_expiries(client: UpstoxRest, underlying: str) -> list[date]:
    """The live expiries of ``underlying`` (our name or an Upstox key)."""
    return parse_expiries(await client.get(f"{CONTRACT_PATH}?instrument_key={quote(underlying_key(underlying), safe='')}"))


async def fetch_chain(client: UpstoxRest, underlying: str, expiry: date, *,
                      name: str | None = None) -> OptionChain:
    """Every strike of ``underlying``'s ``expiry``, the chain and its contracts named after ``name``,
    else our name of the index (``NSE_INDEX|Nifty 50`` → ``NSE:NIFTY 50``).

    Raises:
        FeedAuthError: Upstox refused the token.
        BrokerError: Upstox refused the request, kept failing, or sent no strikes.
    """
    key = quote(underlying_key(underlying), safe="")
    data = await client.get(f"{CHAIN_PATH}?instrument_key={key}&expiry_date={expiry.isoformat()}")
    chain = parse_chain(data, name or underlying_name(underlying) or underlying, expiry)
    if not chain.rows:
        raise BrokerError(f"Upstox sent no strikes for {underlying} expiring {expiry.isoformat()}")
    return chain
