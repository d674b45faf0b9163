"""The cache downloads once a day over HTTP, survives being offline, and never mixes sources."""

import os
import socket
import time

import pytest

from algocli.instruments.cache import MasterUnavailable, open_master, refresh_master
from instruments.files import dhan_csv, serving, upstox_gz

DHAN_PATH = "/api-data/api-scrip-master.csv"
UPSTOX_PATH = "/market-quote/instruments/exchange/complete.json.gz"


@pytest.fixture
def server():
    with serving({DHAN_PATH: dhan_csv(), UPSTOX_PATH: upstox_gz()}) as srv:
        yield srv


def _urls(srv):
    return {"dhan": srv.url(DHAN_PATH), "upstox": srv.url(UPSTOX_PATH)}


def _age(directory, days: float) -> None:
    for path in directory.iterdir():
        stamp = time.time() - days * 86400
        os.utime(path, (stamp, stamp))


def test_downloads_once_a_day(server, tmp_path):
    master = open_master(directory=tmp_path, urls=_urls(server))
    assert master.resolve("NSE:HDFCBANK").upstox_key == "NSE_EQ|INE040A01034"
    assert sorted(server.hits) == sorted([DHAN_PATH, UPSTOX_PATH])
    open_master(directory=tmp_path, urls=_urls(server))
    assert len(server.hits) == 2  # fresh today: no second download
    _age(tmp_path, 1.5)
    open_master(directory=tmp_path, urls=_urls(server))
    assert len(server.hits) == 4  # yesterday's files are refreshed


def test_offline_uses_the_cache_and_says_so(server, tmp_path):
    open_master(directory=tmp_path, urls=_urls(server))
    _age(tmp_path, 2)
    server.fail_status = 503
    warnings: list[str] = []
    master = open_master(directory=tmp_path, urls=_urls(server), warn=warnings.append)
    assert master.resolve("NSE_EQ:1333").hrn == "NSE:HDFCBANK"
    assert len(warnings) == 2 and all("HTTP 503" in w and "using the cache of" in w for w in warnings)
    hits = len(server.hits)
    assert open_master(directory=tmp_path, urls=_urls(server), refresh="never").resolve("NSE:NIFTY 50")
    assert len(server.hits) == hits  # never: no request at all


def test_a_bad_download_does_not_replace_a_good_file(server, tmp_path):
    open_master(directory=tmp_path, urls=_urls(server))
    server.files[UPSTOX_PATH] = b"<html>maintenance</html>"
    master, outcome = refresh_master(directory=tmp_path, urls=_urls(server))
    assert "download failed" in outcome["upstox"] and "downloaded" in outcome["dhan"]
    assert master.resolve("NSE:HDFCBANK").upstox_key == "NSE_EQ|INE040A01034"


def test_a_bad_download_names_the_url_not_a_scratch_file_and_leaves_none(server, tmp_path):
    server.files[DHAN_PATH] = b"not,a,scrip,master\n1,2,3,4\n"
    _, outcome = refresh_master(directory=tmp_path, urls=_urls(server))
    line = str(outcome["dhan"])
    assert f"{server.url(DHAN_PATH)} sent no usable instrument list: is not Dhan's compact scrip master" in line
    assert "; check the URL, or try again later)" in line and ".check" not in line and "delete it" not in line
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".check")] == []


def test_nothing_cached_and_offline_is_a_clear_error(server, tmp_path):
    server.fail_status = 500
    with pytest.raises(MasterUnavailable, match=r"dhan: HTTP 500 from 127\.0\.0\.1:\d+; upstox: HTTP 500"):
        open_master(directory=tmp_path, urls=_urls(server))
    with pytest.raises(MasterUnavailable, match="no instrument list is cached.*algo instruments refresh"):
        open_master(directory=tmp_path, urls=_urls(server), refresh="never")  # nothing was tried: say how


def test_offline_says_why_each_download_failed(tmp_path):
    """DNS failure, a refused connection, a server that never answers, an HTTP status: each named per broker."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = closed.getsockname()[1]  # bound but not listening: connections are refused
        with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
            quiet = silent.getsockname()[1]
            urls = {"dhan": "http://no-such-host.invalid/api-scrip-master.csv",
                    "upstox": f"http://127.0.0.1:{quiet}/complete.json.gz"}
            with pytest.raises(MasterUnavailable) as err:
                refresh_master(directory=tmp_path, urls=urls, timeout=0.5)
        text = str(err.value)
        assert "dhan: DNS lookup of no-such-host.invalid failed" in text
        assert f"upstox: no answer from 127.0.0.1:{quiet} within 0.5 s" in text
        with pytest.raises(MasterUnavailable) as err:
            refresh_master(directory=tmp_path, urls={"dhan": f"http://127.0.0.1:{refused}/a.csv",
                                                     "upstox": f"http://127.0.0.1:{refused}/b.json.gz"})
    assert str(err.value).count(f"127.0.0.1:{refused} refused the connection") == 2
    assert "algo instruments refresh" not in str(err.value) and "connect to the internet" in str(err.value)


def test_another_source_url_never_stands_in(server, tmp_path):
    open_master(directory=tmp_path, urls=_urls(server))
    other = {"dhan": server.url("/other.csv"), "upstox": server.url("/other.json.gz")}
    with pytest.raises(MasterUnavailable):
        open_master(directory=tmp_path, urls=other)  # 404s, and the cached files are another source's


_WHERE = """
import sys
from algocli.instruments.cache import MasterUnavailable, open_master
try:
    print(open_master(refresh="never").source)
except MasterUnavailable as exc:
    print(exc)
print("pydantic_settings" in sys.modules)
"""


def _where(cwd, env_file: str | None = None) -> list[str]:
    import subprocess
    import sys

    if env_file is not None:
        (cwd / ".env").write_text(env_file)
    env = {k: v for k, v in os.environ.items() if k.upper() != "ALGO_INSTRUMENTS_DIR"}
    return subprocess.run([sys.executable, "-c", _WHERE], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True).stdout.splitlines()


def test_the_cache_folder_setting_is_read_only_where_it_is_set(tmp_path):
    # unset anywhere: the default folder, and with nothing cached no settings class at all (a backtest's case)
    lines = _where(tmp_path)
    assert lines[0].startswith("no instrument list is cached in data/instruments;") and lines[1] == "False"
    # set in .env, in any case: read through the settings class
    lines = _where(tmp_path, f"algo_instruments_dir={tmp_path / 'lists'}\n")
    assert lines[0].startswith(f"no instrument list is cached in {tmp_path / 'lists'};") and lines[1] == "True"


def test_a_sandboxs_list_is_fetched_afresh_each_time_another_servers_once_a_day(tmp_path):
    """Two `algo sandbox` runs on one port, of data/ and then data/options, serve different lists:
    the second must be read, not the first one's copy fetched earlier the same day."""
    import asyncio

    from algocli.sandbox.app import serve
    from algocli.sandbox.instruments import DHAN_COMPACT_PATH
    from sandbox.sandbox_support import DATA

    with socket.socket() as probe:  # one free port for both, as `algo sandbox` takes 8765 each time
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}{DHAN_COMPACT_PATH}"

    async def list_served_from(folder):
        ready = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(serve(folder, port=port, speed=0, on_ready=ready.set_result, warn=lambda _m: None))
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        try:
            return await asyncio.to_thread(open_master, directory=tmp_path, urls={"dhan": url})
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    equity = asyncio.run(list_served_from(DATA))
    assert equity.resolve("NSE:RELIANCE").dhan_id == "NSE_EQ:2885"
    options = asyncio.run(list_served_from(DATA / "options"))
    assert options.resolve("NSE:NIFTY 27 JUN 2024 23000 CE") is not None
    from algocli.errors import ConfigError

    with pytest.raises(ConfigError, match="'NSE:RELIANCE' is not in the instrument list"):
        options.resolve("NSE:RELIANCE")
