"""The bars a run's indicators need before their first value, for walk-forward's warm-up hint.

A history records, per indicator computed on it, the index of its first defined value
(``History.first_valid``). When the loaded bars are too few for the indicator ever to be
defined, that index is the number of bars, which says only "more than these": there the
indicator's TA-Lib lookback for its parameters (SMA(80): 79 bars before its first value) is
the number that covers it.
"""

from __future__ import annotations

import numpy as np

#: (TA-Lib function, its parameters) -> lookback: the same for every trial that asks.
_LOOKBACKS: dict[tuple[str, tuple], int] = {}


def lookback(name: str, params: tuple) -> int:
    """TA-Lib's lookback of ``name`` with ``params`` (sorted ``(key, value)`` pairs): the bars
    before its first defined value."""
    key = (name, params)
    found = _LOOKBACKS.get(key)
    if found is None:
        from algocli.data.ta import talib_abstract

        # a Function of its own: the shared one (``ta_function``) keeps the parameters it is given
        # for the run's next call that omits them
        fn = talib_abstract().Function(name)
        fn.set_parameters(dict(params))
        found = _LOOKBACKS[key] = int(fn.lookback)
    return found


def first_defined(history) -> dict[tuple, int]:
    """Per indicator computed on ``history``, the index of its first defined bar (its lookback
    when the loaded bars never define it)."""
    out = {}
    for hkey, first in history.first_valid.items():
        name, _price, params = hkey
        out[hkey] = lookback(name, params) if first >= history.length else first
    return out


def indicator_bars(core) -> int:
    """The most bars any indicator of a finished run needs before its first value (0: none read)."""
    return max((first for h in core.histories.values() for first in first_defined(h).values()), default=0)


def warmup_needed(bt, start_ns: int) -> int:
    """The warm-up bars a finished run's indicators lacked bars for: the latest first defined bar
    of an indicator, counted from its instrument's first loaded bar, when that comes after the
    first traded bar; 0 when every indicator was defined on it.

    Args:
        bt: The finished ``Backtest``.
        start_ns: Its first traded instant (``RunResult.ts[0]``).
    """
    needed = 0
    for h in bt.core.histories.values():
        loaded = int(np.searchsorted(h.column("ts")[:h.length], start_ns))
        for first in first_defined(h).values():
            needed = max(needed, first if first > loaded else 0)
    return needed
