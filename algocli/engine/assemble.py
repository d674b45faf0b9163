"""Build a runnable backtest from a validated run definition, resolving every plugin."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from algocli.config.run import RunConfig, parse_plugin_config
from algocli.engine.backtest import Backtest
from algocli.errors import ConfigError, PluginError
from algocli.registry import resolve
from algocli.strategy.base import BaseStrategy


@dataclass
class Assembled:
    """A backtest ready to run, plus what the artifacts need to describe it."""

    backtest: Backtest
    config: RunConfig
    data_files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    plugin_configs: dict[str, dict] = field(default_factory=dict)

    def resolved(self) -> dict:
        """The run definition with every plugin default filled in, as plain data."""
        out = self.config.model_dump(mode="json", by_alias=True)
        out["data"] = {"feed": self.config.data.feed, **self.plugin_configs["data"]}
        out["broker"] = {"name": self.config.broker.name, **self.plugin_configs["broker"]}
        out["fill_model"] = {"name": self.config.fill_model.name, **self.plugin_configs["fill_model"]}
        for entry, params in zip(out["strategies"], self.plugin_configs["strategies"]):
            entry["params"] = params
        return out


def assemble_backtest(config: RunConfig, source: str, warn: Callable[[str], None] | None = None) -> Assembled:
    """Resolve the feed, fill model, broker and strategies of ``config`` and load the data.

    Args:
        config: The validated run definition.
        source: The YAML path, used in error messages.
        warn: Called with each data-repair warning.
    """
    warnings: list[str] = []

    def _warn(msg: str) -> None:
        warnings.append(msg)
        if warn is not None:
            warn(msg)

    feed_cls = resolve("feed", config.data.feed, where=f"{source}: data.feed")
    feed_cfg = _plugin_config(feed_cls, config.data.plugin_params, source, "data")
    feed = feed_cls(feed_cfg)
    fill_cls = resolve("fill model", config.fill_model.name, where=f"{source}: fill_model.name")
    fill_model = fill_cls(_plugin_config(fill_cls, config.fill_model.plugin_params, source, "fill_model"))
    broker_cls = resolve("broker", config.broker.name, where=f"{source}: broker.name")
    broker_cfg = _plugin_config(broker_cls, config.broker.plugin_params, source, "broker")
    strategies = [_build_strategy(entry, i, source) for i, entry in enumerate(config.strategies)]
    instruments = list(dict.fromkeys(inst for entry in config.strategies for inst in entry.instruments))
    bars = feed.load(instruments, config.interval, warn=_warn)
    bt = Backtest(
        bars, initial_capital=config.initial_capital, fill_model=fill_model,
        cost_model=broker_cls.cost_model(broker_cfg), interval=config.interval, name=config.name,
    )
    plugin_configs = {
        "data": feed_cfg.model_dump(mode="json"),
        "broker": broker_cfg.model_dump(mode="json"),
        "fill_model": fill_model.config.model_dump(mode="json"),
        "strategies": [s.params.model_dump(mode="json") for s in strategies],
    }
    for i, (entry, strategy) in enumerate(zip(config.strategies, strategies)):
        sid = entry.id or f"{entry.class_.rsplit(':', 1)[-1]}-{i}"
        try:
            bt.add_strategy(strategy, entry.instruments, sid)
        except ValueError as exc:
            raise ConfigError(f"{source}: strategies[{i}].id: {exc}") from None
    return Assembled(bt, config, list(feed.files_used()), warnings, plugin_configs)


def _plugin_config(cls: type, params: dict, source: str, section: str):
    model = getattr(cls, "Config", None)
    if model is None:
        raise PluginError(f"{source}: {section}: plugin {cls.__name__} declares no Config model")
    return parse_plugin_config(model, params, source, section)


def _build_strategy(entry, i: int, source: str) -> BaseStrategy:
    cls = resolve("strategy", entry.class_, where=f"{source}: strategies[{i}].class")
    if not (isinstance(cls, type) and issubclass(cls, BaseStrategy)):
        raise PluginError(f"{source}: strategies[{i}].class: {entry.class_!r} is not a BaseStrategy subclass")
    params = parse_plugin_config(cls.Params, entry.params, source, f"strategies[{i}].params")
    return cls(params)
