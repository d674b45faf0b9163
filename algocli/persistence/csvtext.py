"""CSV text of numpy columns, built with array operations instead of a Python call per cell.

Two kinds of column are formatted here, each to exactly the bytes the per-value Python code
writes (tests compare the two on awkward values):

- fixed-point rupees (``%.2f``, never ``-0.00``) and IST timestamps, a million rows of them for an
  equity curve: each field becomes a row of a ``uint8`` matrix, right-aligned and padded with
  NUL bytes, and the rows are joined by dropping the padding (``rows_bytes``);
- the order, fill and trade tables, whose values repeat (prices on a tick, P&L in multiples of
  a tick, a handful of durations): a Python function formats each distinct value once and the
  rows of its texts are picked by index (``mapped_matrix``, ``field_matrix``); the columns are
  joined the same way (``table_bytes``).
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
# Units of the last place (paise) below 2**40 (Rs 11 billion) are exact to 1/4096 of a unit in a
# double: a value further than this from a half is rounded by ``rint`` as ``%.2f`` rounds it.
_UNITS_LIMIT = 2.0**40
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
    days, day_idx = unique(day, return_inverse=True)
    seconds, sec_idx = unique(second, return_inverse=True)
    day_text = np.datetime_as_string(days.astype("datetime64[D]"))
    if any(len(t) != 10 for t in (day_text[0], day_text[-1])):
        return None
    time_text = [f"T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{_IST_SUFFIX}" for s in seconds.tolist()]
    day_mat = np.asarray(day_text, dtype="S10").view(np.uint8).reshape(-1, 10)
    time_mat = np.asarray(time_text, dtype="S15").view(np.uint8).reshape(-1, 15)
    return np.concatenate([day_mat[day_idx], time_mat[sec_idx]], axis=1)


def fixed_bytes(values: np.ndarray, places: int = 2) -> np.ndarray | None:
    """Each value as ``"%.{places}f" % value``, except that what prints as ``-0.00`` prints ``0.00``.

    Values are turned into whole units of the last place (paise, for two) with ``rint``; the few
    within a thousandth of a unit of a half are rounded by ``%.{places}f`` itself, so every digit is
    the one printf would write.

    Returns:
        A ``(n, width)`` matrix of right-aligned text padded with NUL bytes on the left, or None
        when a value is not finite or is too large for exact units.
    """
    v = np.asarray(values, dtype=np.float64)
    if len(v) > 1:
        heads = np.empty(len(v), dtype=bool)
        heads[0] = True
        np.not_equal(v[1:], v[:-1], out=heads[1:])
        runs = np.cumsum(heads)
        if runs[-1] < len(v) * 3 // 4:  # a curve that stays put (cash between fills): each run once
            matrix = fixed_bytes(v[heads], places)
            return None if matrix is None else matrix[runs - 1]
    scale = 10**places
    x = v * float(scale)
    if not len(v):
        return np.zeros((0, places + 2), dtype=np.uint8)
    if not np.isfinite(x).all() or np.abs(x).max() >= _UNITS_LIMIT:
        return None
    units_of_place = np.rint(x)
    near_tie = np.flatnonzero(np.abs(np.abs(x - np.trunc(x)) - 0.5) < _TIE_BAND)
    units_of_place = units_of_place.astype(np.int64)
    for k in near_tie.tolist():
        units_of_place[k] = int((f"%.{places}f" % v[k]).replace(".", ""))
    negative = units_of_place < 0
    units, fraction = np.divmod(np.abs(units_of_place), scale)
    width_units = len(str(int(units.max())))
    digits = np.ones(len(v), dtype=np.int64)  # digits before the point (at least one: "0.05")
    for k in range(1, width_units):
        digits += units >= 10**k
    width = 1 + width_units + 1 + places  # sign, units, point, decimals
    out = np.zeros((len(v), width), dtype=np.uint8)
    for k in range(places):
        out[:, width - 1 - k] = fraction % 10 + _ZERO
        fraction = fraction // 10
    out[:, width - 1 - places] = _DOT
    rest = units
    for k in range(width_units):
        out[:, width - 2 - places - k] = np.where(k < digits, rest % 10 + _ZERO, 0)
        rest = rest // 10
    rows = np.flatnonzero(negative)
    out[rows, width - 2 - places - digits[rows]] = _MINUS  # a value that rounds to 0 is not negative
    return out


def rounded_bytes(values: np.ndarray, places: int) -> np.ndarray | None:
    """Each value as ``repr(round(value, places) + 0.0)`` writes it (``43.6``, ``100.0``, ``-0.125``):
    ``fixed_bytes`` without the trailing zeros after the first decimal.

    Within ``fixed_bytes``' range a value has at most 13 significant digits, so the shortest text
    that reads back as the rounded double is the rounded decimal itself.

    Returns:
        A ``text_matrix``-style matrix (NUL bytes where zeros were dropped), or None where
        ``fixed_bytes`` gives None.
    """
    out = fixed_bytes(values, places)
    if out is None or places < 2:
        return out
    width = out.shape[1]
    dropped = np.ones(len(out), dtype=bool)
    for col in range(width - 1, width - places, -1):  # every decimal but the first, from the right
        dropped &= out[:, col] == _ZERO
        out[dropped, col] = 0
    return out


def rows_bytes(fields: Sequence[np.ndarray]) -> bytes:
    """Join field matrices (one row per CSV line) with commas and newlines, dropping NUL padding."""
    out = np.empty((len(fields[0]), sum(f.shape[1] + 1 for f in fields)), dtype=np.uint8)
    col = 0
    for f in fields:
        width = f.shape[1]
        out[:, col:col + width] = f
        out[:, col + width] = _COMMA
        col += width + 1
    out[:, -1] = _NEWLINE
    return out.tobytes().translate(None, b"\0")  # bytes.translate drops the padding faster than a mask


def text_matrix(texts: Sequence[str]) -> np.ndarray:
    """Field texts (already quoted where needed) as a ``(n, width)`` matrix of their UTF-8 bytes,
    padded with NUL bytes on the right, for ``rows_bytes``."""
    if not len(texts):
        return np.zeros((0, 1), dtype=np.uint8)
    try:
        array = np.array(texts, dtype="S")  # numpy encodes ASCII itself: the usual case, 10x faster
    except UnicodeEncodeError:
        array = np.array([t.encode("utf-8") for t in texts], dtype="S")
    return array.view(np.uint8).reshape(len(array), array.dtype.itemsize)


def mapped_matrix(values: np.ndarray, fmt: Callable[[object], str]) -> np.ndarray:
    """``text_matrix(quoted([fmt(v) for v in values]))``, calling ``fmt`` once per distinct value.

    ``fmt`` must give equal values the same text (``0.0`` and ``-0.0`` included: ``unique``
    keeps one of them).
    """
    values = np.asarray(values)
    if not len(values):
        return text_matrix([])
    missing = np.isnan(values) if values.dtype.kind == "f" else None
    if missing is None or not missing.any():
        distinct, inverse = unique(values, return_inverse=True)
        return text_matrix(quoted([fmt(v) for v in distinct.tolist()]))[inverse]
    # NaN (a missing price) is never equal to itself, so ``unique`` would keep every one: one text for all
    inverse = np.empty(len(values), dtype=np.intp)
    distinct, inverse[~missing] = unique(values[~missing], return_inverse=True)
    inverse[missing] = len(distinct)
    return text_matrix(quoted([fmt(v) for v in [*distinct.tolist(), float("nan")]]))[inverse]


def field_matrix(values) -> np.ndarray:
    """A column of Python values as ``csv.writer`` writes them (``str`` of each, quoted where needed,
    ``None`` empty), as a ``text_matrix``; a column of one type is formatted a distinct value at a time."""
    values = values.tolist() if isinstance(values, np.ndarray) else list(values)
    kinds = set(map(type, values))
    n = len(values)
    if n and (kinds == {str} or kinds == {int}) and values.count(values[0]) == n:  # one strategy, no tags...
        row = text_matrix(quoted([str(values[0])]))
        return np.broadcast_to(row, (n, row.shape[1]))
    if kinds <= {str}:
        return text_matrix(quoted(values))
    if kinds <= {int}:
        try:
            return mapped_matrix(np.array(values, dtype=np.int64), repr)
        except OverflowError:  # beyond 64 bits: formatted by the dict below
            pass
    if kinds <= {int} or (kinds <= {float} and not _signed_zeros(values)):
        codes: dict = {}
        index = np.fromiter([codes.setdefault(v, len(codes)) for v in values], dtype=np.intp, count=len(values))
        return text_matrix(list(map(repr, codes)))[index]
    return text_matrix(quoted(["" if v is None else str(v) for v in values]))


def _signed_zeros(values: list[float]) -> bool:
    """Whether ``values`` hold both ``0.0`` and ``-0.0``: one dict key, but two texts."""
    zeros = [v for v in values if v == 0.0]
    return len({str(v) for v in zeros}) > 1


def table_bytes(header: Sequence[str], columns: Sequence[np.ndarray]) -> bytes:
    """The CSV bytes of a header and equal-length ``text_matrix`` columns."""
    head = (",".join(quoted(list(header))) + "\n").encode("utf-8")
    if not columns or not len(columns[0]):
        return head
    return head + rows_bytes(columns)


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
