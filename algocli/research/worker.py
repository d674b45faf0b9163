"""What runs inside a sweep's worker: load the data once, then run batches of trials on it.

A worker process keeps one ``TrialContext`` (the validated run definition, its bars and the
instrument metadata) for the sweep it serves, so a batch of trials costs only the
backtests: no CSV is read per trial, and no artifact is written; a trial returns its
statistics. A local pool forks after the client has loaded the context, so its workers
share the client's pages; a Dask worker loads it on its first batch and checks that its
data files hash to what the client saw.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import resource
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from algocli.errors import ConfigError, DataError

#: One context per worker process: a worker serves one sweep at a time, and a second
#: dataset would double its memory.
_CONTEXTS: dict[str, "TrialContext"] = {}
#: ``load_context`` calls in this process (a forked pool worker inherits the client's one).
_LOADS = 0
#: A finished backtest's engine, broker and strategies refer to each other; ``run_trial`` breaks
#: those cycles (``Backtest.close``), so its orders and fills go by reference counting. Cycles a
#: strategy makes of its own would still wait for a full collection, which the engine's
#: ``gc.freeze`` during the next run hides from the collector: a worker collects once its memory
#: grew this much since the last collection (20-200 ms each), so memory stays bounded.
GC_SLACK_MB = 64.0
#: Memory is read once this much trial time has passed since the last reading: after every trial
#: of a millisecond it would cost some 15 us (reading ``/proc`` just after a run freed its arrays).
RSS_EVERY_SECONDS = 0.02
_rss_after_gc: float | None = None
_since_rss = math.inf  # trial seconds since the last reading (the first trial is read)


@dataclass(frozen=True)
class ContextSpec:
    """How a worker rebuilds the sweep's context: plain data, cheap to pickle.

    Attributes:
        config: The run definition as ``RunConfig.model_dump(mode="json", by_alias=True)``,
            with absolute paths.
        source: The YAML path, for messages and paths relative to it (charges tables).
        data_hash: SHA-256 over the data files' SHA-256s, as the client computed it.
        keep_returns: Trials also return their per-period returns (``run_trial``).
    """

    config: dict
    source: str
    data_hash: str
    keep_returns: bool = False

    @property
    def key(self) -> str:
        blob = json.dumps([self.config, self.source, self.data_hash], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class TrialContext:
    """A run definition with its data loaded, ready for many trials."""

    config: object  # RunConfig, instruments named
    source: str
    bars: dict
    instruments: dict
    data_files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    load_seconds: float = 0.0
    #: Option contracts ``ctx.option`` picks from (``data.options``): without them a trial's
    #: strategies would find no option listed.
    universe: list = field(default_factory=list)
    #: The recorded PCR series ``ctx.pcr`` replays (``data.options.pcr``), read once: it is
    #: never written to, so every trial shares it.
    pcr_replay: object | None = None


def load_context(config, source: str) -> TrialContext:
    """Validate ``config``'s plugins and load its data, as ``algo backtest`` does.

    Args:
        config: A ``RunConfig``.
        source: The YAML path.

    Raises:
        ConfigError, DataError: As ``assemble_backtest`` raises them.
    """
    from algocli.engine.assemble import assemble_backtest

    global _LOADS
    _LOADS += 1
    started = time.perf_counter()
    warnings: list[str] = []
    assembled = assemble_backtest(config, source, warn=warnings.append)
    bt = assembled.backtest
    chains = getattr(bt.core, "chains", None)  # set only when data.options.pcr replays a series
    return TrialContext(assembled.config, source, bt.bars, dict(bt.core.instruments), assembled.data_files,
                        warnings, time.perf_counter() - started, list(bt.core.universe),
                        getattr(chains, "replay", None))


def data_hash(files: list[Path]) -> str:
    """One SHA-256 over the SHA-256 of each data file, in the order the feed read them.

    A file's SHA-256 comes from its CSV cache entry when the file provably has not changed
    since (``algocli.data.cache.file_sha256``), so a worker does not read the files again.
    """
    from algocli.data.cache import file_sha256

    return hashlib.sha256("\n".join(file_sha256(Path(f)) for f in files).encode()).hexdigest()


def install(spec: ContextSpec, ctx: TrialContext) -> None:
    """Make ``ctx`` this process's context for ``spec`` (a forked pool inherits it)."""
    _CONTEXTS.clear()
    _CONTEXTS[spec.key] = ctx


def context_for(spec: ContextSpec) -> TrialContext:
    """This process's context for ``spec``, loaded and checked on first use."""
    ctx = _CONTEXTS.get(spec.key)
    if ctx is not None:
        return ctx
    from algocli.config.run import RunConfig

    ctx = load_context(RunConfig.model_validate(spec.config), spec.source)
    seen = data_hash(ctx.data_files)
    if seen != spec.data_hash:
        raise DataError(", ".join(map(str, ctx.data_files)),
                        f"differ on worker {socket.gethostname()} from the client's copy; give every worker "
                        "the same files (a shared folder)")
    install(spec, ctx)
    return ctx


def with_params(config, params: dict, source: str):
    """``config`` with the strategy parameters of ``params`` set.

    A name is ``<param>`` (the strategies whose parameters include it; when several do, it
    must be qualified) or ``<strategy id>.<param>``. Which strategies a name sets is worked
    out once per run definition and names (every trial of a sweep asks the same).

    Raises:
        ConfigError: No strategy has that parameter, or several do and the name is bare.
    """
    targets = _targets(config, tuple(params), source)
    updates: dict[int, dict] = {}
    for (name, value), where in zip(params.items(), targets):
        key = name.rpartition(".")[2]
        for k in where:
            updates.setdefault(k, {})[key] = value
    entries = [e.model_copy(update={"params": {**e.params, **updates[k]}}) if k in updates else e
               for k, e in enumerate(config.strategies)]
    return config.model_copy(update={"strategies": entries})


#: (id of a run definition, parameter names) -> (that run definition, per name the strategies it sets)
_TARGETS: dict[tuple[int, tuple[str, ...]], tuple[object, list[tuple[int, ...]]]] = {}


_SEE_STRATEGIES = "; see `algo strategies` for each strategy's parameters"


def _targets(config, names: tuple[str, ...], source: str) -> list[tuple[int, ...]]:
    """Per parameter name, the indices of the strategies it sets (see ``with_params``)."""
    cached = _TARGETS.get((id(config), names))
    if cached is not None and cached[0] is config:
        return cached[1]
    from algocli.registry import resolve

    entries = config.strategies
    found = []
    for name in names:
        sid, _, key = name.rpartition(".")
        if sid:
            where = tuple(k for k, e in enumerate(entries) if e.id == sid)
            if not where:
                raise ConfigError(f"{source}: --param {name}: no strategy has id {sid!r}; "
                                  f"ids: {', '.join(e.id for e in entries)}")
        else:
            fields = [resolve("strategy", e.class_, where=f"{source}: strategies").Params.model_fields for e in entries]
            where = tuple(k for k, f in enumerate(fields) if key in f)
            if not where:
                from algocli.config.errors import suggest

                near = suggest(key, {n for f in fields for n in f}) or _SEE_STRATEGIES
                raise ConfigError(f"{source}: --param {name}: no strategy has a parameter {key!r}{near}")
            if len(where) > 1:
                raise ConfigError(f"{source}: --param {name}: strategies {', '.join(entries[k].id for k in where)} "
                                  f"all have it; write --param <id>.{key}=...")
        found.append(where)
    if len(_TARGETS) > 64:  # a long walk-forward makes a run definition per window
        _TARGETS.clear()
    _TARGETS[(id(config), names)] = (config, found)
    return found


def refusal(ctx: TrialContext, params: dict) -> str | None:
    """Why the strategies refuse ``params`` (their own validation), or None when they accept them."""
    from algocli.config.run import parse_plugin_config
    from algocli.registry import resolve

    source = ctx.source
    try:  # only the strategies: the rest of the run definition was checked when the data loaded
        for i, entry in enumerate(with_params(ctx.config, params, source).strategies):
            cls = resolve("strategy", entry.class_, where=f"{source}: strategies[{i}].class")
            cls.from_params(parse_plugin_config(cls.Params, entry.params, source, f"strategies[{i}].params"))
    except ConfigError as exc:
        return str(exc)
    except (TypeError, ValueError) as exc:
        return f"{source}: strategies: refused {params}: {exc}"
    return None


def run_trial(ctx: TrialContext, params: dict, keep_returns: bool = False) -> dict:
    """Run one backtest with ``params`` on the loaded data and return its statistics.

    The run is assembled as ``assemble_backtest`` assembles it, from the bars already in
    memory (a fresh cost model, strategies and risk controller per trial).

    Args:
        ctx: The loaded run definition.
        params: The strategy parameters to set.
        keep_returns: Also return the equity's per-period returns (``pbo.period_returns``),
            which the overfitting statistics need.

    Returns:
        ``{"stats": {name: results.csv text}, "values": {name: float or None}, "warmup_bars": the
        most bars an indicator of the run needs before its first value (``warmup.indicator_bars``),
        "seconds": s}``, plus ``"returns": [float, ...]`` with ``keep_returns``.
    """
    started = time.perf_counter()
    row = _trial(ctx, params, keep_returns)  # the run's objects are freed as it returns: part of the trial
    row["seconds"] = time.perf_counter() - started
    return row


def _trial(ctx: TrialContext, params: dict, keep_returns: bool) -> dict:
    from algocli.engine.assemble import resolve_plugins
    from algocli.engine.backtest import Backtest
    from algocli.persistence.artifacts import charge_totals
    from algocli.research.warmup import indicator_bars

    config = with_params(ctx.config, params, ctx.source)
    plugins = resolve_plugins(config, ctx.source)
    broker_cfg = plugins.broker_cfg
    bt = Backtest(
        ctx.bars, initial_capital=config.initial_capital, fill_model=plugins.fill_model,
        cost_model=plugins.new_cost_model(lambda _: None), interval=config.interval, name=config.name,
        instruments=ctx.instruments, products=dict(getattr(broker_cfg, "products", {})),
        default_product=getattr(broker_cfg, "product", "INTRADAY"), rules=plugins.product_rules(),
        universe=ctx.universe, trade_from=plugins.trade_from,
    )
    for sid, strategy, instruments in plugins.strategies:
        bt.add_strategy(strategy, instruments, sid)
    if ctx.pcr_replay is not None:  # as assemble_backtest attaches it: ctx.pcr replays the recorded series
        from algocli.options.source import BarChains

        bt.core.chains = BarChains(bt.core, replay=ctx.pcr_replay)
    if config.risk is not None:
        from algocli.risk import attach_risk

        attach_risk(bt.core, config.risk, state_path=None)
    result = bt.run()
    warmup = indicator_bars(bt.core)  # walk-forward's warm-up hint covers every point of the grid
    bt.close()  # frees the run's orders and fills now, without waiting for a full collection
    stats = {**result.metrics, **charge_totals(result.fills)}
    row = {"stats": stats_text(stats), "values": stats_values(stats), "warmup_bars": warmup}
    if keep_returns:
        from algocli.research.pbo import period_returns

        row["returns"] = period_returns(result.equity, result.ts).tolist()
    return row


def stats_text(stats: dict) -> dict[str, str]:
    """Each statistic as ``results.csv`` writes it (money to paise, the rest to four places)."""
    from algocli.persistence.artifacts import MONEY_METRICS, format_metric

    return {k: format_metric(v, 2 if k in MONEY_METRICS or k.startswith("charges_") else 4) for k, v in stats.items()}


def stats_values(stats: dict) -> dict[str, float | str | None]:
    """Each statistic as a plain value: numbers as floats, durations in days, times as ISO text."""
    out: dict[str, float | str | None] = {}
    for k, v in stats.items():
        if isinstance(v, timedelta):
            out[k] = v.total_seconds() / 86400
        elif isinstance(v, datetime):
            out[k] = v.isoformat()
        elif v is None or type(v).__name__ == "NaTType":
            out[k] = None
        else:
            out[k] = float(v)
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM: dict[int, int] = {}  # pid -> open descriptor of its /proc/<pid>/statm (a forked worker opens its own)


def current_rss_mb() -> float | None:
    """This process's resident memory now in MiB (Linux ``/proc``), None where unknown.

    Read after every trial, so the file stays open: a read costs a few microseconds, where
    opening it each time cost some 20, a tenth of a millisecond-long trial's overhead budget.
    """
    pid = os.getpid()
    try:
        fd = _STATM.get(pid)
        if fd is None:
            fd = _STATM[pid] = os.open(f"/proc/{pid}/statm", os.O_RDONLY)
        return int(os.pread(fd, 128, 0).split()[1]) * _PAGE_BYTES / (1 << 20)
    except (OSError, ValueError, IndexError):
        return None


def release_garbage(seconds: float) -> float | None:
    """Collect finished trials' garbage when memory grew ``GC_SLACK_MB`` since the last collection.

    Memory is read after a trial once ``RSS_EVERY_SECONDS`` of trials have run since the
    last reading.

    Args:
        seconds: How long the trial just finished took; without a memory reading (not Linux)
            a trial of a quarter second or more is followed by a collection.

    Returns:
        Resident memory in MiB afterwards, None where not read or unknown.
    """
    global _rss_after_gc, _since_rss
    _since_rss += seconds
    if _since_rss < RSS_EVERY_SECONDS:
        return None
    _since_rss = 0.0
    rss = current_rss_mb()
    if rss is None:
        if seconds >= 0.25:
            gc.collect()
        return None
    if _rss_after_gc is None:  # the first trial sets the baseline
        _rss_after_gc = rss
    elif rss - _rss_after_gc > GC_SLACK_MB:
        gc.collect()
        rss = _rss_after_gc = current_rss_mb()
    return rss


def run_batch(spec: ContextSpec, points: list[tuple[str, dict]]) -> dict:
    """Run a batch of trials; the task every backend ships to a worker.

    Args:
        spec: The sweep's context (loaded once per worker process).
        points: ``(key, params)`` pairs.

    Returns:
        ``{"rows": [(key, row), ...], "worker": "host:pid", "peak_rss_mb": float,
        "load_seconds": float, "seconds": float, "rss_mb": [resident MiB after each trial, None
        where not read (``release_garbage``)],
        "loads": data loads in this worker process so far, "span": (start, end) in the
        worker's clock (``time.time()``)}``.
    """
    from algocli.errors import AlgoError

    began = time.time()
    started = time.perf_counter()
    fresh = spec.key not in _CONTEXTS
    out = {"rows": [], "worker": f"{socket.gethostname()}:{os.getpid()}", "error": None, "rss_mb": []}
    params = {}
    try:  # an AlgoError travels back as text: its class may not unpickle on the client
        ctx = context_for(spec)
        extra = {"keep_returns": True} if spec.keep_returns else {}
        for key, params in points:
            row = run_trial(ctx, params, **extra)
            out["rows"].append((key, row))
            out["rss_mb"].append(release_garbage(row["seconds"]))
    except AlgoError as exc:
        out["error"] = (type(exc).__name__, exc.exit_code, str(exc), params)
        ctx = None
    seconds = time.perf_counter() - started
    out.update(peak_rss_mb=peak_rss_mb(), seconds=seconds, loads=_LOADS, span=(began, began + seconds),
               load_seconds=ctx.load_seconds if fresh and ctx is not None else 0.0)
    return out
