"""The risk state file: HALTED or ACTIVE, why, and the day's loss baseline.

It is small JSON, rewritten whole through a temporary file, fsync and rename, so a reader
(the running engine, ``algo halt``) sees either the old or the new content, never half a
file. Each write makes a new inode, which is how a running engine notices a change cheaply
(``stat`` per loop iteration) even when two writes land within one mtime tick.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from algocli.errors import UsageError

ACTIVE = "ACTIVE"
HALTED = "HALTED"
STATE_FILE_NAME = "risk_state.json"


@dataclass
class RiskState:
    """What survives a restart. Dates are IST calendar dates (``2024-06-10``)."""

    state: str = ACTIVE
    reason: str = ""
    source: str = ""  # operator | signal | daily-loss
    halted_at: str = ""  # engine time for the engine's own halts, wall time for `algo halt`
    flattened: bool = False  # flatten_on_halt's orders have been sent for this halt
    day: str | None = None  # the IST day the baseline belongs to
    day_start_equity: float | None = None  # None: measure afresh at the next check
    square_off_day: str | None = None  # the last IST day whose square-off ran

    @property
    def halted(self) -> bool:
        return self.state == HALTED


def read_state(path: Path) -> RiskState | None:
    """The state in ``path``; None if there is no file. A damaged file raises ``UsageError``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        known = {k: v for k, v in raw.items() if k in RiskState.__dataclass_fields__}
        state = RiskState(**known)
        if state.state not in (ACTIVE, HALTED):
            raise ValueError(f"state {state.state!r} is neither {ACTIVE} nor {HALTED}")
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{path}: risk state file is damaged ({exc}); check it, then delete it or run "
                         "`algo halt CONFIG --clear` to write a fresh one") from None
    return state


def write_state(path: Path, state: RiskState) -> None:
    """Write ``state`` atomically: temporary file, fsync, rename."""
    from algocli.persistence.artifacts import atomic_write_text

    atomic_write_text(Path(path), json.dumps(asdict(state), indent=2) + "\n")


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime ns, size) of ``path``, or None if it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def state_path_for(risk_state_file: Path | None, output_dir: Path) -> Path:
    """The configured ``risk.state_file``, or ``<output dir>/risk_state.json``."""
    return Path(risk_state_file) if risk_state_file is not None else Path(output_dir) / STATE_FILE_NAME


__all__ = ["ACTIVE", "HALTED", "STATE_FILE_NAME", "RiskState", "file_signature", "read_state", "state_path_for",
           "write_state"]
