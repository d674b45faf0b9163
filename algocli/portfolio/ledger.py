"""Cash, positions and FIFO round trips, attributed to the strategy that traded.

Positions are kept per (strategy, instrument) so every trade and every rupee of P&L has an
owner; the account's net position in an instrument is the sum over strategies. Round trips
follow backtesting.py's accounting: lots close first-in first-out, and a trade's commission
is its share of the entry fill's commission plus its share of the exit fill's.
"""

from __future__ import annotations

from collections import deque

from algocli.domain.models import Fill, Position


class _Lot:
    __slots__ = ("qty", "price", "ts", "bar", "comm_per_unit")

    def __init__(self, qty: int, price: float, ts: int, bar: int, comm_per_unit: float) -> None:
        self.qty = qty  # signed
        self.price = price
        self.ts = ts
        self.bar = bar
        self.comm_per_unit = comm_per_unit


class Ledger:
    """The account's books. Every booked fill changes cash and positions exactly once."""

    def __init__(self, initial_capital: float) -> None:
        self.initial_capital = float(initial_capital)
        self.cash = float(initial_capital)
        self.positions: dict[tuple[str, str], Position] = {}
        self.net: dict[str, int] = {}
        self._lots: dict[tuple[str, str], deque[_Lot]] = {}
        # Closed round trips as tuples (see TRADE_FIELDS); tuples keep 30k trades cheap.
        self.trades: list[tuple] = []
        self.booked: set[str] = set()

    def position(self, strategy_id: str, instrument: str) -> Position | None:
        return self.positions.get((strategy_id, instrument))

    def opening_quantity(self, strategy_id: str, instrument: str, signed_qty: int) -> tuple[int, int]:
        """Split an order into the part that closes the strategy's position and the part that opens."""
        pos = self.positions.get((strategy_id, instrument))
        held = pos.quantity if pos is not None else 0
        if held * signed_qty >= 0:
            return 0, abs(signed_qty)
        closing = min(abs(held), abs(signed_qty))
        return closing, abs(signed_qty) - closing

    def book(self, fill: Fill) -> None:
        """Apply a fill to cash, the strategy's position and its round trips."""
        if fill.fill_id in self.booked:
            raise ValueError(f"fill {fill.fill_id} is already booked")
        self.booked.add(fill.fill_id)
        signed = fill.signed_quantity
        self.cash -= signed * fill.price + fill.commission
        key = (fill.strategy_id, fill.instrument)
        self.net[fill.instrument] = self.net.get(fill.instrument, 0) + signed
        pos = self.positions.get(key)
        if pos is None:
            pos = self.positions[key] = Position(fill.instrument)
            self._lots[key] = deque()
        pos.last_price = fill.price
        remaining = self._close_lots(key, pos, fill, signed)
        if remaining:
            self._lots[key].append(
                _Lot(remaining, fill.price, fill.ts, fill.bar, fill.commission / fill.quantity)
            )
        self._refresh(pos, self._lots[key])

    def _close_lots(self, key: tuple[str, str], pos: Position, fill: Fill, signed: int) -> int:
        lots = self._lots[key]
        exit_comm_per_unit = fill.commission / fill.quantity
        while signed and lots and lots[0].qty * signed < 0:
            lot = lots[0]
            qty = min(abs(lot.qty), abs(signed))
            size = qty if lot.qty > 0 else -qty
            commission = qty * (lot.comm_per_unit + exit_comm_per_unit)
            pnl = size * (fill.price - lot.price) - commission
            ret = (1.0 if size > 0 else -1.0) * (fill.price / lot.price - 1) - commission / (qty * lot.price)
            self.trades.append((
                fill.strategy_id, fill.instrument, size, lot.ts, fill.ts, lot.price,
                fill.price, pnl, ret, commission, lot.bar, fill.bar,
            ))
            pos.realized_pnl += pnl
            lot.qty -= size
            signed += size
            if lot.qty == 0:
                lots.popleft()
        return signed

    @staticmethod
    def _refresh(pos: Position, lots: deque[_Lot]) -> None:
        qty = sum(lot.qty for lot in lots)
        pos.quantity = qty
        pos.average_price = (sum(lot.qty * lot.price for lot in lots) / qty) if qty else 0.0


TRADE_FIELDS = (
    "strategy", "instrument", "size", "entry_ts", "exit_ts", "entry_price", "exit_price",
    "pnl", "return_pct", "commission", "entry_bar", "exit_bar",
)
