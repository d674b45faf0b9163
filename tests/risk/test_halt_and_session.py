"""The daily loss halt (and its one flatten), the entry cut-off and the intraday square-off."""

from __future__ import annotations

import pytest

from algocli.domain.models import OrderStatus
from algocli.risk import FLATTEN_TAG, SQUARE_OFF_TAG
from risk.risk_support import bars_at, buy, each, ist, minute_bars, orders_csv, run, sell, statuses

# bought 100 at 100 on bar 1's open; every later bar closes 1 lower, so bar k's loss is 100 * (k - 1)
FALLING = [100.0, 100.0, 99.0, 98.0, 97.0, 96.0, 95.0, 94.0, 93.0, 92.0, 91.0]
HALT_REASON = "daily loss 500.00 reached max_daily_loss 500.00"


@pytest.mark.parametrize("flatten", [True, False])
def test_daily_loss_halts_cancels_and_refuses_new_exposure(tmp_path, flatten):
    script = {
        0: buy(100),
        3: buy(1, limit=50.0),   # resting when the halt comes: cancelled
        7: buy(1),               # after the halt: refused
        8: sell(10),             # reduces only while the position is still open
    }
    risk = {"max_daily_loss": 500, "flatten_on_halt": flatten}
    result, strat, controller = run(script, risk, minute_bars("09:15", FALLING))
    rows = orders_csv(result, tmp_path)
    assert controller.halted and controller.state.reason == HALT_REASON
    assert controller.state.halted_at == "2024-01-02T09:21:00+05:30"  # bar 6, close 95: loss 500
    by_tag = [r for r in rows if r["tag"] == FLATTEN_TAG]
    resting = rows[1]
    assert (resting["status"], resting["reason"]) == ("CANCELLED", f"risk: halted ({HALT_REASON})")
    assert resting["updated_time"] == "2024-01-02T09:21:00+05:30"
    refused, = [r for r in rows if r["created_time"] == "2024-01-02T09:22:00+05:30"]  # bar 7's buy
    assert (refused["side"], refused["quantity"], refused["status"]) == ("BUY", "1", "REJECTED")
    assert refused["reason"] == (f"risk: trading is halted ({HALT_REASON}); "
                                 "only orders that reduce a position are allowed")
    if flatten:
        # one closing order, sent on the halting bar, filled at the next open, never repeated
        assert [(r["side"], r["quantity"], r["status"], r["created_time"], r["average_price"]) for r in by_tag] == [
            ("SELL", "100", "FILLED", "2024-01-02T09:21:00+05:30", "95.0")]
        assert [f.quantity for f in strat.fills] == [100, 100]  # the strategy hears about the flatten fill
        assert rows[-1]["side"] == "SELL" and rows[-1]["status"] == "REJECTED"  # flat: a sell would open a short
        assert not any(r["tag"] == "end-of-data close" for r in rows)
    else:
        assert by_tag == []
        strategy_sell = [r for r in rows if r["side"] == "SELL" and r["tag"] == ""]
        assert [(r["quantity"], r["status"]) for r in strategy_sell] == [("10", "FILLED")]


def test_daily_loss_is_measured_from_the_start_of_each_ist_day():
    # day 1 loses 400, day 2 another 400: 800 in all, but never 500 within one IST day
    ts = [ist("15:27"), ist("15:28"), ist("15:29"), ist("09:15", day=1), ist("09:16", day=1), ist("09:17", day=1)]
    two_days = bars_at(ts, [100.0, 100.0, 96.0, 96.0, 92.0, 92.0])
    _, _, controller = run({0: buy(100)}, {"max_daily_loss": 500}, two_days)
    assert not controller.halted
    one_day = minute_bars("09:15", [100.0, 100.0, 96.0, 96.0, 92.0, 92.0])  # the same path within a day
    _, _, controller = run({0: buy(100)}, {"max_daily_loss": 500}, one_day)
    assert controller.halted and controller.state.reason.startswith("daily loss 800.00")


def test_daily_loss_counts_realised_losses_too():
    # buy 100 at 100, sell at 97 (realised -300), buy again at 97, price 95 (unrealised -200): halt
    closes = [100.0, 100.0, 97.0, 97.0, 97.0, 95.0, 95.0]
    script = {0: buy(100), 2: sell(100), 3: buy(100)}
    _, _, controller = run(script, {"max_daily_loss": 500}, minute_bars("09:15", closes))
    assert controller.halted and controller.state.reason.startswith("daily loss 500.00")
    _, _, controller = run(script, {"max_daily_loss": 501}, minute_bars("09:15", closes))
    assert not controller.halted


def test_entry_cutoff_allows_only_orders_that_reduce(tmp_path):
    ts = [ist("14:58"), ist("14:59"), ist("15:00"), ist("15:01"), ist("15:02"),
          ist("09:15", day=1), ist("09:16", day=1)]
    script = {
        0: buy(5),
        1: buy(5),                              # 14:59: still before the cut-off
        2: each(buy(1), sell(3), sell(8), sell(7)),  # 15:00: entry refused; 3 + 7 close the 10; 3 + 8 would not
        3: sell(1),                             # flat: a sell would open a short
        5: buy(2),                              # the next morning
    }
    result, _, _ = run(script, {"entry_cutoff": "15:00"}, bars_at(ts, [100.0] * 7))
    rows = orders_csv(result, tmp_path)
    assert statuses(rows) == [
        ("BUY", "5", "FILLED"), ("BUY", "5", "FILLED"), ("BUY", "1", "REJECTED"), ("SELL", "3", "FILLED"),
        ("SELL", "8", "REJECTED"), ("SELL", "7", "FILLED"), ("SELL", "1", "REJECTED"), ("BUY", "2", "FILLED"),
    ]
    assert {r["reason"] for r in rows if r["status"] == "REJECTED"} == {
        "risk: after the 15:00 IST entry cut-off only orders that reduce a position are allowed"}


def test_square_off_flattens_intraday_positions_once_a_day_and_denies_entries(tmp_path):
    day = ["15:12", "15:13", "15:14", "15:15", "15:16", "15:17", "15:18"]
    ts = [ist(t) for t in day] + [ist(t, day=1) for t in day]
    script = {
        0: buy(10),
        1: buy(5, limit=50.0),     # resting entry: cancelled at the square-off
        2: sell(3, limit=200.0),   # resting exit: cancelled too, or it would open a short later
        3: buy(1),                 # 15:15: refused
        5: sell(1),                # flat: refused
        7: buy(4),                 # next day 15:12: allowed again
        10: buy(1),                # next day 15:15: refused
    }
    result, strat, controller = run(script, {"square_off": "15:15"}, bars_at(ts, [100.0] * 14))
    rows = orders_csv(result, tmp_path)
    squared = [(r["side"], r["quantity"], r["status"], r["created_time"]) for r in rows if r["tag"] == SQUARE_OFF_TAG]
    assert squared == [("SELL", "10", "FILLED", "2024-01-02T15:15:00+05:30"),
                       ("SELL", "4", "FILLED", "2024-01-03T15:15:00+05:30")]
    assert [(r["limit_price"], r["status"], r["reason"]) for r in rows if r["limit_price"]] == [
        ("50.0", "CANCELLED", "risk: 15:15 IST square-off"), ("200.0", "CANCELLED", "risk: 15:15 IST square-off")]
    refused = [(r["side"], r["quantity"], r["created_time"]) for r in rows if r["status"] == "REJECTED"]
    assert refused == [("BUY", "1", "2024-01-02T15:15:00+05:30"), ("SELL", "1", "2024-01-02T15:17:00+05:30"),
                       ("BUY", "1", "2024-01-03T15:15:00+05:30")]
    assert {r["reason"] for r in rows if r["status"] == "REJECTED"} == {
        "risk: after the 15:15 IST square-off only orders that reduce an intraday position are allowed"}
    assert not any(r["tag"] == "end-of-data close" for r in rows)  # flat at the end of both days
    assert strat.context.get_position("NSE_EQ:1") is None
    assert controller.state.square_off_day == "2024-01-03"


def test_on_25_minute_candles_the_square_off_comes_on_the_candle_that_closes_after_it(tmp_path):
    """The 15:05 candle closes at 15:30: a 15:20 square-off falls inside it, so the position is closed
    when it closes (filled at the next open), not carried to a catch-up the next morning, and an
    entry decided on it is refused."""
    from algocli.domain.models import Interval

    day = ["14:15", "14:40", "15:05"]
    ts = [ist(t) for t in day] + [ist(t, day=1) for t in day]
    script = {0: buy(10), 2: buy(1)}
    result, _, controller = run(script, {"square_off": "15:20"}, bars_at(ts, [100.0] * 6),
                                interval=Interval.MINUTE_25)
    rows = orders_csv(result, tmp_path)
    squared = [(r["side"], r["quantity"], r["status"], r["created_time"]) for r in rows if r["tag"] == SQUARE_OFF_TAG]
    assert squared == [("SELL", "10", "FILLED", "2024-01-02T15:05:00+05:30")]
    assert [(r["side"], r["quantity"], r["status"]) for r in rows if r["tag"] != SQUARE_OFF_TAG] == [
        ("BUY", "10", "FILLED"), ("BUY", "1", "REJECTED")]
    assert [e[:34] for e in controller.events] == ["square-off 15:20 IST on 2024-01-02", "square-off 15:20 IST on 2024-01-03"]
    assert not any("missed" in e for e in controller.events)


def test_square_off_leaves_non_intraday_instruments_alone():
    """With a broker whose product for the instrument is CNC (delivery), nothing is squared off."""
    from algocli.engine.backtest import Backtest
    from algocli.risk import RiskConfig, attach_risk
    from helpers import Scripted

    ts = [ist(t) for t in ["15:13", "15:14", "15:15", "15:16", "15:17"]]
    bars = bars_at(ts, [100.0] * 5)
    bt = Backtest({bars.instrument: bars}, initial_capital=1_000_000)
    bt.core.broker.products = {bars.instrument: "CNC"}
    strat = Scripted({0: buy(10), 3: buy(1)})
    bt.add_strategy(strat, [bars.instrument], "s")
    attach_risk(bt.core, RiskConfig(square_off="15:15"), state_path=None)
    result = bt.run()
    assert [o.tag for o in result.orders] == [None, None, "end-of-data close"]
    assert [o.status for o in result.orders[:2]] == [OrderStatus.FILLED, OrderStatus.FILLED]


def test_on_a_muhurat_evening_the_square_off_keeps_its_distance_from_the_close(tmp_path):
    """Muhurat trading on Sunday 2023-11-12 ran 18:15-19:15 IST (NSE circular in the shipped
    calendar). A 15:15 square-off, 15 minutes before the regular close, is at 19:00 that evening:
    the strategy can trade from 18:15, and is squared off 15 minutes before the special close."""
    muhurat = -51  # days from 2024-01-02 back to 2023-11-12
    times = ["18:15", "18:16", "18:30", "18:59", "19:00", "19:01"]
    ts = [ist(t, day=muhurat) for t in times]
    script = {1: buy(10), 5: buy(1)}  # 18:16 enters; 19:01, after the square-off, is refused
    result, strat, controller = run(script, {"square_off": "15:15"}, bars_at(ts, [100.0] * len(ts)))
    rows = orders_csv(result, tmp_path)
    assert [(r["side"], r["status"]) for r in rows if r["tag"] != SQUARE_OFF_TAG] == [("BUY", "FILLED"),
                                                                                     ("BUY", "REJECTED")]
    squared = [(r["quantity"], r["created_time"]) for r in rows if r["tag"] == SQUARE_OFF_TAG]
    assert squared == [("10", "2023-11-12T19:00:00+05:30")]
    assert controller.state.square_off_day == "2023-11-12"


@pytest.mark.parametrize("square_off, warned", [("15:20", True), ("15:05", False)])
def test_a_square_off_inside_the_days_last_candle_is_warned_of_and_the_suggested_time_keeps_the_day(
        tmp_path, square_off, warned):
    """25-minute candles: 15:20 lies inside the 15:05-15:30 candle, so its square-off comes at 15:30
    and fills at the next open (said before the run); at 15:05, the time it suggests, the 14:40
    candle's close reaches it and the closing orders fill at 15:05 the same day."""
    import pandas as pd
    import yaml

    from cli.cli_support import REPO_ROOT
    from cli.paper_support import algo

    cfg = yaml.safe_load((REPO_ROOT / "configs" / "intraday.yaml").read_text(encoding="utf-8"))
    cfg["data"]["path"] = str(REPO_ROOT / "data")
    cfg["risk"] = {"square_off": square_off}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    done = algo(["backtest", path, "-q", "--no-report", "-o", tmp_path / "out"])
    assert done.returncode == 0, done.stderr
    assert ("falls inside the day's last 25-minute candle (15:05-15:30)" in done.stderr) is warned, done.stderr
    orders = pd.read_csv(tmp_path / "out" / "orders.csv")
    squared = orders[orders["tag"] == SQUARE_OFF_TAG]
    assert len(squared), "the run must hold a position into a square-off for this to mean anything"
    same_day = squared["created_time"].str[:10] == squared["updated_time"].str[:10]
    assert bool(same_day.all()) is not warned
