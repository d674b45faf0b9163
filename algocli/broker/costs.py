"""Transaction costs charged on each fill.

Every fill, in every mode (the simulated broker in backtest and paper, the live router for
a real broker's fills), is priced by a ``CostModel`` given one ``CostContext``: the
instrument, the product, the side, the quantity, the price and the time. Segment-aware,
date-versioned Indian charges plug in through that one signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from algocli.domain.models import Instrument


@dataclass(frozen=True, slots=True)
class CostContext:
    """What a cost model needs to know about one fill.

    Attributes:
        instrument: The instrument model (exchange, kind, segment, lot and tick sizes).
        product: The broker product the order was placed under (``CNC``, ``INTRADAY``,
            ``MARGIN``, ...), or None where the run does not name one.
        buy: True for a buy fill.
        quantity: Units filled.
        price: Fill price in rupees.
        ts: Fill time, UTC nanoseconds (the charge tables are dated by it).
    """

    instrument: Instrument
    product: str | None
    buy: bool
    quantity: int
    price: float
    ts: int


class CostModel(Protocol):
    """Anything that prices a fill's charges in rupees."""

    def charges(self, ctx: CostContext) -> float: ...


class PercentCommission:
    """A flat fraction of traded value, charged on each side (0.0003 = 3 bp)."""

    __slots__ = ("rate",)

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)

    def charges(self, ctx: CostContext) -> float:
        return ctx.quantity * ctx.price * self.rate
