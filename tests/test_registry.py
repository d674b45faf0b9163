"""Plugins are checked against what the engine calls on their kind when they are resolved,
with one line naming the plugin, its group and what it lacks; cost models are a group too."""

from __future__ import annotations

import sys

import pytest

from algocli.broker.costs import PercentCommission
from algocli.errors import PluginError
from algocli.registry import GROUPS, lacks, registered, resolve
from cli.cli_support import (base_config, cli, data_dir, load_sma_config, write_dist_info,  # noqa: F401
                             write_yaml)

MODULE = "algocli_test_bad_plugins"

BAD_PLUGINS = '''\
from pydantic import BaseModel

from algocli import BaseStrategy


class Cfg(BaseModel):
    pass


class NoCandle(BaseStrategy):
    pass


class NoSource:
    Config = Cfg


class NoFilesUsed:
    Config = Cfg

    def load(self, instruments, interval, warn=None):
        return {}


class NoConfigBroker:
    pass


class LiveWithoutLive:
    Config = Cfg
    live_broker = True


class PlainConfigFill:
    Config = dict
    immediate = False


class NoPriceFill:
    Config = Cfg


class NoCharges:
    def commission(self, instrument, buy, quantity, price):
        return 0.0


class NotCallableCharges:
    charges = 0.0


class Charges:
    def charges(self, ctx):
        return 0.0


a_function = len
'''


@pytest.fixture
def bad(tmp_path, monkeypatch):
    (tmp_path / f"{MODULE}.py").write_text(BAD_PLUGINS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield lambda name: f"{MODULE}:{name}"
    sys.modules.pop(MODULE, None)


@pytest.mark.parametrize("kind, name, missing", [
    ("strategy", "NoCandle", "lacks on_candle()"),
    ("feed", "NoSource", "lacks load() (a file feed) or live() (a live feed)"),
    ("feed", "NoFilesUsed", "lacks files_used()"),
    ("broker", "NoConfigBroker", "lacks a Config model (pydantic) for its broker: keys"),
    ("broker", "LiveWithoutLive", "lacks live()"),
    ("fill model", "PlainConfigFill", "lacks a Config model (pydantic) for its fill_model: keys, market_price()"),
    ("fill model", "NoPriceFill", "lacks market_price(), immediate"),
    ("cost model", "NoCharges", "lacks charges()"),
    ("cost model", "NotCallableCharges", "lacks charges()"),
])
def test_a_plugin_lacking_part_of_its_protocol_is_refused_in_one_line(bad, kind, name, missing):
    with pytest.raises(PluginError) as info:
        resolve(kind, bad(name), where="run.yaml: somewhere")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"run.yaml: somewhere: {kind} '{bad(name)}' ({bad(name)}) {missing}")
    assert f"which every plugin in {GROUPS[kind]} provides" in message


@pytest.mark.parametrize("kind", sorted(set(GROUPS) - {"strategy"}))
def test_something_that_is_not_a_class_is_refused(bad, kind):
    with pytest.raises(PluginError, match=r"'algocli_test_bad_plugins:a_function' is a builtin_function_or_method, "
                                          r"not a class"):
        resolve(kind, bad("a_function"), where="w")


def test_a_plugin_that_fits_resolves(bad):
    assert resolve("cost model", bad("Charges"), where="w").__name__ == "Charges"


@pytest.mark.parametrize("kind", sorted(GROUPS))
def test_every_registered_plugin_fits_its_protocol(kind):
    plugins = registered(kind)
    assert plugins, f"nothing registered in {GROUPS[kind]}"
    for name, ep in plugins.items():
        assert lacks(kind, ep.load()) == "", name


def test_percent_is_a_registered_cost_model():
    assert resolve("cost model", "percent", where="w") is PercentCommission


def test_commission_rate_selects_the_percent_cost_model(tmp_path):
    from algocli.config.run import RunConfig
    from algocli.engine.assemble import resolve_plugins

    cfg = load_sma_config()
    cfg["data"]["path"] = str(tmp_path)
    plugins = resolve_plugins(RunConfig.model_validate(cfg), "sma.yaml")
    model = plugins.cost_model
    assert type(model) is PercentCommission
    assert model.rate == cfg["broker"]["commission_rate"] == 0.0003


def test_the_backtest_command_reports_a_bad_fill_model_in_one_line(cli, base_config, write_yaml, bad, tmp_path):
    base_config["fill_model"] = {"name": bad("NoPriceFill")}
    result = cli("backtest", write_yaml(base_config), "--quiet", "--output", tmp_path / "out")
    assert result.code == 2, result.err
    assert result.err_lines == [f"error: {tmp_path / 'run.yaml'}: fill_model.name: fill model '{bad('NoPriceFill')}' "
                                f"({bad('NoPriceFill')}) lacks market_price(), immediate, which every plugin in "
                                "algocli.fill_models provides; add them"]


def test_a_plugin_put_on_the_path_after_the_first_lookup_is_found(bad, tmp_path, monkeypatch):
    assert "late" not in registered("cost model")  # entry points read (and kept) once
    site = tmp_path / "site"
    write_dist_info(site, "late-plugin", {"algocli.cost_models": {"late": bad("Charges")}})
    monkeypatch.syspath_prepend(str(site))
    assert resolve("cost model", "late", where="w").__name__ == "Charges"
