"""Resolve plugin names through entry points, then ``package.module:ClassName`` paths.

Four entry-point groups are declared in pyproject.toml; any pip-installed package can add
to them::

    [project.entry-points."algocli.strategies"]
    my_strategy = "my_package.module:MyStrategy"
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points

from algocli.config.errors import suggest
from algocli.errors import PluginError

GROUPS = {
    "strategy": "algocli.strategies",
    "feed": "algocli.feeds",
    "broker": "algocli.brokers",
    "fill model": "algocli.fill_models",
}


def registered(kind: str) -> dict[str, EntryPoint]:
    """Entry points of one kind, by name."""
    return {ep.name: ep for ep in sorted(entry_points(group=GROUPS[kind]), key=lambda e: e.name)}


def resolve(kind: str, name: str, *, where: str) -> type:
    """The class registered as ``name``, or importable as ``package.module:ClassName``.

    Args:
        kind: One of ``GROUPS``.
        name: The registered name or import path from the YAML.
        where: The YAML key, for the error message (e.g. ``configs/sma.yaml: strategies[0].class``).
    """
    eps = registered(kind)
    if name in eps:
        try:
            return eps[name].load()
        except Exception as exc:
            raise PluginError(f"{where}: {kind} {name!r} is registered but failed to import: {exc}") from exc
    if ":" in name:
        return _import_path(kind, name, where)
    known = ", ".join(eps) or "none"
    raise PluginError(
        f"{where}: unknown {kind} {name!r}{suggest(name, eps)} "
        f"(registered in {GROUPS[kind]}: {known}; or use package.module:ClassName)")


def _import_path(kind: str, path: str, where: str) -> type:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"{where}: cannot import module {module_name!r} for {kind} {path!r} ({exc}); "
                          "check the name and that it is on PYTHONPATH") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        names = [n for n in dir(module) if not n.startswith("_")]
        raise PluginError(f"{where}: module {module_name!r} has no {attr!r}{suggest(attr, names)}") from None
