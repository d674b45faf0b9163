"""Fixtures and helpers shared by the CLI and run-definition tests.

``tests/cli/conftest.py`` and ``tests/config/conftest.py`` both import the fixtures from
here (``tests`` is on the pytest ``pythonpath``, so this module is ``cli.cli_support``).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from algocli.cli.main import main

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CSV = REPO_ROOT / "data" / "NSE_EQ_1333.csv"
SMA_YAML = REPO_ROOT / "configs" / "sma.yaml"
ALGO_EXE = Path(sys.executable).parent / "algo"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        """Non-blank stderr lines."""
        return [line for line in self.err.splitlines() if line.strip()]


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def run_algo(*args: str, cwd: Path = REPO_ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the installed ``algo`` console script in a child process."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    return subprocess.run([str(ALGO_EXE), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def load_sma_config() -> dict:
    """configs/sma.yaml as a plain dict (a fresh copy each call)."""
    return copy.deepcopy(yaml.safe_load(SMA_YAML.read_text(encoding="utf-8")))


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def cli(capsys):
    """Call ``algocli.cli.main.main(argv)`` in-process; return exit code, stdout and stderr."""

    def _run(*args: str) -> CliResult:
        capsys.readouterr()  # drop anything printed before this call
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, strip_ansi(captured.out), strip_ansi(captured.err))

    return _run


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A fresh folder holding a copy of data/NSE_EQ_1333.csv and the list naming it (configs name NSE:HDFCBANK)."""
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copyfile(SAMPLE_CSV, folder / SAMPLE_CSV.name)
    shutil.copyfile(SAMPLE_CSV.parent / "instruments.csv", folder / "instruments.csv")
    return folder


@pytest.fixture
def write_yaml(tmp_path):
    """Write a dict (or raw text) as a YAML file under tmp_path and return its path."""

    def _write(content: dict | list | str, name: str = "run.yaml") -> Path:
        path = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def base_config(tmp_path, data_dir) -> dict:
    """configs/sma.yaml reading the copied data and writing under tmp_path/yaml_out."""
    cfg = load_sma_config()
    cfg["data"]["path"] = str(data_dir)
    cfg["output"]["dir"] = str(tmp_path / "yaml_out")
    return cfg


def write_dist_info(site: Path, dist_name: str, entry_points: dict[str, dict[str, str]]) -> Path:
    """Write a minimal ``<dist>-0.0.0.dist-info`` folder so importlib.metadata finds entry points in ``site``.

    ``entry_points`` maps a group (``algocli.strategies``) to ``{name: "module:Class"}``.
    """
    info = site / f"{dist_name.replace('-', '_')}-0.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 0.0.0\n", encoding="utf-8")
    sections = [f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in eps.items())
                for group, eps in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(sections), encoding="utf-8")
    return info


def parse_tables(text: str) -> dict[str, dict[str, dict]]:
    """Parse the ``algo strategies`` Rich tables: {title: {name: {"class": str, "params": [lines]}}}."""
    tables: dict[str, dict[str, dict]] = {}
    current: dict[str, dict] | None = None
    row: dict | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and stripped[0] not in "┏┃┡│├└":
            current = tables.setdefault(stripped, {})
            row = None
            continue
        if current is None or not stripped.startswith("│"):
            continue
        cells = [c.strip() for c in stripped.strip("│").split("│")]
        if len(cells) != 3:
            continue
        name, cls, params = cells
        if name:
            row = current.setdefault(name, {"class": cls, "params": []})
        elif row is not None and cls:
            row["class"] += cls
        if row is not None and params:
            row["params"].append(params)
    return tables


@pytest.fixture
def wide_console(monkeypatch):
    """Print ``algo strategies`` 200 columns wide so table cells are neither wrapped nor cut."""
    from rich.console import Console

    import algocli.cli.strategies as strategies_command

    monkeypatch.setattr(strategies_command, "console", Console(width=200, color_system=None, highlight=False))
