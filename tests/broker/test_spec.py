"""``algocli.broker.spec``: broker descriptions registered through entry points.

The third-broker tests install a small broker the way a pip package would: a module and a
``*.dist-info/entry_points.txt`` in a folder put on ``sys.path`` (in-process) or
``PYTHONPATH`` (the ``algo`` command). Nothing in ``algocli`` is changed for it; it must
show up in the rate limiter, the instrument cache and master, ``algo instruments`` and
``algo download-data``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import textwrap
from datetime import date

import pytest

from algocli.broker.ratelimit import limiter
from algocli.broker.spec import GROUP, BrokerSpec, broker_spec, broker_specs
from algocli.data.download import download, sources
from algocli.errors import ConfigError, PluginError
from algocli.instruments.cache import refresh_master
from cli.cli_support import ALGO_EXE, REPO_ROOT
from instruments.files import dhan_csv, serving, upstox_gz

DHAN_PATH = "/api-data/api-scrip-master.csv"
UPSTOX_PATH = "/market-quote/instruments/exchange/complete.json.gz"
TINY_PATH = "/tiny/instruments.txt"
HDFC_ISIN = "INE040A01034"

# The whole third broker: its package's spec module, with an instrument reader and a
# download source. It names instruments by ISIN, a field the instrument model already has.
TINY_MODULE = '''
    """Tiny: a made-up broker, registered from the test suite."""

    from datetime import timedelta

    import numpy as np
    from pydantic_settings import BaseSettings, SettingsConfigDict

    from algocli.broker.spec import BrokerSpec
    from algocli.data.download import HistorySource
    from algocli.domain.bars import Bars
    from algocli.domain.hrn import plain_hrn
    from algocli.domain.session import ist_midnight_ns
    from algocli.instruments.model import Instrument


    class TinySettings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="TINY_", extra="ignore")
        master_url: str = "http://127.0.0.1:9/none"


    def read_master(path):
        rows = []
        for line in open(path, encoding="utf-8").read().splitlines():
            exchange, symbol, isin = line.split(",")
            rows.append(Instrument(plain_hrn(exchange, symbol), exchange, "EQ", symbol, isin=isin))
        return rows, 0


    LIMITERS = []


    def download_source(session, settings, limiter, today, options):
        LIMITERS.append(limiter)

        class Client:
            duplicates = 0

        class Tiny(HistorySource):
            name = "tiny"

            def pieces(self, interval, start, end):
                return [(start, end)]

            async def fetch(self, inst, interval, start, end):
                await limiter.acquire()
                days = []
                day = start
                while day <= end:
                    if day.weekday() < 5:
                        days.append(ist_midnight_ns(day))
                    day += timedelta(days=1)
                ts = np.array(days, dtype=np.int64)
                price = np.full(len(ts), 100.0)
                return Bars(inst.hrn, ts, price, price + 1, price - 1, price, np.full(len(ts), 10.0))

        return Tiny(Client(), today)


    SPEC = BrokerSpec(
        name="tiny", title="Tiny", limits={"order": ((3, 1.0),), "other": ((7, 1.0),)},
        download_limits=((2, 1.0),), native_intervals=frozenset({"1d"}), id_field="isin",
        id_example="INE040A01034", id_pattern=r"IN[A-Z0-9]{10}", settings="tinybroker.spec:TinySettings",
        master_url_field="master_url", master_suffix="txt", read_master="tinybroker.spec:read_master",
        download_source="tinybroker.spec:download_source", broker="tinybroker.spec:TinySettings",
    )
'''


# A broker with an id format of its own (``TNY-<n>``), which no ``Instrument`` field holds:
# its reader puts the ids in ``broker_ids`` and its spec says so.
TINIER_MODULE = '''
    """Tinier: a made-up broker whose ids live in Instrument.broker_ids."""

    from pydantic_settings import BaseSettings, SettingsConfigDict

    from algocli.broker.spec import BrokerSpec
    from algocli.domain.hrn import plain_hrn
    from algocli.instruments.model import Instrument


    class TinierSettings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="TINIER_", extra="ignore")
        master_url: str = "http://127.0.0.1:9/tinier/list.txt"


    def read_master(path):
        rows = []
        for line in open(path, encoding="utf-8").read().splitlines():
            exchange, symbol, ident = line.split(",")
            rows.append(Instrument(plain_hrn(exchange, symbol), exchange, "EQ", symbol,
                                   broker_ids=(("tinier", ident),)))
        return rows, 0


    SPEC = BrokerSpec(
        name="tinier", title="Tinier", limits={"other": ((5, 1.0),)}, download_limits=((1, 1.0),),
        native_intervals=frozenset({"1d"}), id_field="broker_ids", id_example="TNY-7", id_pattern=r"TNY-\\d+",
        settings="tinierbroker.spec:TinierSettings", master_url_field="master_url", master_suffix="txt",
        read_master="tinierbroker.spec:read_master", download_source="", broker="",
    )
'''
TINIER_PATH = "/tinier/list.txt"


def _install(folder, entry: str = "tiny = tinybroker.spec:SPEC", package: str = "tinybroker",
             module: str = TINY_MODULE) -> None:
    """Write the package and its distribution metadata, as ``pip install`` would."""
    (folder / package).mkdir()
    (folder / package / "__init__.py").write_text("")
    (folder / package / "spec.py").write_text(textwrap.dedent(module))
    meta = folder / f"{package}-0.1.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (meta / "entry_points.txt").write_text(f"[{GROUP}]\n{entry}\n")


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """The tiny broker installed on ``sys.path``; the registry cache cleared around the test."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    _install(plugin)
    monkeypatch.syspath_prepend(str(plugin))
    broker_specs.cache_clear()
    yield plugin
    broker_specs.cache_clear()
    import sys

    for name in [m for m in sys.modules if m == "tinybroker" or m.startswith("tinybroker.")]:
        del sys.modules[name]


def test_the_shipped_brokers_are_registered_with_their_own_limits():
    specs = broker_specs()
    assert {"dhan", "upstox"} <= set(specs)
    assert specs["dhan"].windows("order") == ((10, 1.0), (240, 60.0), (950, 3600.0))
    assert specs["dhan"].windows("history") == specs["dhan"].limits["other"]  # unlisted class: "other"
    assert specs["upstox"].windows("data") == specs["upstox"].limits["other"]
    assert specs["dhan"].is_id("NSE_EQ:1333") and not specs["dhan"].is_id("NSE_EQ|INE040A01034")
    assert specs["upstox"].is_id("NSE_INDEX|Nifty 50") and not specs["upstox"].is_id("NSE:HDFCBANK")


def test_an_unknown_broker_is_an_error_not_another_brokers_limits():
    with pytest.raises(ConfigError, match=r"broker 'zerodha' is not a registered broker .*dhan, upstox"):
        limiter("zerodha", "acct", "order")
    with pytest.raises(ConfigError, match="did you mean `upstox`"):
        broker_spec("upstoks")


def test_a_spec_without_an_other_class_is_refused():
    with pytest.raises(PluginError, match="no 'other' class"):
        BrokerSpec("x", "X", {"order": ((1, 1.0),)}, ((1, 1.0),), frozenset(), "isin", "", ".*", "", "", "", "",
                   "", "")


def test_a_spec_registered_under_another_name_is_refused(tmp_path, monkeypatch):
    _install(tmp_path, entry="other = tinybroker.spec:SPEC")
    monkeypatch.syspath_prepend(str(tmp_path))
    broker_specs.cache_clear()
    try:
        with pytest.raises(PluginError, match="named 'tiny' but registered as 'other'"):
            broker_specs()
    finally:
        broker_specs.cache_clear()


def test_a_third_broker_shows_up_in_the_rate_limiter(tiny):
    assert list(broker_specs()) == ["dhan", "tiny", "upstox"]
    assert limiter("tiny", "acct-1", "order").windows == ((3, 1.0),)
    assert limiter("tiny", "acct-1", "data").windows == ((7, 1.0),)
    assert limiter("tiny", "acct-1", "order") is limiter("tiny", "acct-1", "order")  # one budget per account


def test_a_third_broker_is_a_download_data_source(tiny, tmp_path):
    from algocli.instruments.model import Instrument

    assert "tiny" in sources()
    hdfc = Instrument("NSE:HDFCBANK", "NSE", "EQ", "HDFCBANK", isin=HDFC_ISIN)
    result = asyncio.run(download(["NSE:HDFCBANK"], resolve=lambda name: hdfc, source="tiny", interval="1d",
                                  start=date(2024, 6, 10), end=date(2024, 6, 14), out_dir=tmp_path / "out",
                                  settings=object(), today=date(2024, 6, 20)))
    (res,) = result.files
    assert res.ok and res.bars == 5 and (tmp_path / "out" / "NSE_HDFCBANK.csv").is_file()
    from tinybroker.spec import LIMITERS

    assert LIMITERS[-1].windows == ((2, 1.0),)  # the run was paced by the spec's download limits
    unlisted = Instrument("NSE:RELIANCE", "NSE", "EQ", "RELIANCE", dhan_id="NSE_EQ:2885")
    with pytest.raises(ConfigError, match="not listed by Tiny; download it with --source dhan"):
        asyncio.run(download(["NSE:RELIANCE"], resolve=lambda name: unlisted, source="tiny", interval="1d",
                             start=date(2024, 6, 10), end=date(2024, 6, 14), out_dir=tmp_path / "out",
                             settings=object(), today=date(2024, 6, 20)))


def test_a_third_broker_joins_the_instrument_cache_and_master(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env from the repository
    files = {DHAN_PATH: dhan_csv(), UPSTOX_PATH: upstox_gz(), TINY_PATH: f"NSE,HDFCBANK,{HDFC_ISIN}\n".encode()}
    with serving(files) as srv:
        for key, path in (("DHAN_SCRIP_MASTER_URL", DHAN_PATH), ("UPSTOX_INSTRUMENTS_URL", UPSTOX_PATH),
                          ("TINY_MASTER_URL", TINY_PATH)):
            monkeypatch.setenv(key, srv.url(path))
        master, outcome = refresh_master(directory=tmp_path / "cache")  # the URLs from each spec's settings
        assert sorted(outcome) == ["dhan", "tiny", "upstox"] and "downloaded 1 instruments" in outcome["tiny"]
        assert TINY_PATH in srv.hits
    assert sorted(p.suffix for p in (tmp_path / "cache").glob("tiny-*")) == [".txt"]
    assert master.broker_id("NSE:HDFCBANK", "tiny") == HDFC_ISIN
    assert master.resolve(HDFC_ISIN).hrn == "NSE:HDFCBANK"


def test_the_algo_command_lists_a_third_broker(tiny, tmp_path):
    files = {DHAN_PATH: dhan_csv(), UPSTOX_PATH: upstox_gz(), TINY_PATH: f"NSE,HDFCBANK,{HDFC_ISIN}\n".encode()}
    with serving(files) as srv:
        env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONPATH": str(tiny),
               "ALGO_INSTRUMENTS_DIR": str(tmp_path / "cache"), "DHAN_SCRIP_MASTER_URL": srv.url(DHAN_PATH),
               "UPSTOX_INSTRUMENTS_URL": srv.url(UPSTOX_PATH), "TINY_MASTER_URL": srv.url(TINY_PATH)}

        def algo(*args):
            return subprocess.run([str(ALGO_EXE), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=120)

        refresh = algo("instruments", "refresh")
        assert refresh.returncode == 0, refresh.stderr
        assert "tiny: downloaded 1 instruments" in refresh.stdout
        show = algo("instruments", "show", "NSE:HDFCBANK", "--offline")
        assert show.returncode == 0, show.stderr
        assert "Tiny" in show.stdout and HDFC_ISIN in show.stdout and "NSE_EQ:1333" in show.stdout
        bad = algo("download-data", "NSE:HDFCBANK", "--from", "2024-01-01", "--source", "tinyy")
        assert bad.returncode == 2
        assert "--source 'tinyy' is not one of dhan, tiny, upstox" in bad.stderr.replace("\n", " ")
    assert REPO_ROOT.is_dir()


@pytest.fixture
def tinier(tmp_path, monkeypatch):
    """The tinier broker installed on ``sys.path``; the registry cache cleared around the test."""
    plugin = tmp_path / "tinier-plugin"
    plugin.mkdir()
    _install(plugin, "tinier = tinierbroker.spec:SPEC", "tinierbroker", TINIER_MODULE)
    monkeypatch.syspath_prepend(str(plugin))
    broker_specs.cache_clear()
    yield plugin
    broker_specs.cache_clear()
    import sys

    for name in [m for m in sys.modules if m == "tinierbroker" or m.startswith("tinierbroker.")]:
        del sys.modules[name]


def test_a_broker_with_its_own_id_format_carries_its_ids_through_names_and_files(tinier, tmp_path, monkeypatch):
    from algocli.config.run import RunConfig
    from algocli.instruments.naming import is_broker_id, name_run
    from algocli.instruments.table import read_instruments, write_instruments

    monkeypatch.chdir(tmp_path)
    files = {DHAN_PATH: dhan_csv(), UPSTOX_PATH: upstox_gz(), TINIER_PATH: b"NSE,HDFCBANK,TNY-7\n"}
    with serving(files) as srv:
        urls = {"dhan": srv.url(DHAN_PATH), "upstox": srv.url(UPSTOX_PATH), "tinier": srv.url(TINIER_PATH)}
        master, outcome = refresh_master(directory=tmp_path / "cache", urls=urls)
    assert "downloaded 1 instruments" in outcome["tinier"]
    hdfc = master.resolve("TNY-7")  # found by the new broker's id
    assert hdfc.hrn == "NSE:HDFCBANK" and hdfc.dhan_id == "NSE_EQ:1333"  # merged with the shipped brokers' row
    assert master.broker_id("NSE:HDFCBANK", "tinier") == "TNY-7"
    assert is_broker_id("TNY-7") and not is_broker_id("NSE:HDFCBANK")

    write_instruments(tmp_path / "instruments.csv", [hdfc])  # the project's own file keeps the id
    (again,) = read_instruments(tmp_path / "instruments.csv")
    assert again == hdfc and "tinier=TNY-7" in (tmp_path / "instruments.csv").read_text()

    config = RunConfig.model_validate({
        "strategies": [{"class": "sma_crossover", "instruments": ["TNY-7"]}],
        "name": "tinier", "initial_capital": 100000, "data": {"feed": "csv", "path": "data"}, "interval": "1d"})
    names = name_run(config, "run.yaml", master=master)
    assert names.config.strategies[0].instruments == ["NSE:HDFCBANK"]
    ids = names.ids()
    assert ids["tinier"] == {"NSE:HDFCBANK": "TNY-7"} and ids["dhan"] == {"NSE:HDFCBANK": "NSE_EQ:1333"}
