"""Cash, positions and FIFO round trips, attributed to the strategy that traded.

Positions are kept per (strategy, instrument) so every trade and every rupee of P&L has an
owner; the account's net position in an instrument is the sum over strategies. Round trips
follow backtesting.py's accounting: lots close first-in first-out, and a trade's commission
is its share of the entry fill's commission plus its share of the exit fill's.
"""

from __future__ import annotations

from collections import deque

from algocli.domain.models import Fill, OrderSide, Position

_BUY = OrderSide.BUY
# An open lot is a list, [signed quantity, price, ts, bar, commission per unit]: made and changed once
# per fill, a list costs a fraction of an object with attributes.
_QTY, _PRICE, _TS, _BAR, _COMM = range(5)


class Ledger:
    """The account's books. Every booked fill changes cash and positions exactly once."""

    def __init__(self, initial_capital: float) -> None:
        self.initial_capital = float(initial_capital)
        self.cash = float(initial_capital)
        self.positions: dict[tuple[str, str], Position] = {}
        self.net: dict[str, int] = {}
        # Instruments the account is net short in: without margin rules only these make the
        # available margin depend on prices, so the broker's check walks them, not every position.
        self.shorts: dict[str, None] = {}  # an ordered set: sums over it run in a fixed order
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
        booked = self.booked
        if fill.fill_id in booked:
            raise ValueError(f"fill {fill.fill_id} is already booked")
        booked.add(fill.fill_id)
        qty = fill.quantity
        signed = qty if fill.side is _BUY else -qty
        price = fill.price
        self.cash -= signed * price + fill.commission
        inst = fill.instrument
        net = self.net
        now = net[inst] = net.get(inst, 0) + signed
        if now < 0:
            self.shorts[inst] = None
        elif self.shorts:
            self.shorts.pop(inst, None)
        key = (fill.strategy_id, inst)
        lots = self._lots.get(key)
        if lots is None:
            pos = self.positions[key] = Position(inst)
            lots = self._lots[key] = deque()
        else:
            pos = self.positions[key]
        pos.last_price = price
        if lots and lots[0][_QTY] * signed < 0:
            signed = self._close_lots(lots, pos, fill, signed)
            if not signed:
                return
        lots.append([signed, price, fill.ts, fill.bar, fill.commission / qty])
        held = pos.quantity
        pos.average_price = (pos.average_price * held + signed * price) / (held + signed)
        pos.quantity = held + signed

    def _close_lots(self, lots: deque[list], pos: Position, fill: Fill, signed: int) -> int:
        """Close lots first-in first-out against ``signed``; return the part left to open."""
        exit_comm_per_unit = fill.commission / fill.quantity
        price = fill.price
        while signed and lots and lots[0][_QTY] * signed < 0:
            lot = lots[0]
            lot_qty, lot_price = lot[_QTY], lot[_PRICE]
            qty = min(abs(lot_qty), abs(signed))
            size = qty if lot_qty > 0 else -qty
            commission = qty * (lot[_COMM] + exit_comm_per_unit)
            pnl = size * (price - lot_price) - commission
            ret = (1.0 if size > 0 else -1.0) * (price / lot_price - 1) - commission / (qty * lot_price)
            self.trades.append((
                fill.strategy_id, fill.instrument, size, lot[_TS], fill.ts, lot_price,
                price, pnl, ret, commission, lot[_BAR], fill.bar,
            ))
            pos.realized_pnl += pnl
            lot[_QTY] = lot_qty - size
            signed += size
            if lot_qty == size:
                lots.popleft()
        if not lots:  # the usual close: the position is flat
            pos.average_price = 0.0
            pos.quantity = 0
            return signed
        held = sum(lot[_QTY] for lot in lots)
        pos.average_price = (sum(lot[_QTY] * lot[_PRICE] for lot in lots) / held) if held else 0.0
        pos.quantity = held
        return signed


TRADE_FIELDS = (
    "strategy", "instrument", "size", "entry_ts", "exit_ts", "entry_price", "exit_price",
    "pnl", "return_pct", "commission", "entry_bar", "exit_bar",
)
