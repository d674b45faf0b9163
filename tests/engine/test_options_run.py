"""A run definition with ``data.options``: the chain's contracts load from their folder and settle at expiry."""

from __future__ import annotations

from datetime import date

import yaml

from algocli.config.run import load_run_config
from algocli.engine.assemble import assemble_backtest
from engine.options_fixtures import write_folder


def test_a_run_with_an_options_universe_trades_a_picked_contract_and_settles_it(tmp_path):
    write_folder(tmp_path / "data", date(2024, 1, 2), date(2024, 1, 4))
    doc = {"name": "opt", "interval": "1d", "initial_capital": 1_000_000,
           "data": {"path": "data", "options": {"underlying": "NSE:NIFTY 50", "path": "options"}},
           "broker": {"name": "simulated", "charges": "dhan", "product": "MARGIN"},
           "strategies": [{"class": "engine.options_fixtures:BuyAtmCall", "instruments": ["NSE:NIFTY 50"]}]}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(doc))
    assembled = assemble_backtest(load_run_config(tmp_path / "run.yaml"), str(tmp_path / "run.yaml"))
    result = assembled.backtest.run()
    assert [(f.instrument, f.side.value) for f in result.fills] == [
        ("NSE:NIFTY 04 JAN 2024 21000 CE", "BUY"), ("NSE:NIFTY 04 JAN 2024 21000 CE", "SELL")]
    assert result.fills[1].price == 234.55 and result.fills[1].stt == round(234.55 * 50 * 0.00125, 2)
    assert any(p.name == "NSE_NIFTY_04_JAN_2024_21000_CE.csv" for p in assembled.data_files)
