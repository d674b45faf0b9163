"""The paper engine: same decisions as the backtest on the same candles, and crash-safe state."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from algocli import BaseStrategy
from algocli.broker.costs import PercentCommission
from algocli.broker.fill_models import NextOpen
from algocli.data.csv_feed import load_csv
from algocli.domain.models import Interval, OrderStatus, Tick
from algocli.domain.session import bucket_start, ist_midnight_ns
from algocli.engine.backtest import Backtest
from algocli.engine.paper import PaperEngine
from algocli.sandbox.replay import bar_ticks
from helpers import Scripted
from strategies.bollinger_reversion import BollingerReversion
from strategies.sma_crossover import SmaCrossover

ROOT = Path(__file__).resolve().parents[2]
INST = "NSE_EQ:2885"


def _day_bars(day: int = 0):
    bars = load_csv(ROOT / "data" / "NSE_EQ_2885.csv", INST)
    return bars.slice(375 * day, 375 * (day + 1))


def _ticks(bars) -> list[Tick]:
    path = bar_ticks(bars)
    return [path.tick(i) for i in range(len(path))]


def _paper(tmp_path: Path, strategy, journal: str = "journal.jsonl") -> PaperEngine:
    engine = PaperEngine([INST], interval=Interval.MINUTE_1, initial_capital=1_000_000, fill_model=NextOpen(),
                         cost_model=PercentCommission(0.0003), journal_path=tmp_path / journal, name="t")
    engine.add_strategy(strategy, [INST], "s")
    engine.start()
    return engine


def _backtest(bars, strategy):
    bt = Backtest({INST: bars}, initial_capital=1_000_000, fill_model=NextOpen(),
                  cost_model=PercentCommission(0.0003))
    bt.add_strategy(strategy, [INST], "s")
    return bt.run()


@pytest.mark.parametrize("make", [
    lambda: SmaCrossover(fast_period=5, slow_period=15, quantity=10),
    lambda: BollingerReversion(period=10, std=1.5, quantity=10),
], ids=["sma-market-orders", "bollinger-limit-orders"])
def test_paper_makes_the_backtests_decisions_at_the_backtests_prices(tmp_path, make):
    bars = _day_bars()
    engine = _paper(tmp_path, make())
    for tick in _ticks(bars):
        engine.on_tick(tick)
    engine.stop(int(bars.ts[-1]) + 60 * 10**9)  # the exchange clock when the last 1m candle has closed
    result = _backtest(bars, make())
    last_bar_ts = int(bars.ts[-1])

    def orders(rows):
        return [(o.order_id, o.side, o.quantity, o.order_type, o.limit_price, o.created_ts)
                for o in rows if o.tag != "end-of-data close" and o.created_ts != last_bar_ts]

    def fills(rows, ids):
        # a limit fill happens inside the bar on a tick, at the bar's start in the backtest: compare bars
        return [(f.order_id, f.side, f.quantity, round(f.price, 6), bucket_start(f.ts, Interval.MINUTE_1))
                for f in rows if f.order_id in ids]

    paper_orders, bt_orders = orders(engine.broker.orders), orders(result.orders)
    assert len(bt_orders) > 5 and paper_orders == bt_orders
    ids = {o[0] for o in bt_orders}
    assert fills(engine.broker.fills, ids) == fills(result.fills, ids)
    # every candle the strategies saw was the original bar
    h = engine.core.histories[INST]
    np.testing.assert_array_equal(h.column("close"), bars.close)
    np.testing.assert_array_equal(h.column("ts"), bars.ts)


def test_restart_from_the_journal_restores_cash_positions_and_orders(tmp_path):
    bars = _day_bars()
    ticks = _ticks(bars)
    first = _paper(tmp_path, SmaCrossover(fast_period=5, slow_period=15, quantity=10))
    for tick in ticks[:900]:
        first.on_tick(tick)
    # leave a resting order behind as well
    first.core.clock.at(first.clock.ts_mv[-1])
    resting = first.broker.submit("s", _limit(1.0), first.core.now_ns, first.core.timeline_bar)
    assert first.broker.fills and resting.status is OrderStatus.OPEN
    second = _paper(tmp_path, SmaCrossover(fast_period=5, slow_period=15, quantity=10))  # same journal: a restart
    assert second.restored["fills"] == len(first.broker.fills)
    assert second.core.ledger.cash == pytest.approx(first.core.ledger.cash, abs=1e-9)
    assert {k: p.quantity for k, p in second.core.ledger.positions.items()} == \
        {k: p.quantity for k, p in first.core.ledger.positions.items()}
    assert [o.order_id for o in second.broker.open_orders()] == [o.order_id for o in first.broker.open_orders()]
    assert second.core.histories[INST].length == first.core.histories[INST].length
    assert [f.fill_id for f in second.broker.fills] == [f.fill_id for f in first.broker.fills]
    # new orders continue the sequence instead of reusing ids
    for tick in ticks[900:]:
        second.on_tick(tick)
    ids = [o.order_id for o in second.broker.orders]
    assert len(ids) == len(set(ids)) and len(ids) > len(first.broker.orders)


def _limit(price: float):
    from algocli import OrderType, Signal, SignalAction

    return Signal(INST, SignalAction.BUY, 1, OrderType.LIMIT, price)


def test_a_torn_last_journal_line_is_ignored(tmp_path):
    bars = _day_bars()
    first = _paper(tmp_path, SmaCrossover(fast_period=5, slow_period=15, quantity=10))
    for tick in _ticks(bars)[:600]:
        first.on_tick(tick)
    journal = tmp_path / "journal.jsonl"
    with open(journal, "ab") as fh:
        fh.write(b'{"k":"fill","fill_id":"s-999999-F1","order_id"')  # the crash hit mid-write
    second = _paper(tmp_path, SmaCrossover(fast_period=5, slow_period=15, quantity=10))
    assert second.restored["fills"] == len(first.broker.fills)
    assert "s-999999-F1" not in second.core.ledger.booked


def test_a_journaled_fill_is_booked_once_even_if_repeated(tmp_path):
    bars = _day_bars()
    first = _paper(tmp_path, SmaCrossover(fast_period=5, slow_period=15, quantity=10))
    for tick in _ticks(bars)[:600]:
        first.on_tick(tick)
    journal = tmp_path / "journal.jsonl"
    fill_lines = [ln for ln in journal.read_bytes().splitlines(keepends=True) if b'"k":"fill"' in ln]
    with open(journal, "ab") as fh:
        fh.write(fill_lines[0])  # a duplicate record, e.g. replayed by hand
    second = _paper(tmp_path, SmaCrossover(fast_period=5, slow_period=15, quantity=10))
    assert second.core.ledger.cash == pytest.approx(first.core.ledger.cash, abs=1e-9)
    assert len(second.broker.fills) == len(first.broker.fills)


def test_limit_order_fills_when_the_live_price_crosses_it(tmp_path):
    bars = _day_bars()
    ticks = _ticks(bars)
    engine = _paper(tmp_path, Scripted({}))
    for tick in ticks[:8]:
        engine.on_tick(tick)
    level = min(t.ltp for t in ticks[8:200]) + 0.05
    engine.core.clock.at(engine.clock.ts_mv[-1])
    order = engine.broker.submit("s", _limit(level), engine.core.now_ns, engine.core.timeline_bar)
    crossing = next(t for t in ticks[8:] if t.ltp <= level)
    for tick in ticks[8:]:
        engine.on_tick(tick)
        if tick is crossing:
            break
    assert order.status is OrderStatus.FILLED
    # it rested through earlier ticks, so the price traded through the limit between two ticks
    assert engine.broker.fills[-1].price == pytest.approx(level)
    assert engine.broker.fills[-1].ts == crossing.ts


def test_a_limit_already_marketable_on_its_first_tick_fills_at_that_tick(tmp_path):
    ticks = _ticks(_day_bars())
    engine = _paper(tmp_path, Scripted({}))
    for tick in ticks[:8]:
        engine.on_tick(tick)
    engine.core.clock.at(engine.clock.ts_mv[-1])
    generous = ticks[8].ltp + 50  # far above the next trade: marketable at once
    order = engine.broker.submit("s", _limit(generous), engine.core.now_ns, engine.core.timeline_bar)
    engine.on_tick(ticks[8])
    assert order.status is OrderStatus.FILLED
    assert engine.broker.fills[-1].price == pytest.approx(ticks[8].ltp)


# --- a candle that has not closed at shutdown -----------------------------------------------

MIN_NS = 60 * 10**9


def _paper_15m(tmp_path: Path) -> PaperEngine:
    engine = PaperEngine([INST], interval=Interval.MINUTE_15, initial_capital=1_000_000, fill_model=NextOpen(),
                         cost_model=PercentCommission(0.0003), journal_path=tmp_path / "journal.jsonl", name="t")
    engine.add_strategy(Scripted({}), [INST], "s")
    engine.start()
    return engine


def _at(bars, hhmm: str) -> int:
    """UTC ns of ``hhmm`` IST on the day of ``bars``."""
    h, m = map(int, hhmm.split(":"))
    return bucket_start(int(bars.ts[0]), Interval.DAY_1) + (h * 60 + m) * MIN_NS  # from IST midnight


def _candles(engine) -> list[tuple]:
    bars = engine.snapshot_bars()[INST]
    return list(zip(bars.ts.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(),
                    bars.close.tolist(), bars.volume.tolist()))


def _expected(bars, *, leave_out: tuple[int, ...] = ()) -> list[tuple]:
    from algocli.data.csv_feed import resample

    b = resample(bars, Interval.MINUTE_15)
    rows = zip(b.ts.tolist(), b.open.tolist(), b.high.tolist(), b.low.tolist(), b.close.tolist(), b.volume.tolist())
    return [r for r in rows if r[0] not in leave_out]


def _stop_at_1107(tmp_path: Path):
    """A 15m run stopped (Ctrl-C) at 11:07, mid-way through the 11:00 candle."""
    bars = _day_bars()
    ticks = _ticks(bars)
    first = _paper_15m(tmp_path)
    cut = next(i for i, t in enumerate(ticks) if t.ts >= _at(bars, "11:07"))
    for tick in ticks[:cut]:
        first.on_tick(tick)
    first.stop(ticks[cut - 1].ts)
    return bars, ticks, cut, first


def test_ctrl_c_mid_candle_keeps_the_unfinished_candle_out_of_history_and_journal(tmp_path):
    bars, _, _, first = _stop_at_1107(tmp_path)
    eleven = _at(bars, "11:00")
    full = _expected(bars)
    assert _candles(first) == [r for r in full if r[0] < eleven]  # 09:15 ... 10:45, each whole
    from algocli.persistence.journal import read_journal

    records = list(read_journal(tmp_path / "journal.jsonl"))
    assert [r["ts"] for r in records if r["k"] == "candle"] == [r[0] for r in full if r[0] < eleven]
    forming, = [r for r in records if r["k"] == "forming"]
    assert (forming["instrument"], forming["start"], forming["end"]) == (INST, eleven, eleven + 15 * MIN_NS)
    assert any("candle of 2024-06-10 11:00 IST had not closed" in n for n in first.notes), first.notes


def test_a_resume_within_the_interval_continues_the_unfinished_candle(tmp_path):
    bars, ticks, cut, _ = _stop_at_1107(tmp_path)
    second = _paper_15m(tmp_path)  # the same journal: a resume
    for tick in ticks[cut:]:
        second.on_tick(tick)
    second.stop(int(bars.ts[-1]) + MIN_NS)
    assert _candles(second) == _expected(bars)  # the 11:00 candle whole: its open, close and volume


def test_a_resume_after_the_interval_drops_the_unfinished_candle(tmp_path):
    bars, ticks, _, _ = _stop_at_1107(tmp_path)
    later = next(i for i, t in enumerate(ticks) if t.ts >= _at(bars, "11:30"))
    second = _paper_15m(tmp_path)
    for tick in ticks[later:]:
        second.on_tick(tick)
    second.stop(int(bars.ts[-1]) + MIN_NS)
    # 11:00 never closed and 11:15 was never seen; the candles from 11:30 on are whole, volume too
    assert _candles(second) == _expected(bars, leave_out=(_at(bars, "11:00"), _at(bars, "11:15")))
    assert second.aggregator.dropped == 1
    assert any("1 candle(s) left unfinished by the previous run were dropped" in n for n in second.notes)


@pytest.mark.parametrize(("now", "kept"), [("11:15:00", True), ("11:14:59.5", False)])
def test_at_shutdown_a_candle_is_kept_once_its_end_has_passed(tmp_path, now, kept):
    bars = _day_bars()
    engine = _paper_15m(tmp_path)
    for tick in _ticks(bars):
        if tick.ts >= _at(bars, "11:15"):
            break
        engine.on_tick(tick)
    h, m, s = now.split(":")
    engine.stop(_at(bars, f"{h}:{m}") + int(float(s) * 1e9))  # no grace at shutdown: no tick can come
    assert (_candles(engine)[-1][0] == _at(bars, "11:00")) is kept


# --- Indian charges, lots and ticks in paper (issue 11) ------------------------------------------


def _paper_indian(tmp_path: Path, script: dict, *, product: str = "CNC", metadata=None, journal="journal.jsonl",
                  inst: str = INST) -> PaperEngine:
    from algocli.market.charges import IndianCharges

    engine = PaperEngine([inst], interval=Interval.MINUTE_1, initial_capital=10_000_000, fill_model=NextOpen(),
                         cost_model=IndianCharges("dhan"), journal_path=tmp_path / journal, name="t",
                         metadata=metadata, default_product=product)
    engine.add_strategy(Scripted(script), [inst], "s")
    engine.start()
    return engine


def _charges(fills) -> list[tuple]:
    return [(f.fill_id, f.brokerage, f.stt, f.exchange_txn, f.ipft, f.sebi, f.stamp, f.dp, f.gst, f.commission)
            for f in fills]


def test_a_resumed_paper_run_restores_each_fills_charges_and_charges_the_rest_of_the_day_the_same(tmp_path):
    ticks = _ticks(_day_bars())
    script = {2: lambda ctx, c: ctx.buy(INST, 10), 150: lambda ctx, c: ctx.sell(INST, 10)}
    whole = _paper_indian(tmp_path / "whole", script)
    for tick in ticks:
        whole.on_tick(tick)
    first = _paper_indian(tmp_path / "cut", script)
    for tick in ticks[:400]:  # the buy has filled; the sell comes after the restart
        first.on_tick(tick)
    assert len(first.broker.fills) == 1 and first.broker.fills[0].stt > 0  # a CNC buy: delivery STT, for now
    second = _paper_indian(tmp_path / "cut", script)
    assert _charges(second.broker.fills) == _charges(first.broker.fills)  # the journal kept every kind
    for tick in ticks[400:]:
        second.on_tick(tick)
    assert len(whole.broker.fills) == 2
    # the sell squares the restored buy: the same day's CNC round trip is charged as intraday after the
    # restart exactly as without one (its STT reverses the buy's delivery STT)
    assert _charges(second.broker.fills) == _charges(whole.broker.fills)
    buy, sell = whole.broker.fills
    assert buy.stt + sell.stt == pytest.approx(round(sell.price * 10 * 0.025 / 100 + 1e-9, 2))


def test_paper_rejects_an_fno_order_off_the_lot_with_the_lot_size(tmp_path):
    from datetime import date

    from algocli.domain.instrument import Instrument

    fut = "NSE:RELIANCE 27 JUN 2024 FUT"
    meta = {fut: Instrument(fut, exchange="NSE", kind="FUT", symbol="RELIANCE", expiry=date(2024, 6, 27),
                            lot_size=250, tick_size=0.05)}
    engine = _paper_indian(tmp_path, {2: lambda ctx, c: ctx.buy(fut, 100), 3: lambda ctx, c: ctx.buy(fut, 250)},
                           product="MARGIN", metadata=meta, inst=fut)
    for tick in _ticks(_day_bars())[:40]:
        engine.on_tick(Tick(fut, tick.ts, tick.ltp, tick.ltq, tick.volume))
    off, whole = engine.broker.orders
    assert off.status is OrderStatus.REJECTED and "whole number of lots of 250" in off.reason
    assert whole.status is OrderStatus.FILLED and engine.broker.fills[0].quantity == 250


def _with_rules(path: Path) -> Path:
    """``path``'s run definition with Indian charges and the market-rules strategy."""
    import yaml

    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["broker"] = {"name": "simulated", "charges": "dhan", "product": "INTRADAY"}
    doc["strategies"] = [{"class": "engine.rules_strategies:OffTickThenRoundTrip", "instruments": [INST],
                          "id": "rules", "params": {"quantity": 10}}]
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_paper_over_the_sandbox_rejects_off_tick_and_books_the_backtests_charges(tmp_path):
    import asyncio

    from algocli.config.run import load_run_config
    from algocli.domain.modes import RunMode
    from algocli.engine.assemble import assemble_backtest
    from algocli.engine.runtime import load_live_run, open_session, run_session
    from cli.paper_support import sandbox, write_backtest_yaml, write_one_day, write_paper_yaml

    day = write_one_day(tmp_path / "day").parent
    with sandbox(day, tmp_path / "logs", speed=30_000) as box:
        cfg = _with_rules(write_paper_yaml(tmp_path / "paper.yaml", port=box.port, out_dir=tmp_path / "paper"))
        session = open_session(load_live_run(cfg, "paper"), RunMode.PAPER)
        asyncio.run(run_session(session, duration=3.0))
    paper = session.engine.broker
    off_tick = paper.orders[0]
    assert off_tick.status is OrderStatus.REJECTED and "is not on the tick of" in off_tick.reason
    bt_cfg = _with_rules(write_backtest_yaml(tmp_path / "bt.yaml", data_dir=day, out_dir=tmp_path / "bt"))
    backtest = assemble_backtest(load_run_config(bt_cfg), str(bt_cfg)).backtest.run()
    assert backtest.orders[0].status is OrderStatus.REJECTED and backtest.orders[0].reason == off_tick.reason
    assert len(paper.fills) == 2 and all(f.stt or f.stamp for f in paper.fills)
    assert _charges(paper.fills) == _charges(backtest.fills[:2])  # the same charges per fill in both modes


def test_a_fill_after_the_last_closed_candle_counts_at_the_last_bar(tmp_path):
    """A fill on the first tick of a candle that never closes (the run stops inside it, or a live
    fill is reconciled on a restart with no candle after it) is booked at the last bar of the
    result: its cash is in the final equity and the round trip's exposure is computed."""
    from algocli.engine.results import build_result

    bars = _day_bars()
    script = {1: lambda ctx, c: ctx.buy(INST, 10), 3: lambda ctx, c: ctx.sell(INST, 10)}
    engine = _paper(tmp_path, Scripted(script))
    ticks = _ticks(bars.slice(0, 5))
    per_bar = len(ticks) // 5
    for tick in ticks[:4 * per_bar + 1]:  # four whole minutes, then the open of the fifth: the sell fills
        engine.on_tick(tick)
    engine.stop(int(bars.ts[4]) + 30 * 10**9)  # inside the fifth minute: that candle never closed
    ts = engine.timeline()
    assert len(ts) == 4 and [f.bar for f in engine.broker.fills] == [2, 4]
    engine.bars = engine.snapshot_bars()
    result = build_result(engine, ts)
    buy, sell = engine.broker.fills
    cash = 1_000_000 - buy.quantity * buy.price - buy.commission + sell.quantity * sell.price - sell.commission
    assert result.cash[-1] == pytest.approx(cash) and result.equity[-1] == pytest.approx(cash)
    assert result.metrics["exposure_time_pct"] == pytest.approx(50.0)  # bars 2 and 3 of 4


def test_a_fill_in_a_candle_the_kill_cut_short_is_booked_on_that_candle_after_the_resume(tmp_path):
    """kill -9 after a fill, before its candle closed: the resumed run forms that candle from the
    ticks after the restart, and the fill (and so the equity curve) sits on it, as without the kill,
    not on the candle before, which closed before the fill."""
    from algocli.engine.results import build_result

    bars = _day_bars().slice(0, 12)
    ticks = _ticks(bars)
    script = {2: lambda ctx, c: ctx.buy(INST, 10), 6: lambda ctx, c: ctx.sell(INST, 10)}
    runs = {}
    for name in ("whole", "killed"):
        engine = _paper(tmp_path / name, Scripted(script))
        start = 0
        if name == "killed":  # the buy fills on minute 3's first tick; the process dies inside minute 3
            start = next(i for i, t in enumerate(ticks) if t.ts > int(bars.ts[3]) + 20 * 10**9)
            for tick in ticks[:start]:
                engine.on_tick(tick)
            assert len(engine.broker.fills) == 1 and len(engine.timeline()) == 3  # no stop(): nothing more journaled
            engine = _paper(tmp_path / name, Scripted(script))  # the same journal: the restart
        for tick in ticks[start:]:
            engine.on_tick(tick)
        engine.stop(int(bars.ts[-1]) + 60 * 10**9)
        engine.bars = engine.snapshot_bars()
        runs[name] = (engine, build_result(engine, engine.timeline()))
    (whole, full), (killed, resumed) = runs["whole"], runs["killed"]
    assert [f.bar for f in killed.broker.fills] == [f.bar for f in whole.broker.fills] == [3, 7]
    np.testing.assert_allclose(resumed.equity, full.equity, rtol=0, atol=1e-6)


# --- several instruments: every candle of a period before the strategies, options settled at the close -----

OPTIONS = ROOT / "data" / "options"
UNDER = "NSE:NIFTY 50"
CALL = "NSE:NIFTY 27 JUN 2024 23500 CE"  # near the money all week


def _option_bars(first: str = "2024-06-26"):
    from algocli.instruments.table import read_instruments

    meta = {i.hrn: i for i in read_instruments(OPTIONS / "instruments.csv") if i.hrn in (UNDER, CALL)}
    files = {UNDER: "IDX_I_13.csv", CALL: f"NSE_FNO_{meta[CALL].dhan_id.split(':')[1]}.csv"}
    start = ist_midnight_ns(date.fromisoformat(first))
    out = {}
    for inst, name in files.items():
        b = load_csv(OPTIONS / name, inst)
        out[inst] = b.slice(int(np.searchsorted(b.ts, start)), len(b))
    return out, meta


def _merged_ticks(bars) -> list[Tick]:
    """Every instrument's ticks merged by exchange time, ties in the bars' order: ``algo sandbox``'s replay."""
    merged = []
    for k, (inst, b) in enumerate(bars.items()):
        path = bar_ticks(b, segment="FNO")
        merged += [(int(path.ts[i]), k, path.tick(i)) for i in range(len(path))]
    return [t for _, _, t in sorted(merged, key=lambda x: x[:2])]


class _ReadsTheOption(BaseStrategy):
    """On each index candle: note the option's last candle and the position; buy the call on the 3rd
    candle and sell it on the ``exit_at``-th (None: hold it to expiry)."""

    def __init__(self, exit_at: int | None = 6) -> None:
        super().__init__()
        self.exit_at = exit_at
        self.seen: list[tuple] = []

    def on_candle(self, candle):
        ctx = self.context
        last, pos = ctx.get_candle(CALL), ctx.get_position(CALL)
        self.seen.append((candle.timestamp, None if last is None else (last.timestamp, last.close),
                          None if pos is None else pos.quantity))
        if len(self.seen) == 3:
            ctx.buy(CALL, 50, tag="entry")
        elif len(self.seen) == self.exit_at:
            ctx.close_position(CALL, tag="exit")


def _option_paper(tmp_path: Path, bars, meta, strategy, *, ordered: bool) -> PaperEngine:
    from algocli.market.charges import IndianCharges

    engine = PaperEngine(list(bars), interval=Interval.MINUTE_15, initial_capital=1_000_000, fill_model=NextOpen(),
                         cost_model=IndianCharges("dhan"), journal_path=tmp_path / f"j{ordered}.jsonl", name="t",
                         metadata=meta, default_product="MARGIN")
    engine.feed_in_order(ordered)
    engine.add_strategy(strategy, [UNDER], "s")
    engine.start()
    return engine


def _option_backtest(bars, meta, strategy):
    from algocli.market.charges import IndianCharges

    bt = Backtest(dict(bars), initial_capital=1_000_000, fill_model=NextOpen(), cost_model=IndianCharges("dhan"),
                  instruments=meta, default_product="MARGIN", interval=Interval.MINUTE_15)
    bt.add_strategy(strategy, [UNDER], "s")
    return bt, bt.run()


def _fills(fills, orders) -> list[tuple]:
    tags = {o.order_id: o.tag for o in orders}
    return [(f.instrument, f.side.value, f.quantity, round(f.price, 2), f.ts, f.stt, tags[f.order_id]) for f in fills]


@pytest.mark.parametrize("ordered", [True, False], ids=["replay-in-order", "live-with-grace"])
def test_a_strategy_on_the_index_candle_reads_the_options_candle_of_the_same_period(tmp_path, ordered):
    bars, meta = _option_bars()
    bt, result = _option_backtest(bars, meta, bt_strategy := _ReadsTheOption())
    engine = _option_paper(tmp_path, bars, meta, strategy := _ReadsTheOption(), ordered=ordered)
    for tick in _merged_ticks(bars):
        engine.on_tick(tick)
    engine.stop(int(bars[UNDER].ts[-1]) + 20 * 60 * 10**9)
    assert engine.error is None
    # the option's candle of the index candle's own period, as in the backtest (not the one before)
    assert len(strategy.seen) == len(bars[UNDER]) - 1  # the last candle closes at the stop, with no trading
    assert strategy.seen == bt_strategy.seen[:-1]
    assert all(opt[0] == ts for ts, opt, _ in strategy.seen)
    if ordered:  # an in-order replay also fills each order on the option's next open, the backtest's price
        assert _fills(engine.broker.fills, engine.broker.orders) == _fills(result.fills, result.orders)


@pytest.mark.parametrize("by", ["clock", "stop"])
def test_options_settle_at_the_expiry_close_as_in_the_backtest(tmp_path, by):
    bars, meta = _option_bars("2024-06-27")
    bt, result = _option_backtest(bars, meta, bt_strategy := _ReadsTheOption(exit_at=None))
    expected = _fills(result.fills, result.orders)
    assert [r[-1] for r in expected] == ["entry", "expiry"]
    strategy = _ReadsTheOption(exit_at=None)
    engine = _option_paper(tmp_path, bars, meta, strategy, ordered=True)
    for tick in _merged_ticks(bars):  # the replay's last tick: 15:29:59
        engine.on_tick(tick)
    close = int(bars[UNDER].ts[-1]) + 15 * 60 * 10**9
    engine.on_time(close + 1)  # within the grace nothing is released yet
    assert [f.instrument for f in engine.broker.fills] == [CALL]
    if by == "clock":  # the run loop's clock passes the grace: the last candle closes, the option settles first
        engine.on_time(close + 3 * 10**9)
        assert strategy.seen == bt_strategy.seen  # the strategy saw the position settled, as in the backtest
    engine.stop(close + 5 * 10**9)  # no tick comes after the close: stopping settles what has expired
    assert _fills(engine.broker.fills, engine.broker.orders) == expected
    settled = expected[-1]
    assert settled[3] == round(max(0.0, float(bars[UNDER].close[-1]) - meta[CALL].strike), 2)
    assert settled[4] == int(bars[UNDER].ts[-1])  # stamped with the last candle, whose close settles it


def test_an_option_settled_on_data_that_end_before_the_close_is_noted_as_in_the_backtest(tmp_path):
    # the expiry day's data end at 14:00 (a download taken during the session): the run stops after
    # the close and settles against the 13:45 candle's close, and says so, as the backtest does
    bars, meta = _option_bars("2024-06-27")
    cut = _at(bars[UNDER], "14:00")
    bars = {inst: b.slice(0, int(np.searchsorted(b.ts, cut))) for inst, b in bars.items()}
    bt, result = _option_backtest(bars, meta, _ReadsTheOption(exit_at=None))
    engine = _option_paper(tmp_path, bars, meta, _ReadsTheOption(exit_at=None), ordered=True)
    for tick in _merged_ticks(bars):
        engine.on_tick(tick)
    engine.stop(_at(bars[UNDER], "15:45"))
    assert _fills(engine.broker.fills, engine.broker.orders) == _fills(result.fills, result.orders)
    last = float(bars[UNDER].close[-1])
    note = (f"{CALL} was settled at expiry against {UNDER} at {last:,.2f}, the close of its last bar on 2024-06-27 "
            "(13:45-14:00), not at the 15:30 session close")
    assert [n for n in engine.notes if n.startswith(note)] == [n for n in bt.notes if n.startswith(note)] != []


def test_a_future_settled_on_a_day_whose_ticks_stopped_before_the_close_is_noted(tmp_path):
    from algocli.domain.instrument import Instrument

    fut = "NSE:RELIANCE 10 JUN 2024 FUT"  # expires on the first day of the data, whose ticks stop at 14:00
    meta = {fut: Instrument(fut, exchange="NSE", kind="FUT", symbol="RELIANCE", expiry=date(2024, 6, 10),
                            lot_size=250, tick_size=0.05)}
    engine = _paper_indian(tmp_path, {2: lambda ctx, c: ctx.buy(fut, 250)}, product="MARGIN", metadata=meta, inst=fut)
    day, next_day = _day_bars(0), _day_bars(1)
    cut = _at(day, "14:00")
    for tick in [t for t in _ticks(day) if t.ts < cut] + _ticks(next_day)[:3]:  # the next morning's ticks settle it
        engine.on_tick(Tick(fut, tick.ts, tick.ltp, tick.ltq, tick.volume))
    engine.stop(_at(next_day, "09:20"))
    settled = [f for f in engine.broker.fills if f.side.value == "SELL"]
    last = float(day.close[int(np.searchsorted(day.ts, cut)) - 1])  # the 13:59 candle's close
    assert [(f.quantity, f.price) for f in settled] == [(250, last)]
    assert [n for n in engine.notes if "was settled at expiry" in n] == [
        f"{fut} was settled at expiry against {fut} at {last:,.2f}, the close of its last bar on 2024-06-10 "
        "(13:59-14:00), not at the 15:30 session close: the data of that day end early and nothing later is known"]


def test_a_stop_inside_a_period_names_its_unfinished_candles_in_one_note(tmp_path):
    bars, meta = _option_bars("2024-06-27")
    engine = _option_paper(tmp_path, bars, meta, _ReadsTheOption(), ordered=True)
    cut = int(bars[UNDER].ts[3]) + 7 * 60 * 10**9  # 7 minutes into the fourth 15-minute candle
    for tick in _merged_ticks(bars):
        if tick.ts >= cut:
            break
        engine.on_tick(tick)
    engine.stop(cut)
    unfinished = [n for n in engine.notes if "had not closed" in n]
    assert unfinished == [f"the candles of 2 instruments ({UNDER}, {CALL}) of 2024-06-27 10:00 IST had not closed when "
                          "the run stopped: they are left out; a resume within the interval continues them"]
