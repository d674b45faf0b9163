"""``algo instruments`` as a user runs it, against instrument files served on 127.0.0.1."""

import os
import shutil
import socket
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


def _refused_urls() -> dict[str, str]:
    with socket.socket() as closed:  # bound, never listening: every connection is refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    return {"DHAN_SCRIP_MASTER_URL": f"http://127.0.0.1:{port}/x.csv",
            "UPSTOX_INSTRUMENTS_URL": f"http://127.0.0.1:{port}/x.json.gz"}


def test_a_fresh_clone_offline_searches_the_sample_list_and_refresh_says_why(tmp_path):
    """No cache, no network: search and show read data/instruments.csv without --data; refresh
    names each broker's failure instead of telling the user to run itself."""
    (tmp_path / "data").mkdir()
    shutil.copyfile(REPO_ROOT / "data" / "instruments.csv", tmp_path / "data" / "instruments.csv")
    env = _refused_urls()
    found = _algo(["instruments", "search", "nifty", "26", "dec", "24000"], env, cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    assert "NSE:NIFTY 26 DEC 2024 24000 CE" in found.stdout and "refused the connection" in found.stderr
    show = _algo(["instruments", "show", "NSE:NIFTY 26 DEC 24000 CE", "--offline"], env, cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert "NSE_FNO:35019" in show.stdout  # this machine's clock is past 2024-12-26: it says so, once
    assert show.stderr.count("expired before") == 1 and "NSE:NIFTY 26 DEC 2024 24000 CE" in show.stderr
    refresh = _algo(["instruments", "refresh"], env, cwd=tmp_path)
    assert refresh.returncode == 1 and "Traceback" not in refresh.stderr
    assert refresh.stderr.count("refused the connection") == 2
    assert "dhan:" in refresh.stderr and "upstox:" in refresh.stderr and "run `algo instruments" not in refresh.stderr
    missing = _algo(["instruments", "search", "nifty", "--data", "nowhere"], env, cwd=tmp_path)
    assert missing.returncode == 2 and "nowhere/instruments.csv" in missing.stderr


def test_search_says_when_the_limit_cut_the_list_and_refuses_empty_text(tmp_path):
    (tmp_path / "data").mkdir()
    shutil.copyfile(REPO_ROOT / "data" / "instruments.csv", tmp_path / "data" / "instruments.csv")
    env = _refused_urls()
    listed = sum(1 for line in (tmp_path / "data" / "instruments.csv").read_text().splitlines()[1:]
                 if "NSE" in line.upper())  # NSE's rows, and BSE:SENSEX
    cut = _algo(["instruments", "search", "nse", "--offline", "-n", "2"], env, cwd=tmp_path)
    assert cut.returncode == 0, cut.stderr
    assert "2 shown (more match: add a word, or raise --limit), from data/instruments.csv" in cut.stdout
    whole = _algo(["instruments", "search", "nse", "--offline", "-n", str(listed)], env, cwd=tmp_path)
    assert f"{listed} shown, from data/instruments.csv" in whole.stdout and "more match" not in whole.stdout
    empty = _algo(["instruments", "search", " ", "--offline"], env, cwd=tmp_path)
    assert empty.returncode == 2 and empty.stderr.startswith("error: TEXT is empty") and "warning" not in empty.stderr


def test_a_failed_refresh_says_what_it_kept_for_each_broker(tmp_path):
    with serving({DHAN_PATH: dhan_csv(), UPSTOX_PATH: upstox_gz()}) as srv:
        env = {"ALGO_INSTRUMENTS_DIR": str(tmp_path), "DHAN_SCRIP_MASTER_URL": srv.url(DHAN_PATH),
               "UPSTOX_INSTRUMENTS_URL": _refused_urls()["UPSTOX_INSTRUMENTS_URL"]}
        first = _algo(["instruments", "refresh"], env)  # Upstox never downloaded: nothing of it is cached
        assert first.returncode == 1
        error = [line for line in first.stderr.splitlines() if line.startswith("error:")]
        assert len(error) == 1 and "nothing was cached" in error[0] and "was kept" not in error[0], first.stderr
        assert "upstox" in error[0] and "dhan" not in error[0]
        srv.fail_status = 503  # now Dhan fails too, with its list of today cached
        second = _algo(["instruments", "refresh"], env)
    error = [line for line in second.stderr.splitlines() if line.startswith("error:")]
    assert second.returncode == 1 and len(error) == 1, second.stderr
    assert "dhan: its cached list of 20" in error[0] and "upstox: nothing was cached" in error[0], error[0]
