"""Where a sweep's batches run: in this process, a local process pool, or a Dask cluster.

Every backend does one thing, ``run(spec, batches)``: ship each batch to
``worker.run_batch`` and yield the batch results in the order they complete. Closing the
iterator early (Ctrl-C, an error) cancels what has not started. The sweep never depends on
completion order: rows are keyed and written in trial order.
"""

from __future__ import annotations

import hashlib
import sys
import uuid
from typing import Iterator, Protocol

from algocli.errors import UsageError
from algocli.research.worker import ContextSpec, run_batch

Batch = list[tuple[str, dict]]


class Executor(Protocol):
    """A place to run batches of trials."""

    workers: int
    description: str

    def start(self) -> None:
        """Get the workers ready, without waiting for them (called before the first batches;
        again before later ones, when it does nothing)."""

    def run(self, spec: ContextSpec, batches: list[Batch]) -> Iterator[dict]:
        """Yield ``run_batch``'s result for each batch, in completion order."""

    def close(self) -> None:
        """Release the workers."""


class InlineExecutor:
    """Run batches one after another in this process (``--workers 1``)."""

    workers = 1
    description = "1 worker (this process)"

    def start(self) -> None:
        pass

    def run(self, spec: ContextSpec, batches: list[Batch]) -> Iterator[dict]:
        for batch in batches:
            yield run_batch(spec, batch)

    def close(self) -> None:
        pass


class LocalExecutor:
    """A pool of ``workers`` processes on this machine.

    On Linux the pool forks after the client loaded the data and ran its first pilot trial, so
    the workers share its pages (copy-on-write) instead of each reading the files again, and
    inherit the modules and caches that trial warmed up instead of each paying for them
    (5-30 ms) in its first trial.
    """

    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        method = "fork" if sys.platform.startswith("linux") else "spawn"
        self.workers = workers
        self.description = f"{workers} local worker processes"
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method),
                                         initializer=_ignore_sigint)
        self._started = False

    def start(self) -> None:
        if not self._started:  # a fork pool starts all its processes at the first submission
            self._started = True
            self._pool.submit(int)

    def run(self, spec: ContextSpec, batches: list[Batch]) -> Iterator[dict]:
        from concurrent.futures import as_completed

        futures = [self._pool.submit(run_batch, spec, batch) for batch in batches]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _ignore_sigint() -> None:
    """A pool worker's initializer: Ctrl-C reaches the terminal's whole process group, and a worker
    would die printing its traceback. Only the client stops the sweep: it cancels the batches not
    started, and ``close`` waits for the running ones and ends the workers."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


class DaskExecutor:
    """An existing Dask distributed cluster (``--cluster tcp://HOST:8786``), or a given ``Client``.

    Each batch is one task, so Dask's per-task overhead (0.2-1 ms) is paid per batch, not per
    trial. Workers need this package installed and the data files at the same paths.
    """

    def __init__(self, address: str | None = None, client=None) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise UsageError("--cluster needs Dask distributed; install it with "
                             "pip install 'algocli[research]'") from None
        if client is None:
            _check_address(address)
            try:
                client = Client(address, timeout="10s")
            except OSError as exc:
                raise UsageError(f"--cluster {address}: cannot reach a Dask scheduler ({exc}); start one with "
                                 "`dask scheduler` and workers with `dask worker tcp://HOST:8786`") from None
            self._owned = True
        else:
            self._owned = False
        self.client = client
        self.workers = max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))
        self.description = f"Dask cluster {client.scheduler.address} ({self.workers} worker threads)"

    def start(self) -> None:
        pass

    def run(self, spec: ContextSpec, batches: list[Batch]) -> Iterator[dict]:
        from distributed import as_completed

        token = uuid.uuid4().hex[:8]  # two sweeps of the same batches never share a task
        futures = [self.client.submit(run_batch, spec, batch, key=f"algo-trials-{_batch_key(batch)}-{token}",
                                      pure=False, retries=1) for batch in batches]
        try:
            for _, result in as_completed(futures, with_results=True):
                yield result
        finally:
            self.client.cancel(futures)

    def close(self) -> None:
        if self._owned:
            self.client.close()


def _check_address(address: str | None) -> None:
    """Refuse a scheduler address Dask cannot parse, before connecting.

    Raises:
        UsageError: No port, a port that is no number, or a protocol Dask does not speak.
    """
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import backends

    try:
        protocol, location = parse_address(address or "")
        if protocol not in backends:
            raise ValueError(f"Dask speaks {', '.join(sorted(backends))}, not {protocol!r}")
        _, colon, port = location.rpartition(":")
        if colon and port and not port.isdigit():
            raise ValueError(f"the port {port!r} is not a number")
        parse_host_port(location)
    except ValueError as exc:
        raise UsageError(f"--cluster {address}: not a scheduler address ({exc}); write it as tcp://HOST:PORT, "
                         "e.g. tcp://127.0.0.1:8786") from None


def _batch_key(batch: Batch) -> str:
    return hashlib.sha256("".join(key for key, _ in batch).encode()).hexdigest()[:16]


def make_executor(workers: int | None = None, cluster: str | None = None) -> Executor:
    """The executor for ``--workers N`` or ``--cluster ADDRESS`` (not both).

    Args:
        workers: Local processes; None takes the machine's CPU count, 1 runs in this process.
        cluster: A Dask scheduler address such as ``tcp://10.0.0.5:8786``.

    Raises:
        UsageError: Both are given, or ``workers`` is below 1.
    """
    import os

    if cluster and workers:
        raise UsageError("give --workers N or --cluster ADDRESS, not both")
    if cluster:
        return DaskExecutor(cluster)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        raise UsageError(f"--workers {workers}: give 1 or more")
    return InlineExecutor() if workers == 1 else LocalExecutor(workers)
