"""Shared Rich consoles: results to stdout, progress and diagnostics to stderr."""

from __future__ import annotations

from rich.console import Console

console = Console(emoji=False)  # no :emoji: codes in our text; saves importing their table
err_console = Console(stderr=True, emoji=False)
