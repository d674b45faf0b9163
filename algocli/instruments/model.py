"""One tradable thing, named once for people and once for each broker.

The human-readable name (HRN) is the project's own spelling, the same whichever broker
supplied the row. It is ``EXCHANGE:`` followed by:

* equity: the exchange symbol, ``NSE:HDFCBANK``;
* index: the index's name in capitals, ``NSE:NIFTY 50``, ``NSE:NIFTY BANK``, ``BSE:SENSEX``;
* future: underlying, expiry day, month and year, ``FUT``: ``NSE:NIFTY 30 DEC 2025 FUT``;
* option: underlying, expiry, strike, ``CE``/``PE``: ``NSE:NIFTY 26 DEC 2024 24000 CE``.

The year is part of the canonical name so that a name in an old artifact never comes to
mean a newer contract. When reading, the year may be left out (``NSE:NIFTY 26 DEC 24000
CE``): the nearest listed contract with that day and month is meant (see ``hrn.parse``).

Broker ids: Dhan's ``SEGMENT:SECURITY_ID`` (``NSE_EQ:1333``) with its instrument type for
the historical API (``EQUITY``, ``INDEX``, ``OPTIDX``, ...), and Upstox's
``instrument_key`` (``NSE_EQ|INE040A01034``). Tick sizes are in rupees here (both brokers'
files give paise).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date

__all__ = ["COLUMNS", "KINDS", "Instrument"]

KINDS = ("EQ", "INDEX", "FUT", "CE", "PE")


@dataclass(frozen=True, slots=True)
class Instrument:
    """A row of the merged instrument master.

    Attributes:
        hrn: The human-readable name, e.g. ``NSE:HDFCBANK``.
        exchange: ``NSE``, ``BSE`` or ``MCX``.
        kind: ``EQ``, ``INDEX``, ``FUT``, ``CE`` or ``PE``.
        symbol: Exchange symbol (equity), index name, or the underlying's symbol (derivatives).
        name: The company's or index's long name, for search; may be empty.
        expiry: Last trading day of a derivative; None otherwise.
        strike: Option strike in rupees; None otherwise.
        lot_size: Units per lot (1 for equity and indices).
        tick_size: Least price step in rupees.
        isin: ISIN of an equity, else empty.
        token: The exchange's numeric token (Dhan's security id for NSE/BSE rows), or empty.
        dhan_id: ``SEGMENT:SECURITY_ID`` for Dhan, or empty when Dhan does not list it.
        dhan_instrument: Dhan's instrument type (``EQUITY``, ``INDEX``, ``OPTIDX``, ...).
        upstox_key: Upstox's ``instrument_key``, or empty when Upstox does not list it.
    """

    hrn: str
    exchange: str
    kind: str
    symbol: str
    name: str = ""
    expiry: date | None = None
    strike: float | None = None
    lot_size: int = 1
    tick_size: float = 0.05
    isin: str = ""
    token: str = ""
    dhan_id: str = ""
    dhan_instrument: str = ""
    upstox_key: str = ""

    @property
    def is_derivative(self) -> bool:
        return self.kind in ("FUT", "CE", "PE")

    def ids(self) -> tuple[str, ...]:
        """Every spelling that names this instrument: HRN and broker ids."""
        return tuple(i for i in (self.hrn, self.dhan_id, self.upstox_key) if i)


COLUMNS = tuple(f.name for f in fields(Instrument))
