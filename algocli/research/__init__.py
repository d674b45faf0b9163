"""Research at scale: parameter sweeps of a run definition on one machine or a Dask cluster.

``run_trials(config, space, ...) -> TrialsResult`` is the library entry point (``algo optimize``
is a thin command over it); ``Space.parse`` builds the space from ``--param``/``--constraint``
texts, ``make_executor`` picks the backend and ``write_outputs`` writes the artifacts.
"""

from algocli.research.space import Space, parse_param
from algocli.research.trials import Trial, TrialsResult, run_trials

__all__ = ["Space", "Trial", "TrialsResult", "parse_param", "run_trials"]
