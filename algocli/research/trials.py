"""Run a sweep of backtests: ``run_trials(config, space, ...) -> TrialsResult``.

A trial is one backtest of the run definition with some strategy parameters set. Its key
is a SHA-256 of the run definition, the data files' SHA-256s, the package version, the
strategies' source files and a ``broker.charges`` CSV table's bytes (``fingerprint``) and the
parameters, so a finished trial is never run twice (and an edited strategy runs again):
each completed batch is appended to a journal in the output folder (fsynced) before
anything else happens, and a rerun of the same sweep takes those rows from it. Results are
ordered by trial number (grid order, or the order the seeded search proposed them), never by
completion, which makes ``trials.csv`` the same bytes whatever ran the trials.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from algocli.errors import AlgoError, UsageError
from algocli.research.fingerprint import inputs_fingerprint
from algocli.research.objective import Objective
from algocli.research.search import DEFAULT_TRIALS, METHODS, BayesSearch, admissible, sample
from algocli.research.space import Space
from algocli.research.worker import ContextSpec, data_hash, install, load_context, refusal, run_trial

if TYPE_CHECKING:
    from algocli.persistence.journal import Journal

JOURNAL = "trials.journal.jsonl"
#: A batch should keep a worker busy this long, so the per-batch cost (pickling, scheduling,
#: 0.2-1 ms on Dask) stays well under 5 % of it.
BATCH_SECONDS = 0.5
#: The last batches shrink down to this, so that no worker waits long for the others at the end.
MIN_BATCH_SECONDS = 0.01
#: A first trial quicker than this is timed again (see ``_Sweep._pilot``).
PILOT_SECONDS = 0.1


def guided(todo: list, largest: int, smallest: int, workers: int) -> list[list]:
    """Split ``todo`` into batches that shrink as the sweep goes on (guided self-scheduling).

    Each batch takes a share of what is left, ``left / (2 * workers)``, between ``smallest``
    and ``largest``. Equal batches would leave one worker idle for up to a whole batch while
    the other finishes (trials of different parameters take different times); shrinking
    ones end the sweep on batches of ``smallest`` trials. Pools take batches in the order
    given, so the big ones run first. Polychronopoulos & Kuck, "Guided self-scheduling",
    IEEE Trans. Computers 36(12), 1987.
    """
    batches, i = [], 0
    while i < len(todo):
        size = max(smallest, min(largest, -(-(len(todo) - i) // (2 * workers))))
        batches.append(todo[i:i + size])
        i += size
    return batches


def canonical(params: dict) -> str:
    """Parameters as canonical JSON: the same dict gives the same text in any process."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


@dataclass
class Trial:
    """One evaluated point.

    Attributes:
        number: Its row in ``trials.csv`` (from 0).
        params: The parameters it set.
        key: Its content key (see the module docstring).
        stats: Each statistic as ``results.csv`` writes it.
        values: Each statistic as a plain value (``worker.stats_values``).
        score: The objective, None when undefined.
        seconds: Wall time of the backtest in its worker.
        cached: Taken from the journal rather than run now.
        returns: Per-period returns of the equity, when the sweep kept them.
        warmup_bars: The most bars an indicator of the trial needs before its first value.
    """

    number: int
    params: dict
    key: str
    stats: dict[str, str]
    values: dict
    score: float | None
    seconds: float
    cached: bool = False
    returns: list[float] | None = None
    warmup_bars: int = 0


@dataclass
class TrialsResult:
    """A finished (or interrupted) sweep."""

    trials: list[Trial]
    objective: Objective
    space: Space
    method: str
    seed: int
    config: object
    source: str
    data_hash: str
    refused: list[tuple[dict, str]] = field(default_factory=list)
    workers: dict[str, float] = field(default_factory=dict)  # worker -> peak RSS MiB
    ran: int = 0
    wall_seconds: float = 0.0
    busy_seconds: float = 0.0  # sum of the trials' own wall times, this call only
    load_seconds: float = 0.0
    # From the start until the first batch went out: the data, the points' checks, the pilot
    # trials (``pilot_seconds`` of ``busy_seconds``) and starting the pool's processes
    # (``Executor.start``): a fixed cost whatever the number of trials.
    setup_seconds: float = 0.0
    pilot_seconds: float = 0.0
    batch_size: int = 1
    executor: str = ""
    interrupted: bool = False
    planned: int = 0  # points the sweep meant to run: more than ``trials`` when interrupted
    #: Per batch run now: worker, (start, end) in its clock, its trials' own seconds. With
    #: ``dispatched``/``finished`` (the client's ``time.time()`` when the first batch went out
    #: and when the last came back) they split a local sweep's overhead (``overhead``).
    batches: list[tuple[str, tuple[float, float], float]] = field(default_factory=list)
    dispatched: float = 0.0
    finished: float = 0.0

    @property
    def best(self) -> Trial | None:
        """The highest score; the earliest trial wins a tie."""
        scored = [t for t in self.trials if t.score is not None]
        return max(scored, key=lambda t: (t.score, -t.number)) if scored else None


Progress = Callable[[int, int, "Trial | None"], None]


def _none_admissible(space: Space, refused: list[tuple[dict, str]]) -> str:
    checks = "the constraints and the strategies' own checks" if space.constraints else "the strategies' own checks"
    return f"no point of the grid passes {checks}" + (f" (first refusal: {refused[0][1]})" if refused else "")


class _Journal:
    """The journal of finished trials: key -> row, appended one batch at a time."""

    def __init__(self, path: Path) -> None:
        from algocli.persistence.journal import read_journal

        self.rows: dict[str, dict] = {}
        if path.exists():
            for record in read_journal(path):
                if record.get("k") == "trial":
                    self.rows[record["key"]] = record
        self._path = path
        self._journal: Journal | None = None  # opened at the first trial: a refused sweep leaves no file

    def add(self, rows: list[tuple[str, dict, dict]]) -> None:
        if self._journal is None:
            from algocli.persistence.journal import Journal

            self._journal = Journal(self._path)
        for i, (key, params, row) in enumerate(rows):
            record = {"key": key, "params": params, **row}
            self._journal.append("trial", sync=i == len(rows) - 1, **record)
            self.rows[key] = {"k": "trial", **record}

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()


class _Sweep:
    """The state of one ``run_trials`` call."""

    def __init__(self, result: TrialsResult, spec: ContextSpec, ctx, executor, journal: _Journal,
                 batch: int | None, progress: Progress | None, total: int, started: float) -> None:
        self.result, self.spec, self.ctx, self.executor = result, spec, ctx, executor
        self.started = started
        self.journal, self.batch, self.progress, self.total = journal, batch, progress, total
        # the strategies' code and a charges table's bytes: editing either must run the trials again
        inputs = inputs_fingerprint(ctx.config, ctx.source)
        self.base = hashlib.sha256(canonical({"config": spec.config, "data": spec.data_hash, "version": _version(),
                                              "inputs": inputs, **({"returns": True} if spec.keep_returns else {})}
                                             ).encode()).hexdigest()
        self.done = 0
        self.per_batch: int | None = None  # trials per batch for BATCH_SECONDS, from the pilot
        self.min_batch = 1  # trials per batch for MIN_BATCH_SECONDS
        self.best: Trial | None = None
        self.ran_now: set[str] = set()
        self.scores: dict[str, float | None] = {}  # key -> score: a user's objective may be slow, call it once

    def key(self, params: dict) -> str:
        return hashlib.sha256((self.base + canonical(params)).encode()).hexdigest()[:32]

    def evaluate(self, points: list[dict]) -> None:
        """Run the points not in the journal; append a ``Trial`` per point to the result, in order."""
        keyed = list(dict((self.key(p), p) for p in points).items())
        todo = [(k, p) for k, p in keyed if k not in self.journal.rows]
        for key, params in keyed:
            if key in self.journal.rows:
                self._count(self.journal.rows[key])
        if self.batch is not None:
            batches = [todo[i:i + self.batch] for i in range(0, len(todo), self.batch)]
        else:
            if todo and self.per_batch is None:
                self._pilot(todo)
            batches = guided(todo, self.per_batch or 1, self.min_batch, self.executor.workers)
        if batches:
            # A local pool forks once the pilot imported and warmed up what a trial uses (in
            # ``_pilot``, or here without one): its processes inherit that instead of each paying
            # it in its first trial.
            self.executor.start()
        self.result.batch_size = max(self.result.batch_size, len(batches[0]) if batches else 1)
        if batches and not self.result.setup_seconds:
            self.result.setup_seconds = time.perf_counter() - self.started
            self.result.dispatched = time.time()
        pending = self.executor.run(self.spec, batches) if batches else iter(())
        params_of = dict(todo)
        try:
            for out in pending:
                self._take(out, params_of)
        finally:
            close = getattr(pending, "close", None)
            if close:
                close()
            self._append_trials(keyed)
            if self.result.pilot_seconds and not self.result.workers:  # the pilots were every trial: this
                self._count_self()  # process is the one worker whose memory the summary can give

    def _count_self(self) -> None:
        import socket

        from algocli.research.worker import peak_rss_mb

        self.result.workers[f"{socket.gethostname()}:{os.getpid()}"] = peak_rss_mb()

    def _pilot(self, todo: list[tuple[str, dict]]) -> None:
        """Run the first points of ``todo`` here (taking them out of it) to time a trial, and
        size the batches from that.

        A process's first trial also imports and warms up what trials use, which can make it
        several times slower than the rest; when it was quick (under ``PILOT_SECONDS``) a
        second one is timed, so that tiny trials are not sized as if each took the first's time.
        """
        extra = {"keep_returns": True} if self.spec.keep_returns else {}
        seconds = 1.0
        for _ in range(2):
            key, params = todo.pop(0)
            row = run_trial(self.ctx, params, **extra)
            self.result.pilot_seconds += row["seconds"]
            self._record([(key, params, row)])
            seconds = max(row["seconds"], 1e-6)
            # Warm now: a local pool forks, and its processes start up while a second pilot runs.
            self.executor.start()
            if seconds >= PILOT_SECONDS or not todo:
                break
        self.min_batch = max(1, round(MIN_BATCH_SECONDS / seconds))
        self.per_batch = max(1, round(BATCH_SECONDS / seconds))

    def _take(self, out: dict, params_of: dict) -> None:
        # The batch's accounts first: scoring its rows runs the user's objective, which Ctrl-C may
        # interrupt, and the summary must still count the worker that ran them.
        if not out.get("error"):
            self.result.workers[out["worker"]] = max(out["peak_rss_mb"],
                                                     self.result.workers.get(out["worker"], 0.0))
            self.result.load_seconds += out["load_seconds"]
            self.result.batches.append((out["worker"], out["span"], sum(row["seconds"] for _, row in out["rows"])))
            self.result.finished = time.time()
        self._record([(k, params_of[k], row) for k, row in out["rows"]])
        if out.get("error"):
            _, code, message, params = out["error"]
            err = AlgoError(f"trial {_shown(params)}: {message}")
            err.exit_code = code
            raise err

    def _record(self, rows: list[tuple[str, dict, dict]]) -> None:
        if not rows:
            return
        from algocli.persistence.output import signals_held

        # scored before journalled: a --maximize function that raises or returns no number writes nothing
        scores = {key: self.result.objective.score(row["values"]) for key, _, row in rows}
        # Ctrl-C waits for the journal and the counts to agree: a row journalled but not counted as
        # run now would be reported as taken from the journal
        with signals_held():
            self.journal.add(rows)
            self.result.ran += len(rows)
            self.result.busy_seconds += sum(row["seconds"] for _, _, row in rows)
            self.ran_now.update(key for key, _, _ in rows)
            self.scores.update(scores)
        for key, _, _ in rows:
            self._count(self.journal.rows[key])

    def _count(self, record: dict) -> None:
        self.done += 1
        key = record["key"]
        if key not in self.scores:
            self.scores[key] = self.result.objective.score(record["values"])
        score = self.scores[key]
        if score is not None and (self.best is None or score > self.best.score):
            self.best = Trial(-1, record["params"], record["key"], record["stats"], record["values"], score,
                              record["seconds"])
        if self.progress:
            self.progress(min(self.done, self.total), self.total, self.best)

    def _append_trials(self, keyed: list[tuple[str, dict]]) -> None:
        seen = {t.key for t in self.result.trials}
        for key, params in keyed:
            record = self.journal.rows.get(key)
            if record is None or key in seen:
                continue
            seen.add(key)
            score = self.scores[key] if key in self.scores else self.result.objective.score(record["values"])
            self.result.trials.append(Trial(
                len(self.result.trials), params, key, record["stats"], record["values"], score, record["seconds"],
                cached=key not in self.ran_now, returns=record.get("returns"),
                warmup_bars=record.get("warmup_bars", 0)))


def overhead(result: TrialsResult) -> dict[str, float]:
    """Where the workers' time beyond their trials went, from ``result.batches`` (their clocks
    must agree with the client's: a local pool, or inline).

    Returns:
        Seconds summed over the workers: ``in_batch`` (inside batches, between trials: timing,
        memory readings, rows), ``between`` (between a worker's batches: its results going back,
        the next batch coming in), ``start`` (from the first batch's dispatch to each worker's
        first batch) and ``tail`` (from each worker's last batch to the last result's arrival).
        The first two grow with the trials (the cost of batching them); start and tail are
        paid once a sweep.
    """
    spans: dict[str, list[tuple[float, float, float]]] = {}
    for worker, (start, end), trials in result.batches:
        spans.setdefault(worker, []).append((start, end, trials))
    out = dict.fromkeys(("in_batch", "between", "start", "tail"), 0.0)
    for own in spans.values():
        own.sort()
        out["in_batch"] += sum(max(0.0, end - start - trials) for start, end, trials in own)
        out["between"] += sum(max(0.0, b[0] - a[1]) for a, b in zip(own, own[1:]))
        out["start"] += max(0.0, own[0][0] - result.dispatched)
        out["tail"] += max(0.0, result.finished - own[-1][1])
    return out


def _shown(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _version() -> str:
    from algocli import __version__

    return __version__


def run_trials(config_path: Path, space: Space, *, maximize: str = "sharpe_ratio", method: str = "grid",
               trials: int | None = None, seed: int = 0, executor=None, out_dir: Path | None = None,
               batch: int | None = None, progress: Progress | None = None, config=None,
               keep_returns: bool = False) -> TrialsResult:
    """Run a sweep of ``config_path``'s backtest over ``space`` and journal every trial.

    Args:
        config_path: The run definition (YAML).
        space: Parameters and constraints (``Space.parse``).
        maximize: A ``results.csv`` statistic or ``package.module:function``.
        method: ``grid`` (every admissible point), ``random`` (``trials`` of them, seeded) or
            ``bayes`` (``trials`` points proposed by Optuna's TPE, seeded).
        trials: Points for ``random`` and ``bayes`` (default 100); ``grid`` ignores it.
        seed: Seed of the random and Bayesian proposals.
        executor: Where batches run (``executors.make_executor``); None runs them here.
        out_dir: Folder of the journal; None keeps no journal (nothing resumes).
        batch: Trials per batch; None sizes batches from a first trial run here.
        progress: Called with (done, total, best so far) after each batch.
        config: The run definition already loaded from ``config_path`` (and changed, e.g. to
            a date window); None loads it.
        keep_returns: Keep each trial's per-period returns (``Trial.returns``).

    Returns:
        The trials in order; ``interrupted`` when Ctrl-C stopped the sweep (the finished
        trials are journalled and returned).

    Raises:
        UsageError: A bad method, objective or space; ConfigError/DataError from the run
            definition; AlgoError from a trial (its parameters named).
    """
    from algocli.config.run import load_run_config
    from algocli.research.executors import InlineExecutor

    if method not in METHODS:
        raise UsageError(f"--method {method}: use one of {', '.join(METHODS)}")
    if method == "grid" and trials is not None:
        raise UsageError(f"--trials {trials} applies to --method random or bayes; the grid runs every point "
                         "(drop --trials, or pass --method random)")
    objective = Objective(maximize)
    started = time.perf_counter()
    config = config if config is not None else load_run_config(Path(config_path))
    source = str(config_path)
    for name in space.names:  # an unknown parameter fails before the data is read
        _ = _check_param(config, name, source)
    ctx = load_context(config, source)
    spec = ContextSpec(config.model_dump(mode="json", by_alias=True), source, data_hash(ctx.data_files), keep_returns)
    install(spec, ctx)  # before a local pool forks: its workers share these pages
    result = TrialsResult([], objective, space, method, seed, config, source, spec.data_hash,
                          load_seconds=ctx.load_seconds)
    accept = lambda point: refusal(ctx, point)  # noqa: E731
    executor = executor or InlineExecutor()
    result.executor = executor.description
    journal = _Journal(Path(out_dir) / JOURNAL) if out_dir is not None else _MemoryJournal()
    try:
        if method == "bayes":
            search = BayesSearch(space, trials or DEFAULT_TRIALS, seed, accept)
            sweep = _Sweep(result, spec, ctx, executor, journal, batch, progress, search.trials, started)
            result.planned = search.trials
            while points := search.ask():
                sweep.evaluate(points)
                search.tell({canonical(t.params): t.score for t in result.trials})
            result.refused = list(search.refused.values())
            if not search.seen:
                raise UsageError(_none_admissible(space, result.refused))
        else:
            points, result.refused = admissible(space, accept)
            if method == "random":
                points = sample(points, trials or DEFAULT_TRIALS, seed)
            if not points:
                raise UsageError(_none_admissible(space, result.refused))
            sweep = _Sweep(result, spec, ctx, executor, journal, batch, progress, len(points), started)
            result.planned = len(points)
            sweep.evaluate(points)
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        journal.close()
        result.wall_seconds = time.perf_counter() - started
    return result


def _check_param(config, name: str, source: str) -> None:
    from algocli.research.worker import with_params

    with_params(config, {name: None}, source)


class _MemoryJournal(_Journal):
    """A journal that keeps rows in memory only (no ``out_dir``)."""

    def __init__(self) -> None:
        self.rows = {}

    def add(self, rows: list[tuple[str, dict, dict]]) -> None:
        for key, params, row in rows:
            self.rows[key] = {"k": "trial", "key": key, "params": params, **row}

    def close(self) -> None:
        pass
