"""``algo strategies``: every registered plugin with its parameters."""

from __future__ import annotations

import pytest

from cli.cli_support import parse_tables, write_dist_info

STRATEGY_PARAMS = {
    "sma_crossover": {"fast_period", "slow_period", "quantity"},
    "rsi_mean_reversion": {"period", "oversold", "overbought", "quantity"},
    "bollinger_reversion": {"period", "std", "quantity"},
}
FILL_MODELS = {"next_open", "same_close", "vwap", "slippage"}


def _param_names(row: dict) -> set[str]:
    return {line.split(":", 1)[0].strip() for line in row["params"] if ":" in line}


@pytest.fixture
def listing(cli, wide_console):
    result = cli("strategies")
    assert result.code == 0, result.err
    assert result.err.strip() == ""
    return parse_tables(result.out)


def test_lists_the_four_plugin_kinds(listing):
    assert {"Strategies", "Data feeds", "Brokers", "Fill models"} <= set(listing)


@pytest.mark.parametrize("name", sorted(STRATEGY_PARAMS))
def test_lists_builtin_strategies_with_their_parameters(listing, name):
    row = listing["Strategies"][name]
    assert STRATEGY_PARAMS[name] <= _param_names(row)
    assert row["class"].startswith(f"strategies.{name}:")


def test_parameters_show_type_and_default(listing):
    from strategies.sma_crossover import SmaCrossover

    params = listing["Strategies"]["sma_crossover"]["params"]
    for field_name, field in SmaCrossover.Params.model_fields.items():
        assert f"{field_name}: int = {field.default!r}" in params


def test_lists_csv_feed_with_its_keys(listing):
    row = listing["Data feeds"]["csv"]
    assert row["class"] == "algocli.data.csv_feed:CsvFeed"
    assert {"path", "start", "end"} <= _param_names(row)


def test_lists_simulated_broker_with_commission_rate(listing):
    row = listing["Brokers"]["simulated"]
    assert "commission_rate" in _param_names(row)


def test_lists_the_four_fill_models(listing):
    models = listing["Fill models"]
    assert FILL_MODELS <= set(models)
    assert "slippage_pct" in _param_names(models["slippage"])
    for name in FILL_MODELS - {"slippage"}:
        assert _param_names(models[name]) == set(), name


def test_a_broken_plugin_is_reported_without_hiding_the_others(cli, wide_console, tmp_path, monkeypatch):
    write_dist_info(tmp_path, "broken-plugin", {
        "algocli.strategies": {"broken_one": "no_such_module_for_algocli_tests:Nothing"},
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    result = cli("strategies")
    assert result.code == 0, result.err
    strategies = parse_tables(result.out)["Strategies"]
    assert "failed to import" in " ".join(strategies["broken_one"]["params"])
    assert set(STRATEGY_PARAMS) <= set(strategies)
    assert "fast_period" in _param_names(strategies["sma_crossover"])


def test_lists_the_percent_cost_model(listing):
    row = listing["Cost models"]["percent"]
    assert row["class"] == "algocli.broker.costs:PercentCommission"
    assert _param_names(row) == {"rate"}


def test_a_plugin_that_lacks_its_protocol_is_marked_not_usable(cli, wide_console, tmp_path, monkeypatch):
    (tmp_path / "algocli_test_priceless.py").write_text("class Priceless:\n    pass\n", encoding="utf-8")
    write_dist_info(tmp_path, "priceless-plugin",
                    {"algocli.cost_models": {"priceless": "algocli_test_priceless:Priceless"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    result = cli("strategies")
    assert result.code == 0, result.err
    row = parse_tables(result.out)["Cost models"]["priceless"]
    assert "not usable: it (algocli_test_priceless:Priceless) lacks charges()" in " ".join(row["params"])
    assert "percent" in parse_tables(result.out)["Cost models"]
