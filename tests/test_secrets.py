"""The access token never leaves the environment and ``.env``, and the Dhan client id is never shown whole.

A sentinel token is set as DHAN_ACCESS_TOKEN and UPSTOX_ACCESS_TOKEN in the environment and
in a ``.env`` in the working directory, and every command runs there: ``backtest``,
``strategies``, ``sandbox`` (which only accepts the sentinel, so every run below really
authenticated with it), ``paper`` (with ``--debug``, so library log lines are searched too),
``live`` on both brokers, ``halt``, ``--debug live`` with
the token rejected (a traceback), and a live run killed by SIGKILL at a crash point. Then
stdout, stderr and every file in the working directory and the output folders are searched
for the sentinel. A sentinel Dhan client id (``DHAN_CLIENT_ID``, which logs in with the token)
is searched for in every command's stdout and stderr too: screens show it masked (``11…77``)
and ``--debug`` wire logs redact it as they do the token.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import time
from pathlib import Path

import yaml

from cli.live_support import algo_in, algo_running, broker_env, write_live_yaml
from cli.paper_support import (
    REPO_ROOT, TRACEBACK, Child, Sandbox, child_env, free_port, wait_for, write_dhan_yaml, write_one_day,
)

SENTINEL = "SENTINEL-5f3c9a-TOKEN"
CLIENT_SENTINEL = "1100SENTINEL77"  # DHAN_CLIENT_ID of the Dhan runs; shown as 11…77
SPEED = 4500  # the day in 5 s: every run below trades


def _start_sandbox(stack: contextlib.ExitStack, data: Path, logs: Path, label: str, cwd: Path,
                   extra: list[str]) -> Sandbox:
    port = free_port()
    args = ["sandbox", "--data", data, "--speed", str(SPEED), "--port", str(port), "--wait-for-client", *extra]
    child = stack.enter_context(algo_running(args, logs, label, child_env(), cwd=cwd))
    box = Sandbox(child, port)
    wait_for(box.health, 20, f"the sandbox on port {port}", child=child)
    return box


def _files(*folders: Path) -> list[Path]:
    out: list[Path] = []
    for folder in folders:
        out += [p for p in folder.rglob("*") if p.is_file()]
    return out


def _panel_export_lines(text: str) -> list[str]:
    """The lines of ``algo sandbox``'s ready panel that export a token, without the box border."""
    return [line.strip("│ ") for line in text.splitlines() if "_ACCESS_TOKEN=" in line]


def test_the_token_appears_in_no_output_log_or_file(tmp_path):
    work = tmp_path / "work"  # the working directory of every command, holding the .env
    logs = tmp_path / "logs"  # every command's stdout and stderr
    work.mkdir()
    dotenv = work / ".env"
    dotenv.write_text(f"DHAN_ACCESS_TOKEN={SENTINEL}\nUPSTOX_ACCESS_TOKEN={SENTINEL}\n", encoding="utf-8")
    (work / "configs").mkdir()
    shutil.copyfile(REPO_ROOT / "configs" / "sma.yaml", work / "configs" / "sma.yaml")
    (work / "data").mkdir()
    shutil.copyfile(REPO_ROOT / "data" / "NSE_EQ_1333.csv", work / "data" / "NSE_EQ_1333.csv")
    shutil.copyfile(REPO_ROOT / "data" / "instruments.csv", work / "data" / "instruments.csv")  # names it
    day = work / "day"
    write_one_day(day)
    out = work / "output"
    token_env = {"DHAN_ACCESS_TOKEN": SENTINEL, "UPSTOX_ACCESS_TOKEN": SENTINEL}
    captured: dict[str, tuple[str, str]] = {}
    codes: dict[str, int] = {}

    def record(label: str, child_or_done) -> None:
        if isinstance(child_or_done, Child):
            captured[label] = (child_or_done.out, child_or_done.err)
            codes[label] = child_or_done.poll()
        else:
            captured[label] = (child_or_done.stdout, child_or_done.stderr)
            codes[label] = child_or_done.returncode
            (logs / f"{label}.out").write_text(child_or_done.stdout, encoding="utf-8")
            (logs / f"{label}.err").write_text(child_or_done.stderr, encoding="utf-8")

    logs.mkdir()
    with contextlib.ExitStack() as stack:
        box = _start_sandbox(stack, day, logs, "sandbox", work, ["--token", SENTINEL])
        refusing = _start_sandbox(stack, day, logs, "sandbox-refusing", work, ["--reject-tokens"])
        dhan = {**broker_env("dhan", box.port, client_id=CLIENT_SENTINEL), **token_env}
        both = {**dhan, **broker_env("upstox", box.port), **token_env}

        paper_cfg = write_dhan_yaml(work / "paper.yaml", out_dir=out / "paper")
        live_dhan = write_live_yaml(work / "live-dhan.yaml", "dhan", out / "live-dhan")
        live_upstox = write_live_yaml(work / "live-upstox.yaml", "upstox", out / "live-upstox")
        crash_cfg = write_live_yaml(work / "live-crash.yaml", "dhan", out / "live-crash", name="live-crash")
        runs = {
            # --debug: library log lines too (the Dhan feed sends the token in its URL's query)
            "paper": stack.enter_context(algo_running(["--debug", "paper", paper_cfg, "--no-dashboard"], logs,
                                                      "paper", child_env(**dhan), cwd=work)),
            "live-dhan": stack.enter_context(algo_running(["live", live_dhan, "--yes", "--no-dashboard"], logs,
                                                          "live-dhan", child_env(**both), cwd=work)),
            "live-upstox": stack.enter_context(algo_running(["live", live_upstox, "--yes", "--no-dashboard"], logs,
                                                            "live-upstox", child_env(**both), cwd=work)),
        }
        crash_env = child_env(**{**dhan, "DHAN_CLIENT_ID": "crash-account"},
                              ALGOCLI_CRASH_AT="after_fill_journal:1")
        crash = stack.enter_context(algo_running(["live", crash_cfg, "--yes", "--no-dashboard"], logs, "crash",
                                                 crash_env, cwd=work))

        # the short commands run meanwhile
        record("backtest", algo_in(["backtest", "configs/sma.yaml"], child_env(**token_env), work))
        record("strategies", algo_in(["strategies"], child_env(**token_env), work))
        halt_cfg = write_live_yaml(work / "halt.yaml", "dhan", out / "halt", risk={})
        record("halt", algo_in(["halt", halt_cfg], child_env(**both), work))
        debug_cfg = write_live_yaml(work / "live-debug.yaml", "dhan", out / "live-debug")
        started = time.monotonic()
        record("debug", algo_in(["--debug", "live", debug_cfg, "--yes", "--no-dashboard"],
                                child_env(**{**broker_env("dhan", refusing.port, client_id=CLIENT_SENTINEL),
                                             **token_env}), work, timeout=30))
        debug_elapsed = time.monotonic() - started

        assert crash.wait(timeout=40) == -signal.SIGKILL, crash.err
        record("crash", crash)
        wait_for(lambda: (h := box.health()) is not None and h["replay_done"], 40, "the replay to finish",
                 interval=0.1, child=runs["live-dhan"])
        time.sleep(0.5)
        for label, child in runs.items():
            assert child.poll() is None, f"{label}: {child.err}"
            code = child.interrupt(timeout=30)
            record(label, child)
            assert code == 0, f"{label}: {child.err}"
        for label, sb in (("sandbox", box), ("sandbox-refusing", refusing)):
            assert sb.child.interrupt(timeout=20) == 0, sb.child.err
            record(label, sb.child)

    # every command did its job (with the sentinel as its token where it needed one)
    for label in ("backtest", "strategies", "halt"):
        assert codes[label] == 0, captured[label]
    assert codes["debug"] == 1, captured["debug"]
    assert codes["crash"] == -signal.SIGKILL
    assert "sma-hdfcbank: backtest results" in captured["backtest"][0]
    assert "sma_crossover" in captured["strategies"][0]
    assert "halted the paper or live run live-dhan" in captured["halt"][0]
    for label in ("paper", "live-dhan", "live-upstox"):
        assert "results" in captured[label][0] and "artifacts:" in captured[label][0], captured[label]
    assert [r for r in (out / "live-upstox" / "fills.csv").read_text().splitlines()[1:] if r.startswith("T:")]
    assert [r for r in (out / "live-dhan" / "fills.csv").read_text().splitlines()[1:] if r.startswith("T:")]
    assert '"k":"fill"' in (out / "live-crash" / "journal.jsonl").read_text(encoding="utf-8")
    debug_out, debug_err = captured["debug"]
    assert TRACEBACK in debug_err, debug_err  # --debug printed the traceback of the refused token
    assert "DHAN_ACCESS_TOKEN" in debug_err and debug_elapsed < 20
    assert "sandbox stopped" in captured["sandbox"][1]

    # the search: the sentinel is nowhere but in the .env written above
    assert SENTINEL in dotenv.read_text(encoding="utf-8")
    leaks = []
    for label, (stdout, stderr) in captured.items():
        if label == "sandbox":
            # `algo sandbox --token T` says where the token goes without printing it
            assert _panel_export_lines(stdout) == ["# export DHAN_ACCESS_TOKEN=<your --token value>",
                                                   "# export UPSTOX_ACCESS_TOKEN=<your --token value>"], stdout
        if SENTINEL in stdout:
            leaks.append(f"{label} stdout")
        if SENTINEL in stderr:
            leaks.append(f"{label} stderr")
    files = [p for p in _files(work, logs) if p != dotenv and p.name != "sandbox.0.out"]
    assert len(files) > 40
    for name in ("journal.jsonl", "fills.csv", "orders.csv", "trades.csv", "equity_curve.csv", "results.csv",
                 "report.html", "run.json", "config.resolved.yaml", "risk_state.json"):
        assert any(p.name == name for p in files), name
    leaks += [str(p.relative_to(tmp_path)) for p in files if SENTINEL.encode() in p.read_bytes()]
    assert not leaks, f"the token leaked into: {leaks}"
    shown = [f"{label} {stream}" for label, outputs in captured.items()
             for stream, text in zip(("stdout", "stderr"), outputs) if CLIENT_SENTINEL in text]
    assert not shown, f"the Dhan client id was shown whole in: {shown}"
    for label in ("live-dhan", "debug"):  # the account line of the live screen, masked
        assert "Dhan client 11…77" in captured[label][0], captured[label][0]
    assert "clientId=<redacted>" in captured["paper"][1]  # --debug printed the wire log line, redacted
    resolved = yaml.safe_load((out / "live-dhan" / "config.resolved.yaml").read_text(encoding="utf-8"))
    assert resolved["broker"]["name"] == "dhan"  # the resolved config was written, and holds no token
