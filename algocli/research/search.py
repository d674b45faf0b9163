"""Which points a sweep tries: the whole grid, a seeded random sample of it, or Optuna's TPE.

Every proposal is made on the client from one seeded generator, never on the workers, so
the same command proposes the same points whatever runs them. Bayesian search asks Optuna
for a fixed-size round of points, evaluates the round, and tells the scores back in trial
order: the proposals then depend on the seed and the scores only, not on how many workers
there are or which finished first.

A proposal the constraints or the strategies refuse is told to Optuna as infeasible
(``Trial.set_constraint``), so TPE learns to avoid that region rather than propose it again.
When TPE keeps proposing refused or already-run points (``STALE_PROPOSALS`` in a row), the
next point is a seeded random one of the admissible points not run yet, given to TPE as its
next trial: the search then stops short of ``trials`` only once every admissible point ran.
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
#: TPE proposals in a row without a new admissible point before a random one is taken instead.
STALE_PROPOSALS = 10
#: Random draws of the grid before its admissible points are listed to pick from.
RANDOM_DRAWS = 64


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
    """Optuna's TPE sampler over the space, asked round by round (module docstring).

    Ranges are searched as ordered integers (their index), choices as categories, so every
    proposal is exactly one of the given values.

    Args:
        space: The sweep's space.
        trials: Distinct points to evaluate.
        seed: The sampler's seed (and the random fallback's).
        accept: Returns why a point is refused (constraints or the strategies), or None.
        round_size: Points per round.

    Raises:
        UsageError: Optuna is not installed.
    """

    def __init__(self, space: Space, trials: int, seed: int, accept: Callable[[dict], str | None],
                 round_size: int = BAYES_ROUND) -> None:
        import numpy as np

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
        self._rng = np.random.default_rng(seed)
        self._dists = {}
        for p in space.params:
            if p.kind == "range":
                self._dists[p.name] = optuna.distributions.IntDistribution(0, len(p.values) - 1)
            else:
                self._dists[p.name] = optuna.distributions.CategoricalDistribution(list(p.values))
        self.seen: dict[str, dict] = {}  # canonical params -> point, in the order first proposed
        self.refused: dict[str, tuple[dict, str]] = {}  # canonical params -> (point, why the strategies refuse it)
        self._pending: list = []
        self._admissible: list[dict] | None = None  # every admissible point, once random draws found none new

    def _point(self, trial) -> dict:
        point = {}
        for p in self.space.params:
            raw = trial.params[p.name]
            point[p.name] = p.values[raw] if p.kind == "range" else raw
        return point

    def _raw(self, point: dict) -> dict:
        """``point`` as Optuna's parameters (a range's value as its index)."""
        return {p.name: p.values.index(point[p.name]) if p.kind == "range" else point[p.name]
                for p in self.space.params}

    def _refusal(self, point: dict) -> str | None:
        """Why ``point`` is refused: "" by a constraint, the strategies' reason, or None (admissible)."""
        from algocli.research.trials import canonical

        if not self.space.admits(point):
            return ""
        why = self.accept(point)
        if why is not None:
            self.refused.setdefault(canonical(point), (point, why))
        return why

    def ask(self) -> list[dict]:
        """The next round's new points (empty when the search is done)."""
        from algocli.research.trials import canonical

        new: list[dict] = []
        self._pending = []
        while len(self.seen) + len(new) < self.trials and len(new) < self.round_size:
            point = self._propose({canonical(q) for q in new})
            if point is None:
                break
            new.append(point)
        for point in new:
            self.seen[canonical(point)] = point
        return new

    def _propose(self, taken: set[str]) -> dict | None:
        """A new admissible point from TPE, else a seeded random one; None when none is left."""
        from algocli.research.trials import canonical

        for _ in range(STALE_PROPOSALS):
            trial = self.study.ask(self._dists)
            point = self._point(trial)
            key = canonical(point)
            if self._refusal(point) is not None:
                trial.set_constraint("admissible", 1.0)  # infeasible: TPE ranks it below every scored point
                self.study.tell(trial, 0.0)
                continue
            self._pending.append((trial, key))  # a point already run is told its score again
            if key not in self.seen and key not in taken:
                return point
        point = self._random_point(taken)
        if point is not None:
            self.study.enqueue_trial(self._raw(point))  # TPE's next trial is this point: it learns from it
            self._pending.append((self.study.ask(self._dists), canonical(point)))
        return point

    def _random_point(self, taken: set[str]) -> dict | None:
        """A seeded random admissible point not run nor ``taken`` yet, or None when none is left."""
        from algocli.research.space import MAX_GRID
        from algocli.research.trials import canonical

        fresh = lambda q: canonical(q) not in self.seen and canonical(q) not in taken  # noqa: E731
        if self._admissible is None:
            for _ in range(RANDOM_DRAWS):
                point = {p.name: p.values[int(self._rng.integers(len(p.values)))] for p in self.space.params}
                if fresh(point) and self._refusal(point) is None:
                    return point
            if self.space.size > MAX_GRID:  # too many to list: the draws found nothing, so stop
                return None
            self._admissible = [q for q in self.space.grid() if self._refusal(q) is None]
        left = [q for q in self._admissible if fresh(q)]
        return left[int(self._rng.integers(len(left)))] if left else None

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
