"""Which points a sweep tries: the whole grid, a seeded random sample of it, or Optuna's TPE.

Every proposal is made on the client from one seeded generator, never on the workers, so
the same command proposes the same points whatever runs them. Bayesian search asks Optuna
for a fixed-size round of points, evaluates the round, and tells the scores back in trial
order: the proposals then depend on the seed and the scores only, not on how many workers
there are or which finished first.
"""

from __future__ import annotations

import math
from typing import Callable

from algocli.errors import UsageError
from algocli.research.space import Space

METHODS = ("grid", "random", "bayes")
#: Points random and Bayesian search try when ``--trials`` is not given.
DEFAULT_TRIALS = 100
#: Points per Bayesian round: larger rounds use more workers at once, smaller ones learn sooner.
BAYES_ROUND = 8


def admissible(space: Space, accept: Callable[[dict], str | None]) -> tuple[list[dict], list[tuple[dict, str]]]:
    """The grid's points that pass the constraints and that the strategies accept.

    Args:
        space: The sweep's space.
        accept: Returns why the strategies refuse a point, or None.

    Returns:
        The accepted points in grid order, and the refused ones with the reason.
    """
    points, refused = [], []
    for point in space.grid():
        why = accept(point)
        if why is None:
            points.append(point)
        else:
            refused.append((point, why))
    return points, refused


def sample(points: list[dict], n: int, seed: int) -> list[dict]:
    """``n`` distinct points drawn without replacement (all of them when ``n`` is larger), in draw order."""
    import numpy as np

    if n >= len(points):
        return list(points)
    rng = np.random.default_rng(seed)
    return [points[i] for i in rng.choice(len(points), size=n, replace=False).tolist()]


class BayesSearch:
    """Optuna's TPE sampler over the space, asked round by round.

    Ranges are searched as ordered integers (their index), choices as categories, so every
    proposal is exactly one of the given values.

    Args:
        space: The sweep's space.
        trials: Distinct points to evaluate.
        seed: The sampler's seed.
        accept: Returns why a point is refused (constraints or the strategies), or None.
        round_size: Points per round.

    Raises:
        UsageError: Optuna is not installed.
    """

    def __init__(self, space: Space, trials: int, seed: int, accept: Callable[[dict], str | None],
                 round_size: int = BAYES_ROUND) -> None:
        try:
            import optuna
        except ImportError:
            raise UsageError("--method bayes needs Optuna; install it with pip install 'algocli[research]'") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self.space = space
        self.trials = trials
        self.accept = accept
        self.round_size = round_size
        self.study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        self._dists = {}
        for p in space.params:
            if p.kind == "range":
                self._dists[p.name] = optuna.distributions.IntDistribution(0, len(p.values) - 1)
            else:
                self._dists[p.name] = optuna.distributions.CategoricalDistribution(list(p.values))
        self.seen: dict[str, dict] = {}  # canonical params -> point, in the order first proposed
        self.refused: dict[str, tuple[dict, str]] = {}  # canonical params -> (point, why the strategies refuse it)
        self._pending: list = []

    def _point(self, trial) -> dict:
        point = {}
        for p in self.space.params:
            raw = trial.params[p.name]
            point[p.name] = p.values[raw] if p.kind == "range" else raw
        return point

    def ask(self) -> list[dict]:
        """The next round's new points (empty when the search is done)."""
        from algocli.research.trials import canonical

        state = self._optuna.trial.TrialState
        new: list[dict] = []
        self._pending = []
        # A space mostly refused or already explored would otherwise never end: give up after
        # this many proposals in a row without a new point.
        stale, limit = 0, 20 * self.round_size + 50
        while len(self.seen) + len(new) < self.trials and len(new) < self.round_size and stale < limit:
            stale += 1
            trial = self.study.ask(self._dists)
            point = self._point(trial)
            key = canonical(point)
            why = self.accept(point) if self.space.admits(point) else ""
            if why is not None:
                if why:
                    self.refused.setdefault(key, (point, why))
                self.study.tell(trial, state=state.FAIL)
                continue
            self._pending.append((trial, key))
            if key not in self.seen and all(canonical(q) != key for q in new):
                new.append(point)
                stale = 0
        for point in new:
            self.seen[canonical(point)] = point
        return new

    def tell(self, scores: dict[str, float | None]) -> None:
        """Report the scores of the round's points (by canonical params), in the order asked."""
        state = self._optuna.trial.TrialState
        for trial, key in self._pending:
            score = scores.get(key)
            if score is None or math.isinf(score):
                self.study.tell(trial, state=state.FAIL)
            else:
                self.study.tell(trial, score)
        self._pending = []
