"""An objective function for ``--maximize research.objectives:fewest_trades`` in the tests."""


def fewest_trades(stats: dict) -> float:
    return -stats["total_trades"]


def misread(stats: dict) -> float:
    """Reads a statistic results.csv does not have, as a user's function might."""
    return stats["sharpe"]
