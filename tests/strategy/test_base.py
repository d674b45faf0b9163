"""``BaseStrategy``: parameters as a nested ``Params`` model or as keyword arguments of
``__init__`` (the specification's way), and an ``instruments`` property the engine respects.
"""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from algocli import BaseStrategy, StrategyParams
from algocli.config.run import load_run_config
from algocli.engine.assemble import assemble_backtest
from algocli.strategy.base import SignatureParams
from cli.cli_support import (  # noqa: F401  (fixtures)
    base_config, cli, data_dir, parse_tables, wide_console, write_dist_info, write_yaml,
)
from strategies.sma_crossover import SmaCrossover as BundledSma
from strategy.spec_sma_crossover import SmaCrossover as SpecSma

SPEC_CLASS = "strategy.spec_sma_crossover:SmaCrossover"


class Plain(BaseStrategy):
    def on_candle(self, candle):
        return None


class Keywords(BaseStrategy):
    def __init__(self, period: int, threshold: float = 1.5, label="x", *args, **kwargs):
        super().__init__(period=period, threshold=threshold, label=label)


class SameKeywords(Keywords):
    def on_candle(self, candle):
        return None


class Quiet(BaseStrategy):
    """Takes keyword arguments but does not pass them on to ``super().__init__``."""

    def __init__(self, size: int = 2):
        super().__init__()
        self.size = size

    def on_candle(self, candle):
        return None


# --- parameters ---------------------------------------------------------------------------

def test_params_come_from_the_init_signature():
    model = SpecSma.Params
    assert issubclass(model, SignatureParams)
    assert {n: (f.annotation, f.default) for n, f in model.model_fields.items()} == {
        "fast_period": (int, 10), "slow_period": (int, 20), "quantity": (int, 1)}
    assert SpecSma.Params is model, "built once per class"


def test_required_untyped_and_star_arguments():
    fields = SameKeywords.Params.model_fields
    assert list(fields) == ["period", "threshold", "label"]
    assert fields["period"].is_required()
    assert fields["threshold"].annotation is float
    assert SameKeywords.Params(period=3, label=7).label == 7  # unannotated: any value


def test_signature_model_rejects_unknown_and_ill_typed_keys():
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        SpecSma.Params(fast_perod=3)
    with pytest.raises(ValidationError, match="valid integer"):
        SpecSma.Params(fast_period="ten")


def test_nested_params_stay_the_model():
    assert not issubclass(BundledSma.Params, SignatureParams)
    assert BundledSma.Params.__qualname__ == "SmaCrossover.Params"
    assert Plain.Params is StrategyParams


def test_from_params_calls_init_with_keywords():
    strategy = SpecSma.from_params(SpecSma.Params(fast_period=5, slow_period=30, quantity=100))
    assert (strategy.fast_period, strategy.slow_period, strategy.quantity) == (5, 30, 100)
    assert strategy.params.model_dump() == {"fast_period": 5, "slow_period": 30, "quantity": 100}


def test_from_params_records_params_an_init_did_not_pass_on():
    strategy = Quiet.from_params(Quiet.Params(size=9))
    assert strategy.size == 9
    assert strategy.params.size == 9


def test_built_in_python_an_init_may_pass_on_some_or_none():
    assert Quiet().params.size == 2  # the default; nothing to validate against the YAML
    assert SameKeywords(4).params.period == 4


def test_from_params_passes_a_nested_model_whole():
    params = BundledSma.Params(fast_period=3, slow_period=4, quantity=2)
    assert BundledSma.from_params(params).params is params


# --- instruments ----------------------------------------------------------------------------

def test_declared_instruments_property():
    strategy = SpecSma()
    assert strategy.declared_instruments() == ["NSE_EQ:1333"]
    assert strategy.instruments == ["NSE_EQ:1333"]


def test_the_engine_can_assign_the_run_names_over_a_read_only_property():
    strategy = SpecSma()
    strategy.instruments = ["NSE:HDFCBANK"]  # EngineCore.add does this
    assert strategy.instruments == ["NSE:HDFCBANK"]
    assert strategy.declared_instruments() == ["NSE_EQ:1333"]


def test_a_strategy_without_the_property_declares_none():
    strategy = Plain()
    assert strategy.declared_instruments() is None
    assert strategy.instruments == []


# --- the specification's example, end to end ---------------------------------------------------

def _trades(config: dict, write_yaml, name: str) -> pd.DataFrame:
    path = write_yaml(config, name)
    result = assemble_backtest(load_run_config(path), str(path)).backtest.run()
    return result.trades.drop(columns=["strategy"])


@pytest.mark.parametrize("yaml_instruments", [True, False], ids=["listed", "from-property"])
def test_spec_example_trades_like_the_bundled_sma_crossover(base_config, write_yaml, yaml_instruments):
    bundled = _trades(base_config, write_yaml, "bundled.yaml")
    entry = base_config["strategies"][0]
    entry["class"] = SPEC_CLASS
    if not yaml_instruments:
        del entry["instruments"]
    else:
        entry["instruments"] = ["NSE_EQ:1333"]  # as the class spells it (the bundled YAML says NSE:HDFCBANK)
    spec = _trades(base_config, write_yaml, "spec.yaml")
    assert len(bundled) >= 3
    pd.testing.assert_frame_equal(spec, bundled)


def test_strategies_command_shows_the_spec_example_params(cli, wide_console, tmp_path, monkeypatch):
    write_dist_info(tmp_path, "spec-example", {"algocli.strategies": {"spec_sma": SPEC_CLASS}})
    monkeypatch.syspath_prepend(str(tmp_path))
    result = cli("strategies")
    assert result.code == 0, result.err
    params = parse_tables(result.out)["Strategies"]["spec_sma"]["params"]
    assert params == ["fast_period: int = 10", "slow_period: int = 20", "quantity: int = 1"]
