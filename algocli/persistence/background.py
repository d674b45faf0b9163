"""Write large artifacts in a forked child while the parent writes the rest.

A million-bar run spends about a second formatting its equity curve. On a POSIX machine
with a spare core, that work runs in a child process that shares the finished result
copy-on-write; the parent writes the other artifacts meanwhile and then waits. Each
artifact is still written atomically, so a failure in either process leaves no
half-written file. Elsewhere the task simply runs inline.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

from algocli.errors import AlgoError

_OWN = "\x00algo:"  # marks a child's AlgoError message, which the parent raises unchanged


class BackgroundTask:
    """Run ``fn`` in a forked child (or inline where forking is unavailable or pointless)."""

    def __init__(self, fn: Callable[[], object], what: str) -> None:
        self.what = what
        self.pid: int | None = None
        if not hasattr(os, "fork") or (os.cpu_count() or 1) < 2:
            fn()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: do the work, report a failure through the pipe, never return
            os.close(read_fd)
            code = 0
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - the parent re-raises it
                # an AlgoError's message already says what failed and the fix: pass it on as it is
                text = f"{_OWN}{exc}" if isinstance(exc, AlgoError) else f"{type(exc).__name__}: {exc}"
                os.write(write_fd, text.encode()[:4096])
                code = 1
            finally:
                os._exit(code)
        os.close(write_fd)
        self.pid, self._read_fd = pid, read_fd

    def wait(self) -> None:
        """Wait for the child; raise ``AlgoError`` if it failed (with the child's own message when it
        raised one)."""
        if self.pid is None:
            return
        with os.fdopen(self._read_fd, "rb") as pipe:
            message = pipe.read().decode(errors="replace")
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        if os.waitstatus_to_exitcode(status) != 0:
            if message.startswith(_OWN):
                raise AlgoError(message[len(_OWN):])
            raise AlgoError(f"writing {self.what} failed: {message or 'the writer process died'}")
