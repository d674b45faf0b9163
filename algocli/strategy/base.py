"""The class every strategy inherits from, and the typed model of its parameters."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from algocli.domain.candle import Candle
    from algocli.domain.models import Fill, Signal
    from algocli.strategy.context import StrategyContext


class StrategyParams(BaseModel):
    """Base for a strategy's parameters: strict, frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class BaseStrategy(ABC):
    """A trading strategy. The same class runs in backtest, paper and live mode.

    Lifecycle: ``on_init`` once before the first candle, ``on_candle`` for every closed
    candle of the strategy's instruments, ``on_order_fill`` after each of its fills, and
    ``on_stop`` once at the end. Declare parameters as a nested ``Params`` model; the YAML
    ``params:`` mapping is validated against it before the strategy is built.

    Attributes:
        params: The validated parameters.
        context: Market data, indicators, portfolio state and order entry (set by the engine).
        id: The strategy's id within the run (for example ``sma_crossover-0``).
        instruments: The instruments this strategy trades, from the run definition.
    """

    Params: ClassVar[type[StrategyParams]] = StrategyParams

    def __init__(self, params: StrategyParams | dict | None = None, /, **kwargs) -> None:
        if params is None:
            params = self.Params(**kwargs)
        elif isinstance(params, dict):
            params = self.Params.model_validate({**params, **kwargs})
        self.params = params
        self.context: StrategyContext = None  # type: ignore[assignment]
        self.id: str = ""
        self.instruments: list[str] = []

    def set_context(self, context: StrategyContext) -> None:
        """Inject the context. Called by the engine before ``on_init``."""
        self.context = context

    def on_init(self) -> None:
        """Prepare state before the first candle."""

    @abstractmethod
    def on_candle(self, candle: Candle) -> Signal | list[Signal] | None:
        """React to a closed candle; return signals, or submit orders through the context."""

    def on_order_fill(self, fill: Fill) -> None:
        """React to one of this strategy's fills."""

    def on_stop(self) -> None:
        """Release resources at the end of the run."""

    @property
    def name(self) -> str:
        return type(self).__name__
