"""Run definitions the research tests sweep."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def sma_yaml(folder: Path, **data) -> Path:
    """configs/sma.yaml reading the bundled data (with ``data`` keys over it), writing under ``folder``."""
    cfg = yaml.safe_load((REPO / "configs" / "sma.yaml").read_text(encoding="utf-8"))
    cfg["data"].update(path=str(REPO / "data"), **data)
    cfg["output"]["dir"] = str(folder / "run")
    path = folder / "sma.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path
