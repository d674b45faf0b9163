"""Paper and backtest trade and settle options alike: the same legs, prices, expiry settlement and charges."""

from __future__ import annotations

import json
import os
import urllib.request
from datetime import date
from pathlib import Path

import pytest
import yaml

from algocli.broker.fill_models import NextOpen
from algocli.domain.models import Interval, Tick
from algocli.engine.backtest import Backtest
from algocli.engine.paper import PaperEngine
from algocli.market.charges import IndianCharges
from algocli.sandbox.replay import bar_ticks
from cli.paper_support import child_env, read_csv, running, sandbox, wait_for
from engine.options_fixtures import LOT, UNDER, chain, index, option_name
from helpers import Scripted

FIRST, EXPIRY = date(2024, 1, 2), date(2024, 1, 4)
TESTS = Path(__file__).resolve().parents[1]
CE, PE = option_name(EXPIRY, 21000, "CE"), option_name(EXPIRY, 21100, "PE")


def _enter(ctx, c):
    atm = ctx.option(UNDER, expiry="current", strike="ATM", right="CE")
    ctx.basket([(atm.name, "BUY", atm.lot_size), (PE, "SELL", LOT)], tag="pair")


def _rows(fills, orders):
    tags = {o.order_id: o.tag for o in orders}
    return [(f.instrument, f.side.value, f.quantity, round(f.price, 2), f.stt, f.commission, tags[f.order_id])
            for f in fills]


def test_paper_and_backtest_trade_and_settle_an_option_basket_alike(tmp_path):
    bars, rows = chain(FIRST, EXPIRY)
    bt = Backtest(bars, initial_capital=5_000_000, fill_model=NextOpen(), cost_model=IndianCharges("dhan"),
                  instruments={UNDER: index()}, default_product="MARGIN", universe=rows)
    bt.add_strategy(Scripted({0: _enter}), [UNDER], "s")
    result = bt.run()
    expected = _rows(result.fills, result.orders)
    assert [r[6] for r in expected] == ["pair", "pair", "expiry", "expiry"]

    meta = {UNDER: index(), **{r.hrn: r for r in rows}}
    engine = PaperEngine(list(bars), interval=Interval.DAY_1, initial_capital=5_000_000, fill_model=NextOpen(),
                         cost_model=IndianCharges("dhan"), journal_path=tmp_path / "j.jsonl", name="t",
                         metadata=meta, default_product="MARGIN")
    engine.core.universe = rows
    engine.add_strategy(Scripted({0: _enter}), [UNDER], "s")
    engine.start()
    ticks = []
    for k, (inst, b) in enumerate(bars.items()):  # the underlying first at equal times, as its candle decides
        path = bar_ticks(b, segment="FNO")
        ticks += [(path.tick(i).ts, k, inst, path.tick(i)) for i in range(len(path))]
    for ts, _, inst, t in sorted(ticks, key=lambda x: x[:2]):
        engine.on_tick(Tick(inst, t.ts, t.ltp, t.ltq, t.volume))
    assert engine.error is None
    assert _rows(engine.broker.fills, engine.broker.orders) == expected
    ce_exit = [r for r in expected if r[0] == CE and r[6] == "expiry"][0]
    assert ce_exit[3] == 234.55 and ce_exit[4] == round(234.55 * LOT * 0.00125, 2)


# --- ctx.option_chain / ctx.pcr in paper against a real `algo sandbox`: pcr.csv ------------------

OPTIONS_DATA = Path(__file__).resolve().parents[2] / "data" / "options"


def _paper_yaml(path: Path, port: int, protocol: str, out_dir: Path) -> Path:
    doc = {"name": "pcr-paper", "interval": "15m", "initial_capital": 1_000_000,
           "data": {"feed": "sandbox", "url": f"http://127.0.0.1:{port}", "protocol": protocol},
           "broker": {"name": "simulated"}, "fill_model": {"name": "next_open"},
           "strategies": [{"class": "options.chain_strategies:ReadChains", "instruments": [UNDER], "id": "read",
                           "params": {"window": 5, "max_age": 1.0}}],
           "output": {"dir": str(out_dir)}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _raw_chain(base: str, protocol: str) -> tuple[float, list[tuple[float, dict | None, dict | None]]]:
    """The sandbox's chain JSON as (spot, [(strike, call, put)]), asked as a client of our own."""
    if protocol == "upstox":
        req = urllib.request.Request(f"{base}/v2/option/chain?instrument_key=NSE_INDEX%7CNifty%2050"
                                     "&expiry_date=2024-06-27", headers={"Authorization": "Bearer sandbox"})
        data = json.loads(urllib.request.urlopen(req, timeout=10).read())["data"]
        return data[0]["underlying_spot_price"], [
            (r["strike_price"], (r.get("call_options") or {}).get("market_data"),
             (r.get("put_options") or {}).get("market_data")) for r in data]
    body = json.dumps({"UnderlyingScrip": 13, "UnderlyingSeg": "IDX_I", "Expiry": "2024-06-27"}).encode()
    req = urllib.request.Request(f"{base}/v2/optionchain", data=body, method="POST", headers={
        "access-token": "sandbox", "client-id": "pcr-test", "Content-Type": "application/json"})
    data = json.loads(urllib.request.urlopen(req, timeout=10).read())["data"]
    return data["last_price"], [(float(k), v.get("ce") or None, v.get("pe") or None) for k, v in data["oc"].items()]


def _by_hand(spot: float, legs, protocol: str) -> dict:
    prev = "prev_oi" if protocol == "upstox" else "previous_oi"
    rows = sorted(legs, key=lambda r: r[0])

    def total(side: int, what) -> float:
        return sum(what(r[side]) for r in rows if r[side])

    call_chg, put_chg = total(1, lambda c: c["oi"] - c[prev]), total(2, lambda p: p["oi"] - p[prev])
    atm_i = min(range(len(rows)), key=lambda i: (abs(rows[i][0] - spot), rows[i][0]))
    near = rows[max(0, atm_i - 5): atm_i + 6]
    pain = {k: sum(c["oi"] * max(0.0, k - s) for s, c, _ in rows if c) + sum(p["oi"] * max(0.0, s - k)
                                                                              for s, _, p in rows if p)
            for k, _, _ in rows}
    return {"spot": spot, "atm_strike": rows[atm_i][0], "max_pain": min(pain, key=lambda k: (pain[k], k)),
            "oi_pcr": total(2, lambda p: p["oi"]) / total(1, lambda c: c["oi"]),
            "volume_pcr": total(2, lambda p: p["volume"]) / total(1, lambda c: c["volume"]),
            "change_oi_pcr": put_chg / call_chg if put_chg > 0 and call_chg > 0 else None,
            "window_oi_pcr": sum(p["oi"] for _, _, p in near if p) / sum(c["oi"] for _, c, _ in near if c)}


def _number(text: str) -> float | None:
    return float(text) if text else None


@pytest.mark.parametrize("protocol", ["upstox", "dhan"])
def test_paper_records_each_chain_snapshot_in_pcr_csv_with_the_pcr_of_the_raw_chain(tmp_path, protocol):
    logs, out = tmp_path / "logs", tmp_path / "out"
    env = child_env(PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    # the last hour of the expiry day: four 15-minute candles, the last one closed after the replay ends
    with sandbox(OPTIONS_DATA, logs, speed=0, extra=["--start", "2024-06-27 14:30"]) as box:
        cfg = _paper_yaml(tmp_path / "paper.yaml", box.port, protocol, out)
        with running(["paper", cfg, "--no-dashboard", "--no-report"], logs, "paper", env=env) as paper:
            box.wait_replay_done(timeout=60)
            rows = wait_for(lambda: (out / "pcr.csv").is_file() and [
                r for r in read_csv(out / "pcr.csv") if r["bar"] == "2024-06-27 15:15:00"], 60,
                "the last candle's snapshot", child=paper)
            assert paper.interrupt(timeout=30) == 0, paper.err
        want = _by_hand(*_raw_chain(box.url, protocol), protocol)
    recorded = read_csv(out / "pcr.csv")
    assert [r["bar"][11:16] for r in recorded] == ["14:30", "14:45", "15:00", "15:15"]  # one fetch per candle
    assert {(r["mode"], r["source"], r["underlying"], r["expiry"]) for r in recorded} == {
        ("paper", protocol, UNDER, "2024-06-27")}
    last = rows[-1]
    assert last["window_strikes"] == "5" and last["timestamp"] >= "2024-06-27 15:30:00"
    for name, value in want.items():
        assert _number(last[name]) == pytest.approx(value, rel=1e-5) if value is not None else last[name] == "", name
