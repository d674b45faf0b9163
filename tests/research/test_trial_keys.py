"""A trial's journal key covers what its figures depend on: an edited strategy (its file or a module
of its package) or charges table runs the trials again, with the new figures."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import yaml

from algocli.research import Space, run_trials
from algocli.research.outputs import trials_csv

REPO = Path(__file__).resolve().parents[2]

STRATEGY = '''
from algocli import BaseStrategy, Signal, SignalAction, StrategyParams
from mystrats.sizing import FACTOR


class Cross(BaseStrategy):
    class Params(StrategyParams):
        fast_period: int = 10
        slow_period: int = 20
        quantity: int = 10

    def on_init(self):
        inst = self.instruments[0]
        self._fast = self.context.line("SMA", inst, timeperiod=self.params.fast_period)
        self._slow = self.context.line("SMA", inst, timeperiod=self.params.slow_period)

    def on_candle(self, candle):
        cross, pos = self._fast.cross(self._slow), self.context.get_position(candle.instrument)
        if cross > 0 and (pos is None or pos.quantity <= 0):
            return Signal(candle.instrument, SignalAction.BUY, {buy} * FACTOR * self.params.quantity)
        if cross < 0 and pos is not None and pos.quantity > 0:
            return Signal(candle.instrument, SignalAction.SELL, pos.quantity)
        return None
'''


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A strategy package ``mystrats`` in tmp_path (the class in cross.py, a helper in sizing.py),
    imported afresh after each edit as a new ``algo`` process would."""
    folder = tmp_path / "mystrats"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # an edit within the second must not meet a stale .pyc

    def write(buy: int = 1, factor: int = 1) -> None:
        (folder / "cross.py").write_text(STRATEGY.replace("{buy}", str(buy)))
        (folder / "sizing.py").write_text(f"FACTOR = {factor}\n")
        for name in [m for m in sys.modules if m == "mystrats" or m.startswith("mystrats.")]:
            monkeypatch.delitem(sys.modules, name)
        importlib.invalidate_caches()

    write()
    yield write
    for name in [m for m in sys.modules if m == "mystrats" or m.startswith("mystrats.")]:
        del sys.modules[name]


def _yaml(tmp_path, **broker) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / "sma.yaml").read_text(encoding="utf-8"))
    cfg["data"].update(path=str(REPO / "data"), start="2019-01-01", end="2020-12-31")
    cfg["broker"] = {"name": "simulated", **(broker or {"commission_rate": 0.0003})}
    cfg["strategies"] = [{"class": "mystrats.cross:Cross", "instruments": ["NSE:HDFCBANK"]}]
    cfg["output"]["dir"] = str(tmp_path / "run")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


SPACE = Space.parse(["fast_period=5,10", "slow_period=20,30"])


def _equities(result) -> list[str]:
    return [t.stats["final_equity"] for t in result.trials]


def test_an_edited_strategy_file_or_package_module_runs_every_trial_again(tmp_path, package):
    run, out = _yaml(tmp_path), tmp_path / "opt"
    first = run_trials(run, SPACE, out_dir=out)
    assert first.ran == 4 and run_trials(run, SPACE, out_dir=out).ran == 0  # unchanged: all from the journal
    for step, edit in enumerate(({"buy": 2}, {"buy": 2, "factor": 3})):  # the class's file, then its helper
        package(**edit)
        again = run_trials(run, SPACE, out_dir=out)
        assert again.ran == 4 and not any(t.cached for t in again.trials), edit
        fresh = run_trials(run, SPACE)  # no journal: what the edited code gives
        assert trials_csv(again) == trials_csv(fresh)
        assert _equities(again) != _equities(first)
        first = again


def test_an_edited_charges_table_runs_every_trial_again(tmp_path, package):
    table = tmp_path / "mycharges.csv"
    dhan = (REPO / "algocli" / "market" / "data" / "brokers" / "dhan.csv").read_text()
    table.write_text(dhan)
    run, out = _yaml(tmp_path, charges="mycharges.csv"), tmp_path / "opt"
    first = run_trials(run, SPACE, out_dir=out)
    assert first.ran == 4 and run_trials(run, SPACE, out_dir=out).ran == 0
    edited = dhan.replace("equity_intraday,*,both,pct_cap,0.03,20", "equity_intraday,*,both,pct_cap,0.06,20")
    assert edited != dhan
    table.write_text(edited)
    again = run_trials(run, SPACE, out_dir=out)
    assert again.ran == 4
    assert trials_csv(again) == trials_csv(run_trials(run, SPACE))
    for old, new in zip(first.trials, again.trials):  # the rate doubled: every trial pays more brokerage
        assert float(new.stats["charges_brokerage"]) > float(old.stats["charges_brokerage"]) > 0
