"""algo: backtest, paper-trade and live-trade strategies on NSE/BSE from one YAML file.

Strategy authors need only the names below::

    from algocli import BaseStrategy, Signal, SignalAction, StrategyParams
"""

from algocli.domain.candle import Candle
from algocli.domain.models import (
    Fill, Instrument, Interval, Order, OrderSide, OrderStatus, OrderType, Position, Signal,
    SignalAction,
)
from algocli.errors import AlgoError
from algocli.strategy.base import BaseStrategy, StrategyParams
from algocli.strategy.context import StrategyContext

__version__ = "0.1.0"

__all__ = [
    "AlgoError",
    "BaseStrategy",
    "Candle",
    "Fill",
    "Instrument",
    "Interval",
    "Order",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "Position",
    "Signal",
    "SignalAction",
    "StrategyContext",
    "StrategyParams",
    "__version__",
]
