"""Every bundled run definition runs end to end through the CLI on the bundled data and trades."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib
import yaml

from algocli.cli.main import main

REPO = Path(__file__).resolve().parents[2]
ALL_CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
# backtest configs read files; the live ones (feed: sandbox/dhan/upstox) are exercised by tests/cli/test_paper*.py
# downloaded.yaml reads what `algo download-data` fetches; test_readme downloads and runs it.
FILE_CONFIGS = [p for p in ALL_CONFIGS if yaml.safe_load(p.read_text())["data"].get("feed", "csv") == "csv"]
CONFIGS = [p for p in FILE_CONFIGS if p.name != "downloaded.yaml"]
LIVE_CONFIGS = [p for p in ALL_CONFIGS if p not in FILE_CONFIGS]


def _run(path: Path, tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(REPO)
    out = tmp_path / "out"
    code = main(["backtest", str(path.relative_to(REPO)), "--output", str(out), "--no-report", "--quiet"])
    assert code == 0
    return out


def _ist(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series).dt.tz_convert("Asia/Kolkata")


def test_the_sample_configs_are_all_here():
    names = {p.name for p in CONFIGS}
    assert {"sma.yaml", "rsi.yaml", "bollinger.yaml", "multi.yaml", "intraday.yaml", "futures.yaml",
            "options-pcr.yaml"} <= names
    assert {p.name for p in LIVE_CONFIGS} == {"paper.yaml", "live-dhan.yaml", "live-upstox.yaml",
                                              "options-pcr-paper.yaml"}


@pytest.mark.parametrize("name", ["live-dhan", "live-upstox"])
def test_the_live_configs_book_their_brokers_charges(name):
    """A live or dry-run P&L without brokerage and STT would look better than the account will."""
    from algocli.config.run import load_run_config

    cfg = load_run_config(REPO / "configs" / f"{name}.yaml")
    assert cfg.broker.name == name.split("-")[1] and cfg.broker.charges == cfg.broker.name


@pytest.mark.parametrize("path", LIVE_CONFIGS, ids=[p.stem for p in LIVE_CONFIGS])
def test_backtest_refuses_a_live_config_with_one_line(path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    assert main(["backtest", str(path.relative_to(REPO)), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is a live feed" in err and "data.feed" in err


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_runs_trades_and_rejects_nothing(path, tmp_path, monkeypatch):
    cfg = yaml.safe_load(path.read_text())
    assert cfg["output"]["dir"] == f"../output/{cfg['name']}"  # relative to configs/
    out = _run(path, tmp_path, monkeypatch)
    trades = pd.read_csv(out / "trades.csv")
    orders = pd.read_csv(out / "orders.csv", keep_default_na=False)
    fills = pd.read_csv(out / "fills.csv")
    assert len(trades) > 0
    assert len(orders) > 0 and len(fills) > 0
    rejected = orders[orders["status"] == "REJECTED"]
    if path.stem == "intraday-charges":  # the README's example of the rule: its 15:05 bar closes after 15:20
        assert rejected["created_time"].tolist() == ["2024-06-10T15:05:00+05:30"], rejected["reason"].tolist()
        assert rejected["reason"].str.contains("after the 15:20 IST square-off").all()
    else:
        assert rejected.empty, rejected["reason"].tolist()
    # every strategy of the config placed orders, under its configured id when it has one
    ids = [s.get("id") for s in cfg["strategies"]]
    if all(ids):
        assert set(orders["strategy"]) == set(ids)
    assert orders["strategy"].nunique() == len(cfg["strategies"])
    assert not (out / "report.html").exists()
    assert (out / "equity_curve.csv").is_file() and (out / "run.json").is_file()


def _tick(price: float) -> float:
    return round(price * 20) / 20  # NSE cash-equity tick: 0.05


def test_bollinger_works_limit_orders(tmp_path, monkeypatch):
    path = REPO / "configs" / "bollinger.yaml"
    params = yaml.safe_load(path.read_text())["strategies"][0]["params"]
    out = _run(path, tmp_path, monkeypatch)
    orders = pd.read_csv(out / "orders.csv", keep_default_na=False)
    fills = pd.read_csv(out / "fills.csv")
    bars = pd.read_csv(REPO / "data" / "NSE_EQ_1333.csv")
    day = {d: i for i, d in enumerate(bars["timestamp"])}
    o, hi, lo, close = (bars[c].to_numpy() for c in ("open", "high", "low", "close"))
    upper, middle, lower = talib.BBANDS(close, params["period"], params["std"], params["std"], 0)

    assert set(orders["order_type"]) == {"LIMIT"}
    assert (orders["status"] == "CANCELLED").sum() > 0
    filled = orders[orders["status"] == "FILLED"]
    assert len(filled) == len(fills) > 0

    by_order = fills.set_index("order_id")
    modified_and_filled = 0
    for _, order in filled.iterrows():
        f = by_order.loc[order["order_id"]]
        i = day[_ist(pd.Series([f["time"]])).iloc[0].strftime("%Y-%m-%d")]
        created = day[_ist(pd.Series([order["created_time"]])).iloc[0].strftime("%Y-%m-%d")]
        limit = float(order["limit_price"])
        assert i > created  # a limit rests from the bar after submission
        assert lo[i] - 1e-9 <= f["price"] <= hi[i] + 1e-9
        buy = order["side"] == "BUY"
        gapped = o[i] <= limit if buy else o[i] >= limit
        assert f["price"] == pytest.approx(o[i] if gapped else limit)
        # the working limit is the band of the last bar the strategy saw before the fill
        band = lower if buy else middle
        # the nearest tick (either one when the band sits on a half tick)
        assert abs(limit - band[i - 1]) <= 0.025 + 1e-6 and limit == pytest.approx(_tick(limit), abs=1e-9)
        if abs(limit - band[created]) > 0.025 + 1e-6:  # not the entry bar's band: the order was moved
            assert i >= created + 2  # it rested through a bar and modify_order moved it
            modified_and_filled += 1
    assert modified_and_filled > 0
    # entries are bb-entry buys, exits bb-exit sells, and they alternate: never two entries in a row
    seq = filled.sort_values(["updated_time", "order_id"])["tag"].tolist()
    assert set(seq) == {"bb-entry", "bb-exit"}
    assert all(a != b for a, b in zip(seq, seq[1:]))


def test_intraday_bars_are_on_the_25_minute_grid(tmp_path, monkeypatch):
    out = _run(REPO / "configs" / "intraday.yaml", tmp_path, monkeypatch)
    curve = pd.read_csv(out / "equity_curve.csv")
    ts = _ist(curve["timestamp"])
    minutes = ts.dt.hour * 60 + ts.dt.minute - (9 * 60 + 15)
    assert (minutes % 25 == 0).all()
    assert minutes.min() == 0 and minutes.max() == 14 * 25  # 09:15 ... 15:05 (the last bucket ends 15:29)
    assert (ts.dt.second == 0).all()
    per_day = ts.dt.date.value_counts().sort_index()
    assert len(per_day) == 5 and (per_day == 15).all()  # 375 one-minute bars per session / 25
    first_day = ts[ts.dt.date == ts.dt.date.iloc[0]].dt.strftime("%H:%M").tolist()
    assert first_day[:3] == ["09:15", "09:40", "10:05"] and first_day[-1] == "15:05"
    # the 25-minute closes are the 1-minute closes at minutes 24, 49, ... of each session
    minute = pd.read_csv(REPO / "data" / "NSE_EQ_2885.csv")
    assert len(minute) == 5 * 375
    assert (curve["buy_and_hold"].iloc[0]) == 100_000.0
    closes_25 = minute["close"].to_numpy()[24::25]
    slow = yaml.safe_load((REPO / "configs" / "intraday.yaml").read_text())["strategies"][0]["params"]["slow_period"]
    warm = slow - 1  # the slow SMA is first defined at bar slow - 1: buy & hold enters there
    expected = 100_000 * closes_25 / closes_25[warm]
    np.testing.assert_allclose(curve["buy_and_hold"].to_numpy()[warm:], expected[warm:], atol=0.006)


def test_futures_trades_whole_lots_and_pays_futures_stt_on_sells_only(tmp_path, monkeypatch):
    """configs/futures.yaml on the NIFTY 27 JUN 2024 FUT sample (lot 25, data/instruments.csv).

    STT on futures is 0.0125 % of price x quantity, on the seller only, for trades from
    2023-04-01 to 2024-09-30 (Finance Act 2023: https://www.business-standard.com/amp/article/
    markets/finance-bill-centre-hikes-stt-on-futures-and-options-by-up-to-25-123032400585_1.html);
    each fill's charge is rounded half-up to paise.
    """
    from decimal import ROUND_HALF_UP, Decimal

    from algocli.instruments.table import read_instruments

    path = REPO / "configs" / "futures.yaml"
    cfg = yaml.safe_load(path.read_text())
    (hrn,) = cfg["strategies"][0]["instruments"]
    (inst,) = [i for i in read_instruments(REPO / "data" / "instruments.csv") if i.hrn == hrn]
    assert inst.kind == "FUT" and inst.lot_size == 25 and cfg["broker"]["product"] in ("MARGIN", "INTRADAY")
    out = _run(path, tmp_path, monkeypatch)
    fills = pd.read_csv(out / "fills.csv", keep_default_na=False)
    orders = pd.read_csv(out / "orders.csv", keep_default_na=False).set_index("order_id")
    assert len(fills) >= 4 and set(fills["instrument"]) == {hrn}
    assert (fills["quantity"] > 0).all() and (fills["quantity"] % inst.lot_size == 0).all()
    days = _ist(fills["time"]).dt.date
    assert days.min() >= date(2024, 6, 13) and days.max() <= inst.expiry  # all under the 2023-04-01 rate

    def stt(price: float, quantity: int) -> Decimal:
        value = Decimal(str(price)) * int(quantity) * Decimal("0.0125") / 100
        return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

    # a worked example: 2 lots sold at 23,082.35 -> 1,154,117.50 x 0.0125 % = 144.2646875 -> 144.26
    assert stt(23082.35, 50) == Decimal("144.26")
    buys, sells = fills[fills["side"] == "BUY"], fills[fills["side"] == "SELL"]
    assert len(buys) > 0 and (buys["stt"] == 0).all()
    # the strategy's own sells; the engine's closing sells (end of data, expiry settlement) are tagged
    own = sells[[orders.loc[o, "tag"] == "" for o in sells["order_id"]]]
    assert len(own) >= 2
    for row in own.itertuples():
        assert Decimal(str(row.stt)) == stt(row.price, row.quantity), (row.fill_id, row.price, row.quantity, row.stt)
    for row in sells.drop(own.index).itertuples():
        assert Decimal(str(row.stt)) in (Decimal(0), stt(row.price, row.quantity)), (row.fill_id, row.stt)
