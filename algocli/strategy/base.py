"""The class every strategy inherits from, and the typed model of its parameters.

A strategy declares its parameters in one of two ways:

- a nested ``Params`` model (recommended: bounds, descriptions and cross-field checks), or
- keyword arguments of ``__init__`` passed on with ``super().__init__(**params)``, as the
  specification writes it; the model is then built from the signature the first time
  ``Params`` is read (when the YAML is resolved), and the YAML ``params:`` are checked
  against it with the same errors.

It may also name its instruments with an ``instruments`` property; the run definition's list
is then checked against it, or taken from it when the YAML gives none.
"""

from __future__ import annotations

import inspect
import typing
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from pydantic import ConfigDict, create_model

from algocli.domain.strict import NumbersModel

if TYPE_CHECKING:
    from algocli.domain.candle import Candle
    from algocli.domain.models import Fill, Signal
    from algocli.strategy.context import StrategyContext


class StrategyParams(NumbersModel):
    """Base for a strategy's parameters: strict, frozen, unknown keys rejected.

    Read as attributes (``self.params.fast_period``), or as the specification's dict reads them
    (``self.params["fast_period"]``, ``self.params.get("quantity", 1)``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    def __getitem__(self, name: str) -> Any:
        if name in type(self).model_fields:
            return getattr(self, name)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in type(self).model_fields

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name) if name in type(self).model_fields else default

    def keys(self):
        return type(self).model_fields.keys()


class SignatureParams(StrategyParams):
    """Base of the models built from a strategy's ``__init__`` keyword arguments."""


class _ParamsFromSignature:
    """``BaseStrategy.Params`` for classes that declare no ``Params``: built once per class
    from the keyword arguments of the ``__init__`` it uses, plain ``StrategyParams`` when that
    is ``BaseStrategy.__init__``."""

    def __init__(self) -> None:
        self._models: dict[type, type[StrategyParams]] = {}

    def __get__(self, obj: object, owner: type) -> type[StrategyParams]:
        model = self._models.get(owner)
        if model is None:
            model = self._models[owner] = _signature_model(owner)
        return model


def _signature_model(cls: type) -> type[StrategyParams]:
    init = next(k.__dict__["__init__"] for k in cls.__mro__ if "__init__" in k.__dict__)
    if init is BaseStrategy.__init__:
        return StrategyParams
    hints = typing.get_type_hints(init)
    fields: dict[str, Any] = {}
    for p in inspect.signature(init).parameters.values():
        if p.name == "self" or p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        default = ... if p.default is p.empty else p.default
        fields[p.name] = (hints.get(p.name, Any), default)
    return create_model(f"{cls.__name__}Params", __base__=SignatureParams, __module__=cls.__module__, **fields)


def _settable(fget: Callable[[Any], list[str]]) -> property:
    """A declared ``instruments`` property the engine can still assign the run's names to
    (``EngineCore.add`` does); once assigned, reading it returns what the engine set."""

    def get(self) -> list[str]:
        run = self.__dict__.get("_run_instruments")
        return fget(self) if run is None else run

    def set_(self, value: list[str]) -> None:
        self.__dict__["_run_instruments"] = value

    return property(get, set_, doc=fget.__doc__)


class BaseStrategy(ABC):
    """A trading strategy. The same class runs in backtest, paper and live mode.

    Lifecycle: ``on_init`` once before the first candle, ``on_candle`` for every closed
    candle of the strategy's instruments, ``on_order_fill`` after each of its fills, and
    ``on_stop`` once at the end. Declare parameters as a nested ``Params`` model (or as
    keyword arguments of ``__init__``); the YAML ``params:`` mapping is validated against
    them before the strategy is built.

    Attributes:
        params: The validated parameters.
        context: Market data, indicators, portfolio state and order entry (set by the engine).
        id: The strategy's id within the run (for example ``sma_crossover-0``).
        instruments: The instruments this strategy trades, from the run definition.
    """

    Params: ClassVar[type[StrategyParams]] = _ParamsFromSignature()  # type: ignore[assignment]
    # The getter of an ``instruments`` property the class declares, None when it declares none.
    _declared_getter: ClassVar[Callable[[Any], list[str]] | None] = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        prop = cls.__dict__.get("instruments")
        if isinstance(prop, property) and prop.fget is not None:
            cls._declared_getter = staticmethod(prop.fget)  # type: ignore[assignment]
            if prop.fset is None:
                cls.instruments = _settable(prop.fget)  # type: ignore[assignment]

    def __init__(self, params: StrategyParams | dict | None = None, /, **kwargs) -> None:
        model = self.Params
        if isinstance(params, StrategyParams):
            pass
        elif issubclass(model, SignatureParams):
            # Arguments of the subclass's own __init__, as Python passed them: ``from_params``
            # validated them on the way in (a YAML run), and a subclass may pass on only some.
            params = model.model_construct(**{**(params or {}), **kwargs})
        elif params is None:
            params = model(**kwargs)
        else:
            params = model.model_validate({**params, **kwargs})
        self.params = params
        self.context: StrategyContext = None  # type: ignore[assignment]
        self.id: str = ""
        if self._declared_getter is None:
            self.instruments: list[str] = []

    @classmethod
    def from_params(cls, params: StrategyParams) -> BaseStrategy:
        """Build the strategy from validated parameters, whichever way it declares them."""
        if not issubclass(cls.Params, SignatureParams):
            return cls(params)
        strategy = cls(**dict(params))
        strategy.params = params  # also when its __init__ did not pass them on to super()
        return strategy

    @classmethod
    def declares_instruments(cls) -> bool:
        """Whether the class names its instruments with an ``instruments`` property."""
        return cls._declared_getter is not None

    def declared_instruments(self) -> list[str] | None:
        """What the class's own ``instruments`` property returns, unchecked; None without one."""
        fget = self._declared_getter
        return None if fget is None else fget(self)

    def set_context(self, context: StrategyContext) -> None:
        """Inject the context. Called by the engine before ``on_init``."""
        self.context = context

    def on_init(self) -> None:
        """Prepare state before the first candle."""

    @abstractmethod
    def on_candle(self, candle: Candle) -> Signal | list[Signal] | None:
        """React to a closed candle; return signals, or submit orders through the context."""

    def on_order_fill(self, fill: Fill) -> None:
        """React to one of this strategy's fills.

        In a backtest orders are matched against a bar before it closes: here every instrument's
        current candle is still its last closed bar, and an order placed here waits for its
        instrument's next bar.
        """

    def on_stop(self) -> None:
        """Release resources at the end of the run."""

    @property
    def name(self) -> str:
        return type(self).__name__
