"""Resolve plugin names through entry points, then ``package.module:ClassName`` paths.

Five entry-point groups are declared in pyproject.toml; any pip-installed package can add
to them::

    [project.entry-points."algocli.strategies"]
    my_strategy = "my_package.module:MyStrategy"

Every resolved plugin is checked against what the engine calls on its kind (``lacks``), so
a plugin that cannot work fails when the run definition is read, in one line that says what
it lacks, not on the first candle or fill.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

from algocli.errors import PluginError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

GROUPS = {
    "strategy": "algocli.strategies",
    "feed": "algocli.feeds",
    "broker": "algocli.brokers",
    "fill model": "algocli.fill_models",
    "cost model": "algocli.cost_models",
}


# Broker descriptions (``algocli.broker.spec.broker_specs``) are read in the same scan.
SPEC_GROUP = "algocli.broker_specs"


def registered(kind: str) -> dict[str, EntryPoint]:
    """Entry points of one kind, by name."""
    return {ep.name: ep for ep in sorted(entry_points_of(GROUPS[kind]), key=lambda e: e.name)}


_SCANNED: dict[tuple[str, ...], dict[str, list[EntryPoint]]] = {}


def entry_points_of(group: str) -> list[EntryPoint]:
    """The entry points of one of the project's groups, read once per ``sys.path``.

    Each ``entry_points(group=...)`` call reads the metadata of every installed distribution;
    a run resolves five kinds and the broker descriptions, so one scan serves them all. Keyed
    on ``sys.path`` so that a distribution put on the path later (a plugin folder, a test's
    dist-info) is still found.
    """
    path = tuple(sys.path)
    if path not in _SCANNED:
        from importlib.metadata import entry_points

        found = entry_points()
        _SCANNED.clear()
        _SCANNED[path] = {group: list(found.select(group=group)) for group in (*GROUPS.values(), SPEC_GROUP)}
    return _SCANNED[path][group]


def names_with(kind: str, attribute: str) -> list[str]:
    """The registered plugins of ``kind`` whose class has a true ``attribute`` (for messages that
    list what would do: the live feeds, the brokers that place real orders)."""
    return [name for name, ep in registered(kind).items() if getattr(ep.load(), attribute, False)]


def resolve(kind: str, name: str, *, where: str) -> type:
    """The class registered as ``name``, or importable as ``package.module:ClassName``.

    Args:
        kind: One of ``GROUPS``.
        name: The registered name or import path from the YAML.
        where: The YAML key, for the error message (e.g. ``configs/sma.yaml: strategies[0].class``).

    Raises:
        PluginError: The name is unknown, fails to import, or names something that lacks
            what the engine calls on a plugin of this kind.
    """
    cls = _load(kind, name, where)
    problem = lacks(kind, cls)
    if problem:
        raise PluginError(f"{where}: {kind} {name!r} {problem}")
    return cls


def lacks(kind: str, cls: object) -> str:
    """What keeps ``cls`` from serving as a plugin of ``kind``, as the end of a sentence; "" if nothing.

    Args:
        kind: One of ``GROUPS``.
        cls: The loaded plugin.
    """
    if kind == "strategy":
        problem = _not_a_strategy(cls)
        if problem:
            return problem
    elif not isinstance(cls, type):
        return f"is a {type(cls).__name__}, not a class; point it at a class"
    missing = [what for what, ok in _REQUIRED[kind](cls) if not ok]
    if not missing:
        return ""
    return (f"({cls.__module__}:{cls.__qualname__}) lacks {', '.join(missing)}, "
            f"which every plugin in {GROUPS[kind]} provides; add {'it' if len(missing) == 1 else 'them'}")


def _has(cls: type, attr: str) -> bool:
    return callable(getattr(cls, attr, None))


def _has_config(cls: type) -> bool:
    from pydantic import BaseModel

    model = getattr(cls, "Config", None)
    return isinstance(model, type) and issubclass(model, BaseModel)


# What the engine calls on each kind (algocli/engine/assemble.py, backtest.py, paper.py, live.py).
_REQUIRED = {
    "strategy": lambda c: [(f"{m}()", False) for m in sorted(c.__abstractmethods__)],
    "feed": lambda c: [
        ("a Config model (pydantic) for its data: keys", _has_config(c)),
        ("load() (a file feed) or live() (a live feed)", _has(c, "load") or _has(c, "live")),
        ("files_used()", not _has(c, "load") or _has(c, "files_used")),
    ],
    "broker": lambda c: [
        ("a Config model (pydantic) for its broker: keys", _has_config(c)),
        ("live()", not getattr(c, "live_broker", False) or _has(c, "live")),
    ],
    "fill model": lambda c: [
        ("a Config model (pydantic) for its fill_model: keys", _has_config(c)),
        ("market_price()", _has(c, "market_price")),
        ("immediate", hasattr(c, "immediate")),
    ],
    "cost model": lambda c: [("charges()", _has(c, "charges"))],
}


def _not_a_strategy(cls: object) -> str:
    from algocli.strategy.base import BaseStrategy

    if not (isinstance(cls, type) and issubclass(cls, BaseStrategy)):
        return "is not a BaseStrategy subclass; derive it from algocli.BaseStrategy"
    try:
        cls.Params  # noqa: B018  (built from __init__'s signature on first read)
    except Exception as exc:  # an annotation of __init__ that does not evaluate, say
        return f"({cls.__module__}:{cls.__qualname__}): cannot read its parameters from __init__ ({exc})"
    return ""


def _load(kind: str, name: str, where: str) -> object:
    eps = registered(kind)
    if name in eps:
        try:
            return eps[name].load()
        except Exception as exc:
            raise PluginError(f"{where}: {kind} {name!r} is registered but failed to import: {exc}") from exc
    if ":" in name:
        return _import_path(kind, name, where)
    from algocli.config.errors import suggest

    known = ", ".join(eps) or "none"
    raise PluginError(
        f"{where}: unknown {kind} {name!r}{suggest(name, eps)} "
        f"(registered in {GROUPS[kind]}: {known}; or use package.module:ClassName)")


def _import_path(kind: str, path: str, where: str) -> object:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"{where}: cannot import module {module_name!r} for {kind} {path!r} ({exc}); "
                          "check the name and that it is on PYTHONPATH") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        from algocli.config.errors import suggest

        names = [n for n in dir(module) if not n.startswith("_")]
        raise PluginError(f"{where}: module {module_name!r} has no {attr!r}{suggest(attr, names)}") from None
