"""The journal on a full disk: the error names the file and the way on, not "internal error"."""

from __future__ import annotations

from pathlib import Path

import pytest

from algocli.errors import AlgoError
from algocli.persistence.journal import Journal


def test_a_full_disk_names_the_journal():
    journal = Journal(Path("/dev/full"))  # Linux: every write fails with ENOSPC, as on a full disk
    with pytest.raises(AlgoError) as caught:
        journal.append("candle", instrument="NSE:RELIANCE", close=2903.85)
    assert caught.value.exit_code == 1
    assert str(caught.value).startswith("/dev/full: could not be written (No space left on device); free disk space")
    journal.close()
