"""algo: backtest, paper-trade and live-trade strategies on NSE/BSE from one YAML file.

Strategy authors need only the names below::

    from algocli import BaseStrategy, Signal, SignalAction, StrategyParams

The names are imported on first use (PEP 562), so that ``algo --help`` and ``algo --version``
start without numpy and pydantic, which every one of these names pulls in.
"""

import importlib as _importlib
import typing as _typing

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "AlgoError": "algocli.errors",
    "BaseStrategy": "algocli.strategy.base",
    "Candle": "algocli.domain.candle",
    "Fill": "algocli.domain.models",
    "Instrument": "algocli.domain.models",
    "Interval": "algocli.domain.models",
    "Order": "algocli.domain.models",
    "OrderSide": "algocli.domain.models",
    "OrderStatus": "algocli.domain.models",
    "OrderType": "algocli.domain.models",
    "Position": "algocli.domain.models",
    "Signal": "algocli.domain.models",
    "SignalAction": "algocli.domain.models",
    "StrategyContext": "algocli.strategy.context",
    "StrategyParams": "algocli.strategy.base",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if _typing.TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ provides them
    from algocli.domain.candle import Candle
    from algocli.domain.models import (
        Fill, Instrument, Interval, Order, OrderSide, OrderStatus, OrderType, Position, Signal,
        SignalAction,
    )
    from algocli.errors import AlgoError
    from algocli.strategy.base import BaseStrategy, StrategyParams
    from algocli.strategy.context import StrategyContext


def __getattr__(name: str) -> object:
    """Import a public name on first access and keep it, so later reads are plain lookups."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'algocli' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
