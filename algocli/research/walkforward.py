"""Walk-forward optimisation: optimise in each in-sample window, trade the winner in the next one.

``run_walkforward(config_path, space, train=..., test=...) -> WalkForward`` is the library
entry point (``algo walkforward`` is a thin command over it).

Windows (``plan_windows``). Lengths are ``<n>D`` (calendar days), ``<n>W``, ``<n>M``
(calendar months) or ``<n>Y``, on IST dates. The first out-of-sample (OOS) window starts
``train`` (+ ``gap``) after the first bar's date; each later one starts ``test`` after the
previous one, so the OOS windows tile the data without overlap and the last one ends at the
last bar (it may be shorter). Each in-sample (IS) window ends the day before its OOS window
less the gap (a purge, so that trades opened at the end of training do not overlap the
test) and starts ``train`` before that (rolling) or at the first bar (``anchored``).

Each window is a fresh backtest of the run definition with ``data.start``/``data.end`` set
to the window's dates and ``data.warmup`` to the walk-forward's warm-up, as ``algo backtest``
runs it: the IS grid is ``run_trials`` on the IS dates (the same executors, journal and
trial keys as ``algo optimize``), the winner is its best trial (the earliest on a tie) and
the OOS run is that run definition, with the winner's parameters, on the OOS dates.

Warm-up (``warmup`` bars, ``algocli.data.window``): every window, IS and OOS, is preceded by
that many bars that feed the indicators but never trade, so a strategy meets a window's first
bar with the indicators it would have had running live, and only the window's own bars count.
By default it is the run definition's ``data.warmup``, else the largest integer value in the
grid (look-back periods are what grids search: ``slow_period=20:200:10`` warms up 200 bars).
The first window starts at the first bar that has ``warmup`` bars before it (and at or after
``data.start``); a note names the OOS windows whose indicators still lacked bars, and the
warm-up that covers every indicator of the grid (``warmup``: each trial reports the most bars
its indicators need before their first value).

Stitching (``algocli.research.stitching``): returns are compounded, window after window; buy
& hold is one holding from the first OOS bar to the last. A window whose IS sweep has no
trial with a defined objective stays in cash.

The summary figures:

- Walk-forward efficiency (Pardo, "The Evaluation and Optimization of Trading Strategies",
  2nd ed., 2008, ch. 11): per window the annualised OOS return over the annualised IS return
  (undefined when the IS return is 0 or less), and overall the mean annualised OOS return over
  the mean annualised IS return across windows (a ratio of means, not a mean of ratios).
- The stitched OOS Sharpe ratio of ``results.csv`` (annualised as backtesting.py does), and
  the per-period Sharpe of the stitched curve's period returns with its t-statistic
  ``SR * sqrt(n)`` (``pbo.sharpe_t_stat``).
- The probability of backtest overfitting by CSCV (``pbo.cscv``) over the per-period returns
  of every grid point run on the whole date range (grid points with the same returns count
  once). It is left out, with a note, when fewer than 2 grid points return differently, or
  when ``splits`` was not given and the data has too few periods for even 2 blocks.
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

import numpy as np

from algocli.errors import UsageError
from algocli.research.space import Space
from algocli.research.stitching import Piece, Stitched, buy_and_hold, stitch
from algocli.research.warmup import warmup_needed

_SPAN = re.compile(r"^\s*(\d+)\s*([DWMYdwmy])\s*$")
_UNITS = {"D": "days", "W": "weeks", "M": "months", "Y": "years"}


@dataclass(frozen=True)
class Span:
    """A window length: ``amount`` days, weeks, months or years."""

    amount: int
    unit: str  # D W M Y

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    def after(self, day: date, times: int = 1) -> date:
        """``day`` moved ``times`` spans on (back when negative); month ends are clamped (Jan 31 + 1M = Feb 28)."""
        n = self.amount * times
        if self.unit in "DW":
            return day + timedelta(days=n * (7 if self.unit == "W" else 1))
        months = day.year * 12 + day.month - 1 + n * (12 if self.unit == "Y" else 1)
        year, month = divmod(months, 12)
        return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def parse_span(text: str, flag: str, *, zero: bool = False) -> Span:
    """Parse ``12M``, ``3M``, ``5D``, ``2W``, ``1Y``.

    Args:
        text: The option's value.
        flag: The option, for the message (``--train``).
        zero: Whether a length of 0 is allowed (``--gap``).

    Raises:
        UsageError: Anything else.
    """
    match = _SPAN.match(text or "")
    if match and int(match.group(1)) == 0 and not zero:
        raise UsageError(f"{flag} {text!r}: a window needs a length of 1 or more, e.g. {flag} 12M")
    if not match:
        raise UsageError(f"{flag} {text!r}: write a length as <n>D (days), <n>W, <n>M (months) or <n>Y, e.g. "
                         f"{flag} {'5D' if zero else '12M'}")
    return Span(int(match.group(1)), match.group(2).upper())


@dataclass(frozen=True)
class Window:
    """One fold: train on [train_start, train_end], test on [test_start, test_end] (IST dates, inclusive)."""

    number: int
    train_start: date
    train_end: date
    test_start: date
    test_end: date


def plan_windows(first: date, last: date, train: Span, test: Span, gap: Span | None = None,
                 anchored: bool = False) -> list[Window]:
    """The walk-forward windows over the dates ``first`` to ``last`` (module docstring).

    Raises:
        UsageError: Not even one window fits.
    """
    gap = gap or Span(0, "D")
    start = gap.after(train.after(first))
    windows = []
    while (test_start := test.after(start, len(windows))) <= last:
        train_end = gap.after(test_start, -1) - timedelta(days=1)
        train_start = first if anchored else max(first, train.after(train_end + timedelta(days=1), -1))
        test_end = min(last, test.after(start, len(windows) + 1) - timedelta(days=1))
        windows.append(Window(len(windows) + 1, train_start, train_end, test_start, test_end))
    if not windows:
        raise UsageError(f"--train {train} --test {test}" + (f" --gap {gap}" if gap.amount else "")
                         + f": the data covers {first} to {last}, too short for one window (the first test "
                         f"would start {start}); give shorter windows or more data")
    return windows


def check_windows(windows: list[Window], days: np.ndarray) -> list[tuple[Window, int, int]]:
    """Each window with its IS and OOS bar counts; a last OOS window of fewer than 2 bars is dropped.

    Args:
        windows: From ``plan_windows``.
        days: The IST date of every bar (days since 1970-01-01), sorted.

    Raises:
        UsageError: A window (other than a short last one) has fewer than 2 bars in or out of sample.
    """
    def bars(lo: date, hi: date) -> int:
        return int(np.searchsorted(days, _day(hi), "right") - np.searchsorted(days, _day(lo), "left"))

    out = []
    for w in windows:
        n_is, n_oos = bars(w.train_start, w.train_end), bars(w.test_start, w.test_end)
        if n_oos < 2 and w is windows[-1] and len(out):
            break
        for n, what, lo, hi, flag in ((n_is, "training", w.train_start, w.train_end, "--train"),
                                      (n_oos, "test", w.test_start, w.test_end, "--test")):
            if n < 2:
                raise UsageError(f"window {w.number}: the {what} dates {lo} to {hi} hold {n} bar(s); give a "
                                 f"longer {flag} (each window needs 2 bars or more)")
        out.append((w, n_is, n_oos))
    return out


def _day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def bar_days(ts: np.ndarray) -> np.ndarray:
    """The IST date of each bar (UTC nanoseconds) as days since 1970-01-01."""
    from algocli.domain.models import IST_OFFSET_NS

    return (np.asarray(ts, dtype=np.int64) + IST_OFFSET_NS) // (86_400 * 10**9)


def windowed(config, start: date | None, end: date | None, warmup: int = 0):
    """``config`` with ``data.start``, ``data.end`` and ``data.warmup`` set (a None date: none)."""
    from algocli.config.run import RunConfig

    dump = config.model_dump(mode="json", by_alias=True)
    data = {**dump["data"], "start": start and start.isoformat(), "end": end and end.isoformat()}
    if warmup or "warmup" in data:
        data["warmup"] = warmup
    dump["data"] = {k: v for k, v in data.items() if v is not None}
    return RunConfig.model_validate(dump)


def default_warmup(feed_cfg, space: Space) -> tuple[int, str]:
    """The warm-up when ``--warmup`` is not given, and where it came from (module docstring).

    Args:
        feed_cfg: The run definition's ``data:`` section, parsed by its feed.
        space: The grid.
    """
    if "warmup" in feed_cfg.model_fields_set:
        return feed_cfg.warmup, "data.warmup"
    ints = [v for p in space.params for v in p.values if isinstance(v, int) and not isinstance(v, bool)]
    return (max(ints), "the largest integer in the grid") if ints and max(ints) > 0 else (0, "none")


def first_warm_day(bars: dict, warmup: int) -> date:
    """The first IST date with ``warmup`` bars of every instrument before it.

    Raises:
        UsageError: An instrument has ``warmup`` bars or fewer in all.
    """
    from algocli.domain.session import ist_date

    days = []
    for inst, b in bars.items():
        if len(b.ts) <= warmup:
            raise UsageError(f"--warmup {warmup}: {inst} has {len(b.ts)} bars in all, none left to trade after "
                             "the warm-up; give a smaller --warmup or more data")
        days.append(ist_date(int(b.ts[warmup - 1])) + timedelta(days=1) if warmup else ist_date(int(b.ts[0])))
    return max(days)


# --------------------------------------------------------------------------- the run


@dataclass
class WindowResult:
    """One fold's outcome.

    Attributes:
        window: Its dates.
        train_bars: Bars in sample.
        test_bars: Bars out of sample.
        trials: Trials of the IS sweep.
        best: The IS winner (a ``Trial``), None when no trial had a defined objective.
        oos_stats: The OOS run's statistics as ``results.csv`` writes them (empty in cash).
        oos_values: The same as plain values.
        oos_score: The objective out of sample.
    """

    window: Window
    train_bars: int
    test_bars: int
    trials: int
    best: object | None
    oos_stats: dict[str, str] = field(default_factory=dict)
    oos_values: dict = field(default_factory=dict)
    oos_score: float | None = None

    @property
    def wfe(self) -> float | None:
        """Annualised OOS return over annualised IS return; None when the IS one is 0 or less."""
        ann_is, ann_oos = self.annualized("is"), self.annualized("oos")
        if ann_is is None or ann_oos is None or ann_is <= 0:
            return None
        return ann_oos / ann_is

    def annualized(self, side: str) -> float | None:
        values = (self.best.values if self.best is not None else {}) if side == "is" else self.oos_values
        value = values.get("annualized_return_pct")
        return None if value is None or not math.isfinite(value) else value


@dataclass
class WalkForward:
    """A finished walk-forward."""

    config: object
    source: str
    space: Space
    objective: object  # research.objective.Objective
    train: Span
    test: Span
    gap: Span | None
    anchored: bool
    windows: list[WindowResult]
    stitched: Stitched
    grid_trials: int
    pbo: object | None  # pbo.PBOResult
    sharpe_per_period: float
    t_stat: float
    periods: int
    executor: str = ""
    notes: list[str] = field(default_factory=list)
    warmup: int = 0  # bars before each window that fed the indicators only
    warmup_source: str = "--warmup"  # where ``warmup`` came from (``default_warmup``)

    @property
    def wfe(self) -> float | None:
        """Mean annualised OOS return over mean annualised IS return, across windows with a winner."""
        pairs = [(w.annualized("is"), w.annualized("oos")) for w in self.windows if w.best is not None]
        pairs = [(i, o) for i, o in pairs if i is not None and o is not None]
        if not pairs:
            return None
        mean_is = sum(i for i, _ in pairs) / len(pairs)
        return None if mean_is <= 0 else (sum(o for _, o in pairs) / len(pairs)) / mean_is

    @property
    def profitable(self) -> int:
        """OOS windows with a positive return."""
        return sum(1 for w in self.windows if (w.oos_values.get("total_return_pct") or 0) > 0)


Progress = Callable[[str, int, int], None]


def run_walkforward(config_path: Path, space: Space, *, train: Span, test: Span, gap: Span | None = None,
                    anchored: bool = False, maximize: str = "sharpe_ratio", executor=None,
                    out_dir: Path | None = None, splits: int | None = None,
                    progress: Progress | None = None, warmup: int | None = None) -> WalkForward:
    """Optimise ``space`` in each IS window, run the winner in the OOS window, stitch and score.

    Args:
        config_path: The run definition (YAML).
        space: The grid (``Space.parse``).
        train: IS window length.
        test: OOS window length (and step).
        gap: Days (or weeks, months) left out between each IS and OOS window.
        anchored: Every IS window starts at the first bar.
        maximize: A ``results.csv`` statistic or ``package.module:function``.
        executor: Where the sweeps' batches run (``executors.make_executor``); None: here.
        out_dir: Folder of the trials journal (reruns skip finished trials); None keeps none.
        splits: CSCV blocks; None takes ``pbo.default_splits`` (and skips PBO, with a note, where
            even 2 blocks do not fit the data).
        progress: Called with (stage, done, total) as trials finish.
        warmup: Bars before each window that feed the indicators only; None: ``default_warmup``.

    Raises:
        UsageError: Bad windows, objective, space, splits or warm-up, or a feed without
            ``start``/``end``, all before any trial runs. KeyboardInterrupt: Ctrl-C (finished
            trials are journalled).
    """
    from algocli.analytics.stats import period_closes
    from algocli.config.run import load_run_config
    from algocli.research.objective import Objective
    from algocli.research.pbo import period_returns, sharpe_t_stat
    from algocli.research.worker import with_params

    objective = Objective(maximize)
    config = load_run_config(Path(config_path))
    source = str(config_path)
    feed_cfg = _check_feed(config, source)
    for name in space.names:
        with_params(config, {name: None}, source)
    why = "--warmup"
    if warmup is None:
        warmup, why = default_warmup(feed_cfg, space)
    _check_warmup_field(config, feed_cfg, warmup, source)
    ts, bars, traded = _tradable_bars(config, feed_cfg, warmup, source)
    days = bar_days(ts)
    first, last = (date(1970, 1, 1) + timedelta(days=int(d)) for d in (days[0], days[-1]))
    planned = check_windows(plan_windows(first, last, train, test, gap, anchored), days)
    periods = len(period_closes(ts)[0]) - 1
    splits, no_pbo = pbo_splits(splits, periods)

    run = _Run(config_path, config, source, space, objective, executor, out_dir, progress, len(planned), warmup)
    windows, pieces = [], []
    for w, n_is, n_oos in planned:
        result, piece = run.window(w, ts[(days >= _day(w.test_start)) & (days <= _day(w.test_end))])
        result.train_bars, result.test_bars = n_is, n_oos
        windows.append(result)
        pieces.append(piece)
    oos = np.concatenate([p.ts for p in pieces])
    stitched = stitch(pieces, config.initial_capital, buy_and_hold(bars, traded, oos, config.initial_capital))
    if run.idle:
        run.notes.append(f"{len(run.idle)} of {len(planned)} windows made no trade out of sample (windows "
                         f"{', '.join(map(str, run.idle))}): " + (
                             "the strategy gave no signal there; a longer --test gives it more room" if warmup else
                             "with --warmup 0 indicators warm up inside each window; give --warmup N, N at least "
                             "the slowest indicator's period"))
    if run.unwarmed:
        # the grid's most, not only the winners': another warm-up may pick other winners
        covers = max(run.grid_bars, *run.unwarmed.values())
        run.notes.append(f"windows {', '.join(map(str, sorted(run.unwarmed)))}: indicators were still undefined "
                         f"when the test window opened; --warmup {covers} or more covers every indicator of the grid")
    pbo, grid_trials = run.grid(splits, first, last, no_pbo)
    sr, t_stat, n = sharpe_t_stat(period_returns(stitched.equity, stitched.ts))
    return WalkForward(config, source, space, objective, train, test, gap, anchored, windows, stitched, grid_trials,
                       pbo, sr, t_stat, n, getattr(executor, "description", "1 worker (this process)"), run.notes,
                       warmup, why)


def pbo_splits(splits: int | None, periods: int) -> tuple[int, str | None]:
    """CSCV's blocks, and why PBO is left out (None: it is computed).

    Args:
        splits: ``--cscv-splits``, None when not given.
        periods: Period returns of the data.

    Raises:
        UsageError: ``splits`` was given and does not fit ``periods`` (``pbo.check_splits``); the
            default that does not fit leaves PBO out instead, since the user asked for no blocks.
    """
    from algocli.research.pbo import check_splits, default_splits, splits_fit

    if splits is not None:
        check_splits(splits, periods)
        return splits, None
    splits = default_splits(periods)
    if splits_fit(splits, periods):
        return splits, None
    return splits, (f"PBO needs 4 periods or more (2 blocks of 2); the data has {periods}; not computed "
                    "(more data gives it)")


def _check_feed(config, source: str):
    """The ``data:`` section parsed by its feed, which must have start/end dates."""
    from algocli.config.run import parse_plugin_config
    from algocli.registry import resolve

    feed = resolve("feed", config.data.feed, where=f"{source}: data.feed")
    fields = getattr(getattr(feed, "Config", None), "model_fields", {})
    if "start" not in fields or "end" not in fields:
        raise UsageError(f"{source}: data.feed {config.data.feed} has no start/end dates to cut windows with; "
                         "walk-forward needs a feed such as csv")
    return parse_plugin_config(feed.Config, config.data.plugin_params, source, "data")


def _tradable_bars(config, feed_cfg, warmup: int, source: str) -> tuple[np.ndarray, dict, list[str]]:
    """The starts of the run definition's bars (all instruments) that windows may hold: from
    ``data.start``, and from the first with ``warmup`` bars before it (loaded from before
    ``data.start`` where the file has them); with the loaded bars and the strategies'
    instruments (not the option contracts they pick from), for the buy & hold."""
    from algocli.research.worker import load_context

    ctx = load_context(windowed(config, None, feed_cfg.end) if warmup else config, source)
    ts = np.unique(np.concatenate([np.asarray(b.ts, dtype=np.int64) for b in ctx.bars.values()]))
    traded = list(dict.fromkeys(inst for entry in ctx.config.strategies for inst in entry.instruments))
    if not warmup:
        return ts, ctx.bars, traded
    lower = first_warm_day({k: b for k, b in ctx.bars.items() if k in traded}, warmup)
    kept = ts[bar_days(ts) >= _day(max(lower, feed_cfg.start or lower))]
    if not len(kept):
        raise UsageError(f"--warmup {warmup}: no bar is left after the warm-up (the first would be on {lower}); "
                         "give a smaller --warmup or more data")
    return kept, ctx.bars, traded


def _check_warmup_field(config, feed_cfg, warmup: int, source: str) -> None:
    if warmup < 0:
        raise UsageError(f"--warmup {warmup}: give a number of bars, 0 or more")
    if warmup and "warmup" not in type(feed_cfg).model_fields:
        raise UsageError(f"{source}: data.feed {config.data.feed} cannot load warm-up bars; give --warmup 0")


class _Run:
    """The state of one ``run_walkforward`` call: the sweeps and OOS runs, window by window."""

    def __init__(self, config_path, config, source, space, objective, executor, out_dir, progress, count,
                 warmup: int) -> None:
        self.config_path, self.config, self.source, self.space = config_path, config, source, space
        self.objective, self.executor, self.out_dir = objective, executor, out_dir
        self.progress, self.count, self.warmup = progress, count, warmup
        self.notes: list[str] = []
        self.idle: list[int] = []  # windows without a trade out of sample
        self.unwarmed: dict[int, int] = {}  # window -> warm-up bars its OOS indicators needed, when more
        self.charge_names: list[str] = []
        self.points = 0  # admissible grid points, as the windows' sweeps found them
        self.grid_bars = 0  # the most bars an indicator of any grid point needs before its first value

    def _sweep(self, config, stage: str, keep_returns: bool = False):
        from algocli.research.trials import run_trials

        report = None if self.progress is None else (lambda done, total, _best: self.progress(stage, done, total))
        result = run_trials(self.config_path, self.space, maximize=self.objective.text, executor=self.executor,
                            out_dir=self.out_dir, progress=report, config=config, keep_returns=keep_returns)
        if result.interrupted:
            raise KeyboardInterrupt
        return result

    def window(self, w: Window, oos_ts: np.ndarray) -> tuple[WindowResult, Piece]:
        """Optimise in ``w``'s IS dates and run the winner on its OOS dates."""
        from algocli.engine.assemble import assemble_backtest
        from algocli.persistence.artifacts import charge_totals
        from algocli.research.worker import stats_text, stats_values, with_params

        sweep = self._sweep(windowed(self.config, w.train_start, w.train_end, self.warmup),
                            f"window {w.number}/{self.count}")
        best = sweep.best
        self.points = max(self.points, len(sweep.trials))
        self.grid_bars = max(self.grid_bars, *(t.warmup_bars for t in sweep.trials), 0)
        result = WindowResult(w, 0, 0, len(sweep.trials), best)
        if best is None:
            self.notes.append(f"window {w.number}: no trial had a defined {self.objective.text} in sample; "
                              "it stayed in cash out of sample")
            return result, Piece.in_cash(oos_ts, self.config.initial_capital, self.charge_names)
        tuned = with_params(self.config, best.params, self.source)
        bt = assemble_backtest(windowed(tuned, w.test_start, w.test_end, self.warmup), self.source).backtest
        run = bt.run()
        if (needed := warmup_needed(bt, run.ts[0])) > self.warmup:
            self.unwarmed[w.number] = needed
        stats = {**run.metrics, **charge_totals(run.fills)}
        self.charge_names = [k for k in stats if k.startswith("charges_")]
        result.oos_stats, result.oos_values = stats_text(stats), stats_values(stats)
        result.oos_score = self.objective.score(result.oos_values)
        if not len(run.trade_columns["pnl"]):
            self.idle.append(w.number)
        return result, Piece.of_run(run)

    def grid(self, splits: int, first: date, last: date, skip: str | None = None):
        """Run the grid on the whole date range, keeping returns, and compute CSCV's PBO.

        Args:
            splits: CSCV's blocks.
            first: The first date of the range.
            last: Its last date.
            skip: Why PBO is left out before any trial (``pbo_splits``): noted, and the grid not run.

        Returns:
            The PBO (None when left out, with a note) and the grid's points.
        """
        from algocli.research.pbo import cscv, distinct_columns

        if skip is not None:
            self.notes.append(skip)
            return None, self.points
        whole = windowed(self.config, first, last, self.warmup) if self.warmup else self.config
        sweep = self._sweep(whole, "whole range (PBO)", keep_returns=True)
        n = len(sweep.trials)
        if n < 2:
            self.notes.append("PBO needs 2 or more grid points; not computed")
            return None, n
        matrix = np.nan_to_num(np.array([t.returns for t in sweep.trials], dtype=float).T, nan=0.0,
                               posinf=0.0, neginf=0.0)
        if len(distinct_columns(matrix)) < 2:  # copies of one series would all tie: a PBO of 100 % (pbo module)
            self.notes.append(f"PBO needs 2 or more grid points whose returns differ; all {n} returned the same over "
                              "the whole range (the swept parameters changed nothing, or nothing traded); not computed")
            return None, n
        result = cscv(matrix, splits)
        if result.duplicates:
            self.notes.append(f"PBO: {result.duplicates} of {n} grid points returned the same as another over the "
                              f"whole range; each distinct series counts once ({result.trials})")
        return result, n
