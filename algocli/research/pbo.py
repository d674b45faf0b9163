"""The probability of backtest overfitting, by combinatorially symmetric cross-validation (CSCV).

Bailey, Borwein, López de Prado and Zhu, "The Probability of Backtest Overfitting", Journal
of Computational Finance 20(4), 2017 (working paper 2015,
https://papers.ssrn.com/sol3/papers.cfm?abstract_id=2326253), section 2:

1. ``M`` is a T x N matrix: the per-period returns of N trials (every point of a grid) over
   the same T periods.
2. Split the rows into S disjoint blocks of equal size (S even). When S does not divide T,
   the oldest ``T mod S`` rows are left out, so every block has ``T // S`` rows.
3. For each of the C(S, S/2) ways to pick S/2 blocks: those rows are the in-sample set J,
   the other blocks the out-of-sample set J̄ (each block is in-sample in half the cases).
4. Compute each trial's performance on J and on J̄ (here the Sharpe ratio of the per-period
   returns, mean over sample standard deviation, not annualised: ranks do not change), take
   the trial n* best in-sample (the first one on a tie), and its rank ω among the N trials
   out of sample as a fraction ``rank / (N + 1)`` (rank 1 the worst, ties share their mean
   rank).
5. ``λ = ln(ω / (1 - ω))``; PBO is the share of combinations with ``λ <= 0``, i.e. where the
   in-sample best did no better than the median out of sample.

A trial whose returns never vary in a sample (it did not trade) has a Sharpe ratio of 0
there: no excess return, rather than undefined.

Trials with identical returns (grid points whose parameter made no difference, or none of
which traded) are one strategy, counted once: otherwise the in-sample best would always tie
with its copies out of sample, rank at their median, and count as overfit (a grid of copies
would read 100 %). CSCV needs 2 or more distinct return series.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from algocli.errors import UsageError

#: Blocks by default: the paper's own example (12,870 combinations).
DEFAULT_SPLITS = 16


@dataclass(frozen=True)
class PBOResult:
    """The outcome of CSCV.

    Attributes:
        pbo: Share of combinations whose in-sample best ranked at or below the median out of sample.
        logits: λ of every combination, in ``itertools.combinations`` order.
        splits: S, the number of blocks.
        periods: Rows used (``T`` less the rows left out).
        trials: N, the distinct return series.
        duplicates: Trials left out for repeating an earlier trial's returns.
    """

    pbo: float
    logits: np.ndarray
    splits: int
    periods: int
    trials: int
    duplicates: int = 0

    @property
    def combinations(self) -> int:
        return len(self.logits)


def period_returns(equity: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """The equity's returns between consecutive period closes: the periods the Sharpe ratio of
    ``results.csv`` uses (days for intraday and daily bars; ``stats.period_closes``).

    Args:
        equity: Equity at each bar.
        ts: The bars' times, UTC nanoseconds.

    Returns:
        One return per period after the first, as fractions.
    """
    from algocli.analytics.stats import period_closes

    last, _ = period_closes(np.asarray(ts, dtype=np.int64))
    closes = np.asarray(equity, dtype=float)[last]
    with np.errstate(divide="ignore", invalid="ignore"):
        return closes[1:] / closes[:-1] - 1


def sharpe(returns: np.ndarray, axis: int = 0) -> np.ndarray:
    """Mean over sample standard deviation along ``axis``; 0 where the returns never vary and
    average 0, ±inf where they never vary but do not (a constant gain or loss)."""
    return _ratio(returns.mean(axis=axis), returns.var(axis=axis, ddof=1))


def _ratio(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = mean / np.sqrt(var)
    return np.where(var > 0, out, np.sign(mean) * np.where(mean == 0, 0.0, np.inf))


def mid_rank(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The rank of ``values[c, index[c]]`` within row ``c``, from 1 (lowest), ties sharing their mean rank."""
    target = values[np.arange(len(values)), index][:, None]
    return (values < target).sum(axis=1) + ((values == target).sum(axis=1) + 1) / 2


def check_splits(splits: int, periods: int) -> None:
    """Raise a one-line ``UsageError`` unless ``splits`` is an even number from 2 to ``periods`` whose
    halves hold 2 periods or more."""
    if splits < 2 or splits % 2:
        raise UsageError(f"--cscv-splits {splits}: give an even number of blocks, 2 or more (16 is usual)")
    if not splits_fit(splits, periods):
        fix = "give fewer blocks" if splits > 2 else "give more data, or drop --cscv-splits to skip PBO"
        raise UsageError(f"--cscv-splits {splits}: the data has {periods} periods, too few for {splits} blocks "
                         f"(each half needs 2 periods or more); {fix}")


def splits_fit(splits: int, periods: int) -> bool:
    """Whether ``periods`` rows split into ``splits`` blocks leave 2 periods or more in each half."""
    return splits <= periods and periods // splits * (splits // 2) >= 2


def distinct_columns(matrix: np.ndarray) -> np.ndarray:
    """The indices of ``matrix``'s columns that repeat no earlier column, in order."""
    _, first = np.unique(np.asarray(matrix), axis=1, return_index=True)
    return np.sort(first)


def cscv(matrix: np.ndarray, splits: int = DEFAULT_SPLITS) -> PBOResult:
    """The probability of backtest overfitting of a T x N returns matrix (module docstring).

    Args:
        matrix: Per-period returns, one column per trial, rows in time order.
        splits: S, an even number of blocks from 2 to T.

    Returns:
        PBO with the logit of each combination, over the distinct columns (module docstring).

    Raises:
        UsageError: ``splits`` is odd, below 2 or above T, or there are fewer than 2 distinct trials.
    """
    matrix = np.asarray(matrix, dtype=float)
    periods, given = matrix.shape
    if given < 2:
        raise UsageError("the probability of backtest overfitting needs 2 or more trials; widen the grid")
    check_splits(splits, periods)
    matrix = matrix[:, distinct_columns(matrix)]
    trials = matrix.shape[1]
    if trials < 2:
        raise UsageError("the probability of backtest overfitting needs 2 or more trials with different returns; "
                         "widen the grid")
    size = periods // splits
    blocks = matrix[periods - size * splits:].reshape(splits, size, trials)
    sums, squares = blocks.sum(axis=1), (blocks ** 2).sum(axis=1)  # per block and trial
    inside = np.array(list(itertools.combinations(range(splits), splits // 2)), dtype=np.int64)
    outside = np.array([sorted(set(range(splits)) - set(c)) for c in inside.tolist()], dtype=np.int64)
    best = np.argmax(_block_sharpe(sums, squares, inside, size), axis=1)
    omega = mid_rank(_block_sharpe(sums, squares, outside, size), best) / (trials + 1)
    logits = np.log(omega / (1 - omega))
    return PBOResult(float(np.mean(logits <= 0)), logits, splits, size * splits, trials, given - trials)


def _block_sharpe(sums: np.ndarray, squares: np.ndarray, chosen: np.ndarray, size: int) -> np.ndarray:
    """``sharpe`` of each trial over the rows of the ``chosen`` blocks of each combination, from the
    blocks' sums and sums of squares (C x N, without building the C x T/2 x N samples)."""
    n = chosen.shape[1] * size
    total, total_sq = sums[chosen].sum(axis=1), squares[chosen].sum(axis=1)
    mean = total / n
    return _ratio(mean, np.maximum(total_sq - n * mean ** 2, 0.0) / (n - 1))


def default_splits(periods: int) -> int:
    """``DEFAULT_SPLITS``, or the largest even number of blocks of 2+ periods a short sample allows."""
    return max(2, min(DEFAULT_SPLITS, (periods // 2) // 2 * 2))


def sharpe_t_stat(returns: np.ndarray) -> tuple[float, float, int]:
    """The per-period Sharpe ratio of ``returns`` and its t-statistic ``SR * sqrt(n)``.

    Under i.i.d. returns this is the t-statistic of the mean return being zero (Lo, "The
    Statistics of Sharpe Ratios", Financial Analysts Journal 58(4), 2002).

    Returns:
        (per-period Sharpe, t-statistic, n); NaN for both below two returns.
    """
    returns = np.asarray(returns, dtype=float)
    returns = returns[np.isfinite(returns)]
    n = len(returns)
    if n < 2:
        return math.nan, math.nan, n
    sr = float(sharpe(returns))
    return sr, sr * math.sqrt(n), n
