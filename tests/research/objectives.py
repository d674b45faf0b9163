"""An objective function for ``--maximize research.objectives:fewest_trades`` in the tests."""


def fewest_trades(stats: dict) -> float:
    return -stats["total_trades"]
