"""Loaded OHLCV columns of one instrument: what files, broker APIs and the engine exchange.

``Bars`` is vocabulary, not storage: the CSV reader, the brokers' historical clients, the
sandbox and the analytics all pass it around, so it lives below all of them. The growable,
cursor-bearing ``History`` the engine reads through is built from it in
``algocli.data.history``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FIELDS", "Bars"]

FIELDS = ("open", "high", "low", "close", "volume")


@dataclass(slots=True)
class Bars:
    """Immutable OHLCV columns of one instrument, as loaded from a file or an API.

    ``ts`` holds the bar start as UTC nanoseconds (int64); prices and volume are float64.
    """

    instrument: str
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    oi: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ts)

    def slice(self, start: int, stop: int) -> Bars:
        """Bars ``[start, stop)`` as views of these columns (no copy)."""
        oi = None if self.oi is None else self.oi[start:stop]
        return Bars(
            self.instrument,
            self.ts[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
            oi,
        )
