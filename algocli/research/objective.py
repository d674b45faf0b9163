"""What a sweep maximises: a statistic of ``results.csv`` by name, or a ``module:function``."""

from __future__ import annotations

import importlib
import math
from typing import Callable

from algocli.config.errors import suggest
from algocli.errors import UsageError


def statistic_names() -> tuple[str, ...]:
    """Every statistic of ``results.csv``, by the name it has there."""
    from algocli.analytics.stats import METRIC_NAMES
    from algocli.domain.models import CHARGE_FIELDS

    return (*METRIC_NAMES, *(f"charges_{kind}" for kind in CHARGE_FIELDS), "charges_total")


class Objective:
    """Scores a trial from its statistics; higher is better, None when undefined.

    Args:
        text: A ``results.csv`` statistic (``sharpe_ratio``) or ``package.module:function``; the
            function receives the trial's statistics as a dict (numbers as floats, durations in
            days, times as ISO text, undefined ones None) and returns a number, or None or NaN
            when the score is undefined for that trial (no trades): such a trial cannot be the best.

    Raises:
        UsageError: An unknown statistic, or a function that cannot be imported.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.function: Callable[[dict], float] | None = None
        if ":" in text:
            module, _, name = text.partition(":")
            try:
                self.function = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError) as exc:
                raise UsageError(f"--maximize {text}: cannot import it ({exc}); give package.module:function "
                                 "importable from PYTHONPATH") from None
            if not callable(self.function):
                raise UsageError(f"--maximize {text}: not a function")
            return
        names = statistic_names()
        if text not in names:
            raise UsageError(f"--maximize {text}: not a statistic of results.csv{suggest(text, names)} (the "
                             f"statistics: {', '.join(n for n in names if not n.endswith(('_date', 'duration')))}; "
                             "or package.module:function)")
        if text.endswith(("_date",)):
            raise UsageError(f"--maximize {text}: a date cannot be maximised; choose a number")

    @property
    def column(self) -> str | None:
        """The extra ``trials.csv`` column a function's score needs (a statistic has its own)."""
        return "objective" if self.function is not None else None

    def score(self, values: dict) -> float | None:
        """The trial's score, or None when undefined (NaN, no trades).

        Raises:
            UsageError: The function raised, or returned something else than a number or None.
        """
        if self.function is None:
            raw = values.get(self.text)
        else:
            try:
                raw = self.function(dict(values))
            except Exception as exc:  # the user's code: say whose fault it is, not an internal error
                raise UsageError(f"--maximize {self.text}: the function raised {type(exc).__name__}: {exc}; it is "
                                 "called with the statistics as a dict (as results.csv names them) and returns "
                                 "a number") from exc
            _check_number(self.text, raw)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            return None
        return None if math.isnan(value) else value


def _check_number(text: str, raw: object) -> None:
    """Refuse a function's result that is no number: a text or a list scored as undefined would make
    every trial undefined and the sweep end with no best and no error."""
    if raw is None:
        return
    ok = not isinstance(raw, (str, bytes, bool))
    try:
        float(raw) if ok else None
    except (TypeError, ValueError):
        ok = False
    if not ok:
        shown = repr(raw) if len(repr(raw)) <= 40 else repr(raw)[:37] + "..."
        raise UsageError(f"--maximize {text}: the function returned {shown} ({type(raw).__name__}); return a "
                         "number (None or NaN where the trial's score is undefined, e.g. no trades)")
