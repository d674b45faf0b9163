"""The output folder: checked before any work in every mode, and given a run's artifacts as one set."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from algocli.cli.main import main
from algocli.errors import UsageError
from algocli.persistence.output import READY, ArtifactSet, check_output_dir

NOBODY = 65534


@contextmanager
def unprivileged():
    """Act as an ordinary user: root ignores a folder's permission bits, so drop to nobody's euid."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_a_missing_folder_passes_and_nothing_is_left_behind(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_output_dir(target) == target
    assert not (tmp_path / "a").exists() and list(tmp_path.iterdir()) == []
    target.mkdir(parents=True)
    check_output_dir(target)
    assert list(target.iterdir()) == []


def test_a_file_is_refused_with_its_path(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(UsageError, match=r"taken: is a file, not a folder; pass another --output"):
        check_output_dir(tmp_path / "taken")
    with pytest.raises(UsageError, match=r"deeper/out: cannot be created, .*taken is a file"):
        check_output_dir(tmp_path / "taken" / "deeper" / "out")


@pytest.mark.parametrize("target", ["ro", "ro/new/out"])
def test_a_read_only_folder_is_refused_before_any_work(open_folder, target):
    (open_folder / "ro").mkdir(mode=0o555)
    (open_folder / "ro").chmod(0o555)
    with unprivileged(), pytest.raises(UsageError) as caught:
        check_output_dir(open_folder / target)
    message = str(caught.value)
    assert message.startswith(f"{open_folder / target}: the output folder cannot be written")
    assert "Permission denied" in message and "--output" in message


def test_a_set_a_killed_run_committed_is_completed_first(tmp_path):
    (tmp_path / "trades.csv").write_text("old\n")
    (tmp_path / "report.html").write_text("old\n")
    ready = tmp_path / READY
    ready.mkdir()
    (ready / "trades.csv").write_text("new\n")
    (ready / ".remove").write_text("report.html\n")  # the killed run had --no-report
    (tmp_path / ".artifacts-999999999-x.tmp").mkdir()  # staging of a process that no longer runs
    (tmp_path / f".artifacts-{os.getpid()}-y.tmp").mkdir()  # staging of a run still writing: left alone
    check_output_dir(tmp_path)
    assert (tmp_path / "trades.csv").read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".artifacts-{os.getpid()}-y.tmp", "trades.csv"]


def test_an_unpublished_set_leaves_the_older_one(tmp_path):
    (tmp_path / "trades.csv").write_text("old\n")
    with pytest.raises(KeyboardInterrupt), ArtifactSet(tmp_path, ["trades.csv"]) as staged:
        staged.path("trades.csv").write_text("new\n")
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["trades.csv"]
    assert (tmp_path / "trades.csv").read_text() == "old\n"


def _paper_yaml(folder: Path, output: str, broker: str = "simulated") -> Path:
    config = folder / "paper.yaml"
    config.write_text(yaml.safe_dump({
        "name": "p", "interval": "1m", "initial_capital": 100000, "broker": {"name": broker},
        "data": {"feed": "sandbox", "url": "http://127.0.0.1:9", "protocol": "dhan"},
        "strategies": [{"class": "sma_crossover", "instruments": ["NSE_EQ:2885"],  # a broker id: no list needed
                        "params": {"fast_period": 5, "slow_period": 15, "quantity": 5}}],
        "output": {"dir": output},
    }), encoding="utf-8")
    return config


@pytest.mark.parametrize("command", [["paper"], ["live", "--dry-run"]])
def test_paper_and_live_check_the_folder_before_they_connect(tmp_path, capsys, command):
    (tmp_path / "taken").write_text("x")
    config = _paper_yaml(tmp_path, "taken", "simulated" if command[0] == "paper" else "dhan")  # relative: beside it
    code = main([command[0], str(config), *command[1:], "--no-dashboard", "--duration", "1"])
    err = capsys.readouterr().err
    assert code == 2, err
    error = err.split("error:")[-1]
    assert f"{tmp_path / 'taken'}" in error and "is a file" in error
    assert "refused" not in error  # it stopped before connecting to the feed


def test_ctrl_c_during_the_renames_waits_for_them(tmp_path, monkeypatch):
    """The few renames that publish a set are not cut in half: Ctrl-C arrives once they are done."""
    import signal

    from algocli.persistence import output

    (tmp_path / "a.csv").write_text("old\n")
    (tmp_path / "b.csv").write_text("old\n")
    real_replace = os.replace

    def replace_then_ctrl_c(src, dst):
        real_replace(src, dst)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C between two renames

    monkeypatch.setattr(output.os, "replace", replace_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt), ArtifactSet(tmp_path, ["a.csv", "b.csv"]) as staged:
        staged.path("a.csv").write_text("new\n")
        staged.path("b.csv").write_text("new\n")
        staged.publish()
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {"a.csv": "new\n", "b.csv": "new\n"}
