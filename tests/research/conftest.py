"""The run definition most research tests sweep: configs/sma.yaml on the bundled daily data."""

from __future__ import annotations

from pathlib import Path

import pytest

from research.research_support import sma_yaml


@pytest.fixture
def run_yaml(tmp_path) -> Path:
    """configs/sma.yaml reading the bundled daily data, writing under tmp_path."""
    return sma_yaml(tmp_path)
