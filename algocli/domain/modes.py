"""The four ways a run trades, and how each one names itself on screens, artifacts and hints.

A run's mode is written to ``run.json``, titles its ``report.html`` and its dashboard, and
picks the command that resumes it, so a dry run is never shown (or resumed) as the real
thing and a live run is never shown as paper trading.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path


class RunMode(str, Enum):
    """How a run trades; the value is what ``run.json`` records."""

    BACKTEST = "backtest"
    PAPER = "paper"
    DRY_RUN = "live-dry-run"
    LIVE = "live"

    @property
    def title(self) -> str:
        """The words that head the dashboard and the report, e.g. ``Live trading (dry run)``."""
        return _TITLES[self]

    @property
    def folder(self) -> str:
        """The sub-folder of the run's output folder that holds this mode's journal, risk state and
        artifacts: ``dry-run`` for a dry run (so it never shares the live run's), else ``""``."""
        return "dry-run" if self is RunMode.DRY_RUN else ""

    def output_dir(self, base: Path) -> Path:
        """This mode's folder under the run definition's output folder ``base``."""
        return Path(base) / self.folder if self.folder else Path(base)

    def resume_command(self, config: str | Path, output: str | Path | None = None) -> str | None:
        """The command that resumes a stopped run of ``config`` in this mode (None for a backtest),
        with the ``--output`` it was given: without it, the command would resume another folder's run."""
        command = {
            RunMode.BACKTEST: None,
            RunMode.PAPER: f"algo paper {_quoted(config)}",
            RunMode.DRY_RUN: f"algo live {_quoted(config)} --dry-run",
            RunMode.LIVE: f"algo live {_quoted(config)}",
        }[self]
        return command if command is None or output is None else f"{command} --output {_quoted(output)}"

    def halt_command(self, config: str | Path, output: str | Path | None = None, *, clear: bool = False) -> str | None:
        """The ``algo halt`` that reaches a run of ``config`` in this mode (None for a backtest, which
        keeps its risk state in memory): ``--dry-run`` for a dry run, and the run's ``--output``."""
        if self is RunMode.BACKTEST:
            return None
        flags = (" --dry-run" if self is RunMode.DRY_RUN else "") + (f" --output {_quoted(output)}" if output else "")
        return f"algo halt {_quoted(config)}{flags}{' --clear' if clear else ''}"


def _quoted(path: str | Path) -> str:
    """``path`` as a shell word: a hint with ``my out`` in it must still work when pasted."""
    import shlex

    return shlex.quote(str(path))


_TITLES = {
    RunMode.BACKTEST: "Backtest",
    RunMode.PAPER: "Paper trading",
    RunMode.DRY_RUN: "Live trading (dry run)",
    RunMode.LIVE: "Live trading",
}

__all__ = ["RunMode"]
