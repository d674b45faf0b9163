"""A sweep Ctrl-C stopped: its counts add up, and its artifacts say they are a part of it."""

from __future__ import annotations

from algocli.research import Space, run_trials
from algocli.research.outputs import best_yaml, heatmap_page, manifest


def _space():
    return Space.parse(["fast_period=5:15:5", "slow_period=20:40:10"], ["fast_period < slow_period"])


def _stop_at(n):
    def progress(done, total, best):
        if done == n:
            raise KeyboardInterrupt
    return progress


def test_ctrl_c_inside_a_batch_counts_its_rows_as_run_now_and_its_worker(run_yaml, tmp_path):
    """Ctrl-C while a batch's second row is scored: its third row is journalled by then, run in this
    sweep, not taken from the journal; and the worker that ran the batch is counted."""
    stopped = run_trials(run_yaml, _space(), out_dir=tmp_path / "opt", batch=3, progress=_stop_at(2))
    assert stopped.interrupted and len(stopped.trials) == 3
    assert stopped.ran == 3 and not any(t.cached for t in stopped.trials)
    assert len(stopped.workers) == 1 and stopped.planned == 9


def test_an_interrupted_sweeps_artifacts_say_they_are_partial(run_yaml, tmp_path):
    out = tmp_path / "opt"
    stopped = run_trials(run_yaml, _space(), out_dir=out, batch=2, progress=_stop_at(4))
    assert stopped.interrupted and len(stopped.trials) == 4
    head = best_yaml(stopped, stopped.best, out).splitlines()[0]
    assert "best of 4 of 9 trials (grid, interrupted; run the same command to finish) by sharpe_ratio" in head
    page = heatmap_page(stopped).decode()
    assert "<h1>Optimisation — sma-hdfcbank (partial)</h1>" in page
    assert "<p>4 of 9 trials (grid, interrupted; run the same command to finish), maximising" in page
    assert manifest(stopped)["interrupted"] and manifest(stopped)["planned"] == 9
    done = run_trials(run_yaml, _space(), out_dir=out, batch=2)
    assert "best of 9 trials (grid) by" in best_yaml(done, done.best, out).splitlines()[0]
    assert "(partial)" not in heatmap_page(done).decode()
