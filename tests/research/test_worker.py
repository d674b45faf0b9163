"""Sweep workers: the data is loaded once per worker, memory-mapped, and memory stays flat across trials."""

from __future__ import annotations

import importlib.util
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import helpers
from algocli.config.run import load_run_config
from algocli.research import worker
from algocli.research.executors import DaskExecutor, LocalExecutor
from algocli.research.worker import ContextSpec, data_hash, install, load_context
from helpers import mapped

REPO = Path(__file__).resolve().parents[2]
BARS = 300_000
CONFIG = """\
name: sweep-memory
interval: 1m
initial_capital: 1000000
data: {{feed: csv, path: {data}, allow_off_session: true}}
broker: {{name: simulated, commission_rate: 0.0}}
fill_model: {{name: next_open}}
strategies:
  - class: sma_crossover
    instruments: ["NSE_EQ:1333"]
    params: {{fast_period: 10, slow_period: 20, quantity: 100}}
output: {{dir: {out}}}
"""


@pytest.fixture(scope="module")
def run_yaml(tmp_path_factory) -> Path:
    """A run definition over a generated file of 300k one-minute bars."""
    spec = importlib.util.spec_from_file_location("generate_sample", REPO / "data" / "generate_sample.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    tmp = tmp_path_factory.mktemp("sweep-memory")
    gen.write_csv(gen.generate_minute_bars(BARS, seed=11), tmp / "data" / "NSE_EQ_1333.csv")
    path = tmp / "run.yaml"
    path.write_text(CONFIG.format(data=tmp / "data", out=tmp / "out"), encoding="utf-8")
    return path


def _installed(run_yaml: Path) -> ContextSpec:
    """The client side of a sweep: load the context here and install it (before a pool forks)."""
    config = load_run_config(run_yaml)
    ctx = load_context(config, str(run_yaml))
    spec = ContextSpec(config.model_dump(mode="json", by_alias=True), str(run_yaml), data_hash(ctx.data_files))
    install(spec, ctx)
    return spec


def _batches(per_batch: int, slows: tuple[int, ...]) -> list[list[tuple[str, dict]]]:
    return [[(f"{f}-{s}", {"fast_period": f, "slow_period": s}) for f in range(5, 5 + per_batch)] for s in slows]


def test_pool_workers_keep_their_memory_flat_and_never_reload(run_yaml, monkeypatch):
    # A 300k-bar trial leaves ~12 MB of cyclic garbage: without collections, 8 trials grow a worker by ~85 MB.
    monkeypatch.setattr(worker, "GC_SLACK_MB", 8.0)  # the forked workers inherit it
    spec = _installed(run_yaml)
    loads = worker._LOADS
    assert all(mapped(b.close) for b in worker._CONTEXTS[spec.key].bars.values())  # from the cache
    executor = LocalExecutor(2)
    try:
        outs = list(executor.run(spec, _batches(8, (40, 60))))
    finally:
        executor.close()
    assert len(outs) == 2 and all(out["error"] is None for out in outs)
    for out in outs:
        rss = out["rss_mb"]
        assert len(rss) == 8 and all(r is not None for r in rss)
        # after the second trial (the first pages of data and code are in by then) it stays within the slack
        assert max(rss[1:]) - rss[1] < 36, rss
        assert out["loads"] == loads  # the client's one load, inherited: none in the worker
        assert out["load_seconds"] == 0.0


@pytest.fixture(scope="module")
def dask_client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", scheduler_port=0,
                      dashboard_address=None, memory_limit="1GiB") as cluster, Client(cluster) as client:
        yield client


def _worker_bars_mapped(spec: ContextSpec) -> bool:
    """In a worker: its context's bars are views of the cache file's mapping."""
    from algocli.research.worker import context_for

    return all(mapped(b.close) and mapped(b.ts) for b in context_for(spec).bars.values())


def test_dask_workers_load_the_data_once_from_the_memory_mapped_cache(run_yaml, dask_client):
    import cloudpickle

    for module in (sys.modules[__name__], helpers):  # spawned workers cannot import the test files
        cloudpickle.register_pickle_by_value(module)
    spec = _installed(run_yaml)  # builds the cache entry the workers map
    outs = list(DaskExecutor(client=dask_client).run(spec, [[b] for b in _batches(3, (40, 60))[0]]
                                                    + [[b] for b in _batches(3, (40, 60))[1]]))
    loads = defaultdict(list)
    for out in outs:
        assert out["error"] is None
        loads[out["worker"]].append(out["loads"])
    assert sum(map(len, loads.values())) == 6
    assert all(set(n) == {1} for n in loads.values()), loads  # one load per worker process, whatever it ran
    assert set(dask_client.run(_worker_bars_mapped, spec).values()) == {True}


def test_a_trial_frees_its_engine_without_a_garbage_collection(run_yaml, monkeypatch):
    """``run_trial`` closes its backtest: with the collector off, its engine and broker (and with them
    the run's orders and fills) are gone when the trial returns."""
    import gc
    import weakref

    from algocli.engine import backtest

    made = []

    class Watched(backtest.Backtest):
        def run(self, *args, **kwargs):
            made.append((weakref.ref(self.core), weakref.ref(self.core.broker)))
            return super().run(*args, **kwargs)

    monkeypatch.setattr(backtest, "Backtest", Watched)
    ctx = load_context(load_run_config(run_yaml), str(run_yaml))
    gc.collect()
    gc.disable()
    try:
        row = worker.run_trial(ctx, {"fast_period": 10, "slow_period": 20})
        left = [(core(), broker()) for core, broker in made]
    finally:
        gc.enable()
    assert float(row["stats"]["total_trades"]) > 1000  # thousands of orders and fills were made ...
    assert left == [(None, None)]  # ... and their engine and broker are gone, by reference counting alone


def test_memory_is_read_once_enough_trial_time_has_passed(monkeypatch):
    """Reading ``/proc`` after every millisecond-long trial cost more than the rest of a batch's
    bookkeeping: it is read once ``RSS_EVERY_SECONDS`` of trials ran since the last reading."""
    monkeypatch.setattr(worker, "RSS_EVERY_SECONDS", 0.01)
    monkeypatch.setattr(worker, "_since_rss", float("inf"))
    readings = [worker.release_garbage(s) for s in (0.004, 0.004, 0.004, 0.004, 0.004, 0.004, 0.05, 0.001)]
    read = [r is not None for r in readings]
    # the first trial sets the baseline; then every 0.012 s of trials, or one long trial alone
    assert read == [True, False, False, True, False, False, True, False]
    assert all(r > 1 for r in readings if r is not None)  # resident MiB of this process


def test_with_params_sets_each_named_strategy_and_leaves_the_run_definition_alone():
    """``configs/multi.yaml``: ``quantity`` is in both strategies (it must be qualified), ``period``
    in one. The strategies a name sets are worked out once per run definition; each call still
    makes its own copies."""
    from algocli.errors import ConfigError

    base = load_run_config(REPO / "configs" / "multi.yaml")
    before = [dict(e.params) for e in base.strategies]
    for value in (7, 9):  # a second call takes the names' targets from the first
        cfg = worker.with_params(base, {"period": value, "sma-hdfcbank.quantity": value * 10}, "multi.yaml")
        sma, rsi = cfg.strategies
        assert rsi.params["period"] == value and sma.params["quantity"] == value * 10
        assert sma.params["fast_period"] == 10 and rsi.params["quantity"] == 80  # the rest as they were
    assert [dict(e.params) for e in base.strategies] == before  # the loaded run definition is untouched
    other = base.model_copy(update={"strategies": base.strategies[1:]})  # a different run definition
    assert worker.with_params(other, {"period": 5}, "x").strategies[0].params["period"] == 5
    with pytest.raises(ConfigError, match="strategies sma-hdfcbank, rsi-infosys all have it"):
        worker.with_params(base, {"quantity": 1}, "multi.yaml")
    with pytest.raises(ConfigError, match="no strategy has id 'nope'"):
        worker.with_params(other, {"nope.period": 1}, "x")
