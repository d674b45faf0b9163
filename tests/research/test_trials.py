"""``run_trials``: statistics as a backtest gives them, a journal that resumes, seeded searches."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from algocli.errors import UsageError
from algocli.research import Space, run_trials
from algocli.research import worker
from algocli.research.outputs import trials_csv

REPO = Path(__file__).resolve().parents[2]



def _space(fast="5:15:5", slow="20:40:10"):
    return Space.parse([f"fast_period={fast}", f"slow_period={slow}"], ["fast_period < slow_period"])


@pytest.fixture
def count_runs(monkeypatch):
    """Count the backtests this process runs (the inline executor runs them here)."""
    calls = []
    real = worker.run_trial

    def counted(ctx, params):
        calls.append(dict(params))
        return real(ctx, params)

    monkeypatch.setattr(worker, "run_trial", counted)
    monkeypatch.setattr("algocli.research.trials.run_trial", counted)
    return calls


def test_a_trial_equals_a_backtest_of_the_same_params(run_yaml):
    from algocli.config.run import load_run_config
    from algocli.engine.assemble import assemble_backtest
    from algocli.research.worker import stats_text
    from algocli.persistence.artifacts import charge_totals

    result = run_trials(run_yaml, _space())
    assert [t.params for t in result.trials][:3] == [{"fast_period": 5, "slow_period": 20},
                                                    {"fast_period": 5, "slow_period": 30},
                                                    {"fast_period": 5, "slow_period": 40}]
    trial = result.trials[4]
    cfg = load_run_config(run_yaml)
    cfg.strategies[0].params.update(trial.params)
    bt_result = assemble_backtest(cfg, str(run_yaml)).backtest.run()
    assert trial.stats == stats_text({**bt_result.metrics, **charge_totals(bt_result.fills)})
    assert trial.score == pytest.approx(float(bt_result.metrics["sharpe_ratio"]), abs=0)


def test_rerun_skips_finished_trials_and_runs_only_new_points(run_yaml, tmp_path, count_runs):
    out = tmp_path / "opt"
    first = run_trials(run_yaml, _space(), out_dir=out)
    assert len(first.trials) == 9 and len(count_runs) == 9 and first.ran == 9
    count_runs.clear()
    again = run_trials(run_yaml, _space(), out_dir=out)
    assert count_runs == [] and again.ran == 0 and all(t.cached for t in again.trials)
    assert trials_csv(again) == trials_csv(first)
    wider = run_trials(run_yaml, _space(slow="20:50:10"), out_dir=out)
    assert sorted(p["slow_period"] for p in count_runs) == [50, 50, 50] and len(wider.trials) == 12


def test_changed_data_invalidates_the_journal(run_yaml, tmp_path, count_runs):
    out = tmp_path / "opt"
    data = tmp_path / "data"
    data.mkdir()
    for name in ("NSE_EQ_1333.csv", "instruments.csv"):
        (data / name).write_bytes((REPO / "data" / name).read_bytes())
    cfg = yaml.safe_load(run_yaml.read_text())
    cfg["data"]["path"] = str(data)
    run_yaml.write_text(yaml.safe_dump(cfg))
    run_trials(run_yaml, _space(fast="5", slow="20"), out_dir=out)
    with open(data / "NSE_EQ_1333.csv", "a") as fh:
        fh.write("\n")  # same bars, other bytes: the key is the file's SHA-256
    count_runs.clear()
    run_trials(run_yaml, _space(fast="5", slow="20"), out_dir=out)
    assert len(count_runs) == 1


def test_ctrl_c_keeps_finished_trials_and_the_rerun_completes(run_yaml, tmp_path, count_runs):
    out = tmp_path / "opt"
    seen = []

    def interrupt(done, total, best):
        seen.append(done)
        if done == 4:
            raise KeyboardInterrupt

    stopped = run_trials(run_yaml, _space(), out_dir=out, batch=2, progress=interrupt)
    assert stopped.interrupted and len(stopped.trials) == 4 and len(count_runs) == 4
    count_runs.clear()
    done = run_trials(run_yaml, _space(), out_dir=out, batch=2)
    assert not done.interrupted and len(done.trials) == 9 and len(count_runs) == 5
    assert trials_csv(done) == trials_csv(run_trials(run_yaml, _space()))


def test_random_search_is_seeded(run_yaml):
    space = Space.parse(["fast_period=5:30:5", "slow_period=20:60:10"], ["fast_period < slow_period"])
    a = run_trials(run_yaml, space, method="random", trials=5, seed=7)
    b = run_trials(run_yaml, space, method="random", trials=5, seed=7)
    c = run_trials(run_yaml, space, method="random", trials=5, seed=8)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.params for t in a.trials] != [t.params for t in c.trials]
    assert len({str(t.params) for t in a.trials}) == 5
    assert all(t.params["fast_period"] < t.params["slow_period"] for t in a.trials)


def test_bayes_search_is_seeded_distinct_and_admissible(run_yaml):
    space = Space.parse(["fast_period=5:30:5", "slow_period=10,20,40,80"], ["fast_period < slow_period"])
    a = run_trials(run_yaml, space, method="bayes", trials=10, seed=3)
    b = run_trials(run_yaml, space, method="bayes", trials=10, seed=3, batch=3)
    assert trials_csv(a) == trials_csv(b)
    assert len(a.trials) == 10 and len({str(t.params) for t in a.trials}) == 10
    assert all(t.params["fast_period"] < t.params["slow_period"] for t in a.trials)
    assert all(t.params["slow_period"] in (10, 20, 40, 80) for t in a.trials)


def test_bayes_with_a_constraint_runs_every_trial_asked_for(run_yaml):
    """QA's sweep: 1,409 admissible points, of which the search used to stop at 60 of the 100 asked for,
    its refused proposals teaching TPE nothing."""
    space = Space.parse(["fast_period=2:40:1", "slow_period=10:200:5"], ["fast_period < slow_period"])
    assert sum(1 for _ in space.grid()) == 1409
    a = run_trials(run_yaml, space, method="bayes", seed=0)
    assert len(a.trials) == 100 and len({str(t.params) for t in a.trials}) == 100
    assert all(t.params["fast_period"] < t.params["slow_period"] for t in a.trials)
    assert trials_csv(run_trials(run_yaml, space, method="bayes", seed=0, batch=3)) == trials_csv(a)


def _bayes_points(seed: int, trials: int) -> list[int]:
    """Every point a Bayesian search of a=1..1000 proposes when only multiples of 200 are admissible
    (the strategies refuse the rest), scored without backtests."""
    from algocli.research.search import BayesSearch
    from algocli.research.trials import canonical

    search = BayesSearch(Space.parse(["a=1:1000:1"]), trials, seed, lambda p: None if p["a"] % 200 == 0 else "no")
    while points := search.ask():
        search.tell({canonical(p): float(p["a"]) for p in points})
    return [p["a"] for p in search.seen.values()]


def test_bayes_stops_short_only_once_every_admissible_point_ran():
    points = _bayes_points(seed=5, trials=20)
    # all 5, found among 1,000 (TPE alone, proposing refused points, found few of them)
    assert sorted(points) == [a for a in range(1, 1001) if a % 200 == 0]
    assert _bayes_points(seed=5, trials=20) == points  # seeded, the random fallback too


def test_points_the_strategy_refuses_are_left_out_and_counted(run_yaml):
    result = run_trials(run_yaml, Space.parse(["fast_period=10,30", "slow_period=20"]))
    assert [t.params for t in result.trials] == [{"fast_period": 10, "slow_period": 20}]
    assert len(result.refused) == 1 and "fast_period must be smaller" in result.refused[0][1]


def test_bayes_counts_the_points_the_strategy_refuses(run_yaml):
    result = run_trials(run_yaml, Space.parse(["fast_period=10,30", "slow_period=20"]), method="bayes", trials=4)
    assert [t.params for t in result.trials] == [{"fast_period": 10, "slow_period": 20}]
    assert [p for p, _ in result.refused] == [{"fast_period": 30, "slow_period": 20}]
    assert "fast_period must be smaller" in result.refused[0][1]


@pytest.mark.parametrize("method", ["grid", "random", "bayes"])
def test_a_space_the_strategy_refuses_whole_is_a_usage_error_that_writes_nothing(run_yaml, tmp_path, method):
    """Not a sweep "interrupted before any trial finished" (exit 130), nor an empty journal left behind."""
    out = tmp_path / "sweep"
    with pytest.raises(UsageError, match=r"no point .* passes .*first refusal: .*fast_period must be smaller"):
        run_trials(run_yaml, Space.parse(["fast_period=30,40", "slow_period=20"]), method=method,
                   trials=None if method == "grid" else 4, out_dir=out)
    assert not out.exists()


def test_a_function_objective_scores_trials(run_yaml):
    result = run_trials(run_yaml, _space(), maximize="research.objectives:fewest_trades")
    trades = {t.number: t.values["total_trades"] for t in result.trials}
    assert result.best.score == -min(trades.values())
    assert "objective" in trials_csv(result).splitlines()[0].split(",")


def test_unknown_statistic_and_param_are_usage_errors(run_yaml):
    with pytest.raises(UsageError, match="not a statistic of results.csv"):
        run_trials(run_yaml, _space(), maximize="sharpe")
    with pytest.raises(UsageError, match="no strategy has a parameter 'fast'"):
        run_trials(run_yaml, Space.parse(["fast=1:2:1"]))


@pytest.mark.parametrize("n, largest, smallest, workers", [(399, 250, 5, 2), (1000, 40, 3, 4), (7, 100, 1, 2),
                                                           (3, 1, 1, 2), (0, 10, 1, 2)])
def test_guided_batches_cover_every_point_in_order_and_shrink_to_the_smallest(n, largest, smallest, workers):
    from algocli.research.trials import guided

    todo = list(range(n))
    batches = guided(todo, largest, smallest, workers)
    assert [x for b in batches for x in b] == todo
    sizes = [len(b) for b in batches]
    assert sizes == sorted(sizes, reverse=True)  # the big batches go out first
    assert all(size <= max(largest, smallest) for size in sizes)
    assert all(size >= smallest for size in sizes[:-1])  # only the remainder may be smaller
    if n > 4 * workers * smallest:
        # the last batch is a few trials, not a quarter of a worker's share as equal batches would be
        assert sizes[-1] <= smallest and len(batches) > 2 * workers


class _Recorded:
    """The inline executor, noting when the pool would start and when batches go out."""

    workers = 2
    description = "recorded"

    def __init__(self, events: list) -> None:
        from algocli.research.executors import InlineExecutor

        self.events, self._inline = events, InlineExecutor()

    def start(self) -> None:
        self.events.append("start")

    def run(self, spec, batches):
        self.events.append(f"run {sum(map(len, batches))}")
        self.sizes = [len(b) for b in batches]
        return self._inline.run(spec, batches)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("pilot_seconds, pilots", [(10.0, 2), (0.0, 1)])
def test_the_pool_starts_after_the_pilot_and_a_quick_first_trial_is_timed_again(run_yaml, monkeypatch,
                                                                                  pilot_seconds, pilots):
    """The first pilot warms up this process before a local pool forks from it (its processes start
    up while a second pilot runs); a first trial quicker than ``PILOT_SECONDS`` (it paid for
    imports) is followed by a second that sizes the batches."""
    from algocli.research import trials

    monkeypatch.setattr(trials, "PILOT_SECONDS", pilot_seconds)
    events: list = []
    real = trials.run_trial
    monkeypatch.setattr(trials, "run_trial", lambda ctx, params: events.append("pilot") or real(ctx, params))
    executor = _Recorded(events)
    result = run_trials(run_yaml, _space(), executor=executor)
    total = len(result.trials)
    assert total > pilots + 1
    assert events[:2] == ["pilot", "start"]  # the pool forks once the first trial warmed this process up
    assert [e for e in events if e != "start"] == ["pilot"] * pilots + [f"run {total - pilots}"]
    seconds = [t.seconds for t in result.trials[:pilots]]
    sized = trials.guided(list(range(total - pilots)), max(1, round(trials.BATCH_SECONDS / seconds[-1])),
                          max(1, round(trials.MIN_BATCH_SECONDS / seconds[-1])), 2)
    assert executor.sizes == [len(b) for b in sized]  # sized from the last pilot
    assert result.pilot_seconds == pytest.approx(sum(seconds))


def test_overhead_splits_the_workers_time_beyond_their_trials():
    """Worked by hand: two workers from the dispatch at t=100 s to the last result at t=101 s."""
    from algocli.research.trials import TrialsResult, overhead

    result = TrialsResult([], None, _space(), "grid", 0, None, "", "", dispatched=100.0, finished=101.0)
    result.batches = [("w1", (100.52, 100.99), 0.46), ("w1", (100.01, 100.51), 0.49),  # in completion order
                      ("w2", (100.02, 100.95), 0.90)]
    split = overhead(result)
    # w1: start 0.01, inside its batches 0.01 + 0.01, between them 0.01, tail 0.01;
    # w2: start 0.02, inside 0.03, tail 0.05
    assert split == pytest.approx({"in_batch": 0.05, "between": 0.01, "start": 0.03, "tail": 0.06})
    assert sum(split.values()) + 0.46 + 0.49 + 0.90 == pytest.approx(2 * 1.0)
