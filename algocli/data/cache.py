"""A content-hashed, memory-mapped cache of a CSV file's checked columns, beside the data.

The first read of a large candle file (``csv_feed.load_csv``) saves its columns, after the
value checks passed, in one NumPy file ``<data folder>/.algocli-cache/<stem>-<sha>.npy``: a
C-ordered float64 array of shape (6 or 7, rows) whose rows are the columns ``ts`` (the int64
UTC ns, stored bit for bit), ``open high low close volume`` and ``oi`` when the file has it,
in the file's row order. Later reads map it (``np.load(mmap_mode="r")``) and hand out each
row as a contiguous column: no parse, and every process that maps it shares one copy in the
OS page cache, which is what lets sweep workers share data. One file per entry keeps a read
to about half a millisecond, so that 50 files of 20k bars still map in well under 50 ms.

Freshness. An entry is named by the SHA-256 of the CSV's bytes, so an edited file never maps
an old entry. Hashing costs about 1 ms per MB (50 ms for a 1M-bar file), so
``<stem>.json`` keeps the file's size, mtime, ctime, inode and hash: when they all match and
the file had not changed for ``HOT_NS`` before it was hashed, the stored hash is trusted. Any
write, and any ``touch``/``os.utime`` that restores an old mtime, moves ctime, which no user
call can set back; a file changed within ``HOT_NS`` of its hashing (a timestamp tick could
hide a second write) is hashed again on every read until it has been quiet.

Safety. An entry is written to a temporary file, synced, then renamed into place: a reader
sees a whole entry or none, and when two processes build the same entry at once the second
rename replaces the first with the same bytes (a reader of the first keeps its mapping).
Any problem with the cache (a read-only data folder, a full disk, a damaged entry) makes the
reader parse the CSV as if there were no cache; it is never an error. ``ALGOCLI_NO_CSV_CACHE=1`` or ``data.cache: false`` turns it off.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["CACHE_DIR", "CsvCache", "Cached", "build_aside", "file_sha256"]

CACHE_DIR = ".algocli-cache"
#: Smaller files (under ~4,500 minute bars) are parsed about as fast as an entry is mapped.
MIN_BYTES = 1 << 18
#: A file changed less than this before it was hashed is hashed again on each read.
HOT_NS = 2_000_000_000
#: A temporary entry left this long by a process that died is removed.
STALE_TMP_S = 3600
VERSION = 2
FLOATS = ("open", "high", "low", "close", "volume")
_CHUNK = 1 << 20
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cached:
    """A file's checked columns, in the file's row order (read-only when mapped).

    Attributes:
        ts: Bar starts, UTC ns.
        cols: ``open high low close volume``.
        oi: Open interest, None when the file has no ``oi`` (or it is blank throughout).
        in_order: The times strictly increase, so no sort and no duplicate check is needed.
    """

    ts: np.ndarray
    cols: dict[str, np.ndarray]
    oi: np.ndarray | None
    in_order: bool


#: (path, stat key) -> (SHA-256, when it was hashed) of the files this process has seen quiet:
#: the same proof as ``<stem>.json``, without reading it again.
_KNOWN: dict[tuple, tuple[str, int]] = {}


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 of ``path``'s bytes; the cache's stored one when the file provably has not changed.

    Args:
        path: A file, cached or not.

    Returns:
        The hex digest, equal to hashing the file now.
    """
    if disabled_by_env():
        return _hash(Path(path))
    try:
        return CsvCache(Path(path), min_bytes=0).digest()
    except OSError:
        return _hash(Path(path))


def disabled_by_env() -> bool:
    """``ALGOCLI_NO_CSV_CACHE`` is set to something other than empty or ``0``."""
    return os.environ.get("ALGOCLI_NO_CSV_CACHE", "") not in ("", "0")


class CsvCache:
    """The cache entry of one CSV file: ``load`` it, or ``store`` what the parse produced.

    Args:
        path: The CSV file.
        enabled: False makes ``load`` miss and ``store`` do nothing.
        min_bytes: Files smaller than this are not cached.
    """

    def __init__(self, path: Path, *, enabled: bool = True, min_bytes: int = MIN_BYTES) -> None:
        self.path = Path(path)
        self.root = self.path.parent / CACHE_DIR
        self.enabled = enabled and not disabled_by_env()
        self.min_bytes = min_bytes
        self._stat: os.stat_result | None = None
        self._sha: str | None = None
        self._hashed_ns = 0

    # --- hashing -------------------------------------------------------------------

    @property
    def _meta_path(self) -> Path:
        return self.root / f"{self.path.stem}.json"

    def digest(self) -> str:
        """The file's SHA-256, from ``<stem>.json`` when its stat proves the file unchanged (or from
        this process's earlier look at it: a run takes each file's digest two or three times)."""
        st = os.stat(self.path)
        key = (str(self.path), *_stat_key(st))
        known = _KNOWN.get(key)
        if known is not None:
            self._stat, (self._sha, self._hashed_ns) = st, known
            return self._sha
        try:
            meta = json.loads(self._meta_path.read_text())
            if (meta.get("version") == VERSION and meta.get("stat") == _stat_key(st)
                    and st.st_ctime_ns + HOT_NS <= meta.get("hashed_ns", 0)):
                self._stat, self._sha, self._hashed_ns = st, meta["sha256"], meta["hashed_ns"]
                _KNOWN[key] = (self._sha, self._hashed_ns)
                return self._sha
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        self._hashed_ns = time.time_ns()
        sha = _hash(self.path)
        after = os.stat(self.path)
        if _stat_key(after) != _stat_key(st):  # written while we read it: no hash to remember
            self._stat, self._sha = None, sha
            return sha
        self._stat, self._sha = st, sha
        self._remember()
        return sha

    def _remember(self) -> None:
        """Keep the digest, in this process and in ``<stem>.json`` (atomically), when the file was quiet
        before it was hashed."""
        if self._stat is None or self._stat.st_ctime_ns + HOT_NS > self._hashed_ns:
            return  # a hot file is hashed again next time anyway
        _KNOWN[(str(self.path), *_stat_key(self._stat))] = (self._sha, self._hashed_ns)
        if not self.root.is_dir():
            return  # only beside an entry: hashing alone never creates the cache folder
        meta = {"version": VERSION, "file": self.path.name, "stat": _stat_key(self._stat), "sha256": self._sha,
                "hashed_ns": self._hashed_ns}
        blob = json.dumps(meta).encode()
        try:
            _write_atomic(self._meta_path, lambda fh: fh.write(blob))
        except OSError:  # a data folder made read-only after its cache was built: the entry still serves
            pass

    # --- entries -------------------------------------------------------------------

    def _entry(self, sha: str) -> Path:
        return self.root / f"{self.path.stem}-{sha[:24]}.npy"

    def load(self) -> Cached | None:
        """The cached columns of the file as it is now, or None (no entry, disabled, any error)."""
        if not self.enabled:
            return None
        try:
            if os.stat(self.path).st_size < self.min_bytes:
                return None
            sha = self.digest()
            return _read_entry(self._entry(sha))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _log.debug("%s: cache not used (%s)", self.path, exc)
            return None

    def store(self, ts: np.ndarray, cols: dict[str, np.ndarray], oi: np.ndarray | None) -> Cached | None:
        """Save the parsed, checked columns of the file whose digest ``load`` took; never raises.

        Nothing is saved when the file changed since ``load`` hashed it (the columns may be of
        another version), or the data folder is not writable.

        Returns:
            The saved entry, mapped: the same values, which the caller can keep instead of the
            parsed arrays so that even a first run shares its pages; None when nothing was saved.
        """
        if not self.enabled or self._sha is None or self._stat is None:
            return None
        try:
            if _stat_key(os.stat(self.path)) != _stat_key(self._stat):
                return None
            if self._stat.st_ctime_ns + HOT_NS > self._hashed_ns and _hash(self.path) != self._sha:
                return None  # changed within a timestamp tick of our hash: the parse may hold either version
            self.root.mkdir(exist_ok=True)
            entry = self._entry(self._sha)
            _write_entry(entry, ts, cols, oi)
            self._remember()
            self._prune()
            return _read_entry(entry)
        except (OSError, ValueError) as exc:  # a read-only folder, a full disk: run without the cache
            _log.debug("%s: cache not written (%s)", self.path, exc)
            return None

    def _prune(self) -> None:
        """Remove this file's entries for older contents, and temporary files of dead builders.

        A process still mapping a removed entry keeps its pages (POSIX); one about to open it
        fails over to parsing the CSV.
        """
        keep = self._entry(self._sha).name
        now = time.time()
        pattern = glob.escape(self.path.stem)
        old = [p for p in self.root.glob(f"{pattern}-*.npy")
               if p.name != keep and _is_entry_name(p.name, self.path.stem)]
        for tmp in [*self.root.glob(f".{pattern}-*.tmp"), *self.root.glob(f".{pattern}.*.tmp")]:
            try:
                if now - tmp.stat().st_mtime > STALE_TMP_S:
                    old.append(tmp)
            except OSError:
                pass
        for path in old:
            try:
                path.unlink(missing_ok=True)
            except OSError:  # Windows refuses to delete a file another process maps: next time
                pass


def build_aside(paths: list[Path], parse: Callable[[Path], tuple], min_bytes: int = MIN_BYTES) -> None:
    """Build the missing entries of the files of ``min_bytes`` or more in one forked child: for
    each, ``parse(path)`` (returning ``(ts, cols, oi)``, checked) and ``CsvCache.store``. The
    caller's reads then map them as hits.

    A big file's parse holds a Python string per timestamp and imports pandas: in a child,
    neither that peak (about 230 MB for 1M bars) nor pandas lands in the reading process,
    which maps the entries exactly as a second run would. Only where a child can be forked
    safely (a POSIX machine, one thread); a file the child could not store (a bad row, a
    read-only folder) is parsed again by the caller, which is how it gets its error.
    """
    import sys
    import threading

    if disabled_by_env() or not hasattr(os, "fork") or threading.active_count() != 1:
        return
    jobs = []
    for path in paths:
        try:
            store = CsvCache(path)
            if os.stat(path).st_size >= max(min_bytes, MIN_BYTES) and not store._entry(store.digest()).is_file():
                jobs.append((store, path))  # digest() also sets what store() checks the parse against
        except OSError:
            continue  # the caller words a missing or unreadable file
    if not jobs:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: parse and store each, never return
        try:
            for store, path in jobs:
                try:
                    store.store(*parse(path))
                except BaseException:  # noqa: BLE001 - the parent parses this one again and words it
                    pass
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _is_entry_name(name: str, stem: str) -> bool:
    """``<stem>-<24 hex>.npy``: not another file's entry whose stem merely starts the same way."""
    rest = name[len(stem) + 1:-len(".npy")]
    return len(rest) == 24 and all(c in "0123456789abcdef" for c in rest)


def _read_entry(entry: Path) -> Cached | None:
    try:
        mapped = np.load(entry, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        return None
    if mapped.ndim != 2 or mapped.shape[0] not in (6, 7) or mapped.dtype != np.float64 \
            or not mapped.flags.c_contiguous:
        raise ValueError(f"{entry} holds a {mapped.dtype} array of shape {mapped.shape}, not the cache's")
    table = mapped.view(np.ndarray)  # plain arrays over the map: memmap's ufunc wrapping is slow
    ts = table[0].view(np.int64)
    cols = dict(zip(FLOATS, table[1:6]))
    in_order = bool(len(ts) < 2 or (ts[1:] > ts[:-1]).all())
    return Cached(ts, cols, table[6] if len(table) == 7 else None, in_order)


def _write_entry(entry: Path, ts: np.ndarray, cols: dict[str, np.ndarray], oi: np.ndarray | None) -> None:
    """Write the entry to a temporary file, sync it and rename it into place."""
    if entry.is_file():
        return
    table = np.empty((6 if oi is None else 7, len(ts)), dtype=np.float64)
    table[0] = np.asarray(ts, dtype=np.int64).view(np.float64)  # the int64 bits, unchanged
    for row, name in enumerate(FLOATS, start=1):
        table[row] = cols[name]
    if oi is not None:
        table[6] = oi

    def save(fh) -> None:
        np.save(fh, table, allow_pickle=False)

    _write_atomic(entry, save, sync=True)  # a power cut after the rename must not leave zeroed columns


def _write_atomic(path: Path, write, sync: bool = False) -> None:
    """``write(fh)`` into a temporary file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; data folders are often shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
