"""``algo``'s own options and help: a version, flags shown as flags, arguments by name."""

from __future__ import annotations

from importlib import metadata

import pytest
import typer

from algocli.cli.main import _register, app


def _commands() -> list[list[str]]:
    """The command path of every command and group, e.g. ``["instruments", "search"]``."""
    _register()
    found: list[list[str]] = []

    def walk(group, path: list[str]) -> None:
        for name, command in group.commands.items():
            found.append([*path, name])
            if hasattr(command, "commands"):
                walk(command, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


COMMANDS_AND_GROUPS = _commands()


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_version_prints_the_package_version(cli):
    result = cli("--version")
    assert result.code == 0, result.err
    assert result.out.strip() == f"algo {metadata.version('algocli')}"


@pytest.mark.parametrize("path", [[], *COMMANDS_AND_GROUPS], ids=lambda p: " ".join(p) or "algo")
def test_help_shows_no_python_types(cli, path):
    result = cli(*path, "--help")
    assert result.code == 0, result.err
    for python in ("<bool>", "list[", "{", "}"):
        assert python not in result.out, f"algo {' '.join(path)} --help shows {python!r}:\n{result.out}"


def test_flags_are_shown_without_a_value_and_options_with_one(cli):
    lines = [line.split() for line in cli("halt", "--help").out.splitlines() if line.strip().startswith("-")]
    shown = {words[0].rstrip(","): words for words in lines}
    assert shown["--clear"][1] == "Lift"
    assert shown["--dry-run"][1] == "Halt"
    assert shown["--reason"][1] == "<str>"


def test_arguments_are_named_as_the_help_text_names_them(cli):
    search = cli("instruments", "search", "--help").out
    assert "Usage: algo instruments search [OPTIONS] TEXT..." in search
    assert "\n  TEXT...  Words to look for" in search
    backtest = cli("backtest", "--help").out
    assert "Usage: algo backtest [OPTIONS] CONFIG\n" in backtest
    assert "\n  CONFIG  Run definition" in backtest


def test_a_missing_argument_is_named_like_the_usage_line(cli):
    result = cli("backtest")
    assert result.code == 2
    assert "Missing argument 'CONFIG'" in result.err


def test_the_command_list_shows_each_summary_whole(cli):
    out = _flat(cli("--help").out)
    assert "live Trade CONFIG live. Shows the account, strategies and limits, and asks before any order is sent." in out
    assert "backtest Backtest the strategies of CONFIG and write CSV and HTML artifacts." in out
    assert "..." not in out.replace("[ARGS]...", "")
    assert "--version Print the version and exit." in out


def test_the_command_table_names_every_command_and_its_module():
    from algocli.cli.main import COMMANDS

    assert sorted(COMMANDS) == sorted(path[0] for path in COMMANDS_AND_GROUPS if len(path) == 1)
    for name, module in COMMANDS.items():
        registered = [c.callback.__module__ for c in app.registered_commands if c.name == name]
        registered += [g.typer_instance.registered_commands[0].callback.__module__
                       for g in app.registered_groups if g.name == name]
        assert registered == [f"algocli.cli.{module}"], name


def test_a_mistyped_command_is_matched_against_every_command(cli):
    result = cli("backtst")
    assert result.code == 2
    assert "No such command 'backtst'. Did you mean 'backtest'?" in result.err


def test_a_closed_output_pipe_does_not_fail_the_command_or_lose_its_artifacts(tmp_path):
    """``algo backtest cfg | head -1``: the reader goes away; the command still writes every
    artifact and exits 0, with nothing on stderr about the pipe."""
    import subprocess

    from cli.cli_support import ALGO_EXE, REPO_ROOT

    out = tmp_path / "out"
    proc = subprocess.Popen([str(ALGO_EXE), "backtest", "configs/sma.yaml", "--output", str(out), "--quiet"],
                            cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command has printed anything
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert b"error" not in err and b"Traceback" not in err
    for name in ("trades.csv", "orders.csv", "fills.csv", "equity_curve.csv", "results.csv", "report.html", "run.json"):
        assert (out / name).is_file(), name


@pytest.mark.parametrize("argv", [
    ["backtest", "CONFIG", "-o", ""], ["backtest", "CONFIG", "--output", " "], ["paper", "CONFIG", "-o", ""],
    ["download-data", "NSE:HDFCBANK", "--out", ""], ["optimize", "CONFIG", "--param", "fast_period=5,10", "--out", ""],
    ["walkforward", "CONFIG", "--param", "fast_period=5,10", "--out", ""], ["montecarlo", "output", "--out", ""],
], ids=["backtest-o", "backtest-output-blank", "paper", "download-data", "optimize", "walkforward", "montecarlo"])
def test_an_empty_folder_option_is_refused_not_taken_as_the_current_folder(cli, tmp_path, monkeypatch, argv):
    # `-o "$OUT"` with OUT unset: the artifacts would land among the files of wherever the command ran
    from cli.cli_support import REPO_ROOT

    monkeypatch.chdir(tmp_path)
    argv = [str(REPO_ROOT / "configs" / "sma.yaml") if a == "CONFIG" else a for a in argv]
    result = cli(*argv)
    assert result.code == 2 and "is empty; give a folder" in result.err, result.err
    assert list(tmp_path.iterdir()) == []
