"""Session-wide settings for every test."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _instrument_cache(tmp_path_factory):
    """Keep the instrument cache out of the working tree (children inherit the variable)."""
    old = os.environ.get("ALGO_INSTRUMENTS_DIR")
    os.environ["ALGO_INSTRUMENTS_DIR"] = str(tmp_path_factory.mktemp("instrument-cache"))
    yield
    if old is None:
        os.environ.pop("ALGO_INSTRUMENTS_DIR", None)
    else:
        os.environ["ALGO_INSTRUMENTS_DIR"] = old


@pytest.fixture
def open_folder():
    """A folder every user may enter (pytest's own tmp folders are owner-only)."""
    folder = Path(tempfile.mkdtemp(prefix="algo-test-"))
    folder.chmod(0o755)
    yield folder
    for path in folder.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(folder)
