"""``algo halt``: the kill switch. Writes HALTED (or clears it) in the run's risk state file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from algocli.cli.console import console
from algocli.cli.main import app
from algocli.cli.params import folder


@app.command("halt")
def halt_command(
    config: Annotated[Path, typer.Argument(help="Run definition of the paper or live run to halt.")],
    clear: Annotated[bool, typer.Option("--clear", help="Lift the halt so the run trades again.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why; shown in orders.csv for every refused order.")
                      ] = "halted by the operator",
    output: Annotated[Path | None, typer.Option("--output", "-o", parser=folder, help="The run's output folder, if the run "
                                                "(`algo paper`, `algo live --dry-run` or `algo live`) was "
                                                "given --output.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Halt the `algo live --dry-run` run of CONFIG "
                                          "(it keeps its own risk state).")] = False,
) -> None:
    """Halt the run of CONFIG: it cancels its open orders and opens no new positions until --clear."""
    from algocli.config.run import load_run_config
    from algocli.domain.candle import ns_to_ist
    from algocli.domain.modes import RunMode
    from algocli.errors import ConfigError, UsageError
    from algocli.engine.folders import risk_state_path
    from algocli.risk.state import ACTIVE, HALTED, RiskState, read_state, write_state

    cfg = load_run_config(config)
    if cfg.risk is None:
        raise ConfigError(f"{config}: no risk: section, so a run of it would not notice a halt; "
                          "add `risk: {}` (or limits) to the run definition and restart the run")
    mode = RunMode.DRY_RUN if dry_run else RunMode.LIVE
    base = cfg.output_dir(output)
    if output is not None and not base.is_dir():  # a mistyped --output must not halt nothing, silently
        raise UsageError(f"--output {output}: no such folder; give the --output the run was started with")
    path = risk_state_path(cfg, base, mode)
    run = f"the {_mode_of(mode.output_dir(base), dry_run)} run {cfg.name}"
    lift = mode.halt_command(config, output, clear=True)
    state = read_state(path)
    if clear:
        if state is None or not state.halted:
            console.print(f"{run} is not halted ({path}); nothing to clear", markup=False, highlight=False,
                          soft_wrap=True)
            return
        was = state.reason
        # the day's baseline stays: a clear must not renew the day's loss budget (a new day does)
        state.state, state.reason, state.source, state.halted_at, state.flattened = ACTIVE, "", "", "", False
        write_state(path, state)
        console.print(f"cleared the halt of {run} (was: {was}) in {path}; the run trades again"
                      + _baseline_note(state), markup=False, highlight=False, soft_wrap=True)
        return
    if state is not None and state.halted:
        console.print(f"{run} is already halted since {state.halted_at or '?'} ({state.reason}); "
                      f"nothing changed in {path}", markup=False, highlight=False, soft_wrap=True)
        return
    state = state or RiskState()
    state.state, state.reason, state.source, state.flattened = HALTED, reason, "operator", False
    state.halted_at = ns_to_ist(time.time_ns()).isoformat(timespec="seconds")  # wall time: no engine clock here
    write_state(path, state)
    console.print(f"halted {run} ({reason}) in {path}: a running engine cancels its open orders and "
                  f"refuses new positions; `{lift}` lifts it", markup=False, highlight=False, soft_wrap=True)
    _warn_if_unread(config, output, mode, base)


def _warn_if_unread(config: Path, output: Path | None, mode, base: Path) -> None:
    """Say so when no run of this mode has a journal where the halt was written, naming the other
    mode's run when it has one: a dry run and a live run keep their risk states apart."""
    from algocli.cli.console import err_console
    from algocli.domain.modes import RunMode
    from algocli.persistence.output import shown

    if (mode.output_dir(base) / "journal.jsonl").is_file():
        return
    other = RunMode.LIVE if mode is RunMode.DRY_RUN else RunMode.DRY_RUN
    there = (f"; the {'live dry run' if other is RunMode.DRY_RUN else 'paper or live run'} of it has one in "
             f"{shown(other.output_dir(base))}: `{other.halt_command(config, output)}` halts that one"
             if (other.output_dir(base) / "journal.jsonl").is_file() else "")
    err_console.print(f"warning: no {'live dry run' if mode is RunMode.DRY_RUN else 'paper or live run'} of "
                      f"{config} has a journal in {shown(mode.output_dir(base))}, so none may be reading this halt (one "
                      f"started later starts halted){there}", markup=False, highlight=False, soft_wrap=True)


def _mode_of(folder: Path, dry_run: bool) -> str:
    """Which run the halt reaches: ``live dry``, or the mode of the run whose state the folder holds
    (paper and live runs of one definition share it), else ``paper or live``."""
    from algocli.domain.modes import RunMode
    from algocli.engine.folders import folder_mode

    mode = folder_mode(folder)
    if dry_run or mode is RunMode.DRY_RUN:
        return "live dry"
    return mode.value if mode is not None else "paper or live"


def _baseline_note(state) -> str:
    """What a clear leaves of the day's loss budget, or "" when no baseline was measured yet."""
    if state.day_start_equity is None:
        return ""
    return (f"; the day's loss is still counted from {state.day_start_equity:,.2f}, the equity at the start of "
            f"{state.day or 'the day'} (a clear does not renew the day's loss budget; the next trading day does)")
