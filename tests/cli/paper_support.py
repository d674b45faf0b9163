"""Process helpers for the ``algo paper`` tests: a real ``algo sandbox`` on a free loopback
port, ``algo paper`` in a child process, Ctrl-C (SIGINT), and the CSV/journal readers.

Every child is started through ``spawn``/``sandbox`` and killed in a ``finally``; every
wait is bounded.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ALGO_EXE = Path(sys.executable).parent / "algo"
DATA_CSV = REPO_ROOT / "data" / "NSE_EQ_2885.csv"
INSTRUMENT = "NSE_EQ:2885"
BARS_PER_DAY = 375
INITIAL_CAPITAL = 1_000_000
COMMISSION = 0.0003
STRATEGY = {"class": "sma_crossover", "instruments": [INSTRUMENT], "id": "sma",
            "params": {"fast_period": 5, "slow_period": 15, "quantity": 10}}
ARTIFACTS = ("trades.csv", "orders.csv", "fills.csv", "equity_curve.csv", "results.csv")
TRACEBACK = "Traceback (most recent call last)"


# --- data and run definitions -----------------------------------------------------------


def write_one_day(folder: Path, rows: int = BARS_PER_DAY) -> Path:
    """``folder/NSE_EQ_2885.csv`` with the header and the first ``rows`` bars (one session)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(DATA_CSV, encoding="utf-8") as fh:
        lines = [next(fh) for _ in range(rows + 1)]
    path = folder / DATA_CSV.name
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _run_definition(data: dict, out_dir: Path, name: str) -> dict:
    return {
        "name": name, "interval": "1m", "initial_capital": INITIAL_CAPITAL, "data": data,
        "broker": {"name": "simulated", "commission_rate": COMMISSION},
        "fill_model": {"name": "next_open"},
        "strategies": [dict(STRATEGY)],
        "output": {"dir": str(out_dir)},
    }


def write_paper_yaml(path: Path, *, port: int, out_dir: Path, protocol: str = "dhan",
                     token: str | None = None, name: str = "paper-test") -> Path:
    """A paper run definition on ``feed: sandbox`` at ``127.0.0.1:port``."""
    data = {"feed": "sandbox", "url": f"http://127.0.0.1:{port}", "protocol": protocol}
    if token is not None:
        data["token"] = token
    path.write_text(yaml.safe_dump(_run_definition(data, out_dir, name), sort_keys=False), encoding="utf-8")
    return path


def write_dhan_yaml(path: Path, *, out_dir: Path, name: str = "paper-dhan") -> Path:
    """A paper run definition on ``feed: dhan`` (URL and credentials from DHAN_* variables)."""
    path.write_text(yaml.safe_dump(_run_definition({"feed": "dhan"}, out_dir, name), sort_keys=False),
                    encoding="utf-8")
    return path


def write_backtest_yaml(path: Path, *, data_dir: Path, out_dir: Path, name: str = "paper-test") -> Path:
    """The same strategy and account on ``feed: csv`` over ``data_dir``."""
    data = {"feed": "csv", "path": str(data_dir)}
    path.write_text(yaml.safe_dump(_run_definition(data, out_dir, name), sort_keys=False), encoding="utf-8")
    return path


# --- processes --------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for ``algo`` children: wide plain output, no inherited test hooks."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DHAN_", "UPSTOX_")) and k not in ("ALGOCLI_CRASH_AT", "FORCE_COLOR")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


@dataclass
class Child:
    """An ``algo`` child process whose stdout and stderr go to files (no pipe can fill up)."""

    proc: subprocess.Popen
    out_path: Path
    err_path: Path
    _files: list = field(default_factory=list, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float) -> int:
        """Exit status within ``timeout`` seconds (``subprocess.TimeoutExpired`` otherwise)."""
        return self.proc.wait(timeout=timeout)

    def interrupt(self, timeout: float = 30.0) -> int:
        """Ctrl-C: SIGINT, then wait (bounded) for the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL if still running, and reap it. Safe to call twice."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for fh in self._files:
            fh.close()
        self._files.clear()

    @property
    def out(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def spawn(args: list[str], logs: Path, label: str, env: dict[str, str] | None = None) -> Child:
    """Start ``algo *args``; output goes to ``logs/label.out`` and ``logs/label.err``."""
    logs.mkdir(parents=True, exist_ok=True)
    n = 0
    while (logs / f"{label}.{n}.out").exists():
        n += 1
    out_path, err_path = logs / f"{label}.{n}.out", logs / f"{label}.{n}.err"
    out_fh, err_fh = open(out_path, "wb"), open(err_path, "wb")
    try:
        proc = subprocess.Popen([str(ALGO_EXE), *map(str, args)], cwd=REPO_ROOT, env=env or child_env(),
                                stdin=subprocess.DEVNULL, stdout=out_fh, stderr=err_fh)
    except BaseException:
        out_fh.close()
        err_fh.close()
        raise
    return Child(proc, out_path, err_path, [out_fh, err_fh])


@contextlib.contextmanager
def running(args: list[str], logs: Path, label: str, env: dict[str, str] | None = None) -> Iterator[Child]:
    """``spawn`` as a context: the child is killed on the way out whatever happened."""
    child = spawn(args, logs, label, env)
    try:
        yield child
    finally:
        child.kill()


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05,
              child: Child | None = None):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds.

    With ``child``, fail at once if that process exits meanwhile (and show its stderr).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if child is not None and child.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {child.poll()} first; stderr:\n{child.err}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Sandbox:
    """A running ``algo sandbox``."""

    child: Child
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self, timeout: float = 2.0) -> dict | None:
        """``GET /health`` as a dict, or None if the server does not answer (yet)."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=timeout) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError):
            return None

    def wait_replay_done(self, timeout: float = 30.0) -> dict:
        return wait_for(lambda: (h := self.health()) is not None and h["replay_done"] and h, timeout,
                        "the sandbox replay to finish", child=self.child)

    def wait_published(self, n: int, timeout: float = 30.0) -> dict:
        return wait_for(lambda: (h := self.health()) is not None and h["ticks_published"] >= n and h, timeout,
                        f"the sandbox to publish {n} ticks", interval=0.005, child=self.child)


@contextlib.contextmanager
def sandbox(data_dir: Path, logs: Path, *, speed: float = 0, wait_for_client: bool = True,
            extra: list[str] = (), startup_timeout: float = 20.0) -> Iterator[Sandbox]:
    """``algo sandbox --data data_dir`` on a free port; yields once ``/health`` answers."""
    port = free_port()
    args = ["sandbox", "--data", data_dir, "--speed", f"{speed:g}", "--port", str(port), *extra]
    if wait_for_client:
        args.append("--wait-for-client")
    with running(args, logs, "sandbox") as child:
        box = Sandbox(child, port)
        wait_for(box.health, startup_timeout, f"the sandbox on port {port}", child=child)
        yield box


def algo(args: list[str], timeout: float = 60.0, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess:
    """Run ``algo *args`` to completion (bounded)."""
    return subprocess.run([str(ALGO_EXE), *map(str, args)], cwd=REPO_ROOT, env=env or child_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False)


# --- reading the artifacts --------------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    """The complete rows of a CSV file, which a running process may be appending to (a torn last line is left out)."""
    with open(path, newline="", encoding="utf-8") as fh:
        text = fh.read()
    return list(csv.DictReader(io.StringIO(text[:text.rfind("\n") + 1], newline="")))


def read_journal(path: Path) -> list[dict]:
    """Every complete record of a journal (a torn last line is left out, as the engine does)."""
    out = []
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            out.append(json.loads(raw))
    return out
