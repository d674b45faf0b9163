"""``name_run``: a backtest's data folder list names its files without the cache or the network."""

import re
from datetime import date

import pytest

from algocli.config.run import RunConfig
from algocli.errors import ConfigError
from algocli.instruments.naming import name_run
from cli.cli_support import REPO_ROOT
from instruments.files import serving

BUNDLED_LIST = REPO_ROOT / "data" / "instruments.csv"


def _config(*instruments: str) -> RunConfig:
    return RunConfig.model_validate({
        "strategies": [{"class": "sma_crossover", "instruments": list(instruments)}],
        "name": "naming", "initial_capital": 100000, "data": {"feed": "csv", "path": "data"}, "interval": "1d"})


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No instrument cache, and every broker's list URL on a server that counts requests (and fails them)."""
    monkeypatch.setenv("ALGO_INSTRUMENTS_DIR", str(tmp_path / "cache"))
    with serving({}) as srv:
        srv.fail_status = 503
        monkeypatch.setenv("DHAN_SCRIP_MASTER_URL", srv.url("/dhan.csv"))
        monkeypatch.setenv("UPSTOX_INSTRUMENTS_URL", srv.url("/upstox.json.gz"))
        yield srv


@pytest.mark.parametrize("instruments", [("NSE_EQ:1333",), ("NSE:HDFCBANK", "NSE_EQ|INE009A01021")])
def test_a_list_naming_every_instrument_is_all_that_is_read(offline, instruments):
    warnings: list[str] = []
    names = name_run(_config(*instruments), "run.yaml", extra=[BUNDLED_LIST], warn=warnings.append)
    assert warnings == [] and offline.hits == []
    assert set(names.instruments) <= {"NSE:HDFCBANK", "NSE:INFY"} and len(names.instruments) == len(instruments)
    assert names.config.strategies[0].instruments[0] == "NSE:HDFCBANK"


def test_only_an_id_no_list_names_gets_a_line(offline):
    warnings: list[str] = []
    names = name_run(_config("NSE_EQ:1333", "NSE_EQ:99999"), "run.yaml", extra=[BUNDLED_LIST],
                     warn=warnings.append)
    assert names.config.strategies[0].instruments == ["NSE:HDFCBANK", "NSE_EQ:99999"]
    assert len(warnings) == 1 and "'NSE_EQ:99999' keeps its broker id" in warnings[0]
    assert "NSE_EQ:1333" not in warnings[0] and str(BUNDLED_LIST) in warnings[0]
    assert offline.hits == []  # broker ids only: the cache is read, nothing is downloaded


def test_a_name_no_list_knows_is_an_error_naming_it(offline):
    # the data folder's list is named first: adding the name there is the likelier fix than the network
    with pytest.raises(ConfigError, match=rf"'NSE:TCS' is not in {re.escape(str(BUNDLED_LIST))}, and no instrument "
                                          "list could be downloaded"):
        name_run(_config("NSE:HDFCBANK", "NSE:TCS"), "run.yaml", extra=[BUNDLED_LIST])


def test_a_name_in_a_data_folder_not_yet_downloaded_says_how_to_fill_it(offline, tmp_path):
    folder = tmp_path / "data" / "5m"  # configs/downloaded.yaml's, before `algo download-data` ran
    with pytest.raises(ConfigError) as err:
        name_run(_config("NSE:RELIANCE"), "run.yaml", extra=[folder / "instruments.csv"])
    assert str(err.value) == (f"run.yaml: instrument 'NSE:RELIANCE' is a name, and there is no folder {folder}; "
                              "check data.path, or fill the folder with `algo download-data`")


def test_a_misspelt_name_offline_gets_the_data_folders_near_miss(offline):
    hint = r"'NSE:HDFCBNK' is not in .*instruments.csv \(did you mean 'NSE:HDFCBANK', in .*instruments.csv\?\), and"
    with pytest.raises(ConfigError, match=hint):
        name_run(_config("NSE:HDFCBNK"), "run.yaml", extra=[BUNDLED_LIST])
    with pytest.raises(ConfigError, match=r"'NSE:TCS' is not in \S*instruments.csv, and"):  # nothing near: no hint
        name_run(_config("NSE:TCS"), "run.yaml", extra=[BUNDLED_LIST])


def test_a_yearless_contract_of_only_expired_ones_is_named_in_one_line(offline):
    warnings: list[str] = []
    config = _config("NSE:NIFTY 26 DEC 24000 CE")
    names = name_run(config, "run.yaml", extra=[BUNDLED_LIST], warn=warnings.append, today=date(2026, 1, 5))
    assert names.config.strategies[0].instruments == ["NSE:NIFTY 26 DEC 2024 24000 CE"]
    assert len(warnings) == 1 and "expired" in warnings[0] and "NSE:NIFTY 26 DEC 2024 24000 CE" in warnings[0]
    quiet: list[str] = []
    name_run(config, "run.yaml", extra=[BUNDLED_LIST], warn=quiet.append, today=date(2024, 12, 26))
    assert quiet == []  # on its expiry day the contract has not expired yet
