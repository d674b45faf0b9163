"""Option contracts picked the way traders name them: underlying, expiry code, strike code, right.

``ctx.option("NSE:NIFTY 50", expiry="current", strike="ATM+2", right="CE")`` reads:

- **expiry**: ``current`` (or ``current_week``/``week``) is the nearest expiry on or after the
  bar's date, ``next`` (``next_week``) the one after it; ``current_month`` (``month``) is the
  nearest *monthly* expiry, ``next_month`` the one after. A monthly expiry is the exchange's: the
  month's last Thursday (last Tuesday from Sep 2025), moved back over holidays
  (``algocli.data.expiries``), whether or not the folder lists it: a folder that lacks it (a weekly
  download ending mid-month) is an error naming the date, never a weekly in its place. An NSE
  index whose monthly falls up to 3 days before that day (BANKNIFTY's Wednesdays of 2024,
  FINNIFTY's Tuesdays, MIDCPNIFTY's Mondays, which the rules do not model) reads its listed one;
  other exchanges (BSE) take the last listed expiry of each month. A date (``"2024-12-26"`` or a
  ``date``) names one expiry.
- **strike**: ``ATM`` is the listed strike nearest the underlying's last price (the lower one on a
  tie); ``ATM+2``/``ATM-1`` move that many listed strikes up or down (strike steps, as the chain
  lists them: 50 apart near the money for NIFTY, wider further out). ``OTM2``/``ITM1`` move
  away from/into the money for the given right (up for a call's OTM, down for a put's). A number
  is that strike. ``delta:0.25`` picks the strike whose delta is nearest 0.25 (0.25 means -0.25 for
  a put; the lower strike on a tie) in the expiry's chain at that moment: the broker's greeks in paper
  and live, Black-76 ones (``algocli.options.greeks``, the ``options`` extra) in a backtest.
- **right**: ``CE`` or ``PE`` (``CALL``/``PUT``/``C``/``P`` too).

Strikes are taken from both rights of the chosen expiry, so ``ATM`` is the same strike for a call
and a put. The lot size is the contract's own (the master's row): lot sizes change by contract,
not by date, and old and new lots trade side by side after a revision.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from typing import TYPE_CHECKING, NamedTuple

from algocli.domain.hrn import normalise
from algocli.domain.instrument import Instrument
from algocli.instruments.brokers import index_name

if TYPE_CHECKING:
    from algocli.options.chain import OptionChain

__all__ = ["OptionPick", "delta_strike", "pick_expiry", "pick_option", "pick_strike", "underlying_of"]

_RIGHTS = {"CE": "CE", "CALL": "CE", "C": "CE", "PE": "PE", "PUT": "PE", "P": "PE"}
_WEEK = {"current": 0, "current_week": 0, "week": 0, "next": 1, "next_week": 1}
_MONTH = {"current_month": 0, "month": 0, "next_month": 1}


class OptionPick(NamedTuple):
    """The contract ``ctx.option`` chose.

    Attributes:
        name: Its human-readable name (the engine's key: trade it by this name).
        lot_size: Units per lot of this contract.
        instrument: The master's row.
        spot: The underlying's price the strike was chosen against.
    """

    name: str
    lot_size: int
    instrument: Instrument
    spot: float

    @property
    def expiry(self) -> date:
        return self.instrument.expiry

    @property
    def strike(self) -> float:
        return self.instrument.strike


def underlying_of(instrument: Instrument) -> str:
    """The HRN of a derivative's underlying: ``NIFTY`` options → ``NSE:NIFTY 50``, ``HDFCBANK`` → ``NSE:HDFCBANK``."""
    return f"{instrument.exchange}:{index_name(instrument.symbol)}"


def options_on(rows: Iterable[Instrument], underlying: str) -> list[Instrument]:
    """The option contracts among ``rows`` on ``underlying`` (spelt as ``canonical_underlying`` gives it)."""
    return [r for r in rows if r.option_type is not None and r.expiry is not None and underlying_of(r) == underlying]


def canonical_underlying(name: str) -> str:
    """``NSE:NIFTY``, ``nse:nifty 50`` → ``NSE:NIFTY 50`` (the spelling ``underlying_of`` gives)."""
    exchange, sep, rest = normalise(name).partition(":")
    return f"{exchange}:{index_name(rest)}" if sep else f"NSE:{index_name(exchange)}"


def pick_expiry(expiries: Iterable[date], today: date, code: str | date, *, exchange: str = "NSE") -> date:
    """The expiry ``code`` names among ``expiries`` as seen on ``today`` (see the module docstring).

    ``exchange``: the underlying's; NSE's monthly expiries follow ``algocli.data.expiries``.

    Raises:
        ValueError: An unknown code, or no listed expiry fits it (the message lists those there are).
    """
    listed = sorted(set(expiries))
    live = [d for d in listed if d >= today]
    shown = ", ".join(d.isoformat() for d in listed[:8]) or "none"
    if isinstance(code, date):
        wanted = code
    else:
        key = str(code).strip().lower()
        if key in _WEEK:
            k = _WEEK[key]
            if len(live) <= k:
                raise ValueError(f"expiry={code!r}: only {len(live)} expiry(ies) on or after {today} are listed "
                                 f"(listed: {shown})")
            return live[k]
        if key in _MONTH and exchange.upper() in ("NSE", "NFO"):
            return _nse_monthly(listed, today, _MONTH[key], code, shown)
        if key in _MONTH:
            monthly = [d for d in live if d == max(x for x in listed if (x.year, x.month) == (d.year, d.month))]
            k = _MONTH[key]
            if len(monthly) <= k:
                raise ValueError(f"expiry={code!r}: only {len(monthly)} monthly expiry(ies) on or after {today} "
                                 f"are listed (listed: {shown})")
            return monthly[k]
        try:
            wanted = date.fromisoformat(key)
        except ValueError:
            raise ValueError(f"expiry={code!r} is not current, next, current_month, next_month or a date "
                             "YYYY-MM-DD") from None
    if wanted not in listed:
        raise ValueError(f"expiry {wanted} is not listed for this underlying (listed: {shown})")
    return wanted


def _nse_monthly(listed: list[date], today: date, k: int, code: object, shown: str) -> date:
    """NSE's ``k``-th monthly expiry on or after ``today`` by the exchange's rules, which must be listed.

    Raises:
        ValueError: The folder does not list it (the message names the date wanted).
    """
    from algocli.data.expiries import expiry_days

    wanted = expiry_days("month", today, today + timedelta(days=40 * (k + 2)))[k]
    if wanted in listed:
        return wanted
    # another index's own weekday (BANKNIFTY's Wednesday): its monthly sits just before the rule's day;
    # a weekly is 6 or more days before it, so it is never taken for the monthly
    near = [d for d in listed if wanted - timedelta(days=3) <= d < wanted]
    if near:
        return near[-1]
    raise ValueError(f"expiry={code!r}: the monthly expiry on or after {today} is {wanted} (the month's last "
                     f"expiry day), which is not listed (listed: {shown}); add its contracts to data.options "
                     "or name a listed date")


def pick_strike(strikes: Iterable[float], spot: float, code: str | float, right: str) -> float:
    """The strike ``code`` names among ``strikes`` for an underlying at ``spot`` (see the module docstring).

    Raises:
        ValueError: An unknown code, or an offset beyond the listed strikes.
    """
    listed = sorted(set(strikes))
    if not listed:
        raise ValueError("no strikes are listed")
    if isinstance(code, (int, float)) and not isinstance(code, bool):
        if float(code) not in listed:
            raise ValueError(f"strike {code:g} is not listed (nearest: {min(listed, key=lambda s: abs(s - code)):g})")
        return float(code)
    text = str(code).strip().upper().replace(" ", "")
    k = bisect_left(listed, spot)
    if k == len(listed) or (k > 0 and spot - listed[k - 1] <= listed[k] - spot):
        k -= 1
    if text.startswith("ATM"):
        rest = text[3:]
        steps = int(rest) if rest else 0
    elif text[:3] in ("OTM", "ITM") and text[3:].isdigit():
        n = int(text[3:])
        up = (text[:3] == "OTM") == (right == "CE")
        steps = n if up else -n
    else:
        try:
            return pick_strike(listed, spot, float(text), right)
        except ValueError as exc:
            if "not listed" in str(exc):
                raise
            raise ValueError(f"strike={code!r} is not ATM, ATM+N, ATM-N, OTMn, ITMn, a number or "
                             "delta:X") from None
    at = k + steps
    if not 0 <= at < len(listed):
        raise ValueError(f"strike={code!r}: ATM is {listed[k]:g} and only {k} strike(s) below and "
                         f"{len(listed) - k - 1} above it are listed")
    return listed[at]


def pick_option(rows: Iterable[Instrument], underlying: str, spot: float, today: date, *, expiry: str | date,
                strike: str | float, right: str,
                chain_for: Callable[[date], OptionChain | None] | None = None) -> Instrument:
    """The option of ``rows`` that ``underlying``, ``expiry``, ``strike`` and ``right`` name.

    Args:
        rows: Instrument rows (options of any underlying; others are ignored).
        underlying: The underlying's HRN (``NSE:NIFTY 50``; ``NSE:NIFTY`` also reads).
        spot: The underlying's last price.
        today: The bar's IST date (expiry codes count from it).
        expiry, strike, right: See the module docstring.
        chain_for: The chain of an expiry now (for ``delta:`` strikes).

    Raises:
        ValueError: No options of ``underlying`` are listed, or a code does not fit them.
    """
    kind = _RIGHTS.get(str(right).strip().upper())
    if kind is None:
        raise ValueError(f"right={right!r} is not CE or PE")
    want = canonical_underlying(underlying)
    chain = options_on(rows, want)
    if not chain:
        raise ValueError(f"no options of {want} are listed in this run (add data.options with underlying "
                         f"{want!r} and its contracts' instruments.csv)")
    day = pick_expiry((r.expiry for r in chain), today, expiry, exchange=chain[0].exchange)
    same = [r for r in chain if r.expiry == day]
    if isinstance(strike, str) and strike.strip().lower().startswith("delta:"):
        if chain_for is None:
            raise ValueError(f"strike={strike!r}: choosing by delta needs the option chain, which this run does "
                             "not have; choose by ATM offset (strike='ATM+1')")
        chosen = delta_strike(chain_for(day), strike, kind)
    else:
        chosen = pick_strike((r.strike for r in same), spot, strike, kind)
    for r in same:
        if r.strike == chosen and r.option_type == kind:
            return r
    raise ValueError(f"{want} {day} {chosen:g} {kind} is not listed (the other right is)")


def delta_strike(chain: OptionChain | None, code: str, right: str) -> float:
    """The strike of ``chain`` whose ``right`` leg's delta is nearest ``delta:X`` (``-X`` for a put).

    A chain without any delta on that side gets Black-76 greeks first (``algocli.options.greeks``).

    Raises:
        ValueError: ``X`` is not between 0 and 1, there is no chain yet, no leg has a delta, or vollib
            (the ``options`` extra) is needed and missing.
    """
    try:
        target = abs(float(code.split(":", 1)[1]))
    except ValueError:
        target = -1.0
    if not 0 < target < 1:
        raise ValueError(f"strike={code!r}: delta:X needs X between 0 and 1, e.g. delta:0.25")
    if chain is None:
        raise ValueError(f"strike={code!r}: there is no option chain yet to read deltas from")
    want = target if right == "CE" else -target
    side = right.lower()
    legs = [(row.strike, getattr(row, side)) for row in chain.rows if getattr(row, side) is not None]
    if legs and all(leg.delta is None for _, leg in legs):
        from algocli.errors import ConfigError
        from algocli.options.greeks import fill_greeks

        try:
            fill_greeks(chain)
        except ConfigError:
            raise ValueError(f"strike={code!r}: choosing by delta needs option greeks: install the options "
                             "extra: pip install -e '.[options]'") from None
    priced = [(abs(leg.delta - want), k) for k, leg in legs if leg.delta is not None]
    if not priced:
        raise ValueError(f"strike={code!r}: no {right} of {chain.underlying} {chain.expiry} has a delta")
    return min(priced)[1]
