"""Run-definition mistakes: exit status 2 and one ``error:`` line naming the file, the key and the fix.

Also the two ways to bring your own strategy: a ``package.module:ClassName`` path and an
entry point in the ``algocli.strategies`` group.
"""

from __future__ import annotations

import dataclasses

import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from algocli.domain.models import Interval
from cli.cli_support import parse_tables, write_dist_info

INSTRUMENT = "NSE_EQ:1333"

BUY_ONCE_SOURCE = '''\
"""A strategy living outside algocli: buys once on the first candle and holds."""

from pydantic import Field

from algocli import BaseStrategy, Signal, SignalAction, StrategyParams


class BuyOnce(BaseStrategy):
    class Params(StrategyParams):
        units: int = Field(1, ge=1)
        patience_bars: int = Field(0, ge=0)

    def on_init(self):
        self.bought = False

    def on_candle(self, candle):
        if self.bought or candle.index < self.params.patience_bars:
            return None
        self.bought = True
        return Signal(candle.instrument, SignalAction.BUY, self.params.units)
'''


def assert_one_line_error(result, *fragments: str, source: Path | str | None = None) -> str:
    """Exit 2, exactly one ``error:`` line on stderr containing ``source`` and every fragment, no traceback."""
    assert result.code == 2, (result.code, result.err)
    assert "Traceback" not in result.err
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith("error: "), line
    if source is not None:
        assert str(source) in line, line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert result.out.strip() == "", "nothing goes to stdout on a config error"
    return line


@pytest.fixture
def check(cli, base_config, write_yaml, tmp_path):
    """Apply ``mutate`` to a valid config, run ``algo backtest`` on it, assert a one-line exit-2 error."""

    def _check(mutate, *fragments: str, source: Path | str | None = None) -> str:
        mutate(base_config)
        path = write_yaml(base_config)
        result = cli("backtest", path, "--quiet", "--output", tmp_path / "out")
        line = assert_one_line_error(result, *fragments, source=path if source is None else source)
        assert not (tmp_path / "out").exists(), "no artifacts after a failed run"
        return line

    return _check


def _strategy(cfg: dict) -> dict:
    return cfg["strategies"][0]


def _params(cfg: dict) -> dict:
    return cfg["strategies"][0]["params"]


def _rename(mapping: dict, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


# --- the schema --------------------------------------------------------------------------

def test_the_base_config_is_valid(cli, base_config, write_yaml, tmp_path):
    result = cli("backtest", write_yaml(base_config), "--quiet", "--no-report", "--output", tmp_path / "ok")
    assert result.code == 0, result.err
    assert (tmp_path / "ok" / "results.csv").is_file()


def test_unknown_top_level_key_suggests_the_right_one(check):
    check(lambda c: _rename(c, "interval", "intervall"), "intervall", "unknown key", "did you mean `interval`")


def test_unknown_nested_key_suggests_the_right_one(check):
    check(lambda c: _rename(c["data"], "path", "pth"), "data.pth", "unknown key", "did you mean `path`")


def test_unknown_key_without_close_match_lists_valid_keys(check):
    line = check(lambda c: c["output"].update(zzz=1), "output.zzz", "unknown key")
    assert "dir" in line


def test_wrong_type(check):
    check(lambda c: c.update(initial_capital="lots"), "initial_capital", "'lots'", "number")


def test_non_positive_capital(check):
    check(lambda c: c.update(initial_capital=0), "initial_capital", "greater than 0")


def test_missing_required_key(check):
    check(lambda c: c.pop("name"), "name", "required key is missing")


def test_a_misspelt_required_key_is_named_with_the_key_meant(check):
    # the misspelling is both an unknown key and a missing one; the unknown key's line names the fix
    check(lambda c: _rename(c, "initial_capital", "initial_capitol"), "initial_capitol: unknown key",
          "did you mean `initial_capital`")


@pytest.mark.parametrize("key, value, fragment", [
    ("initial_capital", float("inf"), "finite number"),
    ("initial_capital", True, "true is not a number"),
    ("quantity", True, "true is not a number"),
    ("quantity", False, "false is not a number"),
], ids=["inf-capital", "true-capital", "true-param", "false-param"])
def test_true_false_and_infinity_are_no_numbers(check, key, value, fragment):
    # YAML's true would run as 1 unit, and .inf would pass "greater than 0"
    def mutate(c):
        (c if key == "initial_capital" else _params(c))[key] = value
    check(mutate, key, fragment)


def test_an_impossible_date_names_its_line(cli, base_config, write_yaml):
    base_config["data"]["end"] = "END"
    path = write_yaml(yaml.safe_dump(base_config, sort_keys=False).replace("END", "2024-04-31"))
    line_no = next(k for k, text in enumerate(path.read_text().splitlines(), 1) if "2024-04-31" in text)
    assert_one_line_error(cli("backtest", path), f"line {line_no}: '2024-04-31' is not a date", source=path)


def test_a_key_given_twice_names_both_lines_and_a_merge_may_still_override(cli, base_config, write_yaml):
    base_config["data"]["start"] = "START"
    text = yaml.safe_dump(base_config, sort_keys=False)
    path = write_yaml(text.replace("  start: START", "  start: 2024-01-01\n  start: 2019-01-01"))
    first = next(k for k, line in enumerate(path.read_text().splitlines(), 1) if "2024-01-01" in line)
    assert_one_line_error(cli("backtest", path), f"line {first + 1}: 'start' is given twice in one mapping (first "
                                                 f"on line {first}); keep the one you mean", source=path)
    # a merge key brings in keys that the mapping may override: that is no key given twice
    merged = text.replace("  start: START\n", "").replace("  params:\n", "  params:\n    <<: {quantity: 5}\n", 1)
    assert "quantity: 5" in merged and cli("backtest", write_yaml(merged), "-q", "--no-report").code == 0


def test_bad_interval_lists_allowed_values(check):
    line = check(lambda c: c.update(interval="2m"), "interval", "'2m'", "is not allowed")
    for interval in Interval:
        assert f"'{interval.value}'" in line


def test_instrument_without_segment(check):
    check(lambda c: _strategy(c).update(instruments=["1333"]), "strategies[0].instruments", "NSE:HDFCBANK", "NSE_EQ:1333")


def test_empty_strategy_list(check):
    check(lambda c: c.update(strategies=[]), "strategies")


# --- plugins by name ---------------------------------------------------------------------

def test_unknown_strategy_class_suggests_the_registered_one(check):
    check(lambda c: _strategy(c).update({"class": "sma_crosover"}),
          "strategies[0].class", "'sma_crosover'", "did you mean `sma_crossover`",
          "registered in algocli.strategies")


def test_unknown_fill_model_suggests_the_registered_one(check):
    check(lambda c: c["fill_model"].update(name="next_opn"), "fill_model.name", "did you mean `next_open`")


def test_unknown_broker_lists_the_registered_ones(check):
    check(lambda c: c["broker"].update(name="zerodha"), "broker.name", "unknown broker 'zerodha'", "simulated",
          "package.module:ClassName")


def test_unknown_feed(check):
    check(lambda c: c["data"].update(feed="parquet"), "data.feed", "'parquet'", "csv")


def test_unknown_broker_key_suggests_the_right_one(check):
    check(lambda c: _rename(c["broker"], "commission_rate", "comission_rate"), "broker.comission_rate",
          "did you mean `commission_rate`")


def test_fill_model_parameter_out_of_range(check):
    check(lambda c: c.update(fill_model={"name": "slippage", "slippage_pct": 0.9}), "fill_model.slippage_pct")


# --- strategy parameters -----------------------------------------------------------------

def test_unknown_strategy_param_suggests_the_right_one(check):
    check(lambda c: _rename(_params(c), "slow_period", "slow_perod"), "strategies[0].params.slow_perod",
          "unknown key", "did you mean `slow_period`")


def test_ill_typed_strategy_param(check):
    check(lambda c: _params(c).update(fast_period="ten"), "strategies[0].params.fast_period", "'ten'", "integer")


def test_fast_period_must_be_below_slow_period(check):
    def mutate(c):
        _params(c).update(fast_period=30, slow_period=20)

    check(mutate, "strategies[0].params", "fast_period must be smaller than slow_period")


def test_error_in_second_strategy_names_its_index(check):
    def mutate(c):
        second = {"class": "rsi_mean_reversion", "instruments": [INSTRUMENT], "params": {"perod": 14}}
        c["strategies"].append(second)

    check(mutate, "strategies[1].params.perod", "did you mean `period`")


# --- plugins by import path --------------------------------------------------------------

def test_import_path_with_missing_module(check):
    check(lambda c: _strategy(c).update({"class": "no_such_pkg_for_algocli_tests.module:Missing"}),
          "strategies[0].class", "cannot import module 'no_such_pkg_for_algocli_tests.module'", "PYTHONPATH")


def test_import_path_with_missing_class(check):
    check(lambda c: _strategy(c).update({"class": "strategies.sma_crossover:Missing"}),
          "strategies[0].class", "'strategies.sma_crossover'", "has no 'Missing'")


def test_import_path_with_misspelt_class_suggests_it(check):
    check(lambda c: _strategy(c).update({"class": "strategies.sma_crossover:SmaCrosover"}),
          "strategies[0].class", "did you mean `SmaCrossover`")


def test_import_path_to_something_that_is_not_a_strategy(check):
    check(lambda c: _strategy(c).update({"class": "algocli.domain.models:Signal"}),
          "strategies[0].class", "not a BaseStrategy subclass")


# --- data ---------------------------------------------------------------------------------

def test_missing_data_file_names_the_expected_path(cli, base_config, write_yaml, tmp_path, data_dir):
    _strategy(base_config).update(instruments=["NSE_EQ:9999"])
    result = cli("backtest", write_yaml(base_config), "--quiet", "--output", tmp_path / "out")
    warning, _, error = result.err.partition("\nerror: ")  # no instrument list names the id: said first, once
    assert warning.startswith("warning:") and "'NSE_EQ:9999' keeps its broker id" in " ".join(warning.split())
    assert_one_line_error(dataclasses.replace(result, err="error: " + error), "NSE_EQ:9999", "data.path",
                          source=data_dir / "NSE_EQ_9999.csv")


def test_missing_data_folder(check, tmp_path):
    folder = tmp_path / "no_such_folder"
    check(lambda c: (c["data"].update(path=str(folder)), _strategy(c).update(instruments=["NSE_EQ:1333"])),
          "no data file", source=folder / "NSE_EQ_1333.csv")


def test_missing_data_folder_with_a_named_instrument(check, tmp_path):
    folder = tmp_path / "no_such_folder"
    check(lambda c: c["data"].update(path=str(folder)), "'NSE:HDFCBANK' is a name", "check data.path",
          source=folder)


def _corrupt_line(path: Path, line_no: int, replace) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[line_no - 1] = replace(lines[line_no - 1])
    path.write_text("".join(lines), encoding="utf-8")


def test_non_numeric_cell_names_file_and_row(check, data_dir):
    csv = data_dir / "NSE_EQ_1333.csv"
    line_no = 11  # as an editor numbers it: the header is line 1

    def non_numeric_close(line: str) -> str:
        fields = line.rstrip("\n").split(",")
        fields[4] = "abc"
        return ",".join(fields) + "\n"

    _corrupt_line(csv, line_no, non_numeric_close)
    check(lambda c: None, f"row {line_no}", "close", "abc", source=csv)


def test_a_message_with_brackets_is_printed_whole(cli, base_config, write_yaml, tmp_path, data_dir):
    # Rich reads "[...]" as markup: the bar's range and a folder named data[old] must survive it
    folder = data_dir.rename(tmp_path / "data[old]")
    base_config["data"]["path"] = str(folder)
    csv = folder / "NSE_EQ_1333.csv"
    lines = csv.read_text(encoding="utf-8").splitlines(keepends=True)
    fields = lines[10].rstrip("\n").split(",")
    fields[1] = "99999"  # open far above the high
    lines[10] = ",".join(fields) + "\n"
    csv.write_text("".join(lines), encoding="utf-8")
    line = assert_one_line_error(cli("backtest", write_yaml(base_config), "--quiet"), "row 11: open 99999",
                                 "is outside the bar's range [low ", source=csv)
    assert "data[old]/NSE_EQ_1333.csv" in line


def test_row_with_extra_field_names_file_and_row(check, data_dir):
    csv = data_dir / "NSE_EQ_1333.csv"
    line_no = 37
    _corrupt_line(csv, line_no, lambda line: line.rstrip("\n") + ",42\n")
    check(lambda c: None, f"row {line_no}", source=csv)


def test_high_below_low_names_file_and_row(check, data_dir):
    csv = data_dir / "NSE_EQ_1333.csv"
    line_no = 100

    def swap_high_low(line: str) -> str:
        t, o, h, lo, c, v = line.rstrip("\n").split(",")
        return ",".join([t, o, lo, h, c, v]) + "\n"

    _corrupt_line(csv, line_no, swap_high_low)
    check(lambda c: None, f"row {line_no}", "below low", source=csv)


# --- the YAML file itself -----------------------------------------------------------------

def test_invalid_yaml_names_the_line(cli, write_yaml):
    text = ("name: x\n"
            "initial_capital: 1000\n"
            "strategies:\n"
            "  - class: sma_crossover\n"
            "   instruments: [NSE_EQ:1333]\n")  # line 5: indented one space too far
    path = write_yaml(text)
    assert_one_line_error(cli("backtest", path), "line 5", "not valid YAML", source=path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""], ids=["list", "scalar", "empty"])
def test_yaml_that_is_not_a_mapping(cli, write_yaml, text):
    path = write_yaml(text)
    assert_one_line_error(cli("backtest", path), "expected a mapping", source=path)


def test_config_path_that_is_a_directory(cli, tmp_path):
    assert_one_line_error(cli("backtest", tmp_path), "is a folder with no run definition in it", source=tmp_path)
    (tmp_path / "sma.yaml").write_text("name: x\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("", encoding="utf-8")
    assert_one_line_error(cli("backtest", tmp_path), f"is a folder; pass one of its run definitions "
                          f"({tmp_path / 'sma.yaml'})", source=tmp_path)


def test_a_misspelt_config_path_names_its_near_miss(cli, tmp_path):
    (tmp_path / "live-dhan.yaml").write_text("name: x\n", encoding="utf-8")
    assert_one_line_error(cli("backtest", tmp_path / "live-dahn.yaml"),
                          f"no such run definition; did you mean {tmp_path / 'live-dhan.yaml'}?")
    assert_one_line_error(cli("backtest", tmp_path / "nonexist.yaml"), "no such run definition; pass the path of "
                          "a YAML file")


def test_config_that_is_not_utf8_names_the_byte(cli, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: x\ninitial_capital: 1000  # caf\xe9\n".encode("latin-1"))  # é is byte 36
    assert_one_line_error(cli("backtest", path), "is not UTF-8 text: byte 36 (line 2) is 0xe9", "save it as UTF-8",
                          source=path)


def test_csv_that_is_not_utf8_names_the_byte(check, data_dir):
    csv = data_dir / "NSE_EQ_1333.csv"
    data = csv.read_bytes()
    at = data.index(b"\n", 2000) + 1  # the first byte of a row in the middle
    csv.write_bytes(data[:at] + b"\xff" + data[at:])
    line = data.count(b"\n", 0, at) + 1
    check(lambda c: None, f"byte {at} (line {line}) is 0xff", "save it as UTF-8", source=csv)


# --- paths in the YAML file ---------------------------------------------------------------

def test_relative_paths_are_relative_to_the_config_file(cli, base_config, tmp_path, data_dir, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "elsewhere").mkdir()
    base_config["data"]["path"] = "../data"
    base_config["output"]["dir"] = "../out"
    config = tmp_path / "configs" / "run.yaml"
    config.write_text(yaml.safe_dump(base_config, sort_keys=False), encoding="utf-8")
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = cli("backtest", config, "--quiet", "--no-report")
    assert result.code == 0, result.err
    assert (tmp_path / "out" / "trades.csv").is_file()
    resolved = yaml.safe_load((tmp_path / "out" / "config.resolved.yaml").read_text(encoding="utf-8"))
    assert (resolved["data"]["path"], resolved["output"]["dir"]) == (str(data_dir), str(tmp_path / "out"))
    result = cli("backtest", config, "--quiet", "--no-report", "--output", "here")  # --output: the current folder
    assert result.code == 0, result.err
    assert (tmp_path / "elsewhere" / "here" / "trades.csv").is_file()


def test_a_bundled_config_runs_from_any_folder(cli, repo_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("backtest", repo_root / "configs" / "sma.yaml", "--quiet", "--no-report", "--output", "out")
    assert result.code == 0, result.err
    assert (tmp_path / "out" / "trades.csv").is_file()


# --- bring your own strategy ----------------------------------------------------------------

@pytest.fixture
def forget_modules():
    """Names appended here are dropped from sys.modules after the test."""
    names: list[str] = []
    yield names
    for name in names:
        sys.modules.pop(name, None)


def _single_trade(out_dir: Path) -> pd.Series:
    trades = pd.read_csv(out_dir / "trades.csv")
    assert len(trades) == 1
    return trades.iloc[0]


def test_strategy_from_an_import_path(cli, base_config, write_yaml, tmp_path, monkeypatch, forget_modules, data_dir):
    module = "algocli_test_local_strategy"
    forget_modules.append(module)
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / f"{module}.py").write_text(BUY_ONCE_SOURCE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(code_dir))
    base_config["strategies"] = [{"class": f"{module}:BuyOnce", "instruments": [INSTRUMENT],
                                  "params": {"units": 7}, "id": "buyer"}]
    base_config["fill_model"] = {"name": "next_open"}
    out = tmp_path / "out"
    result = cli("backtest", write_yaml(base_config), "--quiet", "--no-report", "--output", out)
    assert result.code == 0, result.err
    trade = _single_trade(out)
    bars = pd.read_csv(data_dir / "NSE_EQ_1333.csv")
    assert trade["strategy"] == "buyer"
    assert trade["size"] == 7
    # bought on the first candle, filled at the next bar's open, held to the last close
    assert trade["entry_price"] == pytest.approx(bars["open"].iloc[1])
    assert trade["exit_price"] == pytest.approx(bars["close"].iloc[-1])


def test_import_path_strategy_with_bad_param(check, tmp_path, monkeypatch, forget_modules):
    module = "algocli_test_local_strategy_params"
    forget_modules.append(module)
    (tmp_path / f"{module}.py").write_text(BUY_ONCE_SOURCE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    check(lambda c: c.update(strategies=[{"class": f"{module}:BuyOnce", "instruments": [INSTRUMENT],
                                          "params": {"unit": 3}}]),
          "strategies[0].params.unit", "did you mean `units`")


@pytest.fixture
def entry_point_plugin(tmp_path, monkeypatch, forget_modules):
    """A distribution ``my-plugin`` registering ``BuyOnce`` as strategy ``my_buy_once``."""
    module = "my_plugin_strategy_for_algocli_tests"
    forget_modules.append(module)
    (tmp_path / f"{module}.py").write_text(BUY_ONCE_SOURCE, encoding="utf-8")
    write_dist_info(tmp_path, "my-plugin", {"algocli.strategies": {"my_buy_once": f"{module}:BuyOnce"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{module}:BuyOnce"


def test_entry_point_strategy_is_listed(cli, wide_console, entry_point_plugin):
    assert (Path(sys.path[0]) / "my_plugin-0.0.0.dist-info" / "entry_points.txt").is_file()
    result = cli("strategies")
    assert result.code == 0, result.err
    row = parse_tables(result.out)["Strategies"]["my_buy_once"]
    assert row["class"] == entry_point_plugin
    assert "units: int = 1" in row["params"]
    assert "patience_bars: int = 0" in row["params"]


def test_entry_point_strategy_runs_by_its_registered_name(cli, base_config, write_yaml, tmp_path, entry_point_plugin):
    base_config["strategies"] = [{"class": "my_buy_once", "instruments": [INSTRUMENT], "params": {"units": 3}}]
    out = tmp_path / "out"
    result = cli("backtest", write_yaml(base_config), "--quiet", "--no-report", "--output", out)
    assert result.code == 0, result.err
    trade = _single_trade(out)
    assert trade["size"] == 3
    assert trade["strategy"] == "my_buy_once-0"


def test_entry_point_strategy_name_gets_suggested(check, entry_point_plugin):
    check(lambda c: _strategy(c).update({"class": "my_buy_onse"}), "did you mean `my_buy_once`")


def test_registered_strategy_that_fails_to_import(check, tmp_path, monkeypatch):
    site = tmp_path / "site"
    write_dist_info(site, "broken-plugin", {"algocli.strategies": {"broken_one": "no_such_module_xyz_algocli:Thing"}})
    monkeypatch.syspath_prepend(str(site))
    check(lambda c: _strategy(c).update({"class": "broken_one"}), "strategies[0].class",
          "'broken_one' is registered but failed to import", "no_such_module_xyz_algocli")


# --- a strategy written the specification's way: keyword arguments, an instruments property ---

SPEC_CLASS = "strategy.spec_sma_crossover:SmaCrossover"  # tests/strategy/spec_sma_crossover.py

LISTED_SOURCE = '''\
from algocli import BaseStrategy


class Listed(BaseStrategy):
    def __init__(self, size: int = 1):
        super().__init__(size=size)

    @property
    def instruments(self):
        return {listed!r}

    def on_candle(self, candle):
        return None
'''


def _spec(cfg: dict) -> dict:
    entry = _strategy(cfg)
    entry["class"] = SPEC_CLASS
    return entry


def test_spec_strategy_unknown_param_suggests_the_right_one(check):
    check(lambda c: _rename(_spec(c)["params"], "slow_period", "slow_perod"), "strategies[0].params.slow_perod",
          "unknown key", "did you mean `slow_period`")


def test_spec_strategy_ill_typed_param(check):
    check(lambda c: _spec(c)["params"].update(fast_period="ten"), "strategies[0].params.fast_period", "'ten'",
          "integer")


def test_yaml_instruments_that_differ_from_the_property(check):
    check(lambda c: _spec(c).update(instruments=["NSE_EQ:1594"]), "strategies[0].instruments",
          "['NSE_EQ:1594'] differ from ['NSE_EQ:1333']", "SmaCrossover.instruments")


def test_yaml_instruments_naming_the_propertys_by_their_names_run(cli, base_config, write_yaml, tmp_path):
    # the class says NSE_EQ:1333 (Dhan's id), the YAML NSE:HDFCBANK: the same instrument, as the data
    # folder's instruments.csv names it; the run trades it under its name
    entry = _spec(base_config)
    entry["instruments"] = ["NSE:HDFCBANK"]
    result = cli("backtest", write_yaml(base_config), "--quiet", "--no-report", "--output", tmp_path / "out")
    assert result.code == 0, result.err
    orders = pd.read_csv(tmp_path / "out" / "orders.csv")
    assert len(orders) > 2 and set(orders["instrument"]) == {"NSE:HDFCBANK"}
    assert set(orders["status"]) == {"FILLED"}


def test_no_instruments_anywhere(check):
    check(lambda c: _strategy(c).pop("instruments"), "strategies[0].instruments", "required key is missing",
          "`instruments` property")


def test_empty_instrument_list_is_still_refused(check):
    check(lambda c: _strategy(c).update(instruments=[]), "strategies[0].instruments", "at least 1")


@pytest.mark.parametrize("listed, fragment", [("NSE_EQ:1333", "expected a list"), (["1333"], "'1333' must be a name")])
def test_a_property_that_names_no_instruments(check, tmp_path, monkeypatch, forget_modules, listed, fragment):
    module = "algocli_test_listed_strategy"
    forget_modules.append(module)
    (tmp_path / f"{module}.py").write_text(LISTED_SOURCE.format(listed=listed), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    check(lambda c: c.update(strategies=[{"class": f"{module}:Listed"}]), "strategies[0].instruments",
          "Listed.instruments", fragment)
