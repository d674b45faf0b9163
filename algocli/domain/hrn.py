"""Human-readable names (HRNs): build the canonical one, and read the ones people type.

The HRN is the project's own spelling of an instrument, the same whichever broker supplied
it. It is ``EXCHANGE:`` followed by:

* equity: the exchange symbol, ``NSE:HDFCBANK``;
* index: the index's name in capitals, ``NSE:NIFTY 50``, ``NSE:NIFTY BANK``, ``BSE:SENSEX``;
* future: underlying, expiry day, month and year, ``FUT``: ``NSE:NIFTY 30 DEC 2025 FUT``;
* option: underlying, expiry, strike, ``CE``/``PE``: ``NSE:NIFTY 26 DEC 2024 24000 CE``.

The year is part of the canonical name so that a name in an old artifact never comes to
mean a newer contract. When reading, the year may be left out (``NSE:NIFTY 26 DEC 24000
CE``): the nearest listed contract with that day and month is meant (the instrument
master decides which).

Reading is forgiving where it cannot be wrong: any case, runs of spaces, ``CALL``/``PUT``
for ``CE``/``PE``, a two- or four-digit year, or no year at all. Writing is canonical, so
the same instrument always prints the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

__all__ = ["MONTHS", "Contract", "derivative_hrn", "format_strike", "parse_contract", "plain_hrn", "normalise"]

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_OPTION_WORDS = {"CE": "CE", "PE": "PE", "CALL": "CE", "PUT": "PE", "FUT": "FUT"}
_CONTRACT = re.compile(
    r"^(?P<und>.+?) (?P<day>\d{1,2}) (?P<mon>[A-Z]{3}) (?:(?P<year>\d{4}|\d{2}) )?"
    r"(?:(?P<strike>\d+(?:\.\d+)?) (?P<opt>CE|PE|CALL|PUT)|(?P<fut>FUT))$")


@dataclass(frozen=True, slots=True)
class Contract:
    """A derivative as typed: the year may be missing (None)."""

    exchange: str
    underlying: str
    day: int
    month: int
    year: int | None
    kind: str  # FUT, CE or PE
    strike: float | None

    def matches(self, expiry: date | None) -> bool:
        return (expiry is not None and expiry.day == self.day and expiry.month == self.month
                and (self.year is None or expiry.year == self.year))


def normalise(text: str) -> str:
    """Upper case, single spaces, no space around the colon: ``nse : nifty  50`` → ``NSE:NIFTY 50``."""
    exchange, sep, rest = text.partition(":")
    rest = " ".join(rest.upper().split())
    return f"{exchange.strip().upper()}{sep}{rest}" if sep else " ".join(text.upper().split())


def format_strike(strike: float) -> str:
    """``24000.0`` → ``24000``; ``102.5`` → ``102.5``."""
    return f"{strike:.2f}".rstrip("0").rstrip(".")


def plain_hrn(exchange: str, symbol: str) -> str:
    """An equity's or an index's name: ``NSE:HDFCBANK``, ``NSE:NIFTY 50``."""
    return f"{exchange.upper()}:{' '.join(symbol.upper().split())}"


def derivative_hrn(exchange: str, underlying: str, expiry: date, kind: str, strike: float | None) -> str:
    """``NSE:NIFTY 26 DEC 2024 24000 CE`` or ``NSE:NIFTY 30 DEC 2025 FUT``."""
    head = f"{exchange.upper()}:{underlying.upper()} {expiry.day:02d} {MONTHS[expiry.month - 1]} {expiry.year}"
    if kind == "FUT":
        return f"{head} FUT"
    return f"{head} {format_strike(strike or 0.0)} {kind}"


def parse_contract(text: str) -> Contract | None:
    """Read a derivative's name, or None when ``text`` does not look like one.

    ``NSE:NIFTY 26 DEC 24000 CE``, ``nse:nifty 26 dec 2024 24000 call``, ``NSE:NIFTY 26 DEC 24 24000 CE``
    and ``NSE:BANKNIFTY 24 DEC 2024 FUT`` are all read; a month that is not one of ``MONTHS``
    or a day outside 1-31 gives None.
    """
    exchange, sep, rest = normalise(text).partition(":")
    if not sep:
        return None
    match = _CONTRACT.match(rest)
    if match is None or match["mon"] not in MONTHS or not 1 <= int(match["day"]) <= 31:
        return None
    year = match["year"]
    full_year = None if year is None else int(year) + (2000 if len(year) == 2 else 0)
    kind = "FUT" if match["fut"] else _OPTION_WORDS[match["opt"]]
    strike = float(match["strike"]) if match["strike"] else None
    return Contract(exchange, match["und"], int(match["day"]), MONTHS.index(match["mon"]) + 1, full_year, kind, strike)
