"""A run definition with ``data.options``: the chain's contracts load from their folder and settle at expiry."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from algocli.config.run import load_run_config
from algocli.engine.assemble import assemble_backtest
from algocli.errors import ConfigError, StrategyError
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


# --- replaying a recorded PCR series (data.options.pcr) ------------------------------------------

OPTIONS_DATA = Path(__file__).resolve().parents[2] / "data" / "options"
HEADER = ("timestamp,underlying,expiry,spot,atm_strike,oi_pcr,volume_pcr,change_oi_pcr,max_pain,bar,mode,source,"
          "window_strikes,window_oi_pcr,window_volume_pcr,window_change_oi_pcr")
RECORDED = [  # (taken at, the candle it was taken for, OI PCR, volume PCR, change-in-OI PCR, window OI PCR)
    ("2024-06-13 09:30:01", "2024-06-13 09:15:00", 0.91, 1.2, "", 0.8),
    ("2024-06-13 10:30:02", "2024-06-13 10:15:00", 1.07, 0.95, 1.5, 1.1),
    ("2024-06-14 09:30:01", "2024-06-14 09:15:00", 1.31, 0.7, "", 1.4),
]


def _replay_run(tmp_path, pcr: str, **options):
    doc = {"name": "replay", "interval": "15m", "initial_capital": 1_000_000,
           "data": {"path": str(OPTIONS_DATA), "options": {"underlying": "NSE:NIFTY 50", "pcr": pcr, **options}},
           "broker": {"name": "simulated"},
           "strategies": [{"class": "options.chain_strategies:ReadChains", "instruments": ["NSE:NIFTY 50"],
                           "params": {"chain": False}}]}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(doc))
    return assemble_backtest(load_run_config(tmp_path / "run.yaml"), str(tmp_path / "run.yaml"))


def test_a_backtest_replays_the_last_recorded_pcr_at_or_before_each_bar(tmp_path):
    lines = [HEADER] + [f"{t},NSE:NIFTY 50,2024-06-27,23400,23400,{oi},{vol},{chg},23500,{bar},paper,dhan,5,{w},,"
                        for t, bar, oi, vol, chg, w in RECORDED]
    lines.append("2024-06-13 09:30:01,NSE:NIFTY 50,2024-07-04,23400,23400,9.9,9.9,,23500,2024-06-13 09:15:00,paper,"
                 "dhan,5,9.9,,")  # the next expiry's series: not read for "current"
    (tmp_path / "pcr.csv").write_text("\n".join(lines) + "\n")
    assembled = _replay_run(tmp_path, str(tmp_path / "pcr.csv"))
    assembled.backtest.run()
    seen = assembled.backtest.core.slots[0].strategy.seen
    assert tmp_path / "pcr.csv" in assembled.data_files
    got = {now.strftime("%Y-%m-%d %H:%M"): (w and (w.oi_pcr, w.vol_pcr, w.chg_oi_pcr), p and p.oi_pcr)
           for now, _, w, p in seen}
    assert got["2024-06-13 09:15"] == ((0.91, 1.2, None), 0.8)
    assert got["2024-06-13 10:00"] == ((0.91, 1.2, None), 0.8)  # the 10:15 candle's row is not visible yet
    assert got["2024-06-13 10:15"] == ((1.07, 0.95, 1.5), 1.1)
    assert got["2024-06-13 15:15"] == ((1.07, 0.95, 1.5), 1.1)
    assert got["2024-06-14 09:15"] == ((1.31, 0.7, None), 1.4)
    assert got["2024-06-27 15:15"] == ((1.31, 0.7, None), 1.4)


def test_replay_refuses_a_window_it_did_not_record_and_a_missing_file(tmp_path):
    (tmp_path / "pcr.csv").write_text(HEADER + "\n2024-06-13 09:30:01,NSE:NIFTY 50,2024-06-27,23400,23400,1,1,,"
                                               "23500,2024-06-13 09:15:00,paper,dhan,10,1,1,\n")
    assembled = _replay_run(tmp_path, str(tmp_path / "pcr.csv"))
    with pytest.raises(StrategyError, match=r"window=5: .*recorded PCR over the whole chain and ATM ± 10 strikes"):
        assembled.backtest.run()
    with pytest.raises(ConfigError, match=r"data.options.pcr: .*nope.csv does not exist"):
        _replay_run(tmp_path, "nope.csv")
    with pytest.raises(ConfigError, match="data.options"):
        _replay_run(tmp_path, str(tmp_path / "pcr.csv"), refresh=5)
    (tmp_path / "bad.csv").write_text(HEADER + "\nyesterday,NSE:NIFTY 50,2024-06-27,1,1,1,1,,1,,paper,dhan,,,,\n")
    with pytest.raises(ConfigError, match=r"bad.csv: line 2: .*fix or remove the row"):
        _replay_run(tmp_path, str(tmp_path / "bad.csv"))


def test_index_contracts_listed_with_lot_size_1_are_warned_of_with_the_exchanges_lot(tmp_path):
    # older downloads wrote lot 1 for contracts the current master no longer listed; NIFTY's lot for
    # June 2024 expiries was 25 (NSE's revision of 2024-04-26)
    repo = Path(__file__).resolve().parents[2]
    folder = tmp_path / "options"
    folder.mkdir()
    for f in (repo / "data" / "options").iterdir():
        if f.suffix == ".csv":
            (folder / f.name).write_bytes(f.read_bytes())
    listing = (folder / "instruments.csv").read_text(encoding="utf-8").splitlines()
    head = listing[0].split(",")
    lot, kind = head.index("lot_size"), head.index("kind")
    rows = [line.split(",") for line in listing[1:]]
    options = sum(r[kind] in ("CE", "PE") for r in rows)
    for r in rows:
        if r[kind] in ("CE", "PE"):
            r[lot] = "1"
    (folder / "instruments.csv").write_text("\n".join([listing[0], *map(",".join, rows)]) + "\n", encoding="utf-8")
    cfg = yaml.safe_load((repo / "configs" / "options-pcr.yaml").read_text(encoding="utf-8"))
    cfg["data"]["path"] = str(folder)
    cfg["output"] = {"dir": str(tmp_path / "out")}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    said = []
    assemble_backtest(load_run_config(tmp_path / "run.yaml"), str(tmp_path / "run.yaml"), warn=said.append)
    odd = [w for w in said if "listed with lot size 1" in w]
    assert len(odd) == 1 and odd[0].startswith(f"{folder / 'instruments.csv'}: {options} contract(s) are listed")
    assert "lot 25)" in odd[0]
    said.clear()
    cfg["data"]["path"] = str(repo / "data" / "options")  # the bundled listing's lots are right: no warning
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assemble_backtest(load_run_config(tmp_path / "run.yaml"), str(tmp_path / "run.yaml"), warn=said.append)
    assert not [w for w in said if "lot size 1" in w]
