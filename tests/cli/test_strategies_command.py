"""``algo strategies``: every registered plugin with its parameters, as a YAML writer reads them."""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field, SecretStr

from algocli.cli.strategies import parameter_lines
from cli.cli_support import parse_tables, write_dist_info

STRATEGY_PARAMS = {
    "sma_crossover": {"fast_period", "slow_period", "quantity"},
    "rsi_mean_reversion": {"period", "oversold", "overbought", "quantity"},
    "bollinger_reversion": {"period", "std", "quantity"},
}
FILL_MODELS = {"next_open", "same_close", "vwap", "slippage"}


def _param_names(row: dict) -> set[str]:
    """Names from the ``name: type = default`` lines (detail lines under them may hold colons too)."""
    return {m.group(1) for line in row["params"] if (m := re.match(r"(\w+): ", line))}


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


def test_no_python_internals_are_shown(cli, wide_console):
    result = cli("strategies")
    assert result.code == 0, result.err
    for internal in ("PydanticUndefined", "PosixPath", "SecretStr", "Literal", "typing.", "<class", "NoneType",
                     "instrument_keys", "datetime.date"):
        assert internal not in result.out, internal


def test_choices_descriptions_and_bounds_are_shown(listing):
    dhan = listing["Data feeds"]["dhan"]["params"]
    assert dhan[:3] == ["mode: text = quote", "packet type to subscribe to", "one of ticker, quote, full"]
    sma = listing["Strategies"]["sma_crossover"]["params"]
    assert sma[:3] == ["fast_period: int = 10", "bars in the fast average", "at least 1"]
    assert "at least 0, less than 0.1" in listing["Brokers"]["simulated"]["params"]


def test_defaults_are_written_as_in_the_yaml(listing):
    csv = listing["Data feeds"]["csv"]["params"]
    assert "path: path = data" in csv
    assert "start: YYYY-MM-DD (optional)" in csv
    assert "token: secret = (hidden)" in listing["Data feeds"]["sandbox"]["params"]
    assert listing["Cost models"]["percent"]["params"] == ["rate: float (required)"]


class _Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class _Config(BaseModel):
    """A plugin's settings.

    Attributes:
        folder: Where the files are,
            one per instrument.
        colour: Ignored here: the Field description wins.
    """

    folder: Path = Path("data")
    colour: _Colour = Field(_Colour.RED, description="line colour")
    side: Literal["buy", "sell"] | None = None
    ids: dict[str, str] = Field(default_factory=dict)
    wired: dict[str, str] = Field(default_factory=dict, json_schema_extra={"internal": True})
    key: SecretStr = SecretStr("do-not-print")
    label: str = " padded "
    live: bool = False


class _Plugin:
    Config = _Config


def test_parameter_lines_of_a_model():
    assert parameter_lines(_Plugin) == [
        "folder: path = data", "  Where the files are, one per instrument.",
        "colour: text = red", "  line colour", "  one of red, blue",
        "side: text (optional)", "  one of buy, sell",
        "ids: mapping of text to text = {}",
        "key: secret = (hidden)",
        'label: text = " padded "',
        "live: true/false = false",
    ]


class _Constructed:
    def __init__(self, rate: float, window: int = 5, *args: object, note: str | None = None) -> None:
        """Build it.

        Args:
            rate: A fraction of traded value.
            window (int): Bars to look back.
        """


def test_parameter_lines_of_a_constructor():
    assert parameter_lines(_Constructed) == [
        "rate: float (required)", "  A fraction of traded value.",
        "window: int = 5", "  Bars to look back.",
        "note: text (optional)",
    ]
