"""Shared Rich consoles: results to stdout, progress and diagnostics to stderr."""

from __future__ import annotations

from rich.console import Console

console = Console()
err_console = Console(stderr=True)
