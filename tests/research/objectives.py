"""An objective function for ``--maximize research.objectives:fewest_trades`` in the tests."""


def fewest_trades(stats: dict) -> float:
    return -stats["total_trades"]


def misread(stats: dict) -> float:
    """Reads a statistic results.csv does not have, as a user's function might."""
    return stats["sharpe"]


def slow_sharpe(stats: dict) -> float:
    """The Sharpe ratio, slowly when ``SLOW_OBJECTIVE`` is set: a sweep long enough to press Ctrl-C in."""
    import os
    import time

    time.sleep(float(os.environ.get("SLOW_OBJECTIVE", "0")))
    return stats["sharpe_ratio"]


def as_text(stats: dict) -> str:
    """Returns the score as text, as a user's function might by mistake."""
    return f"{stats['sharpe_ratio']:.2f}"


def undefined(stats: dict) -> None:
    """No score for any trial: None means undefined."""
    return None
