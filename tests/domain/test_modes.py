"""``RunMode``'s hints are commands a trader pastes into a shell."""

from __future__ import annotations

import shlex

import pytest

from algocli.cli.main import main
from algocli.domain.modes import RunMode
from cli.cli_support import REPO_ROOT


@pytest.mark.parametrize("mode", [RunMode.PAPER, RunMode.DRY_RUN, RunMode.LIVE])
def test_a_hint_for_a_folder_with_a_space_pastes_as_one_argument(mode, tmp_path):
    out = tmp_path / "my out"
    config = REPO_ROOT / "configs" / "paper.yaml"
    resume = shlex.split(mode.resume_command(config, out))
    assert resume[resume.index("--output") + 1] == str(out) and resume[2] == str(config)
    out.mkdir()
    halt = shlex.split(mode.halt_command(config, out))  # pasted as it is, it halts the run in that folder
    assert main(halt[1:]) == 0
    written = list(out.rglob("risk_state.json"))
    assert len(written) == 1 and '"HALTED"' in written[0].read_text(encoding="utf-8")
