"""``algo instruments`` as a user runs it, against instrument files served on 127.0.0.1."""

import os
import subprocess

from cli.cli_support import ALGO_EXE, REPO_ROOT
from instruments.files import dhan_csv, serving, upstox_gz

DHAN_PATH = "/api-data/api-scrip-master.csv"
UPSTOX_PATH = "/market-quote/instruments/exchange/complete.json.gz"


def _algo(args, env, cwd=REPO_ROOT):
    full = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **env}
    return subprocess.run([str(ALGO_EXE), *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=120)


def test_refresh_search_show(tmp_path):
    with serving({DHAN_PATH: dhan_csv(), UPSTOX_PATH: upstox_gz()}) as srv:
        env = {"ALGO_INSTRUMENTS_DIR": str(tmp_path), "DHAN_SCRIP_MASTER_URL": srv.url(DHAN_PATH),
               "UPSTOX_INSTRUMENTS_URL": srv.url(UPSTOX_PATH)}
        refresh = _algo(["instruments", "refresh"], env)
        assert refresh.returncode == 0, refresh.stderr
        assert len(refresh.stdout.strip().splitlines()) == 1  # one line for cron
        assert "dhan: downloaded" in refresh.stdout and "upstox: downloaded" in refresh.stdout
        found = _algo(["instruments", "search", "nifty", "26", "dec", "24000"], env)
        assert found.returncode == 0, found.stderr
        assert "NSE:NIFTY 26 DEC 2024 24000 CE" in found.stdout and "NSE_FNO:35019" in found.stdout
        show = _algo(["instruments", "show", "NSE_EQ|INE040A01034"], env)
        assert "NSE:HDFCBANK" in show.stdout and "NSE_EQ:1333" in show.stdout and "0.1" in show.stdout
        srv.fail_status = 503
        offline = _algo(["instruments", "refresh"], env)
        assert offline.returncode == 1
        assert offline.stderr.strip().startswith("error:") and "Traceback" not in offline.stderr
        unknown = _algo(["instruments", "show", "NSE:HDFCBNK", "--offline"], env)
        assert unknown.returncode == 2 and "did you mean 'NSE:HDFCBANK'" in unknown.stderr
        none = _algo(["instruments", "search", "qwerty", "--offline"], env)
        assert none.returncode == 1 and "no instrument matches" in none.stdout


def test_search_with_no_master_uses_the_data_folder_list(tmp_path):
    env = {"ALGO_INSTRUMENTS_DIR": str(tmp_path / "empty"), "DHAN_SCRIP_MASTER_URL": "http://127.0.0.1:9/x.csv",
           "UPSTOX_INSTRUMENTS_URL": "http://127.0.0.1:9/x.json.gz"}
    result = _algo(["instruments", "search", "reliance", "--data", "data"], env)
    assert result.returncode == 0, result.stderr
    assert "NSE:RELIANCE" in result.stdout and "NSE_EQ|INE002A01018" in result.stdout
    assert "warning:" in result.stderr and "data/instruments.csv" in result.stderr
