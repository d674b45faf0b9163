"""Start-up: ``algo --help``, ``algo --version`` and a backtest import only what they use.

Each command runs in a fresh interpreter (a test process has imported everything already)
and reports which of the heavy modules it loaded. Timing is left to
benchmarks/bench_startup.py; this keeps the cause of a slow start from coming back.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from cli.cli_support import REPO_ROOT, load_sma_config

# Imported by none of the commands below: live trading, downloads and the old report's charts.
NEVER = ("plotly", "aiohttp", "websockets", "google.protobuf", "pydantic_settings", "algocli.sandbox",
         "algocli.adapters.dhan.websocket", "algocli.adapters.upstox.websocket")
# The event loop of live trading and downloads (18 ms), which neither help nor a backtest needs.
LIVE_ONLY = ("asyncio",)
# What a backtest needs but help and version do not.
BACKTEST_ONLY = ("numpy", "pandas", "pydantic", "yaml", "talib", "algocli.engine", "algocli.instruments")
# Other commands' modules, which help imports and a backtest does not.
OTHER_COMMANDS = ("algocli.cli.sandbox", "algocli.cli.live", "algocli.cli.paper", "algocli.cli.download")

PROBE = """
import json, sys
from algocli.cli.main import main
code = main(sys.argv[2:])
print(json.dumps({"code": code, "loaded": [m for m in json.loads(sys.argv[1]) if m in sys.modules]}))
"""


def _loaded(*argv: str, cwd=REPO_ROOT) -> list[str]:
    """Run ``algo argv`` in a new interpreter; return which of the watched modules it imported."""
    watched = json.dumps([*NEVER, *LIVE_ONLY, *BACKTEST_ONLY, *OTHER_COMMANDS])
    done = subprocess.run([sys.executable, "-c", PROBE, watched, *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr
    return report["loaded"]


@pytest.mark.parametrize("argv", [["--help"], ["--version"]], ids=["help", "version"])
def test_help_and_version_import_no_heavy_module(argv):
    assert [m for m in _loaded(*argv) if m not in OTHER_COMMANDS] == []


def test_a_backtest_with_its_report_imports_nothing_for_live_trading(tmp_path):
    config = load_sma_config()  # the bundled sample, run from another folder
    config["data"]["path"] = str(REPO_ROOT / "data")
    (tmp_path / "sma.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    loaded = _loaded("backtest", "sma.yaml", "--quiet", "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert (tmp_path / "out" / "report.html").is_file()
    assert [m for m in loaded if m in NEVER or m in LIVE_ONLY or m in OTHER_COMMANDS] == []
    assert {"numpy", "pydantic", "talib"} <= set(loaded)  # the probe sees what a backtest does load


def test_the_sample_backtest_with_its_report_does_not_import_pandas(tmp_path):
    """pandas costs a quarter of a second: the run computes and writes with numpy (issue 10)."""
    config = load_sma_config()
    config["data"]["path"] = str(REPO_ROOT / "data")
    (tmp_path / "sma.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    loaded = _loaded("backtest", "sma.yaml", "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert (tmp_path / "out" / "report.html").is_file() and (tmp_path / "out" / "results.csv").is_file()
    assert "talib" in loaded and "pandas" not in loaded
