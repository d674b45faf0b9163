"""CSV text of numpy columns, built with array operations instead of a Python call per cell.

Two kinds of column are formatted here, each to exactly the bytes the per-value Python code
writes (tests compare the two on awkward values):

- fixed-point rupees (``%.2f``, never ``-0.00``) and IST timestamps, a million rows of them for an
  equity curve: each field becomes a row of a ``uint8`` matrix, right-aligned and padded with
  NUL bytes, and the rows are joined by dropping the padding (``rows_bytes``);
- the order, fill and trade tables, whose values repeat (prices on a tick, P&L in multiples of
  a tick, a handful of durations): a Python function formats each distinct value once and the
  texts are picked by index (``mapped_text``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence

import numpy as np

from algocli.domain.arrays import unique
from algocli.domain.models import IST_OFFSET_NS

_IST_SUFFIX = "+05:30"
_DAY_S = 86_400
_ZERO, _DOT, _MINUS, _COMMA, _NEWLINE = (ord(c) for c in "0.-,\n")
# Paise below 2**40 (Rs 11 billion) are exact to 1/4096 of a paisa in a double: a value whose
# paise lie further than this from a half is rounded by ``rint`` as ``%.2f`` rounds it.
_PAISE_LIMIT = 2.0**40
_TIE_BAND = 1e-3
# csv.writer (QUOTE_MINIMAL) quotes a field holding any of these.
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def ist_bytes(ns: np.ndarray) -> np.ndarray | None:
    """UTC nanoseconds as ``2024-01-02T09:15:00+05:30``, one row of 25 bytes each.

    Returns:
        The ``(n, 25)`` matrix, or None for stamps this layout cannot hold (fractions of a
        second, years outside 1000-9999): ``artifacts.ist_strings`` formats those.
    """
    local = np.asarray(ns, dtype=np.int64) + IST_OFFSET_NS
    if not len(local) or (local % 1_000_000_000).any():
        return None
    day, second = np.divmod(local // 1_000_000_000, _DAY_S)
    days, day_idx = _distinct(day)
    seconds, sec_idx = _distinct(second)
    day_text = np.datetime_as_string(days.astype("datetime64[D]"))
    if any(len(t) != 10 for t in (day_text[0], day_text[-1])):
        return None
    time_text = [f"T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{_IST_SUFFIX}" for s in seconds.tolist()]
    day_mat = np.asarray(day_text, dtype="S10").view(np.uint8).reshape(-1, 10)
    time_mat = np.asarray(time_text, dtype="S15").view(np.uint8).reshape(-1, 15)
    return np.concatenate([day_mat[day_idx], time_mat[sec_idx]], axis=1)


def _distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``unique(values, return_inverse=True)`` for small non-negative integers (days since 1970, seconds
    of a day) in O(n): no sort of a million values."""
    low, high = int(values.min()), int(values.max())
    if low < 0 or high - low > 4 * len(values) + 100_000:
        return unique(values, return_inverse=True)
    shifted = values - low
    present = np.zeros(high - low + 1, dtype=bool)
    present[shifted] = True
    rank = np.cumsum(present) - 1
    return np.flatnonzero(present) + low, rank[shifted]


def fixed2_bytes(values: np.ndarray) -> np.ndarray | None:
    """Each value as ``"%.2f" % value``, except that what prints as ``-0.00`` prints ``0.00``.

    Values are turned into whole paise with ``rint``; the few within a thousandth of a paisa of
    a half are rounded by ``%.2f`` itself, so every digit is the one printf would write.

    Returns:
        A ``(n, width)`` matrix of right-aligned text padded with NUL bytes on the left, or None
        when a value is not finite or is too large for exact paise.
    """
    v = np.asarray(values, dtype=np.float64)
    x = v * 100.0
    if not len(v):
        return np.zeros((0, 4), dtype=np.uint8)
    if not np.isfinite(x).all() or np.abs(x).max() >= _PAISE_LIMIT:
        return None
    paise = np.rint(x)
    near_tie = np.flatnonzero(np.abs(np.abs(x - np.trunc(x)) - 0.5) < _TIE_BAND)
    paise = paise.astype(np.int64)
    for k in near_tie.tolist():
        paise[k] = int(("%.2f" % v[k]).replace(".", ""))
    negative = paise < 0
    a = np.abs(paise)
    units, cents = np.divmod(a, 100)
    top = int(units.max())
    width_units = len(str(top))
    digits = np.ones(len(a), dtype=np.int64)  # digits before the point (at least one: "0.05")
    for k in range(1, width_units):
        digits += units >= 10**k
    width = 1 + width_units + 3  # sign, units, ".dd"
    out = np.zeros((len(a), width), dtype=np.uint8)
    out[:, -1] = cents % 10 + _ZERO
    out[:, -2] = cents // 10 + _ZERO
    out[:, -3] = _DOT
    rest = units
    for k in range(width_units):
        col = width - 4 - k
        out[:, col] = np.where(k < digits, rest % 10 + _ZERO, 0)
        rest = rest // 10
    rows = np.flatnonzero(negative)
    out[rows, width - 4 - digits[rows]] = _MINUS  # a value that rounds to 0 paise is not negative
    return out


def rows_bytes(fields: Sequence[np.ndarray]) -> bytes:
    """Join field matrices (one row per CSV line) with commas and newlines, dropping NUL padding."""
    n = len(fields[0])
    parts = []
    for k, f in enumerate(fields):
        parts.append(f)
        parts.append(np.full((n, 1), _NEWLINE if k == len(fields) - 1 else _COMMA, dtype=np.uint8))
    flat = np.concatenate(parts, axis=1).ravel()
    return flat[flat != 0].tobytes()


def mapped_text(values: np.ndarray, fmt: Callable[[object], str]) -> list[str]:
    """``[fmt(v) for v in values]``, calling ``fmt`` once per distinct value.

    ``fmt`` must give equal values the same text (``0.0`` and ``-0.0`` included: ``unique``
    keeps one of them).
    """
    values = np.asarray(values)
    if not len(values):
        return []
    distinct, inverse = unique(values, return_inverse=True)
    texts = np.array([fmt(v) for v in distinct.tolist()], dtype=object)
    return texts[inverse].tolist()


def quoted(values: Sequence[str]) -> list[str]:
    """Text fields as ``csv.writer`` writes them: quoted (quotes doubled) where they hold a comma, a
    quote or a line break, unchanged otherwise."""
    values = list(values)
    if not _NEEDS_QUOTES.search("".join(values)):  # the usual case: ids, names, statuses
        return values
    texts = {s: _csv_field(s) if _NEEDS_QUOTES.search(s) else s for s in dict.fromkeys(values)}
    return list(map(texts.__getitem__, values))


def _csv_field(s: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([s, ""])
    return buf.getvalue()[:-2]  # the row is the field, then "," and the empty field, then "\n"


def table_text(header: Sequence[str], columns: Sequence[Sequence[str]]) -> str:
    """CSV text of a header and equal-length columns of field text (already quoted where needed)."""
    lines = [",".join(quoted(list(header)))]
    if columns and len(columns[0]):
        lines.extend(map(",".join, zip(*columns)))
    return "\n".join(lines) + "\n"
