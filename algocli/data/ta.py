"""The one place TA-Lib is imported.

``talib/__init__.py`` imports pandas and polars when they are installed, to wrap every
function for their Series. That costs a quarter of a second of every small backtest, and
the project calls TA-Lib on numpy arrays only. So TA-Lib is imported with both libraries
hidden: its wrappers are then not installed, and every function takes and returns numpy
arrays. A program that imports pandas itself later still gets numpy results for numpy
input; a program that had imported pandas before gets TA-Lib's wrappers, which pass numpy
input through unchanged.
"""

from __future__ import annotations

import gc
import sys
import threading
from contextlib import contextmanager
from types import ModuleType

_HIDDEN = ("pandas", "polars")


@contextmanager
def _without_dataframes():
    """Hide pandas and polars (those not imported yet), and pause the collector, for the duration of
    a TA-Lib import."""
    # A None entry makes ``import pandas`` raise ImportError, which talib treats as "not installed".
    hidden = [name for name in _HIDDEN if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    # The first import builds a Function object for each of TA-Lib's ~200 functions: with the
    # collector on, that sets off full collections of the whole heap (20-25 ms of a small backtest)
    # that find no garbage.
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def talib_module() -> ModuleType:
    """TA-Lib's top-level module, imported without pandas or polars (see the module docstring).

    Returns:
        The ``talib`` module.
    """
    with _without_dataframes():
        import talib
    return talib


def talib_abstract() -> ModuleType:
    """``talib.abstract`` (function metadata and the dict-of-arrays interface), imported as ``talib_module``.

    Returns:
        The ``talib.abstract`` module.
    """
    with _without_dataframes():
        from talib import abstract
    return abstract


_FUNCTIONS: dict[tuple[str, int], object] = {}


def ta_function(name: str):
    """TA-Lib's ``abstract.Function`` for ``name``, made once per thread.

    A run on 50 instruments asked for one per instrument and indicator, and once more per
    series for its metadata at the end. A Function keeps the inputs and parameters of its last
    call until the next, so threads (a Dask worker's) never share one.
    """
    key = (name, threading.get_ident())
    fn = _FUNCTIONS.get(key)
    if fn is None:
        fn = _FUNCTIONS[key] = talib_abstract().Function(name)
    return fn
