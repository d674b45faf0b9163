"""One tradable thing: the facts the engine, the risk controller and the cost model read.

An ``Instrument`` is named once for people, by its human-readable name (HRN, see
``algocli.domain.hrn``), and once for each broker (``dhan_id``, ``upstox_key``). The
instrument master (``algocli.instruments``) builds them from the brokers' files; a run
without a master gets ``Instrument.from_name``'s guess from the name alone.

**Kind** is what the contract is: ``EQ`` (equity), ``INDEX`` (not tradable), ``FUT``
(future), ``OPT`` (option, with ``option_type`` ``CE`` or ``PE``) or ``CUR`` (a currency
derivative: a future, or an option when ``option_type`` is set). The master files and the
HRN spell an option by its option type (``... 24000 CE``), so the constructor also takes
``kind="CE"``/``"PE"`` and stores ``OPT`` with that option type.

**Segment** is the exchange segment as the brokers name it, derived from exchange and kind
and never from an id string: ``NSE_EQ``, ``BSE_EQ``, ``NSE_FNO``, ``BSE_FNO``,
``NSE_CURRENCY``, ``BSE_CURRENCY``, ``MCX_COMM``, and ``NSE_INDEX``/``BSE_INDEX`` for
indices (see Dhan's annexure of exchange segments,
https://dhanhq.co/docs/v2/annexure/#exchange-segment). Charges and margins differ by
segment, so the cost model keys on it.

Tick sizes are in rupees (both brokers' files give paise).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date

from algocli.domain.hrn import normalise, parse_contract

__all__ = ["COLUMNS", "CURRENCY", "EQUITY", "FUTURE", "INDEX", "KINDS", "OPTION", "OPTION_TYPES", "Instrument"]

EQUITY, INDEX, FUTURE, OPTION, CURRENCY = "EQ", "INDEX", "FUT", "OPT", "CUR"
KINDS = (EQUITY, INDEX, FUTURE, OPTION, CURRENCY)
OPTION_TYPES = ("CE", "PE")
_SEGMENT_SUFFIX = {EQUITY: "EQ", INDEX: "INDEX", FUTURE: "FNO", OPTION: "FNO", CURRENCY: "CURRENCY"}

# A broker id's segment → (exchange, kind), for guessing from a name no master has read.
# Dhan: https://dhanhq.co/docs/v2/annexure/#exchange-segment; Upstox:
# https://upstox.com/developer/api-documentation/instruments (instrument_key segments).
_ID_SEGMENTS = {
    "NSE_EQ": ("NSE", EQUITY), "BSE_EQ": ("BSE", EQUITY), "IDX_I": ("NSE", INDEX),
    "NSE_INDEX": ("NSE", INDEX), "BSE_INDEX": ("BSE", INDEX),
    "NSE_FNO": ("NSE", FUTURE), "BSE_FNO": ("BSE", FUTURE), "NSE_FO": ("NSE", FUTURE), "BSE_FO": ("BSE", FUTURE),
    "NSE_CURRENCY": ("NSE", CURRENCY), "BSE_CURRENCY": ("BSE", CURRENCY), "NCD_FO": ("NSE", CURRENCY),
    "BCD_FO": ("BSE", CURRENCY), "MCX_COMM": ("MCX", FUTURE), "MCX_FO": ("MCX", FUTURE),
}


@dataclass(frozen=True, slots=True)
class Instrument:
    """Static facts about one instrument: a row of the instrument master.

    Attributes:
        hrn: The human-readable name, e.g. ``NSE:HDFCBANK``; the engine's key for it.
        exchange: ``NSE``, ``BSE`` or ``MCX``.
        kind: ``EQ``, ``INDEX``, ``FUT``, ``OPT`` or ``CUR`` (see the module docstring).
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
        option_type: ``CE`` or ``PE`` for an option; None otherwise.
        freeze_quantity: The most units the exchange accepts in one order, or None when
            not known (an order above it must be split).
        broker_ids: ``(broker, id)`` pairs for brokers without a field of their own: a
            broker package added later names its ids here (``BrokerSpec.instrument_id``
            reads its field, then this).

    Raises:
        ValueError: ``kind`` or ``option_type`` is not one of the known values, or they
            do not fit together (an option without a type, an equity with one).
    """

    hrn: str
    exchange: str = ""
    kind: str = ""
    symbol: str = ""
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
    option_type: str | None = None
    freeze_quantity: int | None = None
    broker_ids: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.exchange or not self.kind:
            # Instrument("NSE:HDFCBANK"), as engines built metadata before there was a master
            for key, value in _guess(self.hrn).items():
                if not getattr(self, key):
                    object.__setattr__(self, key, value)
        kind = self.kind
        if kind in OPTION_TYPES:  # the master's and the HRN's spelling of an option
            object.__setattr__(self, "option_type", kind)
            object.__setattr__(self, "kind", OPTION)
        elif kind not in KINDS:
            raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS + OPTION_TYPES)}")
        option_type = self.option_type or None
        if option_type is not None and option_type not in OPTION_TYPES:
            raise ValueError(f"option_type {option_type!r} is not CE or PE")
        if self.kind == OPTION and option_type is None:
            raise ValueError(f"{self.hrn}: an option needs option_type CE or PE")
        if option_type is not None and self.kind not in (OPTION, CURRENCY):
            raise ValueError(f"{self.hrn}: option_type {option_type} on a {self.kind} instrument")
        object.__setattr__(self, "option_type", option_type)

    @classmethod
    def from_name(cls, name: str) -> Instrument:
        """An instrument from its name alone, for a run that has no instrument master.

        Reads ``NSE:HDFCBANK`` (equity on NSE), ``NSE:NIFTY 26 DEC 2024 24000 CE`` (a
        derivative HRN: kind, expiry, strike and option type from the name), a Dhan id
        (``NSE_EQ:1333``, ``NSE_FNO:43225``) or an Upstox key (``NSE_EQ|INE040A01034``):
        the exchange and kind come from the id's segment, and the id is kept as that
        broker's id. Anything else is taken for an NSE equity. Lot size 1 and tick size
        0.05 are guesses too: derivatives need the master's values.

        Args:
            name: The instrument's name as the run uses it; kept unchanged as ``hrn``.

        Returns:
            The instrument, with what the name says and defaults for the rest.
        """
        return cls(name)

    @property
    def segment(self) -> str:
        """The exchange segment, from exchange and kind: ``NSE_EQ``, ``NSE_FNO``, ``MCX_COMM`` ..."""
        if self.exchange == "MCX":
            return "MCX_COMM"
        return f"{self.exchange}_{_SEGMENT_SUFFIX[self.kind]}"

    @property
    def contract(self) -> str:
        """The kind as the brokers' instrument files and the HRN spell it: ``EQ``, ``INDEX``,
        ``FUT``, ``CE`` or ``PE`` (a currency future is ``FUT``, a currency option ``CE``/``PE``)."""
        if self.option_type is not None:
            return self.option_type
        return FUTURE if self.kind == CURRENCY else self.kind

    @property
    def is_derivative(self) -> bool:
        return self.kind in (FUTURE, OPTION, CURRENCY)

    @property
    def is_option(self) -> bool:
        return self.option_type is not None

    @property
    def display_name(self) -> str:
        """The name to show people: the HRN."""
        return self.hrn

    def ids(self) -> tuple[str, ...]:
        """Every spelling that names this instrument: HRN and broker ids."""
        return tuple(i for i in (self.hrn, self.dhan_id, self.upstox_key, *(v for _, v in self.broker_ids)) if i)


COLUMNS = tuple(f.name for f in fields(Instrument))


def _guess(name: str) -> dict:
    """What ``Instrument.from_name`` reads from a name: exchange, kind and what else it says."""
    for sep, id_field in ((":", "dhan_id"), ("|", "upstox_key")):
        segment, found, ident = name.partition(sep)
        if found and segment in _ID_SEGMENTS:
            exchange, kind = _ID_SEGMENTS[segment]
            return {"exchange": exchange, "kind": kind, "symbol": ident, id_field: name}
    contract = parse_contract(name)
    if contract is not None:
        try:
            expiry = None if contract.year is None else date(contract.year, contract.month, contract.day)
        except ValueError:  # 31 FEB: a name, not a date
            expiry = None
        return {"exchange": contract.exchange, "kind": contract.kind, "symbol": contract.underlying,
                "expiry": expiry, "strike": contract.strike}
    exchange, found, symbol = normalise(name).partition(":")
    return {"exchange": exchange if found and exchange else "NSE", "kind": EQUITY, "symbol": symbol or exchange}
