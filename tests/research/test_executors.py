"""The same sweep on this process, a local pool and a real Dask cluster gives the same trials.csv."""

from __future__ import annotations

from pathlib import Path

import pytest

from algocli.research import Space, run_trials
from algocli.research.executors import DaskExecutor, LocalExecutor, make_executor
from algocli.research.outputs import trials_csv
from algocli.research.trials import overhead
from research.research_support import sma_yaml

SPACE = (["fast_period=5:25:5", "slow_period=20:60:20"], ["fast_period < slow_period"])


@pytest.fixture(scope="module")
def run_yaml(tmp_path_factory) -> Path:
    return sma_yaml(tmp_path_factory.mktemp("sweep"))


@pytest.fixture(scope="module")
def inline_csv(run_yaml) -> str:
    return trials_csv(run_trials(run_yaml, Space.parse(*SPACE)))


@pytest.fixture(scope="module")
def dask_client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", scheduler_port=0,
                      dashboard_address=None, memory_limit="1GiB") as cluster, Client(cluster) as client:
        yield client


def test_local_pool_gives_the_same_trials_csv(run_yaml, inline_csv):
    executor = make_executor(workers=2)
    assert isinstance(executor, LocalExecutor)
    try:
        result = run_trials(run_yaml, Space.parse(*SPACE), executor=executor, batch=2)
    finally:
        executor.close()
    assert trials_csv(result) == inline_csv
    assert len(result.workers) == 2 and all(0 < mb < 1024 for mb in result.workers.values())


def test_dask_cluster_gives_the_same_trials_csv(run_yaml, inline_csv, dask_client, tmp_path):
    executor = DaskExecutor(client=dask_client)
    assert executor.workers == 2
    result = run_trials(run_yaml, Space.parse(*SPACE), executor=executor, batch=2, out_dir=tmp_path)
    assert trials_csv(result) == inline_csv
    pids = {w.split(":")[1] for w in result.workers}
    assert len(pids) == 2 and str(__import__("os").getpid()) not in pids  # really ran in the worker processes
    assert (tmp_path / "trials.journal.jsonl").read_text().count('"k":"trial"') == len(result.trials)


def test_dask_bayes_gives_the_same_trials_as_inline(run_yaml, dask_client):
    space = Space.parse(["fast_period=5:30:5", "slow_period=10,20,40,80"], ["fast_period < slow_period"])
    inline = run_trials(run_yaml, space, method="bayes", trials=8, seed=1)
    remote = run_trials(run_yaml, space, method="bayes", trials=8, seed=1, batch=2,
                        executor=DaskExecutor(client=dask_client))
    assert trials_csv(remote) == trials_csv(inline)


def test_cluster_and_workers_together_are_refused():
    from algocli.errors import UsageError

    with pytest.raises(UsageError, match="not both"):
        make_executor(workers=2, cluster="tcp://127.0.0.1:1")


@pytest.mark.parametrize("address,why", [
    ("localhost", "missing port number in address 'localhost'"),
    ("tcp://127.0.0.1:abc", "the port 'abc' is not a number"),
    ("http://127.0.0.1:8786", "Dask speaks inproc, tcp, tls"),
])
def test_a_malformed_scheduler_address_is_a_usage_error_before_connecting(address, why):
    from algocli.errors import UsageError

    with pytest.raises(UsageError) as err:
        make_executor(cluster=address)
    assert str(err.value).startswith(f"--cluster {address}: not a scheduler address (") and why in str(err.value)
    assert str(err.value).endswith("write it as tcp://HOST:PORT, e.g. tcp://127.0.0.1:8786")


def test_local_pool_with_guided_batches_gives_the_same_trials_csv(run_yaml, inline_csv):
    executor = make_executor(workers=2)
    try:
        result = run_trials(run_yaml, Space.parse(*SPACE), executor=executor)  # batches sized from the pilot
    finally:
        executor.close()
    assert trials_csv(result) == inline_csv
    # every batch ran in a worker between the first dispatch and the last result, and held its trials
    workers = {worker for worker, _, _ in result.batches}
    assert workers <= set(result.workers) and len(result.batches) >= 2
    for _, (start, end), trials in result.batches:
        assert result.dispatched <= start <= end <= result.finished and 0 < trials <= end - start
    split = overhead(result)
    assert all(v >= 0 for v in split.values())
    # each worker's time from the dispatch to the last result: its trials plus the four parts
    window = len(workers) * (result.finished - result.dispatched)
    assert sum(split.values()) + sum(t for _, _, t in result.batches) == pytest.approx(window, abs=1e-5)
