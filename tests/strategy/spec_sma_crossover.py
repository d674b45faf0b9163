# The example strategy of the technical specification (section 4.1.3, "Example Strategy
# Implementation"), copied as written except for its three import lines, which name algocli.
# strategies/sma_crossover.py

from algocli import BaseStrategy, Signal, SignalAction
from algocli import Candle
from algocli import OrderType

class SmaCrossover(BaseStrategy):
    """
    Simple Moving Average Crossover Strategy.

    Buys when fast SMA crosses above slow SMA.
    Sells when fast SMA crosses below slow SMA.
    """

    def __init__(self, fast_period: int = 10, slow_period: int = 20, quantity: int = 1):
        super().__init__(
            fast_period=fast_period,
            slow_period=slow_period,
            quantity=quantity
        )
        self.fast_period = fast_period
        self.slow_period = slow_period
        self.quantity = quantity
        self._prev_fast: float | None = None
        self._prev_slow: float | None = None

    @property
    def instruments(self) -> list[str]:
        return ["NSE_EQ:1333"]  # HDFC Bank

    def on_candle(self, candle: Candle) -> Signal | None:
        # Calculate current SMAs
        fast_sma = self.context.sma(candle.instrument, self.fast_period)
        slow_sma = self.context.sma(candle.instrument, self.slow_period)

        signal = None

        # Check for crossover
        if self._prev_fast is not None and self._prev_slow is not None:
            # Bullish crossover
            if self._prev_fast <= self._prev_slow and fast_sma > slow_sma:
                position = self.context.get_position(candle.instrument)
                if position is None or position.quantity <= 0:
                    signal = Signal(
                        instrument=candle.instrument,
                        action=SignalAction.BUY,
                        quantity=self.quantity,
                        order_type=OrderType.MARKET,
                    )

            # Bearish crossover
            elif self._prev_fast >= self._prev_slow and fast_sma < slow_sma:
                position = self.context.get_position(candle.instrument)
                if position is not None and position.quantity > 0:
                    signal = Signal(
                        instrument=candle.instrument,
                        action=SignalAction.SELL,
                        quantity=position.quantity,
                        order_type=OrderType.MARKET,
                    )

        # Store for next comparison
        self._prev_fast = fast_sma
        self._prev_slow = slow_sma

        return signal
