"""``algocli.__all__``: exactly the package's public names, sorted, each importable."""

from __future__ import annotations

import importlib
import types
from importlib import metadata

import pytest

import algocli


def _public_names() -> list[str]:
    """Names the package offers (bound or imported on first use) that do not start with ``_``
    and are not submodules."""
    return sorted(name for name in dir(algocli)
                  if not name.startswith("_") and not isinstance(getattr(algocli, name), types.ModuleType))


def test_all_lists_every_public_name_sorted():
    # ``__version__`` is the one dunder exported on purpose; everything else must be public.
    exported = [name for name in algocli.__all__ if name != "__version__"]
    assert exported == _public_names()
    assert list(algocli.__all__) == sorted(algocli.__all__)
    assert len(set(algocli.__all__)) == len(algocli.__all__)


def test_all_is_unaffected_by_importing_submodules():
    importlib.import_module("algocli.cli.main")
    importlib.import_module("algocli.engine.assemble")
    exported = [name for name in algocli.__all__ if name != "__version__"]
    assert exported == _public_names()


def test_every_name_in_all_is_importable():
    for name in algocli.__all__:
        namespace: dict = {}
        exec(f"from algocli import {name}", namespace)  # noqa: S102
        assert namespace[name] is getattr(algocli, name)
    star: dict = {}
    exec("from algocli import *", star)  # noqa: S102
    assert set(star) - {"__builtins__"} == set(algocli.__all__)


def test_version_matches_installed_distribution():
    assert "__version__" in algocli.__all__
    assert algocli.__version__ == metadata.version("algocli")


def test_strategy_author_names_are_exported():
    # the names the package docstring promises to strategy authors
    for name in ("BaseStrategy", "Signal", "SignalAction", "StrategyParams", "StrategyContext", "AlgoError"):
        assert name in algocli.__all__


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'algocli' has no attribute 'Nope'"):
        algocli.Nope  # noqa: B018
    with pytest.raises(ImportError):
        exec("from algocli import Nope", {})  # noqa: S102
