"""One running paper or live session per output folder.

Two ``algo live`` processes on one folder would both resume its journal and both send the
strategies' orders (the broker books each twice, under the same correlation id), and their
records would interleave in one journal. A session therefore holds an exclusive ``flock`` on
``.algo.lock`` in its folder for the life of its process: the kernel lets it go when the
process ends, ``kill -9`` included, so a lock is never left stale. The file holds the holder's
pid, for the message.
"""

from __future__ import annotations

import os
from pathlib import Path

from algocli.errors import UsageError

LOCK = ".algo.lock"
_held: dict[str, int] = {}  # real folder -> descriptor: sessions opened again in this process share it


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (one we may not signal counts as running: not ours to judge)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


class FolderBusyError(UsageError):
    """Another session trades from this output folder. Stop it first, or give this run another
    ``--output``."""


def hold_folder(folder: Path, fix: str) -> None:
    """Take ``folder``'s session lock for the life of this process (again in this process: a no-op).

    Args:
        folder: The session's output folder (created if missing: the journal goes there next).
        fix: What the operator can do instead, for the message (the other folder's flag).

    Raises:
        FolderBusyError: Another process holds it.
    """
    import fcntl

    key = os.path.realpath(folder)
    if key in _held:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(folder) / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "another process"
        os.close(fd)
        raise FolderBusyError(f"{folder}: a session is already running from this folder ({holder}); stop it first "
                              f"(Ctrl-C in its terminal), or {fix}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}\n".encode("ascii"), 0)
    _held[key] = fd
