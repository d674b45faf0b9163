"""Shared Rich consoles: results to stdout, progress and diagnostics to stderr."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.markup import escape  # text we did not write (paths, messages) printed with markup on

console = Console(emoji=False)  # no :emoji: codes in our text; saves importing their table
err_console = Console(stderr=True, emoji=False)


class _ReaderGone:
    """``sys.stdout`` that outlives its reader: when a write finds the pipe closed (``algo paper |
    tee log`` stopped with Ctrl-C, which stops ``tee`` too; ``| head``), standard output is sent to
    the null device and the command carries on, so it still writes its artifacts and exits with
    its own status instead of failing on a BrokenPipeError."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._gone()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._gone()

    def _gone(self) -> None:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, self._stream.fileno())  # what is still buffered goes there too
        finally:
            os.close(null)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def guard_stdout():
    """Make ``sys.stdout`` survive its reader going away (``_ReaderGone``); returns the call that
    puts the original back. A stream with no file descriptor (a test's capture) is left as it is."""
    stream = sys.stdout
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return lambda: None
    sys.stdout = _ReaderGone(stream)

    def restore() -> None:
        sys.stdout = stream
    return restore
