"""Transaction costs charged on each fill.

The simulated broker asks a ``CostModel`` for the charge on every fill, so segment-aware
Indian charges (brokerage, STT, exchange, SEBI, stamp duty, GST) can replace the flat
rate without touching the broker.
"""

from __future__ import annotations

from typing import Protocol


class CostModel(Protocol):
    """Anything that prices a fill's charges in rupees."""

    def commission(self, instrument: str, buy: bool, quantity: int, price: float) -> float: ...


class PercentCommission:
    """A flat fraction of traded value, charged on each side (0.0003 = 3 bp)."""

    __slots__ = ("rate",)

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)

    def commission(self, instrument: str, buy: bool, quantity: int, price: float) -> float:
        return quantity * price * self.rate
