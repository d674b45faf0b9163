"""Walk-forward: window arithmetic on hand-worked dates, CSCV's PBO against an independent count,
stitching, and a whole walk-forward whose single window equals a plain backtest."""

from __future__ import annotations

import itertools
import math
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import yaml

from algocli.errors import UsageError
from algocli.research import Space
from algocli.research.pbo import cscv, period_returns, sharpe, sharpe_t_stat
from algocli.research.walkforward import (Piece, Span, Window, bar_days, check_windows, parse_span, plan_windows,
                                          run_walkforward, stitch)
from research.research_support import sma_yaml

REPO = Path(__file__).resolve().parents[2]
D = date


def _dates(windows):
    return [(w.train_start, w.train_end, w.test_start, w.test_end) for w in windows]


# --------------------------------------------------------------------------- spans and windows


def test_spans_parse_and_bad_ones_name_the_flag():
    assert parse_span("12M", "--train") == Span(12, "M")
    assert parse_span("5d", "--gap", zero=True) == Span(5, "D")
    assert parse_span("0D", "--gap", zero=True) == Span(0, "D")
    for text in ("12", "M12", "3X", "1.5M", ""):
        with pytest.raises(UsageError, match="--train .*: write a length as <n>D"):
            parse_span(text, "--train")
    with pytest.raises(UsageError, match="--test '0M': a window needs a length of 1 or more"):
        parse_span("0M", "--test")


def test_months_clamp_at_month_end():
    assert Span(1, "M").after(D(2019, 1, 31)) == D(2019, 2, 28)
    assert Span(1, "M").after(D(2020, 1, 31)) == D(2020, 2, 29)
    assert Span(1, "Y").after(D(2020, 2, 29)) == D(2021, 2, 28)
    assert Span(3, "M").after(D(2019, 11, 15), -1) == D(2019, 8, 15)
    assert Span(2, "W").after(D(2019, 1, 1)) == D(2019, 1, 15)


def test_rolling_windows_tile_the_test_dates():
    windows = plan_windows(D(2019, 1, 1), D(2020, 12, 31), Span(12, "M"), Span(3, "M"))
    assert _dates(windows) == [
        (D(2019, 1, 1), D(2019, 12, 31), D(2020, 1, 1), D(2020, 3, 31)),
        (D(2019, 4, 1), D(2020, 3, 31), D(2020, 4, 1), D(2020, 6, 30)),
        (D(2019, 7, 1), D(2020, 6, 30), D(2020, 7, 1), D(2020, 9, 30)),
        (D(2019, 10, 1), D(2020, 9, 30), D(2020, 10, 1), D(2020, 12, 31)),
    ]
    assert [w.number for w in windows] == [1, 2, 3, 4]


def test_anchored_windows_all_train_from_the_first_date():
    windows = plan_windows(D(2019, 1, 1), D(2020, 12, 31), Span(12, "M"), Span(6, "M"), anchored=True)
    assert _dates(windows) == [
        (D(2019, 1, 1), D(2019, 12, 31), D(2020, 1, 1), D(2020, 6, 30)),
        (D(2019, 1, 1), D(2020, 6, 30), D(2020, 7, 1), D(2020, 12, 31)),
    ]


def test_a_gap_purges_days_between_training_and_test():
    windows = plan_windows(D(2019, 1, 1), D(2020, 12, 31), Span(12, "M"), Span(6, "M"), Span(5, "D"))
    # training ends the day before the test less 5 days, and spans 12 months back from there
    assert _dates(windows) == [
        (D(2019, 1, 1), D(2019, 12, 31), D(2020, 1, 6), D(2020, 7, 5)),
        (D(2019, 7, 1), D(2020, 6, 30), D(2020, 7, 6), D(2020, 12, 31)),
    ]


def test_the_last_test_window_ends_at_the_last_date():
    windows = plan_windows(D(2019, 1, 1), D(2020, 5, 15), Span(12, "M"), Span(3, "M"))
    assert _dates(windows)[-1] == (D(2019, 4, 1), D(2020, 3, 31), D(2020, 4, 1), D(2020, 5, 15))


def test_windows_that_do_not_fit_the_data_are_a_usage_error():
    with pytest.raises(UsageError, match=r"2019-01-01 to 2019-11-30, too short for one window") as err:
        plan_windows(D(2019, 1, 1), D(2019, 11, 30), Span(12, "M"), Span(3, "M"))
    assert "\n" not in str(err.value)


def _days(*spans: tuple[date, date]) -> np.ndarray:
    out = []
    for lo, hi in spans:
        out += list(range((lo - D(1970, 1, 1)).days, (hi - D(1970, 1, 1)).days + 1))
    return np.array(out)


def test_bar_counts_per_window_and_a_short_last_window_is_dropped():
    windows = [Window(1, D(2020, 1, 1), D(2020, 1, 10), D(2020, 1, 11), D(2020, 1, 20)),
               Window(2, D(2020, 1, 11), D(2020, 1, 20), D(2020, 1, 21), D(2020, 1, 21))]
    checked = check_windows(windows, _days((D(2020, 1, 1), D(2020, 1, 21))))
    assert [(w.number, n_is, n_oos) for w, n_is, n_oos in checked] == [(1, 10, 10)]


def test_a_window_without_enough_bars_is_named():
    windows = [Window(1, D(2020, 1, 1), D(2020, 1, 10), D(2020, 1, 11), D(2020, 1, 20)),
               Window(2, D(2020, 1, 11), D(2020, 1, 20), D(2020, 1, 21), D(2020, 1, 30))]
    days = _days((D(2020, 1, 1), D(2020, 1, 11)), (D(2020, 1, 25), D(2020, 1, 30)))  # no bar from the 12th to 24th
    with pytest.raises(UsageError, match=r"^window 1: the test dates 2020-01-11 to 2020-01-20 hold 1 bar\(s\); "
                                         r"give a longer --test"):
        check_windows(windows, days)


# --------------------------------------------------------------------------- PBO


def test_pbo_of_a_hand_worked_matrix():
    # two blocks (rows 0-1 and 2-3), three trials; Sharpe = mean / sample std
    m = np.array([[0.01, 0.00, -0.01],
                  [0.03, 0.02, 0.01],
                  [0.00, 0.02, 0.01],
                  [-0.02, 0.04, 0.03]])
    # IS = first block: SRs 1.414, 0.707, 0 -> trial 0 best; OOS SRs -0.707, 2.121, 1.414 -> rank 1 of 3
    # IS = second block: SRs -0.707, 2.121, 1.414 -> trial 1 best; OOS SRs 1.414, 0.707, 0 -> rank 2 of 3
    result = cscv(m, 2)
    assert result.logits == pytest.approx([math.log((1 / 4) / (3 / 4)), 0.0])
    assert result.pbo == 1.0  # a logit of exactly 0 (the median) counts as overfit
    assert (result.splits, result.periods, result.trials, result.combinations) == (2, 4, 3, 2)


def _pbo_by_hand(m: np.ndarray, s: int) -> tuple[list[float], float]:
    """CSCV written out loop by loop: blocks, every half, argmax in sample, rank out of sample."""
    t, n = m.shape
    size = t // s
    m = m[t - size * s:]
    blocks = [m[i * size:(i + 1) * size] for i in range(s)]
    logits = []
    for chosen in itertools.combinations(range(s), s // 2):
        inside = np.vstack([blocks[i] for i in chosen])
        outside = np.vstack([blocks[i] for i in range(s) if i not in chosen])
        sr_in = [inside[:, j].mean() / inside[:, j].std(ddof=1) for j in range(n)]
        sr_out = [outside[:, j].mean() / outside[:, j].std(ddof=1) for j in range(n)]
        best = max(range(n), key=lambda j: (sr_in[j], -j))
        rank = sum(1 for v in sr_out if v < sr_out[best]) + (sum(1 for v in sr_out if v == sr_out[best]) + 1) / 2
        w = rank / (n + 1)
        logits.append(math.log(w / (1 - w)))
    return logits, sum(1 for x in logits if x <= 0) / len(logits)


@pytest.mark.parametrize("s", [4, 6, 8])
def test_pbo_equals_an_independent_count(s):
    rng = np.random.default_rng(7 + s)
    m = rng.normal(0.0002, 0.01, (203, 9)) + rng.normal(0, 0.002, 9)  # 203 rows: some are left out
    logits, pbo = _pbo_by_hand(m, s)
    result = cscv(m, s)
    assert result.logits == pytest.approx(logits, rel=1e-9, abs=1e-12)
    assert result.pbo == pbo and result.combinations == math.comb(s, s // 2)


def test_pure_noise_trials_overfit_about_half_the_time():
    # one noise sample's PBO varies widely (CSCV's halves are complements); its mean over samples is 0.5
    values = [cscv(np.random.default_rng(seed).normal(0, 0.01, (800, 20)), 8).pbo for seed in range(60)]
    assert abs(np.mean(values) - 0.5) < 0.08
    assert 0 < min(values) and max(values) < 1


def test_one_trial_dominant_everywhere_never_overfits():
    rng = np.random.default_rng(2015)
    m = rng.normal(0, 0.01, (1600, 40))
    m[:, 13] += 0.01
    assert cscv(m, 16).pbo == 0.0


def test_a_flat_trial_has_a_sharpe_of_zero_and_bad_splits_are_refused():
    assert sharpe(np.zeros((5, 2)))[0] == 0.0
    for splits in (3, 0, 300):
        with pytest.raises(UsageError, match="--cscv-splits"):
            cscv(np.zeros((100, 3)), splits)


def test_trials_with_identical_returns_count_once():
    rng = np.random.default_rng(11)
    distinct = rng.normal(0.0002, 0.01, (160, 5)) + rng.normal(0, 0.002, 5)
    copied = distinct[:, [0, 1, 1, 2, 3, 3, 3, 4]]  # trials 1 and 3 repeated, as grid points that change nothing
    logits, pbo = _pbo_by_hand(distinct, 8)
    result = cscv(copied, 8)
    assert result.logits == pytest.approx(logits, rel=1e-9, abs=1e-12)
    assert result.pbo == pbo and (result.trials, result.duplicates) == (5, 3)


def test_copies_of_one_series_have_no_pbo():
    """Before counting copies once, three identical trials always tied at the median: a PBO of 100 %."""
    one = np.random.default_rng(3).normal(0, 0.01, (64, 1))
    with pytest.raises(UsageError, match="2 or more trials with different returns"):
        cscv(np.repeat(one, 3, axis=1), 4)


def test_sharpe_t_statistic():
    sr, t, n = sharpe_t_stat(np.array([0.01, 0.02, 0.03]))
    assert (sr, n) == (pytest.approx(2.0), 3) and t == pytest.approx(2.0 * math.sqrt(3))


def test_period_returns_are_the_daily_closes_of_intraday_bars():
    day = 86_400 * 10**9
    ist_915 = (3 * 3600 + 45 * 60) * 10**9  # 09:15 IST in UTC ns of day 0
    ts = np.array([ist_915, ist_915 + 60 * 10**9, day + ist_915, day + ist_915 + 60 * 10**9])
    assert period_returns(np.array([100.0, 101.0, 99.0, 110.0]), ts).tolist() == pytest.approx([110 / 101 - 1])


# --------------------------------------------------------------------------- stitching


def _piece(ts, equity, trades=()):
    from algocli.analytics.result import empty_trade_columns

    cols = empty_trade_columns()
    if trades:
        cols = {k: np.array([t.get(k, 0) for t in trades], dtype=v.dtype) for k, v in cols.items()}
    day = 86_400 * 10**9
    return Piece(np.array(ts) * day, np.array(equity, dtype=float), cols,
                 sum(t.get("commission", 0) for t in trades), {"charges_total": sum(t.get("commission", 0)
                                                                                    for t in trades)})


def test_stitching_compounds_returns_and_is_continuous():
    a = _piece([1, 2, 5], [100.0, 110.0, 110.0])
    b = _piece([6, 7, 8], [100.0, 90.0, 99.0],
               [{"entry_bar": 0, "exit_bar": 2, "pnl": -1.0, "return_pct": -0.01, "commission": 2.0,
                 "duration": 2 * 86_400 * 10**9}])
    st = stitch([a, b], 100.0, np.full(6, 100.0))
    assert st.equity.tolist() == pytest.approx([100, 110, 110, 110, 99, 108.9])
    assert st.equity[3] == st.equity[2]  # window 2 starts where window 1 ended
    assert st.window.tolist() == [1, 1, 1, 2, 2, 2] and st.factors == pytest.approx([1.0, 1.1])
    assert st.stats["total_return_pct"] == pytest.approx(8.9)
    assert st.stats["total_trades"] == 1 and st.stats["commissions"] == pytest.approx(2.2)
    assert st.stats["charges_total"] == pytest.approx(2.2)
    assert st.stats["exposure_time_pct"] == pytest.approx(50.0)  # bars 3-5 of 6: the trade's bars moved on by 3


# --------------------------------------------------------------------------- a whole walk-forward


@pytest.fixture
def run_yaml(tmp_path) -> Path:
    """configs/sma.yaml on the bundled daily data from 2019 to 2020."""
    return sma_yaml(tmp_path, start="2019-01-01", end="2020-12-31")


def test_one_window_stitched_equals_its_backtest(run_yaml):
    from algocli.config.run import load_run_config
    from algocli.engine.assemble import assemble_backtest
    from algocli.persistence.artifacts import charge_totals
    from algocli.research.trials import run_trials
    from algocli.research.walkforward import windowed
    from algocli.research.worker import stats_text, with_params

    space = Space.parse(["fast_period=5,10", "slow_period=20,30"])
    wf = run_walkforward(run_yaml, space, train=Span(12, "M"), test=Span(12, "M"), splits=4)
    # the warm-up defaults to the grid's largest integer, 30 bars: the data's 30th bar is on 2019-02-11
    # (23 sessions in January, then 1, 4-8 and 11 February), so the windows start the day after
    assert (wf.warmup, wf.warmup_source) == (30, "the largest integer in the grid")
    assert len(wf.windows) == 1
    w = wf.windows[0]
    assert (w.window.train_start, w.window.train_end) == (D(2019, 2, 12), D(2020, 2, 11))
    assert (w.window.test_start, w.window.test_end) == (D(2020, 2, 12), D(2020, 12, 31))
    trials = run_trials(run_yaml, space, config=windowed(load_run_config(run_yaml), D(2019, 2, 12),
                                                         D(2020, 2, 11), 30)).trials
    best = max(trials, key=lambda t: (t.score, -t.number))  # the IS grid, run on its own
    assert w.best.params == best.params
    cfg = windowed(with_params(load_run_config(run_yaml), best.params, str(run_yaml)), D(2020, 2, 12),
                   D(2020, 12, 31), 30)
    run = assemble_backtest(cfg, str(run_yaml)).backtest.run()
    expected = stats_text({**run.metrics, **charge_totals(run.fills)})
    stitched = stats_text(wf.stitched.stats)
    assert w.oos_stats == expected
    # beta and alpha regress on the stitched buy & hold, not on the market from the first bar (module docstring)
    assert {k: v for k, v in stitched.items() if k not in ("alpha_pct", "beta")} == \
           {k: v for k, v in expected.items() if k not in ("alpha_pct", "beta")}
    assert wf.stitched.equity.tolist() == run.equity.tolist()
    assert wf.pbo is not None and wf.pbo.trials == 4 and wf.pbo.splits == 4


def test_a_dask_cluster_gives_the_same_files_as_this_process(run_yaml):
    from distributed import Client, LocalCluster

    from algocli.research.executors import DaskExecutor
    from algocli.research.walkforward_outputs import oos_equity_csv, results_csv, windows_csv

    space = Space.parse(["fast_period=5,10", "slow_period=20,30"])
    kwargs = dict(train=Span(12, "M"), test=Span(6, "M"), gap=Span(5, "D"), splits=4)
    here = run_walkforward(run_yaml, space, **kwargs)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", scheduler_port=0,
                      dashboard_address=None, memory_limit="1GiB") as cluster, Client(cluster) as client:
        there = run_walkforward(run_yaml, space, executor=DaskExecutor(client=client), **kwargs)
    assert len(here.windows) == 2
    for text in (windows_csv, oos_equity_csv, results_csv):
        assert text(there) == text(here)


# --------------------------------------------------------------------------- warm-up


@pytest.fixture
def trend_yaml(tmp_path) -> Path:
    """A stateless trend strategy (long while SMA(fast) > SMA(slow)) on the bundled daily data, 2019-2022."""
    cfg = yaml.safe_load((REPO / "configs" / "sma.yaml").read_text(encoding="utf-8"))
    cfg["data"].update(path=str(REPO / "data"), start="2019-01-01", end="2022-12-31")
    cfg["strategies"] = [{"class": "engine.warmup_strategies:TrendAfter", "instruments": ["NSE:HDFCBANK"],
                          "params": {"fast": 5, "slow": 60, "quantity": 10}}]
    cfg["output"]["dir"] = str(tmp_path / "run")
    path = tmp_path / "trend.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def _sma(values: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(values), np.nan)
    c = np.cumsum(np.r_[0.0, values])
    out[n - 1:] = (c[n:] - c[:-n]) / n
    return out


def test_test_windows_trade_from_their_first_bar_with_warmup(trend_yaml):
    from algocli.config.run import load_run_config
    from algocli.data.csv_feed import load_csv
    from algocli.engine.assemble import assemble_backtest
    from algocli.persistence.artifacts import charge_totals
    from algocli.research.worker import stats_text

    space = Space.parse(["fast=5,10", "slow=60,80"])
    wf = run_walkforward(trend_yaml, space, train=Span(12, "M"), test=Span(3, "M"), splits=4)
    assert (wf.warmup, wf.warmup_source) == (80, "the largest integer in the grid")
    bars = load_csv(REPO / "data" / "NSE_EQ_1333.csv", "NSE:HDFCBANK")
    days = bar_days(bars.ts)
    early = 0
    for w in wf.windows:
        params = w.best.params
        # an independent backtest of the same run definition, written out as a user would write it
        doc = yaml.safe_load(trend_yaml.read_text(encoding="utf-8"))
        doc["data"].update(start=str(w.window.test_start), end=str(w.window.test_end), warmup=80)
        doc["strategies"][0]["params"].update(params)
        path = trend_yaml.with_name(f"w{w.window.number}.yaml")
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        run = assemble_backtest(load_run_config(path), str(path)).backtest.run()
        assert w.oos_stats == stats_text({**run.metrics, **charge_totals(run.fills)})
        if w.window.number == 1:  # the sweep's trial (``run_trial``) warms up as the backtest does
            doc["data"].update(start=str(w.window.train_start), end=str(w.window.train_end))
            path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
            trained = assemble_backtest(load_run_config(path), str(path)).backtest.run()
            assert w.best.stats == stats_text({**trained.metrics, **charge_totals(trained.fills)})
        # SMA(fast) above SMA(slow) on the window's first bar: the position opens at the second bar's open
        i = int(np.searchsorted(days, (w.window.test_start - D(1970, 1, 1)).days))
        if _sma(bars.close, params["fast"])[i] > _sma(bars.close, params["slow"])[i]:
            early += 1
            assert run.trade_columns["entry_time"][0] == bars.ts[i + 1] and run.trade_columns["entry_bar"][0] == 1
    assert early >= 3 and not any("undefined" in n for n in wf.notes)


def test_a_warmup_shorter_than_the_indicators_is_named(trend_yaml):
    space = Space.parse(["fast=5,10", "slow=60,80"])
    wf = run_walkforward(trend_yaml, space, train=Span(12, "M"), test=Span(6, "M"), splits=4, warmup=30)
    assert wf.warmup == 30 and wf.warmup_source == "--warmup"
    (note,) = [n for n in wf.notes if "undefined" in n]
    assert note.endswith("indicators were still undefined when the test window opened; --warmup 79 or more covers "
                         "every indicator of the grid")  # SMA(80), the grid's slowest, is first defined on bar 80


def test_the_warmup_hint_covers_indicators_longer_than_a_window(trend_yaml):
    """Test windows of 2 months (about 40 bars) never define SMA(60) or SMA(80) without a warm-up: the
    hint is the bars SMA(80) needs, not the bars a window holds, and that warm-up leaves no note."""
    from algocli.data.csv_feed import load_csv
    from algocli.research.trials import run_trials

    close = load_csv(REPO / "data" / "NSE_EQ_1333.csv", "NSE:HDFCBANK").close
    needed = int(np.argmax(~np.isnan(_sma(close, 80))))  # an independent SMA(80): its first defined bar
    space = Space.parse(["fast=5", "slow=60,80"])
    # each trial reports its own, whichever point wins a window
    assert [t.warmup_bars for t in run_trials(trend_yaml, space).trials] == [
        int(np.argmax(~np.isnan(_sma(close, n)))) for n in (60, 80)]
    wf = run_walkforward(trend_yaml, space, train=Span(12, "M"), test=Span(2, "M"), splits=4, warmup=0)
    assert max(w.test_bars for w in wf.windows) < 60 and needed == 79
    (note,) = [n for n in wf.notes if "undefined" in n]
    assert note.endswith(f"--warmup {needed} or more covers every indicator of the grid")
    again = run_walkforward(trend_yaml, space, train=Span(12, "M"), test=Span(2, "M"), splits=4, warmup=needed)
    assert not any("undefined" in n for n in again.notes)


# --------------------------------------------------------------------------- PBO left out


def _bollinger_yaml(tmp_path) -> Path:
    """configs/bollinger.yaml on the bundled daily data, 2019-2021."""
    cfg = yaml.safe_load((REPO / "configs" / "bollinger.yaml").read_text(encoding="utf-8"))
    cfg["data"].update(path=str(REPO / "data"), start="2019-01-01", end="2021-12-31")
    cfg["output"]["dir"] = str(tmp_path / "run")
    path = tmp_path / "bollinger.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def test_a_grid_whose_points_return_the_same_has_no_pbo_and_says_why(tmp_path):
    """max_band_width_pct above the bands' widths changes nothing: the grid is one strategy three times."""
    from algocli.research.trials import run_trials

    run = _bollinger_yaml(tmp_path)
    space = Space.parse(["max_band_width_pct=20,30,40"])
    returns = [t.returns for t in run_trials(run, space, keep_returns=True).trials]
    assert returns[0] == returns[1] == returns[2] and len(returns[0]) > 100  # an independent look: all alike
    wf = run_walkforward(run, space, train=Span(12, "M"), test=Span(6, "M"), warmup=20)
    assert wf.pbo is None and wf.grid_trials == 3
    assert "PBO needs 2 or more grid points whose returns differ; all 3 returned the same over the whole range " \
           "(the swept parameters changed nothing, or nothing traded); not computed" in wf.notes


def test_a_grid_with_some_alike_points_computes_pbo_over_the_distinct_ones(tmp_path):
    from algocli.research.trials import run_trials

    run = _bollinger_yaml(tmp_path)
    space = Space.parse(["max_band_width_pct=6,20,30"])  # 6 % cancels some entries; 20 and 30 change nothing
    wf = run_walkforward(run, space, train=Span(12, "M"), test=Span(6, "M"), warmup=20, splits=4)
    matrix = np.array([t.returns for t in run_trials(run, space, keep_returns=True, config=_whole(run, wf)).trials]).T
    assert (matrix[:, 1] == matrix[:, 2]).all() and not (matrix[:, 0] == matrix[:, 1]).all()
    logits, pbo = _pbo_by_hand(matrix[:, :2], 4)
    assert wf.pbo.logits == pytest.approx(logits) and wf.pbo.pbo == pbo
    assert (wf.pbo.trials, wf.pbo.duplicates, wf.grid_trials) == (2, 1, 3)
    assert any(n.startswith("PBO: 1 of 3 grid points returned the same as another") for n in wf.notes)


def _whole(run: Path, wf):
    """The run definition as the walk-forward ran its whole range for PBO."""
    from algocli.config.run import load_run_config
    from algocli.research.walkforward import windowed

    return windowed(load_run_config(run), wf.windows[0].window.train_start, wf.windows[-1].window.test_end, wf.warmup)
