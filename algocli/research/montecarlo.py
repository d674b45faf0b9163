"""Monte Carlo resampling of a finished run: the spread of its return, drawdown and Sharpe ratio.

Three methods, all computed on growth factors (returns compounded on equity), never on rupee
P&L, which lets a late large trade hit a small early balance (equity below zero):

- ``trades``: the closed trades' returns on the equity they were sized against, reshuffled
  (a permutation: the final return stays the run's, only the path changes) or, with
  ``replace``, drawn with replacement (the spread of the outcome too). The path is the
  realised equity after each trade; its Sharpe ratio uses the run's calendar, each trade's
  result landing on the day the n-th trade of the run closed.
- ``bootstrap``: the equity curve's bar returns drawn i.i.d.
- ``block``: the bar returns in blocks that keep their serial dependence: the stationary
  bootstrap (Politis & Romano 1994, geometric block lengths of mean ``block_size``) or the
  circular fixed-block bootstrap. The default block size follows Politis & White (2004) with
  the Patton, Politis & White (2009) correction, as ``arch.bootstrap.optimal_block_length``
  computes it (https://arch.readthedocs.io/en/latest/bootstrap/generated/arch.bootstrap.optimal_block_length.html),
  rounded up to whole bars (``Simulations.block_estimate`` keeps the estimate, and the reports
  say so). A circular block holds a whole number of bars, so a fractional ``block_size`` is
  refused there; the stationary bootstrap takes a fractional mean as given.

Sharpe ratios are annualised as backtesting.py does (``algocli.analytics.stats``): from the
returns between the last equity of consecutive days. Ruin is the equity falling ``ruin`` (a
fraction) below the starting equity at any point of the path. Everything is vectorised over
simulations, in chunks that bound memory; one seeded ``numpy.random.Generator`` draws all of it,
so the same seed gives the same simulations.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from algocli.errors import UsageError

METHODS = ("trades", "bootstrap", "block")
BLOCK_KINDS = ("stationary", "circular")
TRADE_RETURNS = ("equity", "position")
#: Percentiles reported for each statistic.
PERCENTILES = (5, 25, 50, 75, 95)
#: Statistic columns of ``montecarlo.csv``, named as in ``results.csv``.
STATISTICS = ("total_return_pct", "max_drawdown_pct", "sharpe_ratio")
#: Path elements held at once (simulations x steps), about 32 MB per float64 array.
_CHUNK_ELEMENTS = 4_000_000
_NS_PER_S = 10**9


@dataclass(frozen=True)
class RunData:
    """What Monte Carlo needs from a finished run's folder.

    Attributes:
        folder: The run's artifact folder.
        mode: ``backtest``, ``paper``, ``live``... (``run.json``).
        initial_capital: Starting equity.
        ts: Equity-curve bar times, UTC nanoseconds.
        equity: Equity at each bar.
        trade_returns: Closed-trade returns on the equity before each trade (fractions), by exit time.
        position_returns: The same trades' ``return_pct`` (on the position's value), as fractions.
        exit_bars: Index into ``ts`` of each trade's exit bar, sorted.
    """

    folder: Path
    mode: str
    initial_capital: float
    ts: np.ndarray
    equity: np.ndarray
    trade_returns: np.ndarray
    position_returns: np.ndarray
    exit_bars: np.ndarray

    @property
    def bar_returns(self) -> np.ndarray:
        """Bar-to-bar returns of the equity curve (one fewer than the bars)."""
        return self.equity[1:] / self.equity[:-1] - 1


@dataclass(frozen=True)
class Simulations:
    """The outcome of ``simulate``: one value per simulation of each statistic.

    Attributes:
        method: ``trades``, ``bootstrap`` or ``block``.
        seed: The generator's seed.
        ruin: The loss (fraction of the starting equity) that counts as ruin.
        block_size: Mean (stationary) or fixed block length of the ``block`` method as used, else None.
        values: ``STATISTICS`` name -> array of one value per simulation.
        ruined: Whether each path fell ``ruin`` below the start.
        actual: The statistics of the run's own path, computed the same way.
        replace: ``trades``: drawn with replacement rather than reshuffled.
        trade_returns: ``trades``: ``equity`` or ``position`` returns.
        block_kind: ``block``: ``stationary`` (geometric lengths of mean ``block_size``) or
            ``circular`` (every block ``block_size`` long).
        block_estimate: ``block`` without a given size: Politis and White's estimate, which
            ``block_size`` rounds up to whole bars; None when the size was given.
    """

    method: str
    seed: int
    ruin: float
    block_size: float | None
    values: dict[str, np.ndarray]
    ruined: np.ndarray
    actual: dict[str, float]
    replace: bool = False
    trade_returns: str = "equity"
    block_kind: str = "stationary"
    block_estimate: float | None = None

    @property
    def count(self) -> int:
        return len(self.ruined)

    @property
    def ruin_probability(self) -> float:
        """Share of the paths that fell to ruin."""
        return float(self.ruined.mean())

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean, standard deviation and ``PERCENTILES`` of each statistic (NaN Sharpe ratios left out)."""
        out = {}
        for name, values in self.values.items():
            finite = values[np.isfinite(values)]
            row = {"mean": float(finite.mean()) if len(finite) else math.nan,
                   "std": float(finite.std(ddof=1)) if len(finite) > 1 else math.nan}
            qs = np.percentile(finite, PERCENTILES) if len(finite) else [math.nan] * len(PERCENTILES)
            row.update({f"p{p}": float(q) for p, q in zip(PERCENTILES, qs)})
            out[name] = row
        return out


# --------------------------------------------------------------------------- reading a run


def load_run(folder: Path) -> RunData:
    """Read a finished run's ``trades.csv``, ``equity_curve.csv``, ``run.json`` and resolved config.

    Args:
        folder: The run's artifact folder (``output/<run>``).

    Returns:
        The run's returns and calendar.

    Raises:
        UsageError: The folder is not a finished run, or the run closed no trade.
    """
    folder = Path(folder)
    for name in ("trades.csv", "equity_curve.csv"):
        if not (folder / name).is_file():
            raise UsageError(_which_run(folder, name))
    trades = _read_columns(folder / "trades.csv", ("exit_time", "pnl", "return_pct"))
    if not len(trades["exit_time"]):
        raise UsageError(f"{folder / 'trades.csv'}: the run closed no trade; nothing to resample")
    curve = _read_columns(folder / "equity_curve.csv", ("timestamp", "equity"))
    ts = _ns(curve["timestamp"])
    equity = curve["equity"].astype(float)
    if len(ts) < 2:
        raise UsageError(f"{folder / 'equity_curve.csv'}: fewer than two bars; nothing to resample")
    initial = _initial_capital(folder, float(equity[0]))
    exit_ns = _ns(trades["exit_time"])
    order = np.argsort(exit_ns, kind="stable")
    exit_ns, pnl = exit_ns[order], trades["pnl"].astype(float)[order]
    return RunData(folder=folder, mode=_mode(folder), initial_capital=initial, ts=ts, equity=equity,
                   trade_returns=_equity_returns(pnl, initial),
                   position_returns=trades["return_pct"].astype(float)[order] / 100,
                   exit_bars=np.minimum(np.searchsorted(ts, exit_ns), len(ts) - 1))


def _equity_returns(pnl: np.ndarray, initial: float) -> np.ndarray:
    """Each trade's P&L (by exit time) over the realised equity before it: start plus earlier trades' P&L.

    With trades one after another the product of ``1 + r`` is the run's final equity over its
    start, whatever the sizing, which is why these and not ``return_pct`` are compounded.
    """
    before = initial + np.r_[0.0, np.cumsum(pnl)[:-1]]
    return pnl / before


def _which_run(path: Path, missing: str) -> str:
    """Why RUN is no finished run (it lacks ``missing``), and the fix: the folder its run definition
    writes, the finished runs inside it, or how to get one."""
    from algocli.persistence.output import shown

    if path.is_file() and path.suffix in (".yaml", ".yml"):
        from algocli.config.run import load_run_config
        from algocli.errors import AlgoError

        try:
            out = shown(load_run_config(path).output_dir())
            return f"{path}: is a run definition, not a finished run; pass the folder its run writes, {out}"
        except AlgoError:
            pass  # not a valid one: the general hint below
    if not path.exists():
        return f"{path}: no such folder; pass the folder of a finished run (algo backtest writes one, e.g. " \
               "output/sma-hdfcbank)"
    runs = sorted(shown(p.parent) for p in path.glob("*/trades.csv")) if path.is_dir() else []
    if runs:
        some = ", ".join(runs[:4]) + (", ..." if len(runs) > 4 else "")
        return f"{path}: no {missing}; pass one of the finished runs in it: {some}"
    return f"{path}: no {missing}; pass the folder of a finished run (algo backtest writes one, e.g. output/sma-hdfcbank)"


def _read_columns(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        missing = [n for n in names if n not in header]
        if missing:
            raise UsageError(f"{path}: no column {', '.join(missing)}; rerun the run with this version of algo")
        idx = [header.index(n) for n in names]
        rows = [[row[i] for i in idx] for row in reader if row]
    cols = list(zip(*rows)) if rows else [()] * len(names)
    try:
        return {n: np.array(c, dtype=object if n.endswith(("time", "timestamp")) else float)
                for n, c in zip(names, cols)}
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}; the file is not as algo writes it") from None


def _ns(texts: np.ndarray) -> np.ndarray:
    """ISO-8601 times with an offset (as the artifacts write them) as UTC nanoseconds."""
    from datetime import datetime

    if not len(texts):
        return np.array([], dtype=np.int64)
    if all(t.endswith("+05:30") for t in (texts[0], texts[-1])):  # the artifacts' IST stamps: vectorised
        local = np.array([t[:-6] for t in texts], dtype="datetime64[ns]").astype(np.int64)
        return local - (5 * 3600 + 1800) * _NS_PER_S
    return np.array([int(datetime.fromisoformat(t).timestamp() * _NS_PER_S) for t in texts], dtype=np.int64)


def _initial_capital(folder: Path, fallback: float) -> float:
    path = folder / "config.resolved.yaml"
    if path.is_file():
        import yaml

        value = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("initial_capital")
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    return fallback


def _mode(folder: Path) -> str:
    from algocli.persistence.artifacts import read_run_json

    return str(read_run_json(folder).get("mode", "backtest"))


# --------------------------------------------------------------------------- block length


def optimal_block_length(x: np.ndarray, *, kind: str = "stationary") -> float:
    """Politis & White's (2004) block length, with Patton, Politis & White's (2009) correction.

    Args:
        x: The series (bar returns).
        kind: ``stationary`` (mean block length) or ``circular`` (fixed block length).

    Returns:
        The estimated optimal block length, at least 1 and at most ``min(3 sqrt(n), n / 3)``.
    """
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n < 3:
        return 1.0
    eps = x - x.mean()
    b_max = math.ceil(min(3 * math.sqrt(n), n / 3))
    kn = max(5, int(math.log10(n)))
    m_max = min(math.ceil(math.sqrt(n)) + kn, n - 1)
    band = 2 * math.sqrt(math.log10(n) / n)  # autocorrelations inside it count as insignificant
    acv = np.array([eps[k:] @ eps[: n - k] / n for k in range(m_max + 1)])
    if acv[0] <= 0:
        return 1.0
    acorr = np.abs(acv) / acv[0]
    m_hat = next((k for k in range(1, m_max - kn + 2) if np.all(acorr[k: k + kn] < band)), None)
    m = min(2 * max(m_hat, 1), m_max) if m_hat is not None else m_max
    k = np.arange(1, m + 1)
    lam = np.where(k / m <= 0.5, 1.0, 2 * (1 - k / m))  # the flat-top lag window
    g = float(np.sum(2 * lam * k * acv[1: m + 1]))
    long_run = float(acv[0] + np.sum(2 * lam * acv[1: m + 1]))
    d = (2.0 if kind == "stationary" else 4 / 3) * long_run**2
    if d <= 0:
        return 1.0
    return float(min(max((2 * g**2 / d) ** (1 / 3) * n ** (1 / 3), 1.0), b_max))


# --------------------------------------------------------------------------- resampling


def _block_indices(n_obs: int, count: int, block: float, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Index rows of a block bootstrap (blocks wrap around the end of the series)."""
    positions = np.arange(n_obs)
    if kind == "stationary":
        jump = rng.random((count, n_obs)) < 1 / block  # a new block starts with probability 1/B
        jump[:, 0] = True
        starts = rng.integers(0, n_obs, size=(count, n_obs))
        last = np.maximum.accumulate(np.where(jump, positions, 0), axis=1)
        return (np.take_along_axis(starts, last, axis=1) + positions - last) % n_obs
    size = int(block)  # a whole number of bars: ``simulate`` refuses a fractional one
    starts = rng.integers(0, n_obs, size=(count, -(-n_obs // size)))
    return ((starts[:, :, None] + np.arange(size)) % n_obs).reshape(count, -1)[:, :n_obs]


def _indices(method: str, n_obs: int, count: int, rng: np.random.Generator, *, replace: bool,
             block: float | None, kind: str) -> np.ndarray:
    if method == "block":
        return _block_indices(n_obs, count, block, kind, rng)
    if method == "trades" and not replace:
        return rng.permuted(np.broadcast_to(np.arange(n_obs), (count, n_obs)), axis=1)
    return rng.integers(0, n_obs, size=(count, n_obs))


def _path_statistics(growth: np.ndarray, close_cols: np.ndarray, annual: float, ruin: float) -> dict[str, np.ndarray]:
    """Statistics of equity paths given as growth factors (one row per path, column 0 = 1).

    Args:
        growth: Equity over the starting equity along each path.
        close_cols: The column holding each day's closing equity (sorted).
        annual: Periods per year of those closes.
        ruin: Loss fraction counted as ruin.

    Returns:
        ``STATISTICS`` arrays and ``ruined``.
    """
    peak = np.maximum.accumulate(growth, axis=1)
    max_dd = (1 - growth / peak).max(axis=1)
    return {"total_return_pct": (growth[:, -1] - 1) * 100, "max_drawdown_pct": -max_dd * 100,
            "sharpe_ratio": _sharpe(growth, close_cols, annual), "ruined": growth.min(axis=1) <= 1 - ruin}


def _sharpe(growth: np.ndarray, close_cols: np.ndarray, annual: float) -> np.ndarray:
    """backtesting.py's Sharpe ratio (``stats._returns_block``) of every path at once.

    Days whose closing equity did not move add a zero return; only the others are computed,
    which keeps a path of a few trades over years of days cheap.
    """
    days = len(close_cols) - 1
    if days < 2:
        return np.full(len(growth), np.nan)
    prev, cur = close_cols[:-1], close_cols[1:]
    moved = prev != cur
    with np.errstate(all="ignore"):
        r = growth[:, cur[moved]] / growth[:, prev[moved]] - 1
        mean = r.sum(axis=1) / days
        var = (((r - mean[:, None]) ** 2).sum(axis=1) + (days - r.shape[1]) * mean**2) / (days - 1)
        gmean = np.where((1 + r <= 0).any(axis=1), 0.0, np.expm1(np.log1p(r).sum(axis=1) / days))
        ann = (1 + gmean) ** annual - 1
        vol = np.sqrt((var + (1 + gmean) ** 2) ** annual - (1 + gmean) ** (2 * annual))
        return np.where(vol > 0, ann / vol, np.nan)


@dataclass(frozen=True)
class _Setup:
    returns: np.ndarray
    close_cols: np.ndarray
    annual: float


def _setup(run: RunData, method: str, trade_returns: str) -> _Setup:
    from algocli.analytics.stats import period_closes

    closes, annual = period_closes(run.ts)
    if method != "trades":
        return _Setup(run.bar_returns, closes, annual)
    returns = run.trade_returns if trade_returns == "equity" else run.position_returns
    # The n-th trade of any path closes when the run's n-th trade closed: a day's closing
    # column is the number of trades closed by that day's last bar.
    return _Setup(returns, np.searchsorted(run.exit_bars, closes, side="right"), annual)


def evaluate(run: RunData, indices: np.ndarray, *, method: str = "trades", trade_returns: str = "equity",
             ruin: float = 0.3) -> dict[str, np.ndarray]:
    """Statistics of the paths that take the run's returns in the order of each row of ``indices``.

    Args:
        run: The run.
        indices: One row per path of indices into the trade returns (``trades``) or bar returns.
        method: ``trades`` or a bar method.
        trade_returns: ``equity`` or ``position`` (see ``simulate``).
        ruin: Loss fraction counted as ruin.

    Returns:
        ``STATISTICS`` arrays and ``ruined``, one value per row.
    """
    setup = _setup(run, method, trade_returns)
    return _evaluate(setup, np.asarray(indices), ruin)


def _evaluate(setup: _Setup, indices: np.ndarray, ruin: float) -> dict[str, np.ndarray]:
    growth = np.ones((len(indices), indices.shape[1] + 1))
    np.cumprod(1 + setup.returns[indices], axis=1, out=growth[:, 1:])
    return _path_statistics(growth, setup.close_cols, setup.annual, ruin)


def simulate(run: RunData, n: int, *, method: str = "trades", seed: int | None = None, ruin: float = 0.3,
             replace: bool = False, block_size: float | None = None, block_kind: str = "stationary",
             trade_returns: str = "equity") -> Simulations:
    """Resample the run ``n`` times.

    Args:
        run: The run (``load_run``).
        n: Simulations, at least 1.
        method: ``trades``, ``bootstrap`` or ``block``.
        seed: Seed of the generator; None draws one (reported in the result).
        ruin: Loss below the starting equity, as a fraction in (0, 1], that counts as ruin.
        replace: ``trades`` only: draw trades with replacement instead of reshuffling them.
        block_size: ``block`` only: mean or fixed block length (a whole number of bars for
            ``circular``); None estimates it (``optimal_block_length``, rounded up to whole bars).
        block_kind: ``stationary`` or ``circular``.
        trade_returns: ``equity`` (P&L over the equity before the trade: keeps the run's sizing)
            or ``position`` (``return_pct``: as if each trade put the whole equity at stake).

    Returns:
        The simulations.

    Raises:
        UsageError: A value out of range.
    """
    _check(n, method, ruin, block_size, block_kind, trade_returns)
    _check_method_options(method, replace, block_size, block_kind, trade_returns)
    seed = int(np.random.SeedSequence().entropy % 2**32) if seed is None else int(seed)
    setup = _setup(run, method, trade_returns)
    n_obs = len(setup.returns)
    estimate = None
    if method == "block" and block_size is None:
        estimate = optimal_block_length(setup.returns, kind=block_kind)
        block_size = max(1.0, float(math.ceil(estimate)))
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // max(n_obs, 1))
    parts = []
    for start in range(0, n, chunk):
        idx = _indices(method, n_obs, min(chunk, n - start), rng, replace=replace, block=block_size, kind=block_kind)
        parts.append(_evaluate(setup, idx, ruin))
    values = {k: np.concatenate([p[k] for p in parts]) for k in (*STATISTICS, "ruined")}
    actual = _evaluate(setup, np.arange(n_obs)[None, :], ruin)
    return Simulations(method=method, seed=seed, ruin=ruin, block_size=block_size if method == "block" else None,
                       values={k: values[k] for k in STATISTICS}, ruined=values["ruined"],
                       actual={k: float(actual[k][0]) for k in STATISTICS}, replace=replace,
                       trade_returns=trade_returns, block_kind=block_kind, block_estimate=estimate)


def _check(n: int, method: str, ruin: float, block_size: float | None, block_kind: str, trade_returns: str) -> None:
    if n < 1:
        raise UsageError(f"--n {n}: the number of simulations must be at least 1")
    for flag, value, allowed in (("--method", method, METHODS), ("--block-kind", block_kind, BLOCK_KINDS),
                                 ("--trade-returns", trade_returns, TRADE_RETURNS)):
        if value not in allowed:
            raise UsageError(f"{flag} {value}: use one of {', '.join(allowed)}")
    if not 0 < ruin <= 1:
        raise UsageError(f"--ruin {ruin}: give the loss as a fraction of the starting equity, e.g. 0.3 for 30%")
    if block_size is not None and block_size < 1:
        raise UsageError(f"--block-size {block_size}: a block holds at least 1 bar")
    if block_size is not None and block_kind == "circular" and block_size != int(block_size):
        low = int(block_size)
        raise UsageError(f"--block-size {block_size:g}: a circular block holds a whole number of bars; give "
                         f"{low} or {low + 1} (--block-kind stationary takes a fractional mean)")


def _check_method_options(method: str, replace: bool, block_size: float | None, block_kind: str,
                          trade_returns: str) -> None:
    """An option of another method would be ignored without a word: refuse it instead."""
    given = {"--replace": replace, "--trade-returns": trade_returns != "equity",
             "--block-size": block_size is not None, "--block-kind": block_kind != "stationary"}
    owner = {"--replace": "trades", "--trade-returns": "trades", "--block-size": "block", "--block-kind": "block"}
    for flag, used in given.items():
        if used and owner[flag] != method:
            hint = " (bootstrap draws bar returns with replacement already)" if flag == "--replace" else ""
            raise UsageError(f"{flag} applies to --method {owner[flag]}, not {method}{hint}; "
                             f"drop it or pass --method {owner[flag]}")
