"""``algo sandbox`` as a user runs it: a real process, a real port, Ctrl-C to stop."""

from __future__ import annotations

import gzip
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALGO = str(Path(sys.executable).with_name("algo"))
MINUTE_CSV = ROOT / "data" / "NSE_EQ_2885.csv"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def env() -> dict:
    e = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    e.pop("FORCE_COLOR", None)
    return e


def small_data(tmp_path: Path, rows: int = 31) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    lines = MINUTE_CSV.read_text(encoding="utf-8").splitlines()[:rows]
    (folder / "NSE_EQ_2885.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def health(port: int) -> dict:
    with _NO_PROXY.open(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        return json.loads(response.read())


class Sandbox:
    """``algo sandbox`` in a child process, its stdout and stderr read line by line on threads."""

    def __init__(self, *args: str, cwd: Path = ROOT) -> None:
        self.proc = subprocess.Popen([ALGO, "sandbox", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env(), cwd=cwd)
        self.lines: queue.Queue[str] = queue.Queue()  # stderr, for the port
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        for stream, sink in ((self.proc.stdout, self.stdout.append), (self.proc.stderr, self._err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _err(self, line: str) -> None:
        self.stderr.append(line)
        self.lines.put(line)

    @staticmethod
    def _pump(stream, sink) -> None:
        for line in stream:
            sink(line)

    def port(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.proc.poll() is None, "".join(self.stderr)
                continue
            found = re.search(r"Listening on http://127\.0\.0\.1:(\d+)", line)
            if found:
                return int(found.group(1))
        raise AssertionError("the sandbox never said where it listens")

    def exports(self, timeout: float = 10) -> list[str]:
        """Its stdout once the export lines are there."""
        return wait_for(lambda: len(self.stdout) >= 10 and list(self.stdout), timeout)

    def stop(self) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        time.sleep(0.2)  # let the reader threads drain the pipes
        return code, "".join(self.stdout), "".join(self.stderr)


def wait_for(condition, timeout: float = 30.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def test_replays_as_fast_as_possible_and_stops_cleanly_on_ctrl_c(tmp_path):
    box = Sandbox("--data", str(small_data(tmp_path)), "--port", "0", "--speed", "0", "--token", "T-1")
    try:
        port = box.port()
        body = wait_for(lambda: (b := health(port))["replay_done"] and b)
    finally:
        code, out, err = box.stop()
    assert body["ticks_published"] == 30 * 4 and body["instruments"] == ["NSE_EQ:2885"]
    assert code == 0, err
    assert "Traceback" not in err and "Traceback" not in out
    assert "sandbox stopped" in err
    for line in (f"export DHAN_FEED_URL=ws://127.0.0.1:{port}/dhan/feed", "export DHAN_CLIENT_ID=sandbox",
                 "# export DHAN_ACCESS_TOKEN=<your --token value>", f"export UPSTOX_API_BASE_URL=http://127.0.0.1:{port}",
                 "# export UPSTOX_ACCESS_TOKEN=<your --token value>",
                 f"export DHAN_SCRIP_MASTER_URL=http://127.0.0.1:{port}/api-data/api-scrip-master.csv",
                 f"export UPSTOX_INSTRUMENTS_URL=http://127.0.0.1:{port}/market-quote/instruments/exchange/"
                 "complete.json.gz"):
        assert line in out.splitlines(), out
    assert "T-1" not in out + err  # a token given on the command line is never printed


def test_the_bundled_data_folder_serves_its_instrument_list_at_the_printed_urls():
    # data/ holds instruments.csv next to the candle files: it is the list, not candles
    box = Sandbox("--data", "data", "--port", "0", "--speed", "0")
    try:
        port = box.port()
        body = wait_for(lambda: (b := health(port))["replay_done"] and b)
        pattern = re.compile(r"(DHAN_SCRIP_MASTER_URL|UPSTOX_INSTRUMENTS_URL)=(\S+)")

        def printed() -> dict:
            return {m.group(1): m.group(2) for m in pattern.finditer("".join(box.stdout))}

        urls = wait_for(lambda: len(u := printed()) == 2 and u)
        with _NO_PROXY.open(urls["DHAN_SCRIP_MASTER_URL"], timeout=5) as response:
            dhan = response.read().decode()
        with _NO_PROXY.open(urls["UPSTOX_INSTRUMENTS_URL"], timeout=5) as response:
            upstox = json.loads(gzip.decompress(response.read()))
    finally:
        code, out, err = box.stop()
    assert code == 0, err
    assert body["instruments"] == ["NSE_EQ:2885"]  # the intraday file; the daily ones are left out
    assert "\nNSE,E,1333,EQUITY,0,HDFCBANK," in dhan
    assert "NSE_EQ|INE002A01018" in {r["instrument_key"] for r in upstox}


def test_paced_replay_publishes_over_time(tmp_path):
    # 30 one-minute bars at 600x: about three seconds in all
    box = Sandbox("--data", str(small_data(tmp_path)), "--port", "0", "--speed", "600",
                  "--start", "2024-06-10 09:20")
    try:
        port = box.port()
        partway = wait_for(lambda: (b := health(port))["ticks_published"] > 0 and b, step=0.05)
        done = wait_for(lambda: (b := health(port))["replay_done"] and b)
    finally:
        code, out, err = box.stop()
    assert not partway["replay_done"] and partway["ticks_published"] < 100
    assert done["ticks_published"] == 25 * 4  # bars from 09:20 on
    assert code == 0, err
    assert "Exchange time starts 2024-06-10 09:20 IST (--start 2024-06-10 09:20)" in err


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ALGO, "sandbox", *args], capture_output=True, text=True, env=env(), cwd=ROOT,
                          timeout=60)


def test_a_non_loopback_host_is_refused_in_one_line(tmp_path):
    for host in ("0.0.0.0", "192.168.1.20", "example.com"):
        proc = run("--data", str(tmp_path), "--host", host)
        assert proc.returncode == 2
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, proc.stderr
        assert f"--host {host} is not a loopback address" in lines[0] and "--allow-remote" in lines[0]
        assert proc.stdout == ""


def test_bad_start_and_missing_data_exit_2(tmp_path):
    proc = run("--data", str(tmp_path), "--start", "next tuesday")
    assert proc.returncode == 2 and "--start 'next tuesday' is not a date-time" in proc.stderr
    proc = run("--data", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "is not a folder" in proc.stderr
    proc = run("--data", str(tmp_path), "--speed", "-1")
    assert proc.returncode == 2


def _bash(script: str, cwd: Path) -> str:
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env(), cwd=cwd, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_stdout_is_only_export_lines_that_source_and_eval_as_printed(tmp_path):
    env_file = tmp_path / "sandbox.env"
    box = Sandbox("--data", str(small_data(tmp_path)), "--port", "0", "--speed", "0", "--wait-for-client",
                  "--env-file", str(env_file), cwd=tmp_path)
    try:
        port = box.port()
        out = box.exports()
        assert all(line.startswith("export ") for line in out), out  # no box, no prose: nothing but the lines
        assert health(port)["ticks_published"] == 0  # --wait-for-client: nothing replayed before a client
        sourced = _bash(f"source {env_file}; echo $DHAN_FEED_URL $UPSTOX_API_BASE_URL $DHAN_ACCESS_TOKEN",
                        tmp_path)
        evaled = _bash(f'eval "$({ALGO} sandbox --print-env --port {port})"; '
                       "echo $DHAN_FEED_URL $UPSTOX_API_BASE_URL $DHAN_ACCESS_TOKEN", tmp_path)
        url = _bash(f"source {env_file}; echo $DHAN_API_BASE_URL", tmp_path).strip()
        assert url == f"http://127.0.0.1:{port}/v2"
    finally:
        code, out_text, err = box.stop()
    assert code == 0, err
    expected = f"ws://127.0.0.1:{port}/dhan/feed http://127.0.0.1:{port} sandbox\n"
    assert sourced == evaled == expected
    assert [ln for ln in env_file.read_text().splitlines() if not ln.startswith("#")] == out_text.splitlines()
    assert env_file.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert f"Listening on http://127.0.0.1:{port}" in err and "--wait-for-client" in err


def test_print_env_needs_a_port_and_never_prints_a_given_token(tmp_path):
    done = run("--print-env", "--token", "SENTINEL-tok-1", "--port", "9123")
    assert done.returncode == 0 and done.stderr == ""
    assert "SENTINEL" not in done.stdout
    assert "# export UPSTOX_ACCESS_TOKEN=<your --token value>" in done.stdout.splitlines()
    assert "export UPSTOX_ORDER_BASE_URL=http://127.0.0.1:9123" in done.stdout.splitlines()
    zero = run("--print-env", "--port", "0")
    assert zero.returncode == 2 and zero.stdout == "" and "--print-env needs the --port" in zero.stderr
    missing = run("--data", str(tmp_path), "--env-file", str(tmp_path / "nope" / "x.env"))
    assert missing.returncode == 2 and "--env-file" in missing.stderr and "does not exist" in missing.stderr


def test_help_says_it_serves_paper_live_and_download_data():
    text = " ".join(run("--help").stdout.split())
    for words in ("`algo paper`", "`algo live`", "`algo download-data`", "--wait-for-client", "--env-file",
                  "--print-env"):
        assert words in text, words
