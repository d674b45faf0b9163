"""Session-wide settings for every test."""

from __future__ import annotations

import os

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
