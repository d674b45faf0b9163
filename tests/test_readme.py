"""Every command the README shows is run here, the way a user would type it."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ALGO = str(Path(sys.executable).with_name("algo"))

# run against `algo sandbox --data data/options` by test_options_download_commands_against_the_sandbox
OPTIONS_DOWNLOADS = (
    'algo download-data "NSE:NIFTY 50" --options --source dhan --expiry current --cycle month '
    "--strikes ATM-5:ATM+5 --interval 15m --from 2024-06-13 --to 2024-06-27",
    'algo download-data "NSE:NIFTY 50" --pcr --source upstox --expiry 2024-06-27 --interval 15m '
    "--from 2024-06-13 --to 2024-06-27",
)
KNOWN = {
    "make backtest", "make test", "make bench",
    "algo backtest configs/sma.yaml", "algo backtest configs/sma.yaml --output /tmp/run1",
    "algo backtest configs/multi.yaml --no-report", "algo --debug backtest configs/sma.yaml",
    "python data/generate_sample.py",
    "algo sandbox --data data --wait-for-client --env-file output/sandbox.env", "source output/sandbox.env",
    "algo paper configs/paper.yaml",
    'algo halt configs/paper.yaml --reason "manual stop"', "algo halt configs/paper.yaml --clear",
    "algo live configs/live-dhan.yaml --dry-run", "algo live configs/live-dhan.yaml",
    "algo instruments refresh", "algo instruments search nifty 26 dec 24000",
    "algo download-data NSE:RELIANCE --interval 5m --from 2024-06-10 --to 2024-06-14 --source dhan",
    "algo backtest configs/downloaded.yaml",
    *OPTIONS_DOWNLOADS,
    "algo backtest configs/options-pcr.yaml",
    # two terminals, run as printed (configs included) by tests/cli/test_options_example.py
    "algo sandbox --data data/options --speed 0 --wait-for-client", "algo paper configs/options-pcr-paper.yaml",
}


def _wait_healthy(port: int, tries: int = 100) -> None:
    """Wait (up to ~10 s) until ``algo sandbox`` on ``port`` answers its health check."""
    import time
    import urllib.request

    for _ in range(tries):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return
        except OSError:
            time.sleep(0.1)


def _bash_commands() -> set[str]:
    """Each command of the README's bash blocks, a line ending in a backslash joined to the next."""
    commands = set()
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in re.sub(r"\\\n\s*", "", block).splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                commands.add(line)
    return commands


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, **kw)


def test_readme_shows_only_commands_that_are_tested_here():
    assert _bash_commands() == KNOWN


def test_quick_start_has_two_commands():
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick, flags=re.S).group(1)
    commands = [ln.split("#")[0].strip() for ln in block.splitlines()]
    assert [c for c in commands if c] == ["make backtest", "make test"]


def test_make_backtest_runs_the_sample():
    proc = _run(["make", "backtest"])
    assert proc.returncode == 0, proc.stderr
    assert "Sharpe Ratio" in proc.stdout
    results = pd.read_csv(ROOT / "output" / "sma-hdfcbank" / "results.csv", index_col="metric")["value"]
    assert int(results["total_trades"]) > 0


def test_make_test_runs_pytest_after_setup():
    # running the suite from inside itself would recurse; check what it would execute
    proc = _run(["make", "-n", "test"])
    assert proc.returncode == 0, proc.stderr
    assert "pytest -n auto" in proc.stdout and "chromium" in proc.stdout  # a process per core
    assert "pytest" in (ROOT / ".ci" / "run").read_text() or "make test" in (ROOT / ".ci" / "run").read_text()


def test_make_bench_target_runs_the_benchmark_script():
    proc = _run(["make", "-n", "bench"])
    assert "benchmarks/bench_sma.py" in proc.stdout
    small = _run([sys.executable, "benchmarks/bench_sma.py", "--bars", "20000", "--repeat", "1"])
    assert small.returncode == 0, small.stderr
    for label in ("algocli engine", "backtesting.py 0.6", "speed-up", "`algo backtest` command", "peak RSS"):
        assert label in small.stdout


@pytest.mark.parametrize("args", [
    ["backtest", "configs/sma.yaml"],
    ["backtest", "configs/sma.yaml", "--output", "/tmp/run1"],
    ["backtest", "configs/multi.yaml", "--no-report"],
    ["--debug", "backtest", "configs/sma.yaml"],
    ["backtest", "configs/options-pcr.yaml"],
])
def test_algo_commands(args):
    import yaml

    out_dir = Path(args[args.index("--output") + 1]) if "--output" in args else \
        ROOT / "configs" / yaml.safe_load((ROOT / args[-2 if "--no-report" in args else -1]).read_text())["output"]["dir"]
    report = out_dir / "report.html"
    report.unlink(missing_ok=True)
    proc = _run([ALGO, *args])
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (out_dir / "trades.csv").is_file()
    assert report.exists() == ("--no-report" not in args)
    if "multi" in args[-2]:
        assert "per strategy" in proc.stdout


def test_generate_sample_rewrites_identical_bytes():
    files = sorted((ROOT / "data").glob("*.csv"))
    before = {p.name: p.read_bytes() for p in files}
    proc = _run([sys.executable, "data/generate_sample.py"])
    assert proc.returncode == 0, proc.stderr
    assert {p.name: p.read_bytes() for p in sorted((ROOT / "data").glob("*.csv"))} == before


def test_readme_strategy_example_runs(tmp_path, monkeypatch):
    code = re.search(r"```python\n(.*?)```", README.split("## Writing a strategy", 1)[1], flags=re.S).group(1)
    (tmp_path / "readme_breakout.py").write_text(code)
    config = tmp_path / "breakout.yaml"
    config.write_text(f"""
name: breakout
initial_capital: 100000
data: {{feed: csv, path: {ROOT / 'data'}}}
strategies:
  - class: readme_breakout:Breakout
    instruments: ["NSE:INFY"]
    params: {{period: 20, quantity: 10}}
output: {{dir: {tmp_path / 'out'}}}
""")
    proc = _run([ALGO, "backtest", str(config), "--no-report"], env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    trades = pd.read_csv(tmp_path / "out" / "trades.csv")
    assert len(trades) > 0 and set(trades["strategy"]) == {"Breakout-0"}


def test_sandbox_and_paper_commands_in_two_terminals(tmp_path):
    """The README's two terminals, as printed, in a scratch folder holding configs/paper.yaml and
    the bundled data, on a free port (``--port`` added, the config's url moved to it), so that
    the suite passes beside a running sandbox and leaves the repository's output/ alone."""
    import json
    import signal
    import time
    import urllib.request

    section = README.split("## Paper trading: `algo sandbox` and `algo paper`", 1)[1]
    sandbox_cmd = "algo sandbox --data data --wait-for-client --env-file output/sandbox.env"
    assert sandbox_cmd in section and "source output/sandbox.env" in section
    assert "algo paper configs/paper.yaml" in section
    port = _free_port()
    (tmp_path / "configs").mkdir()
    (tmp_path / "output").mkdir()
    (tmp_path / "data").symlink_to(ROOT / "data")
    paper_yaml = (ROOT / "configs" / "paper.yaml").read_text(encoding="utf-8")
    assert "http://127.0.0.1:8765" in paper_yaml
    (tmp_path / "configs" / "paper.yaml").write_text(paper_yaml.replace(":8765", f":{port}"), encoding="utf-8")
    env_file = tmp_path / "output" / "sandbox.env"
    sandbox = subprocess.Popen([ALGO, *sandbox_cmd.split()[1:], "--port", str(port)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    paper = None
    try:
        _wait_healthy(port)
        assert f"export DHAN_FEED_URL=ws://127.0.0.1:{port}/" in env_file.read_text(encoding="utf-8")
        journal = tmp_path / "output" / "paper-reliance" / "journal.jsonl"
        # terminal 2, as printed: source the variables, then algo paper
        paper = subprocess.Popen(["bash", "-c", f"source output/sandbox.env && exec {ALGO} paper configs/paper.yaml"],
                                 cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for a few closed candles (one a second at 60x)
            if journal.exists() and journal.read_text().count('"k":"candle"') >= 5:
                break
            time.sleep(0.2)
        paper.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = paper.communicate(timeout=30)
        assert paper.returncode == 0, err
        assert "Traceback" not in err and "Sharpe Ratio" in out
        for name in ("trades.csv", "orders.csv", "fills.csv", "equity_curve.csv", "results.csv", "report.html"):
            assert (tmp_path / "output" / "paper-reliance" / name).is_file()
        health = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1))
        assert health["ticks_published"] > 0
    finally:
        for proc in (paper, sandbox):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    assert sandbox.returncode == 0


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_risk_section_and_halt_commands(tmp_path):
    """The README's ``risk:`` block is a valid section, and its ``algo halt`` lines work on a config with it.

    They run in a scratch folder holding configs/paper.yaml plus that block, so nothing in
    the repository's output/ is touched.
    """
    import shlex

    import yaml

    block = re.search(r"```yaml\n(risk:.*?)```", README, flags=re.S).group(1)
    risk = yaml.safe_load(block)["risk"]
    (tmp_path / "configs").mkdir()
    paper = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text(encoding="utf-8"))
    (tmp_path / "configs" / "paper.yaml").write_text(yaml.safe_dump({**paper, "risk": risk}), encoding="utf-8")
    state = tmp_path / "output" / "paper-reliance" / "risk_state.json"
    halt, clear = sorted((c for c in KNOWN if c.startswith("algo halt")), key=lambda c: "--clear" in c)
    proc = subprocess.run([ALGO, *shlex.split(halt)[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("halted the paper or live run paper-reliance (manual stop)")
    assert '"state": "HALTED"' in state.read_text(encoding="utf-8")
    proc = subprocess.run([ALGO, *shlex.split(clear)[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("cleared the halt of the paper or live run paper-reliance")
    assert '"state": "ACTIVE"' in state.read_text(encoding="utf-8")


def test_live_commands_dry_run_and_confirmation(tmp_path):
    """`--dry-run` trades on the sandbox feed with simulated fills; without --yes it asks."""
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sandbox = subprocess.Popen([ALGO, "sandbox", "--data", "data", "--speed", "120", "--port", str(port)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    env = {**__import__("os").environ, "DHAN_FEED_URL": f"ws://127.0.0.1:{port}/dhan/feed",
           "DHAN_API_BASE_URL": f"http://127.0.0.1:{port}/v2", "DHAN_ORDER_UPDATE_URL": f"ws://127.0.0.1:{port}/dhan/orders",
           "DHAN_CLIENT_ID": "sandbox", "DHAN_ACCESS_TOKEN": "sandbox", "ALGO_INSTRUMENTS_DIR": str(tmp_path / "lists"),
           "DHAN_SCRIP_MASTER_URL": f"http://127.0.0.1:{port}/api-data/api-scrip-master.csv",  # names: the sandbox's
           "UPSTOX_INSTRUMENTS_URL": f"http://127.0.0.1:{port}/market-quote/instruments/exchange/complete.json.gz"}
    live = None
    try:
        _wait_healthy(port)
        asked = subprocess.run([ALGO, "live", "configs/live-dhan.yaml"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=60)
        assert asked.returncode == 2 and "--yes" in asked.stderr and "Traceback" not in asked.stderr
        journal = ROOT / "output" / "live-dhan" / "dry-run" / "journal.jsonl"  # a dry run's own folder
        journal.unlink(missing_ok=True)
        live = subprocess.Popen([ALGO, "live", "configs/live-dhan.yaml", "--dry-run"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if journal.exists() and journal.read_text().count('"k":"candle"') >= 3:
                break
            time.sleep(0.2)
        live.send_signal(signal.SIGINT)
        out, err = live.communicate(timeout=30)
        assert live.returncode == 0, err
        assert "DRY RUN" in out and "Sharpe Ratio" in out
        book = urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{port}/v2/orders", headers={"access-token": "sandbox", "client-id": "sandbox"}))
        assert __import__("json").load(book) == []  # a dry run sends nothing to the broker
    finally:
        for proc in (live, sandbox):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


@contextlib.contextmanager
def _sandbox_project(tmp_path: Path, data: str, start: str):
    """A copy of the configs and sample data, ``algo sandbox --data DATA`` on a free port replaying from
    ``start``, and a function that runs ``algo`` there with the variables the sandbox prints exported."""
    import os
    import shutil
    import signal
    import socket

    work = tmp_path / "project"
    shutil.copytree(ROOT / "configs", work / "configs")
    shutil.copytree(ROOT / "data", work / "data",
                    ignore=shutil.ignore_patterns("instruments", "[0-9]*", "*.py", ".algocli-cache", "NSE_NIFTY_50"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sandbox = subprocess.Popen([ALGO, "sandbox", "--data", data, "--port", str(port), "--start", start],
                               cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "300"})
    try:
        _wait_healthy(port)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DHAN_", "UPSTOX_"))}
        env["ALGO_INSTRUMENTS_DIR"] = str(work / "data" / "instruments")
        port_text = f"127.0.0.1:{port}"
        for var, value in {"DHAN_API_BASE_URL": f"http://{port_text}/v2", "DHAN_CLIENT_ID": "sandbox",
                           "DHAN_ACCESS_TOKEN": "sandbox",
                           "DHAN_SCRIP_MASTER_URL": f"http://{port_text}/api-data/api-scrip-master.csv",
                           "UPSTOX_API_BASE_URL": f"http://{port_text}", "UPSTOX_ACCESS_TOKEN": "sandbox",
                           "UPSTOX_INSTRUMENTS_URL":
                               f"http://{port_text}/market-quote/instruments/exchange/complete.json.gz"}.items():
            env[var] = value

        def algo(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([ALGO, *args], cwd=work, env={**env, "COLUMNS": "200"}, capture_output=True,
                                  text=True, timeout=300)

        yield work, algo
    finally:
        sandbox.send_signal(signal.SIGINT)
        try:
            sandbox.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sandbox.kill()


def test_instruments_and_download_commands_against_the_sandbox(tmp_path):
    """The README's instruments and download-data commands, in a copy of the project, with the
    variables the sandbox prints exported: names resolve, candles land, the backtest reads them."""
    with _sandbox_project(tmp_path, "data", "2024-06-14 15:29") as (work, algo):
        refresh = algo("instruments", "refresh")
        assert refresh.returncode == 0, refresh.stderr
        assert refresh.stdout.count("\n") == 1 and "dhan: downloaded" in refresh.stdout
        search = algo("instruments", "search", "nifty", "26", "dec", "24000")
        assert search.returncode == 0 and "NSE:NIFTY 26 DEC 2024 24000 CE" in search.stdout, search.stderr
        download = algo("download-data", "NSE:RELIANCE", "--interval", "5m", "--from", "2024-06-10", "--to",
                        "2024-06-14", "--source", "dhan")
        assert download.returncode == 0, download.stderr
        last = download.stdout.strip().splitlines()[-1]
        assert last.startswith("download-data: 1 instrument, 1 ok, 0 failed, 375 new bars"), last
        again = algo("download-data", "NSE:RELIANCE", "--interval", "5m", "--from", "2024-06-10", "--to",
                     "2024-06-14", "--source", "dhan", "--quiet")
        assert again.stdout.strip().startswith("download-data: 1 instrument, 1 ok, 0 failed, 0 new bars"), again.stdout
        backtest = algo("backtest", "configs/downloaded.yaml")
        assert backtest.returncode == 0, backtest.stderr
        trades = pd.read_csv(work / "output" / "sma-downloaded" / "trades.csv")
        assert len(trades) > 0 and set(trades["instrument"]) == {"NSE:RELIANCE"}


def test_options_download_commands_against_the_sandbox(tmp_path):
    """The README's option-candle and PCR downloads, as printed, from the sandbox serving the option sample:
    the contracts' files are the bundled ones' rows, and PCR rows land beside them."""
    import shlex

    with _sandbox_project(tmp_path, "data/options", "2024-06-27 15:15") as (work, algo):
        assert algo("instruments", "refresh").returncode == 0
        for command in OPTIONS_DOWNLOADS:
            done = algo(*shlex.split(command)[1:])
            assert done.returncode == 0, (command, done.stderr)
        out = work / "data" / "options" / "NSE_NIFTY_50"
        contracts = sorted(out.glob("NSE_FNO_*.csv"))
        assert len(contracts) > 10
        for path in contracts:  # each downloaded row is the bundled contract's row for that time
            bundled = set((ROOT / "data" / "options" / path.name).read_text().splitlines())
            assert set(path.read_text().splitlines()) <= bundled, path.name
        pcr = pd.read_csv(out / "pcr.csv")
        assert len(pcr) > 100 and (pcr["oi_pcr"] > 0).all() and set(pcr["underlying"]) == {"NSE:NIFTY 50"}


def _fresh_clone(tmp_path: Path) -> Path:
    """The tracked configs and sample data, as a fresh clone has them: no instrument cache, no output."""
    import shutil

    work = tmp_path / "clone"
    shutil.copytree(ROOT / "configs", work / "configs")
    shutil.copytree(ROOT / "data", work / "data", ignore=shutil.ignore_patterns("instruments", "[0-9]*", "__pycache__"))
    return work


def test_readme_commands_in_a_fresh_clone_offline(tmp_path):
    """Offline (every list URL refuses), as printed: the quick-start backtest says nothing about
    instrument lists, `instruments search` finds the sample's contract, and `instruments refresh`
    fails saying why each broker's download failed."""
    import os
    import shlex
    import socket

    work = _fresh_clone(tmp_path)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DHAN_", "UPSTOX_", "ALGO_"))}
    env.update({"DHAN_SCRIP_MASTER_URL": f"http://127.0.0.1:{port}/x.csv", "COLUMNS": "200",
                "UPSTOX_INSTRUMENTS_URL": f"http://127.0.0.1:{port}/x.json.gz"})

    def algo(command: str) -> subprocess.CompletedProcess:
        assert command in KNOWN  # exactly as the README prints it
        return subprocess.run([ALGO, *shlex.split(command)[1:]], cwd=work, env=env, capture_output=True, text=True,
                              timeout=300)

    backtest = algo("algo backtest configs/sma.yaml")
    assert backtest.returncode == 0, backtest.stderr
    assert "instrument" not in backtest.stderr.lower() and "warning" not in backtest.stderr.lower()
    search = algo("algo instruments search nifty 26 dec 24000")
    assert search.returncode == 0, search.stderr
    assert "NSE:NIFTY 26 DEC 2024 24000 CE" in search.stdout
    refresh = algo("algo instruments refresh")
    assert refresh.returncode == 1 and "Traceback" not in refresh.stderr
    assert "dhan:" in refresh.stderr and "upstox:" in refresh.stderr
    assert refresh.stderr.count("refused the connection") == 2


def test_bundled_configs_and_readme_name_instruments_by_name():
    import yaml

    from algocli.instruments.naming import is_broker_id

    for path in sorted((ROOT / "configs").glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8"))["strategies"]:
            assert not any(is_broker_id(i) for i in entry["instruments"]), f"{path.name}: {entry['instruments']}"
    for block in re.findall(r"```yaml\n(.*?)```", README, flags=re.S):
        assert not re.search(r"instruments: \[[^\]]*(NSE|BSE)_[A-Z]+[:|]", block), block
