"""Parsers of option values shared by the commands."""

from __future__ import annotations

from pathlib import Path

import typer


def folder(text: str) -> Path:
    """A folder option's value: an empty one (``-o "$OUT"`` with ``OUT`` unset) is refused, not
    taken as the current folder, where the artifacts would land among the user's files."""
    if not text.strip():
        raise typer.BadParameter("is empty; give a folder (`.` for the current one)")
    return Path(text)
