"""The output folder: checked before a run starts, and given a run's artifacts as one set.

``check_output_dir`` runs before any work, so a folder that cannot be created or written is
an error in the first second (exit 2), not after the whole run.

``ArtifactSet`` makes a run's artifacts appear together. They are written into a hidden
staging folder inside the output folder; once every file is on disk the staging folder is
renamed to ``.artifacts-ready`` (the commit point) and its files are renamed over the old
ones, with Ctrl-C held off for those few renames, and artifacts of the older run that this
run did not write (``report.html`` after ``--no-report``) are removed. Interrupted before
the commit, the folder keeps the whole older set; a process killed during the renames
leaves ``.artifacts-ready`` behind, and the next run into the folder completes it first.
Other files in the folder (a paper or live run's journal and risk state, ``dry-run/``) are
never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from algocli.errors import ArtifactError, UsageError

READY = ".artifacts-ready"
_REMOVE = ".remove"  # in a committed set: the older set's files it replaces by nothing (report.html)
_STAGING_PREFIX = ".artifacts-"
_PROBE_BYTES = 4096  # one block: a full disk refuses it
_FIX = "pass another --output or change output.dir"
OUT_FIX = "pass another --out"  # the research commands' output flag


def check_output_dir(path: Path, *, fix: str = _FIX) -> Path:
    """Check that ``path`` can be created (if missing) and written, without leaving anything behind.

    Also completes an artifact set that a killed run left half-published there.

    Args:
        path: The output folder.
        fix: What the user can do instead, for the message.

    Returns:
        ``path``.

    Raises:
        UsageError: A part of ``path`` is a file, or the folder (or the nearest existing folder
            above it) cannot be written: read-only, immutable, not permitted or full.
    """
    path = Path(path)
    existing = path
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = f"{existing}: is a file, not a folder" if existing == path else \
            f"{path}: cannot be created, {existing} is a file"
        raise UsageError(f"{what}; {fix}")
    try:
        probe = Path(tempfile.mkdtemp(prefix=".algo-probe-", dir=existing))
        try:
            with open(probe / "probe", "wb") as fh:
                fh.write(b"\0" * _PROBE_BYTES)
                fh.flush()
        finally:
            shutil.rmtree(probe, ignore_errors=True)
    except OSError as exc:
        where = "" if existing == path else f" (it would be created in {existing})"
        raise UsageError(f"{path}: the output folder cannot be written{where}: {exc.strerror or exc}; "
                         f"fix its permissions or free space, or {fix}") from None
    if existing == path:
        recover(path, fix)
    return path


def shown(path: Path) -> str:
    """``path`` as the user would write it: relative when it lies under the current folder."""
    path = Path(path)
    if path.is_absolute():
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            pass
    return str(path)


def recover(out_dir: Path, fix: str = _FIX) -> None:
    """Finish a set a killed run committed but did not finish publishing; drop dead runs' staging."""
    out_dir = Path(out_dir)
    if (out_dir / READY).is_dir():
        _publish(out_dir / READY, out_dir, fix)
    for leftover in out_dir.glob(f"{_STAGING_PREFIX}*.tmp"):
        if not _alive(leftover.name):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(staging_name: str) -> bool:
    """Whether the process that named a staging folder (``.artifacts-<pid>-XXXX.tmp``) still runs."""
    from algocli.persistence.lock import pid_alive

    pid = staging_name[len(_STAGING_PREFIX):].split("-", 1)[0]
    return not pid.isdigit() or pid_alive(int(pid))  # a name not ours to judge: leave it


class ArtifactSet:
    """A run's artifacts, written into a staging folder and published into ``out_dir`` together.

    Use it as a context manager: on an error (or Ctrl-C) inside the block the staging folder is
    removed and ``out_dir`` keeps its older set; on success ``publish`` must be called.

    Args:
        out_dir: The output folder (created if missing).
        known: Every artifact name a run may write; those of an older set that this set lacks
            are removed when it is published.
        fix: What an error tells the operator to do instead (the command's own output flag).
    """

    def __init__(self, out_dir: Path, known: Iterable[str], *, fix: str = _FIX) -> None:
        self.out_dir = Path(out_dir)
        self.known = tuple(known)
        self.fix = fix
        self.staging: Path | None = None

    def __enter__(self) -> ArtifactSet:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            recover(self.out_dir, self.fix)
            self.staging = Path(tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{os.getpid()}-", suffix=".tmp",
                                                 dir=self.out_dir))
        except OSError as exc:
            raise ArtifactError(f"{self.out_dir}: the output folder cannot be written ({exc.strerror or exc}); "
                                f"fix its permissions or free space, or {self.fix}") from exc
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.staging is not None:  # not published: an error or Ctrl-C came first
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None

    def path(self, name: str) -> Path:
        """Where artifact ``name`` is written before it is published."""
        return self.staging / name

    def final(self, name: str) -> Path:
        """Where artifact ``name`` appears once published."""
        return self.out_dir / name

    @contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        """Yield the staging path of ``name``; an ``OSError`` becomes an ``ArtifactError`` naming the
        file the user will look for."""
        try:
            yield self.path(name)
        except OSError as exc:
            raise file_error(self.final(name), exc, fix=self.fix) from exc

    def publish(self) -> list[Path]:
        """Make the staged files the output folder's artifact set.

        Returns:
            The published paths, in the order they were staged.
        """
        staging, self.staging = self.staging, None
        names = sorted(p.name for p in staging.iterdir())
        stale = [n for n in self.known if n not in names]
        for name in names + stale:  # the one thing a rename in the same folder trips on: check it first
            if (self.out_dir / name).is_dir() and not (self.out_dir / name).is_symlink():
                shutil.rmtree(staging, ignore_errors=True)
                raise file_error(self.out_dir / name, IsADirectoryError(21, "a folder has that name"), fix=self.fix)
        try:
            (staging / _REMOVE).write_text("".join(f"{n}\n" for n in stale), encoding="utf-8")
            _fsync_dir(staging)
            os.rename(staging, self.out_dir / READY)  # the commit point
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise file_error(self.out_dir / READY, exc, fix=self.fix) from exc
        _publish(self.out_dir / READY, self.out_dir, self.fix)
        return [self.out_dir / n for n in names]


def publish_files(out_dir: Path, known: Iterable[str], contents: Mapping[str, bytes], *,
                  fix: str = _FIX) -> list[Path]:
    """Write ``contents`` (artifact name to bytes) into ``out_dir`` as one ``ArtifactSet``.

    Args:
        out_dir: The output folder (created if missing).
        known: Every artifact name the command may write; those of an older set missing from
            ``contents`` are removed.
        contents: The files, in the order they are written.
        fix: What an error tells the operator to do instead (the command's own output flag).

    Returns:
        The published paths.

    Raises:
        ArtifactError: A file could not be written; ``out_dir`` keeps its older set.
    """
    from algocli.persistence.artifacts import atomic_write_bytes

    with ArtifactSet(out_dir, known, fix=fix) as staged:
        for name, data in contents.items():
            with staged.writing(name) as path:
                atomic_write_bytes(path, data)
        return staged.publish()


def file_error(path: Path, exc: OSError, outcome: str = "no artifact in the folder was replaced", *,
               fix: str = _FIX) -> ArtifactError:
    """The one-line error for a file that could not be written; ``outcome`` says what the folder holds now
    and ``fix`` what to do instead."""
    return ArtifactError(f"{path}: could not be written ({exc.strerror or exc}); free disk space or fix the "
                         f"folder's permissions, or {fix}; {outcome}")


def _publish(ready: Path, out_dir: Path, fix: str = _FIX) -> None:
    """Rename every file of ``ready`` into ``out_dir``, remove the older set's files it lists as stale,
    then ``ready``."""
    target = out_dir
    with signals_held():
        try:
            listed = ready / _REMOVE
            stale = listed.read_text(encoding="utf-8").splitlines() if listed.is_file() else []
            for item in sorted(ready.iterdir()):
                if item.name == _REMOVE:
                    continue
                target = out_dir / item.name
                os.replace(item, target)
            for name in stale:
                target = out_dir / name
                target.unlink(missing_ok=True)
            target = ready
            listed.unlink(missing_ok=True)
            ready.rmdir()
            _fsync_dir(out_dir)
        except OSError as exc:
            raise file_error(target, exc, f"the rest of the new set waits in {ready} and the next run into "
                                          "the folder moves it in", fix=fix) from exc


def _fsync_dir(folder: Path) -> None:
    """Make the folder's renames durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM (main thread only) and deliver them once the block is done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if handler is None:  # installed outside Python: cannot be put back, so leave it
            continue
        previous[sig] = handler
        signal.signal(sig, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in caught:
            signal.raise_signal(sig)
