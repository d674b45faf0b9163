"""Risk limits and the kill switch: one ``RiskController`` on the order path of every engine.

Engines get one from the run definition's ``risk:`` section with ``attach_risk``; without
that section nothing is attached and the order path pays one ``is None`` check.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from algocli.domain.session import decision_lag_ns
from algocli.risk.config import RiskConfig
from algocli.risk.controller import FLATTEN_TAG, SQUARE_OFF_TAG, RiskController
from algocli.risk.state import ACTIVE, HALTED, RiskState, read_state, state_path_for, write_state

if TYPE_CHECKING:
    from algocli.engine.core import EngineCore


def engine_clock(core: EngineCore):
    """A ``clock_ns`` for ``RiskController``: the start of the candle ``core`` is processing."""
    def now() -> int | None:
        c = core.clock
        if c is None or c.cursor < 0:
            return None
        return int(c.ts_mv[c.cursor])
    return now


def attach_risk(core: EngineCore, config: RiskConfig, *, state_path: Path | None,
                clear_command: str = "algo halt CONFIG --clear") -> RiskController:
    """Build a controller for ``config`` on ``core``'s clock and put it on ``core``'s order path.

    Call it before the engine starts. ``state_path`` None (backtests) keeps the state in memory;
    ``clear_command`` is the ``algo halt ... --clear`` its notes name (the run's own).
    """
    interval = next((h.interval for h in core.histories.values() if h.interval is not None), None)
    return RiskController(config, state_path=state_path, clock_ns=engine_clock(core), clear_command=clear_command,
                          decision_lag_ns=decision_lag_ns(interval)).attach(core)
