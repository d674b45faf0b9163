"""What a strategy can see and do: history, indicators, its positions, and order entry.

Every read is bounded by the current bar: at bar t an indicator equals TA-Lib applied to
the instrument's whole history up to and including t, and nothing after t is visible.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from algocli.domain.models import (
    Order, OrderType, Position, Signal, SignalAction,
)

if TYPE_CHECKING:
    from algocli.data.history import History
    from algocli.domain.candle import Candle
    from algocli.engine.core import EngineCore

_NAN = math.nan


class StrategyContext:
    """The strategy's window onto the run. One context per strategy."""

    __slots__ = ("_core", "_histories", "_strategy_id", "warmup")

    def __init__(self, core: EngineCore, strategy_id: str) -> None:
        self._core = core
        self._histories: dict[str, History] = core.histories
        self._strategy_id = strategy_id
        # First bar (per instrument) at which every indicator the strategy asked for is
        # defined; buy & hold is measured from there, as backtesting.py does.
        self.warmup: dict[str, int] = {}

    @property
    def strategy_id(self) -> str:
        return self._strategy_id

    # --- data -------------------------------------------------------------------------

    def _history(self, instrument: str) -> History:
        try:
            return self._histories[instrument]
        except KeyError:
            known = ", ".join(sorted(self._histories)) or "none"
            raise KeyError(f"no data for {instrument!r} in this run (loaded: {known})") from None

    def get_historical(self, instrument: str, periods: int, field: str = "close") -> np.ndarray:
        """The last ``periods`` values of ``field`` up to the current bar (read-only)."""
        return self._history(instrument).window(periods, field)

    def get_candle(self, instrument: str, offset: int = 0) -> Candle | None:
        """The current candle (``offset=0``) or an earlier one (``-1`` is the previous)."""
        from algocli.domain.candle import Candle

        h = self._history(instrument)
        i = h.cursor + offset
        if offset > 0 or i < 0:
            return None
        return Candle((h, i))

    @property
    def now(self):
        """Start time of the bar being processed (aware IST datetime)."""
        from algocli.domain.candle import ns_to_ist

        return ns_to_ist(self._core.now_ns)

    # --- indicators ---------------------------------------------------------------------

    def _value(self, instrument: str, key: tuple, name: str, params: dict, price: str | None, out: int = 0) -> float:
        try:
            h = self._histories[instrument]
        except KeyError:
            h = self._history(instrument)
        outputs = h.indicators.get(key)
        if outputs is None:
            outputs = self._build(h, key, name, params, price)
        i = h.cursor
        return outputs[out][i] if i >= 0 else _NAN

    def _build(self, h: History, key: tuple, name: str, params: dict, price: str | None):
        try:
            outputs = h.indicator(key, name, params, price)
        except Exception as exc:  # TA-Lib's own errors name neither the call nor the fix
            raise ValueError(f"indicator {name}({params}) on {h.instrument} failed: {exc}") from exc
        prev = self.warmup.get(h.instrument, 0)
        self.warmup[h.instrument] = max(prev, h.first_valid[key])
        return outputs

    def sma(self, instrument: str, period: int, field: str = "close") -> float:
        """Simple moving average of ``field``."""
        # Inlined cache lookup: strategies call this every bar, so it skips _value's extra frame.
        try:
            h = self._histories[instrument]
        except KeyError:
            h = self._history(instrument)
        key = ("SMA", period, field)
        outputs = h.indicators.get(key)
        if outputs is None:
            outputs = self._build(h, key, "SMA", {"timeperiod": period}, field)
        i = h.cursor
        return outputs[0][i] if i >= 0 else _NAN

    def ema(self, instrument: str, period: int, field: str = "close") -> float:
        """Exponential moving average, seeded exactly as TA-Lib seeds it over the full history."""
        return self._value(instrument, ("EMA", period, field), "EMA", {"timeperiod": period}, field)

    def rsi(self, instrument: str, period: int = 14) -> float:
        """Relative strength index of closes."""
        return self._value(instrument, ("RSI", period), "RSI", {"timeperiod": period}, None)

    def macd(self, instrument: str, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[float, float, float]:
        """MACD line, signal line and histogram."""
        key = ("MACD", fast, slow, signal)
        params = {"fastperiod": fast, "slowperiod": slow, "signalperiod": signal}
        return (
            self._value(instrument, key, "MACD", params, None, 0),
            self._value(instrument, key, "MACD", params, None, 1),
            self._value(instrument, key, "MACD", params, None, 2),
        )

    def bollinger_bands(self, instrument: str, period: int = 20, std: float = 2.0) -> tuple[float, float, float]:
        """Upper, middle and lower Bollinger band of closes."""
        key = ("BBANDS", period, std)
        params = {"timeperiod": period, "nbdevup": std, "nbdevdn": std, "matype": 0}
        return (
            self._value(instrument, key, "BBANDS", params, None, 0),
            self._value(instrument, key, "BBANDS", params, None, 1),
            self._value(instrument, key, "BBANDS", params, None, 2),
        )

    def atr(self, instrument: str, period: int = 14) -> float:
        """Average true range."""
        return self._value(instrument, ("ATR", period), "ATR", {"timeperiod": period}, None)

    def indicator(self, name: str, instrument: str, *, price: str | None = None, **params) -> float | tuple[float, ...]:
        """Any TA-Lib function by name, e.g. ``indicator("ADX", inst, timeperiod=14)``.

        Returns a float, or a tuple for functions with several outputs (in TA-Lib's order).
        ``price`` picks the input column for single-input functions (default ``close``).
        """
        name = name.upper()
        key = (name, price, tuple(sorted(params.items())))
        h = self._history(instrument)
        outputs = h.indicators.get(key)
        if outputs is None:
            outputs = self._build(h, key, name, params, price)
        i = h.cursor
        vals = tuple(o[i] if i >= 0 else _NAN for o in outputs)
        return vals[0] if len(vals) == 1 else vals

    def indicator_series(self, name: str, instrument: str, periods: int, *, output: int = 0,
                         price: str | None = None, **params) -> np.ndarray:
        """The last ``periods`` values of a TA-Lib output up to the current bar (read-only)."""
        name = name.upper()
        self.indicator(name, instrument, price=price, **params)
        h = self._history(instrument)
        outputs = h.indicators[(name, price, tuple(sorted(params.items())))]
        end = h.cursor + 1
        arr = np.frombuffer(outputs[output], dtype=np.float64)[max(0, end - periods): end]
        return arr

    # --- portfolio ----------------------------------------------------------------------

    def get_position(self, instrument: str) -> Position | None:
        """This strategy's open position in ``instrument``, or None when flat."""
        pos = self._core.ledger.position(self._strategy_id, instrument)
        return pos if pos is not None and pos.quantity != 0 else None

    def get_balance(self) -> float:
        """Account cash."""
        return self._core.ledger.cash

    def get_equity(self) -> float:
        """Account equity: cash plus positions at their last close."""
        return self._core.equity()

    def get_open_orders(self, instrument: str | None = None) -> list[Order]:
        """This strategy's orders that can still fill."""
        return self._core.broker.open_orders(self._strategy_id, instrument)

    # --- orders -------------------------------------------------------------------------

    def submit_order(self, signal: Signal) -> str | None:
        """Submit an order for ``signal``; returns its order id (None for HOLD)."""
        return self._core.submit(self._strategy_id, signal)

    def buy(self, instrument: str, quantity: int, limit_price: float | None = None, tag: str | None = None) -> str:
        """Submit a buy: market, or limit when ``limit_price`` is given."""
        otype = OrderType.LIMIT if limit_price is not None else OrderType.MARKET
        return self.submit_order(Signal(instrument, SignalAction.BUY, quantity, otype, limit_price, tag))

    def sell(self, instrument: str, quantity: int, limit_price: float | None = None, tag: str | None = None) -> str:
        """Submit a sell (or short sale): market, or limit when ``limit_price`` is given."""
        otype = OrderType.LIMIT if limit_price is not None else OrderType.MARKET
        return self.submit_order(Signal(instrument, SignalAction.SELL, quantity, otype, limit_price, tag))

    def close_position(self, instrument: str, tag: str | None = None) -> str | None:
        """Submit a market order that flattens this strategy's position, if any."""
        pos = self.get_position(instrument)
        if pos is None:
            return None
        if pos.quantity > 0:
            return self.sell(instrument, pos.quantity, tag=tag)
        return self.buy(instrument, -pos.quantity, tag=tag)

    def cancel_order(self, order_id: str) -> bool:
        """Cancel an open order; True if it was still open."""
        return self._core.broker.cancel(order_id, self._strategy_id)

    def modify_order(self, order_id: str, quantity: int | None = None, price: float | None = None) -> bool:
        """Change an open order's quantity or limit price; True if it was still open."""
        return self._core.broker.modify(order_id, self._strategy_id, quantity, price)
