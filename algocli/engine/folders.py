"""Whose run a paper or live output folder holds, and where its risk state lives.

Paper and live runs of one run definition share its folder; a dry run has its own
(``RunMode.output_dir``). A live run's journal starts with its ``run`` record (the run key),
so the writer of a folder can be told apart before anything is replayed into the wrong run.
"""

from __future__ import annotations

from pathlib import Path

from algocli.domain.modes import RunMode
from algocli.errors import ConfigError


def refuse_foreign_journal(journal: Path) -> None:
    """A live run resumes only a live run's journal: one with its ``run`` record (the run key).

    Raises:
        ConfigError: The journal has records but no run key, so a paper run or a dry run
            (before dry runs had their own folder) wrote it; replaying it would make its
            simulated positions the live run's.
    """
    if _journal_writer(journal) in (RunMode.PAPER, RunMode.DRY_RUN):
        raise ConfigError(f"{journal}: this journal was not written by a live run (it has no run key: `algo paper` "
                          "or a dry run wrote it); move it away, or pass --fresh to set it aside and start anew")


def folder_mode(out_dir: Path) -> RunMode | None:
    """The mode of the run whose state ``out_dir`` holds, or None when none ran there.

    Paper and live runs of one run definition share its folder (a dry run has its own). A live
    run's journal carries its ``run`` record (the run key), and each run's ``run.json`` names its mode.
    """
    from algocli.persistence.artifacts import read_run_json

    writer = _journal_writer(out_dir / "journal.jsonl")
    if writer is not None:
        return writer
    written = read_run_json(out_dir).get("mode")  # a live run's journal set aside by `algo live --fresh`, say
    return next((m for m in (RunMode.LIVE, RunMode.PAPER, RunMode.DRY_RUN) if m.value == written), None)


def _journal_writer(journal: Path) -> RunMode | None:
    """``LIVE`` for a journal with a live run's ``run`` record (its run key), ``DRY_RUN`` for one a dry
    run marked (``mark_dry_run``), ``PAPER`` for one with records but neither (a paper run, or a dry
    run from before the mark), None for no journal or an empty one."""
    from algocli.persistence.journal import read_journal

    has_records = False
    for rec in read_journal(journal):
        if rec.get("k") == "run":
            return RunMode.LIVE
        if rec.get("k") == "mode" and rec.get("mode") == RunMode.DRY_RUN.value:
            return RunMode.DRY_RUN
        has_records = True
    return RunMode.PAPER if has_records else None


def refuse_live_folder(out_dir: Path) -> None:
    """A paper run never writes into a live run's folder, nor into a live dry run's.

    A paper run there would replay the live journal (its real positions becoming simulated ones),
    append simulated fills that a resumed live run would then replay as real, and overwrite the
    live run's artifacts.

    Raises:
        ConfigError: ``folder_mode`` finds a live run or a live dry run there.
    """
    mode = folder_mode(out_dir)
    if mode is RunMode.DRY_RUN:
        raise ConfigError(f"{out_dir}: `algo live --dry-run` rehearses from this folder, and a paper run here would "
                          "mix its orders into the dry run's journal and artifacts; paper-trade into another folder "
                          "with --output")
    if mode is RunMode.LIVE:
        raise ConfigError(f"{out_dir}: `algo live` trades from this folder, and a paper run here would mix its "
                          "simulated orders into the live run's journal and artifacts; paper-trade into another "
                          "folder with --output, e.g. --output " + str(out_dir.parent / f"{out_dir.name}-paper"))


def risk_state_path(cfg, base_dir: Path, mode: RunMode) -> Path:
    """The risk state file of a run of ``cfg`` in ``mode`` (``algo halt`` writes to it).

    Args:
        cfg: The ``RunConfig``; its ``risk:`` section must be set.
        base_dir: The run definition's output folder (``cfg.output_dir(...)``).
        mode: The run's mode. A dry run's state is always in its own folder, even when
            ``risk.state_file`` names a file, so it never halts or resets the live run.
    """
    from algocli.risk.state import STATE_FILE_NAME, state_path_for

    folder = mode.output_dir(base_dir)
    configured = cfg.risk.state_file
    if mode is RunMode.DRY_RUN:
        return folder / (Path(configured).name if configured is not None else STATE_FILE_NAME)
    return state_path_for(configured, folder)


def mark_dry_run(engine) -> None:
    """Mark a new dry run's journal as a dry run's (its first record), so that no paper run resumes it
    and ``algo halt`` names it; a resumed one already has the mark, or predates it."""
    if not engine.journal_records:
        engine.journal.append("mode", mode=RunMode.DRY_RUN.value)


__all__ = ["folder_mode", "mark_dry_run", "refuse_foreign_journal", "refuse_live_folder", "risk_state_path"]
