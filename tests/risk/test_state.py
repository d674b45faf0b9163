"""The risk state file: HALTED survives restarts, a flatten is never doubled, the loss baseline is kept."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from algocli.broker.costs import PercentCommission
from algocli.broker.fill_models import NextOpen
from algocli.domain.models import Interval, OrderStatus
from algocli.engine.backtest import Backtest
from algocli.engine.paper import PaperEngine
from algocli.errors import UsageError
from algocli.risk import FLATTEN_TAG, RiskConfig, RiskController, RiskState, attach_risk, read_state, write_state
from algocli.sandbox.replay import bar_ticks
from helpers import Scripted
from risk.risk_support import INST, buy, ist, minute_bars

FLAT = [100.0] * 6
FALLING = [100.0, 100.0, 99.0, 98.0, 97.0, 96.0, 95.0, 94.0, 93.0, 92.0, 91.0]


def _backtest(state: Path, script: dict, config: RiskConfig | None = None):
    bars = minute_bars("09:15", FLAT)
    bt = Backtest({INST: bars}, initial_capital=1_000_000)
    bt.add_strategy(Scripted(script), [INST], "s")
    controller = attach_risk(bt.core, config or RiskConfig(), state_path=state)
    return bt.run(), controller


def test_halted_survives_a_new_controller_on_the_same_state_file(tmp_path):
    state = tmp_path / "run" / "risk_state.json"
    first = RiskController(RiskConfig(), state_path=state, clock_ns=lambda: ist("10:00"))
    assert first.halt("manual stop") and not first.halt("again")  # the second halt changes nothing
    on_disk = read_state(state)
    assert (on_disk.state, on_disk.reason, on_disk.source, on_disk.halted_at) == (
        "HALTED", "manual stop", "operator", "2024-01-02T10:00:00+05:30")
    assert sorted(p.name for p in state.parent.iterdir()) == ["risk_state.json"]  # no temporary file left

    # a "restart": a new engine and controller on the same file
    result, controller = _backtest(state, {0: buy(5), 1: buy(5)})
    assert controller.halted
    assert [(o.status, o.reason) for o in result.orders] == [
        (OrderStatus.REJECTED, "risk: trading is halted (manual stop); only orders that reduce a position are allowed"),
    ] * 2
    assert controller.clear()
    assert read_state(state).state == "ACTIVE"
    result, controller = _backtest(state, {0: buy(5)})
    assert not controller.halted and result.orders[0].status is OrderStatus.FILLED


def test_a_damaged_state_file_stops_the_start_with_the_fix(tmp_path):
    state = tmp_path / "risk_state.json"
    state.write_text("{not json", encoding="utf-8")
    with pytest.raises(UsageError, match=r"risk_state\.json: risk state file is damaged .*algo halt CONFIG --clear"):
        RiskController(RiskConfig(), state_path=state, clock_ns=lambda: None)


def test_refresh_notices_a_halt_and_a_clear_written_by_another_process(tmp_path):
    state = tmp_path / "risk_state.json"
    bars = minute_bars("09:15", FLAT)
    bt = Backtest({INST: bars}, initial_capital=1_000_000)
    controller = attach_risk(bt.core, RiskConfig(), state_path=state)
    assert not controller.refresh()  # no file yet: nothing changes
    for _ in range(3):  # two writes within one mtime tick are still told apart (each is a new inode)
        write_state(state, RiskState(state="HALTED", reason="from outside", source="operator"))
        assert controller.refresh() and controller.halted and controller.state.reason == "from outside"
        assert not controller.refresh()
        write_state(state, RiskState())
        assert controller.refresh() and not controller.halted
    assert controller.new_events()[:2] == ["HALTED (from outside)", "cancelled 0 working order(s)"]


def test_an_own_write_does_not_overwrite_a_halt_written_meanwhile(tmp_path):
    state = tmp_path / "risk_state.json"
    controller = RiskController(RiskConfig(max_daily_loss=1000), state_path=state, clock_ns=lambda: ist("10:00"))
    controller.reset_day()  # writes the file
    write_state(state, RiskState(state="HALTED", reason="operator"))  # `algo halt` meanwhile
    controller.reset_day()  # writes again: must merge the halt first, not drop it
    assert read_state(state).halted and controller.halted


def _paper(tmp_path: Path, strategy, config: RiskConfig) -> PaperEngine:
    engine = PaperEngine([INST], interval=Interval.MINUTE_1, initial_capital=1_000_000, fill_model=NextOpen(),
                         cost_model=PercentCommission(0.0), journal_path=tmp_path / "journal.jsonl", name="t")
    engine.add_strategy(strategy, [INST], "s")
    attach_risk(engine.core, config, state_path=tmp_path / "risk_state.json")
    engine.start()
    return engine


def _ticks(closes):
    path = bar_ticks(minute_bars("09:15", closes))
    return [path.tick(i) for i in range(len(path))]


@pytest.mark.parametrize("flag_saved", [True, False], ids=["after-the-flag", "before-the-flag"])
def test_a_restart_mid_flatten_does_not_flatten_twice(tmp_path, flag_saved):
    config = RiskConfig(flatten_on_halt=True)
    ticks = _ticks(FLAT * 2)
    first = _paper(tmp_path, Scripted({0: buy(10), 2: buy(3, limit=50.0)}), config)
    for tick in ticks[:16]:  # candles 0-2 closed: long 10, a resting buy
        first.on_tick(tick)
    assert first.core.ledger.net[INST] == 10
    assert first.core.risk.halt("manual stop")
    flatten = [o for o in first.broker.orders if o.tag == FLATTEN_TAG]
    assert [(o.side.value, o.quantity, o.status) for o in flatten] == [("SELL", 10, OrderStatus.PENDING)]
    assert first.broker.orders[1].status is OrderStatus.CANCELLED
    first.journal.close()  # the process dies before the flatten order fills
    if not flag_saved:  # ... or even before it recorded that the flatten was sent
        raw = json.loads((tmp_path / "risk_state.json").read_text())
        raw["flattened"] = False
        (tmp_path / "risk_state.json").write_text(json.dumps(raw))

    second = _paper(tmp_path, Scripted({}), config)
    assert second.core.risk.halted
    second.core.risk.refresh()  # what `algo paper`'s loop does first: the halt's actions run before any tick
    assert [o.tag for o in second.broker.open_orders()] == [FLATTEN_TAG]
    for tick in ticks[16:]:
        second.on_tick(tick)
    flatten = [o for o in second.broker.orders if o.tag == FLATTEN_TAG]
    assert [(o.side.value, o.quantity, o.status) for o in flatten] == [("SELL", 10, OrderStatus.FILLED)]
    assert second.core.ledger.net[INST] == 0
    assert read_state(tmp_path / "risk_state.json").flattened


def test_the_days_loss_baseline_survives_a_restart(tmp_path):
    """Lose 300 before a restart and 200 after it: the 500 limit still halts, at the backtest's bar."""
    config = RiskConfig(max_daily_loss=500)
    ticks = _ticks(FALLING)
    first = _paper(tmp_path, Scripted({0: buy(100)}), config)
    for tick in ticks[:24]:  # candles 0-4 closed: loss 300
        first.on_tick(tick)
    assert not first.core.risk.halted
    first.journal.close()
    saved = read_state(tmp_path / "risk_state.json")
    assert (saved.day, saved.day_start_equity) == ("2024-01-02", 1_000_000.0)

    second = _paper(tmp_path, Scripted({}), config)
    for tick in ticks[24:]:
        second.on_tick(tick)
    assert second.core.risk.halted
    assert second.core.risk.state.halted_at == "2024-01-02T09:21:00+05:30"


def test_a_backtest_never_touches_the_state_file(tmp_path, monkeypatch):
    """Backtests keep the risk state in memory: a halted file on disk does not leak into them."""
    from algocli.config.run import RunConfig
    from algocli.engine.assemble import assemble_backtest

    data = tmp_path / "data"
    data.mkdir()
    bars = minute_bars("09:15", FALLING)
    lines = ["timestamp,open,high,low,close,volume"]
    from algocli.domain.candle import ns_to_ist

    for k in range(len(bars)):
        lines.append(f"{ns_to_ist(int(bars.ts[k])).strftime('%Y-%m-%d %H:%M:%S')},{bars.open[k]},{bars.high[k]},"
                     f"{bars.low[k]},{bars.close[k]},1000")
    (data / "NSE_EQ_1.csv").write_text("\n".join(lines) + "\n")
    state = tmp_path / "out" / "risk_state.json"
    write_state(state, RiskState(state="HALTED", reason="left over"))
    before = os.stat(state)
    cfg = RunConfig.model_validate({
        "name": "t", "interval": "1m", "initial_capital": 1_000_000, "data": {"feed": "csv", "path": str(data)},
        "strategies": [{"class": "sma_crossover", "instruments": [INST],
                        "params": {"fast_period": 2, "slow_period": 3, "quantity": 1}}],
        "output": {"dir": str(tmp_path / "out")}, "risk": {"max_daily_loss": 1},
    })
    assembled = assemble_backtest(cfg, "t.yaml")
    risk = assembled.backtest.core.risk
    assert risk is not None and not risk.halted and risk.state_path is None
    assembled.backtest.run()
    after = os.stat(state)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def _lose_124_then_halt(tmp_path: Path) -> tuple[PaperEngine, list]:
    """A paper engine long 124 from 100, one candle later 1 lower: equity 999,876, then halted by the operator."""
    config = RiskConfig(max_daily_loss=500)
    ticks = _ticks([100.0, 100.0, 99.0, 98.0, 97.0, 96.0, 95.0, 94.0, 93.0])
    engine = _paper(tmp_path, Scripted({0: buy(124)}), config)
    for tick in ticks[:13]:  # candles 0-2 closed: bought at 100, closed at 99
        engine.on_tick(tick)
    risk = engine.core.risk
    assert engine.core.equity() == pytest.approx(999_876.0)
    assert (risk.state.day, risk.state.day_start_equity) == ("2024-01-02", 1_000_000.0)
    assert risk.halt("manual stop")
    return engine, ticks


def test_clearing_a_halt_keeps_the_days_loss_baseline(tmp_path):
    engine, ticks = _lose_124_then_halt(tmp_path)
    risk = engine.core.risk
    assert risk.clear()
    assert risk.state.day_start_equity == 1_000_000.0
    assert read_state(tmp_path / "risk_state.json").day_start_equity == 1_000_000.0
    for tick in ticks[13:]:
        engine.on_tick(tick)
    # counted from 1,000,000 the loss reaches 500 at the 95 close (bar 6); from 999,876 it would need 94
    assert risk.halted and risk.state.reason == "daily loss 620.00 reached max_daily_loss 500.00"
    assert risk.state.halted_at == "2024-01-02T09:21:00+05:30"


def test_a_clear_written_by_algo_halt_keeps_the_running_engines_baseline(tmp_path):
    engine, _ = _lose_124_then_halt(tmp_path)
    path = tmp_path / "risk_state.json"
    on_disk = read_state(path)
    on_disk.state, on_disk.reason, on_disk.day_start_equity = "ACTIVE", "", None  # an older `algo halt --clear`
    write_state(path, on_disk)
    risk = engine.core.risk
    assert risk.refresh() and not risk.halted
    assert risk.state.day_start_equity == 1_000_000.0
    risk.on_bar()
    assert read_state(path).day_start_equity == 1_000_000.0


def test_only_a_new_day_resets_the_baseline_after_a_clear(tmp_path):
    state = tmp_path / "risk_state.json"
    now = [ist("15:00")]
    bars = minute_bars("09:15", FLAT)
    bt = Backtest({INST: bars}, initial_capital=1_000_000)
    write_state(state, RiskState(state="HALTED", reason="x", day="2024-01-02", day_start_equity=1_000_000.0))
    risk = RiskController(RiskConfig(max_daily_loss=500), state_path=state, clock_ns=lambda: now[0]).attach(bt.core)
    bt.core.ledger.cash = 999_876.0  # down 124 today
    assert risk.clear()
    risk.on_bar()
    assert (risk.state.day, risk.state.day_start_equity) == ("2024-01-02", 1_000_000.0)
    now[0] = ist("09:15", day=1)
    risk.on_bar()
    assert (risk.state.day, risk.state.day_start_equity) == ("2024-01-03", 999_876.0)
    assert read_state(state).day_start_equity == 999_876.0
