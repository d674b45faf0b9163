"""``algocli.engine.assemble``: the broker section's products and charges become the run's cost model
and products, one new cost model per run, and a section that gives two cost models is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from algocli.broker.costs import PercentCommission
from algocli.broker.live_plugins import LiveBrokerConfig
from algocli.config.run import load_run_config
from algocli.engine.assemble import assemble_backtest
from algocli.errors import ConfigError
from algocli.market.charges import IndianCharges

ROOT = Path(__file__).resolve().parents[2]


def _yaml(tmp_path: Path, broker: dict, name: str = "run.yaml") -> Path:
    doc = {"name": "charges", "interval": "1d", "initial_capital": 1_000_000,
           "data": {"feed": "csv", "path": str(ROOT / "data")},
           "broker": {"name": "simulated", **broker},
           "strategies": [{"class": "sma_crossover", "instruments": ["NSE:HDFCBANK"],
                           "params": {"fast_period": 5, "slow_period": 20, "quantity": 10}}],
           "output": {"dir": str(tmp_path / "out")}}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _assemble(path: Path):
    return assemble_backtest(load_run_config(path), str(path))


def test_charges_dhan_prices_every_backtest_fill_by_kind(tmp_path):
    path = _yaml(tmp_path, {"charges": "dhan", "rounding": "contract_note", "product": "CNC"})
    assembled = _assemble(path)
    broker = assembled.backtest.core.broker
    assert isinstance(broker.cost_model, IndianCharges) and broker.cost_model.rounding == "contract_note"
    assert broker.default_product == "CNC"
    result = assembled.backtest.run()
    assert result.fills and all(f.commission == pytest.approx(
        f.brokerage + f.stt + f.exchange_txn + f.ipft + f.sebi + f.stamp + f.dp + f.gst) for f in result.fills)
    assert all(f.stt == round(f.stt) for f in result.fills)  # contract-note rounding: STT in whole rupees
    assert any(f.dp == 12.5 for f in result.fills)  # CNC sells on later days pay Dhan's DP charge
    resolved = assembled.resolved()["broker"]
    assert resolved == {"name": "simulated", "product": "CNC", "products": {}, "charges": "dhan",
                        "rounding": "contract_note"}  # config.resolved.yaml validates again: one cost model
    assert _assemble(path).backtest.core.broker.cost_model is not broker.cost_model  # one per run: it keeps state


def test_a_flat_commission_rate_still_selects_the_percent_model(tmp_path):
    broker = _assemble(_yaml(tmp_path, {"commission_rate": 0.0003})).backtest.core.broker
    assert isinstance(broker.cost_model, PercentCommission) and broker.cost_model.rate == 0.0003
    assert broker.default_product == "INTRADAY" and broker.products == {}


def test_products_per_instrument_reach_the_simulated_broker(tmp_path):
    broker = _assemble(_yaml(tmp_path, {"charges": "upstox", "products": {"NSE:HDFCBANK": "CNC"}})).backtest.core.broker
    assert broker.products == {"NSE:HDFCBANK": "CNC"} and broker.default_product == "INTRADAY"


@pytest.mark.parametrize(("broker", "message"), [
    ({"commission_rate": 0.0003, "charges": "dhan"},
     "broker: commission_rate and charges are both given; keep one"),
    ({"rounding": "contract_note"}, "broker: rounding applies to charges only"),
    ({"charges": "dhan", "rounding": "rupee"}, "broker.rounding: 'rupee' is not allowed"),
    ({"charges": "dhan", "product": "NRML"}, "broker.product: 'NRML' is not allowed"),
])
def test_a_broker_section_with_conflicting_or_unknown_charges_is_refused_in_one_line(tmp_path, broker, message):
    with pytest.raises(ConfigError) as err:
        _assemble(_yaml(tmp_path, broker))
    text = str(err.value)
    assert message in text and "\n" not in text


def test_a_charges_table_of_your_own_is_read_beside_the_run_definition(tmp_path):
    (tmp_path / "my-broker.csv").write_text(
        "kind,segment,exchange,side,basis,rate,cap,symbols,effective_from,effective_to,source,note\n"
        "brokerage,*,*,both,flat,5,,,2015-01-01,,https://example.org/my-broker,Rs 5 per order\n", encoding="utf-8")
    result = _assemble(_yaml(tmp_path, {"charges": "my-broker.csv"})).backtest.run()
    assert result.fills and {f.brokerage for f in result.fills} == {5.0}
    assert all(f.stt > 0 for f in result.fills if f.side.value == "SELL")  # statutory rows still apply


def test_a_missing_charges_table_names_the_key_and_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"broker\.charges: .*missing\.csv does not exist; give dhan, upstox, none"):
        _assemble(_yaml(tmp_path, {"charges": "missing.csv"}))


def test_the_live_brokers_take_charges_too_and_refuse_both():
    assert LiveBrokerConfig(charges="Upstox").charges == "upstox"
    with pytest.raises(ValueError, match="commission_rate and charges are both given"):
        LiveBrokerConfig(charges="dhan", commission_rate=0.001)
