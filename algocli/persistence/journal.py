"""The crash-safe journal of a paper or live run.

Every order, fill, status change and closed candle is appended as one JSON line and
fsynced *before* the engine acts on it, so after a ``kill -9`` the run can be rebuilt
exactly: replaying the journal gives the same cash, positions and working orders, and a
fill is booked once because it is keyed by its id. A torn last line (the crash hit
mid-write) is ignored; everything before it was already on disk.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from algocli.domain.models import Fill, Order
from algocli.errors import ArtifactError

_CRASH_AT = os.environ.get("ALGOCLI_CRASH_AT", "")  # test hook: "<point>:<n>", see crash_point()
_crash_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Kill the process at the n-th pass through ``name`` when ALGOCLI_CRASH_AT asks for it.

    Crash-recovery tests set ``ALGOCLI_CRASH_AT=after_order_journal:3`` to die with
    SIGKILL at exactly that point. Without the variable this is a no-op.
    """
    if not _CRASH_AT:
        return
    point, _, count = _CRASH_AT.partition(":")
    if point != name:
        return
    _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if _crash_counts[name] >= int(count or 1):
        os.kill(os.getpid(), 9)


class Journal:
    """Append-only JSON-lines file, fsynced after every record."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cut_torn_tail(self.path)
        self._fh = open(self.path, "ab", buffering=0)
        self.records = 0

    def append(self, kind: str, *, sync: bool = True, **fields) -> None:
        """Write one record; with ``sync`` (orders, fills, status changes) force it to disk.

        Unsynced records (closed candles) still reach the kernel at once, so a killed
        process loses none of them; only a power cut could, and the next synced record
        (an order, a fill) flushes them as well.
        """
        line = json.dumps({"k": kind, **fields}, separators=(",", ":"), default=_plain) + "\n"
        try:
            self._fh.write(line.encode("utf-8"))
            if sync:
                os.fsync(self._fh.fileno())
        except OSError as exc:  # a full disk: name the file, not "internal error"
            raise ArtifactError(f"{self.path}: could not be written ({exc.strerror or exc}); free disk space "
                                "and run the same command again: it resumes from the journal") from exc
        self.records += 1

    def order(self, order: Order) -> None:
        self.append("order", **_order_fields(order))
        crash_point("after_order_journal")

    def fill(self, fill: Fill) -> None:
        self.append("fill", **asdict(fill))
        crash_point("after_fill_journal")

    def status(self, order: Order) -> None:
        self.append("status", order_id=order.order_id, status=order.status.value, reason=order.reason,
                    ts=order.updated_ts)

    def modify(self, order: Order) -> None:
        self.append("modify", order_id=order.order_id, quantity=order.quantity, limit_price=order.limit_price)
        crash_point("after_modify_journal")

    def close(self) -> None:
        self._fh.close()


def cut_torn_tail(path: Path) -> None:
    """Drop a torn last line before appending: run on from it, the next records would be unreadable.

    For any append-only file of lines (the journal, a run's ``pcr.csv``): what a killed write left
    unfinished was never acted on, since records are written before they take effect.
    """
    if not path.exists():
        return
    with open(path, "rb+") as fh:
        size = end = fh.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - 65536)
            fh.seek(start)
            newline = fh.read(end - start).rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        if end != size:  # the torn part was never acted on (records are written before they take effect)
            fh.truncate(end)
            os.fsync(fh.fileno())


def _order_fields(order: Order) -> dict:
    return {
        "order_id": order.order_id, "strategy_id": order.strategy_id, "instrument": order.instrument,
        "side": order.side.value, "quantity": order.quantity, "order_type": order.order_type.value,
        "limit_price": order.limit_price, "created_ts": order.created_ts, "created_bar": order.created_bar,
        "tag": order.tag,
    }


def _plain(value):
    if hasattr(value, "value"):  # enums
        return value.value
    raise TypeError(f"cannot journal {type(value).__name__}")


def read_journal(path: Path) -> Iterator[dict]:
    """Yield the records of a journal, skipping a torn final line."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                return  # the crash interrupted this write; it was never acted on
            try:
                yield json.loads(raw)
            except json.JSONDecodeError:
                return
