"""Parsing a candle CSV file into checked numpy columns (``csv_feed.load_csv`` reads through here).

Small regular files are split in Python (``_read_plain``); larger ones, and any file the plain
reader does not accept, go to pandas' C parser, whose problems are worded here: the file, the
line as an editor numbers it (header = 1), the column and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from algocli.domain.models import IST_OFFSET_NS
from algocli.errors import DataError, not_utf8

REQUIRED = ("timestamp", "open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")
_FIX_ROW = "fix or delete the row"
#: Files up to this size are first read without pandas (``_read_plain``): importing pandas costs a
#: quarter of a second, more than reading a few thousand bars in Python. Larger files, and any
#: small file the plain reader does not accept, go to pandas' C parser and its checks.
PLAIN_READ_MAX_BYTES = 1 << 20
# Naive ISO dates and date-times, the form numpy parses exactly as pandas does.
_PLAIN_TIME = re.compile(r"\d{4}-\d\d-\d\d(?:[ T]\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?)?")
_EARLIEST, _LATEST = np.datetime64("1678-01-01"), np.datetime64("2261-12-31")


def _parse_file(path: Path):
    return _read_columns(path, _read_header(path))


def _read_columns(path: Path, names: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    """Parse the file and check its values (``_check_values``): what the cache keeps."""
    plain = _read_plain(path, names)
    ts, cols, oi = plain if plain is not None else _read_with_pandas(path, names)
    if oi is not None and np.isnan(oi).all():
        oi = None  # an oi column left blank throughout is how cash-equity exports look
    _check_values(path, cols, oi)
    return ts, cols, oi


def _read_with_pandas(path: Path, names: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    """Parse the rows with pandas' C parser, raising for a malformed file, cell or timestamp.

    Returns:
        UTC nanoseconds, the price and volume columns, and the ``oi`` column (None without one).
    """
    frame = _read_rows(path, names)
    if len(frame) == 0:
        raise DataError(path, "no data rows; the file has only a header. Re-download it or add bars")
    # A trailing comma after the header's last name adds no real column to expect.
    _check_last_line(path, len(",".join(names).rstrip(",").split(",")))
    ts = _parse_timestamps(path, frame["timestamp"])
    cols = {c: _numeric(path, frame, c) for c in PRICES + ("volume",)}
    oi = _numeric(path, frame, "oi") if "oi" in frame.columns else None
    return ts, cols, oi


def _read_plain(path: Path, names: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None] | None:
    """Parse a small, regular file without pandas; None when it is not one (``_read_with_pandas`` then
    reads it and words any problem).

    Regular: at most ``PLAIN_READ_MAX_BYTES``, UTF-8, no quotes, no blank line before the end, every
    row with the header's field count, naive ISO timestamps within 1678-2261 and cells that are numbers.
    The values checks that follow (``_check_values``, ``_time_order``) are the same for both readers.
    """
    try:
        if path.stat().st_size > PLAIN_READ_MAX_BYTES:
            return None
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines()[1:]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines or '"' in text:
        return None
    rows = [line.split(",") for line in lines]
    if any(len(row) != len(names) for row in rows):
        return None
    columns = list(zip(*rows))
    stamps = [cell.strip() for cell in columns[names.index("timestamp")]]
    if not all(map(_PLAIN_TIME.fullmatch, stamps)):
        return None
    try:
        local = np.array(stamps, dtype="datetime64[ns]")
    except ValueError:  # shaped like a date but not one (month 13): the pandas reader names the row
        return None
    if ((local < _EARLIEST) | (local > _LATEST)).any():
        return None
    try:
        numbers = {c: np.array(columns[names.index(c)], dtype=np.float64) for c in (*PRICES, "volume", "oi")
                   if c in names}
    except ValueError:  # an empty or non-numeric cell
        return None
    oi = numbers.pop("oi", None)
    return local.view(np.int64) - IST_OFFSET_NS, numbers, oi


def _read_header(path: Path) -> list[str]:
    """Return the normalised column names, or raise if the file or a column is missing."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = fh.readline()
    except FileNotFoundError:
        raise DataError(path, "file not found; check the path, or run `python data/generate_sample.py` "
                              "for sample data") from None
    except IsADirectoryError:
        raise DataError(path, "is a directory, not a CSV file; point at the file itself") from None
    except UnicodeDecodeError:
        raise DataError(path, not_utf8(path)) from None
    if not header.strip():
        raise DataError(path, f"file is empty; it needs the header line '{','.join(REQUIRED)}' "
                              "and one bar per line. Re-download it")
    names = [n.strip().strip('"').strip().lower() for n in header.rstrip("\r\n").split(",")]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)}; the header must name "
                              f"{','.join(REQUIRED)} (oi optional) but reads '{header.strip()}'", row=1)
    for col in REQUIRED + ("oi",):
        if names.count(col) > 1:
            raise DataError(path, f"column {col} appears {names.count(col)} times in the header; "
                                  "rename or delete the extra one", row=1)
    return names


def _read_rows(path: Path, names: list[str]):
    """Read the data rows with the C parser; row i is line i + 2 of the file."""
    import pandas as pd

    wanted = [n for n in names if n in REQUIRED or n == "oi"]
    # Unused columns get unique placeholder names so duplicates among them cannot clash.
    unique = [n if n in wanted else f"_extra{i}" for i, n in enumerate(names)]
    numeric = {n: np.float64 for n in wanted if n != "timestamp"}
    options = dict(header=None, skiprows=1, names=unique, engine="c", skip_blank_lines=False,
                   skipinitialspace=True, index_col=False)
    if len(wanted) < len(names):
        options["usecols"] = wanted  # costs a fifth of the parse time, so only when needed
    try:
        try:
            frame = pd.read_csv(path, dtype={"timestamp": object, **numeric}, **options)
        except ValueError as exc:
            if isinstance(exc, pd.errors.ParserError):
                raise
            # A non-numeric cell defeats the float hint; read as text so the check can name it.
            frame = pd.read_csv(path, dtype=object, **options)
    except pd.errors.ParserError as exc:
        raise _parser_error(path, str(exc)) from None
    except UnicodeDecodeError:
        raise DataError(path, not_utf8(path)) from None
    # Blank lines at the end of a file are harmless; blank lines in the middle are reported.
    end = len(frame)
    while end and frame.iloc[end - 1].isna().all():
        end -= 1
    return frame.iloc[:end] if end < len(frame) else frame


def _parser_error(path: Path, text: str) -> DataError:
    """Translate the C parser's complaint; its line numbers already count the header."""
    extra = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if extra:
        want, line, got = map(int, extra.groups())
        return DataError(path, f"row has {got} fields but the header has {want}; delete the extra values "
                               "or fix the row", row=line)
    detail = text.strip().splitlines()[0] if text.strip() else "unknown parser error"
    return DataError(path, f"cannot be parsed as CSV ({detail}); look for an unclosed quote")


def _check_last_line(path: Path, n_fields: int) -> None:
    """Raise if the last line is cut short, as an interrupted download leaves it."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - 65536))
        tail = fh.read().decode("utf-8", errors="replace")
    lines = tail.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return
    got = len(lines[-1].split(","))
    if got < n_fields:
        with open(path, encoding="utf-8-sig", errors="replace") as fh:
            line_no = len(fh.read().rstrip().splitlines())  # error path only, so reading it all is fine
        raise DataError(path, f"last line has {got} of {n_fields} fields, as an interrupted download "
                              "leaves it; re-download the file or delete that line", row=line_no)


def _raw_line(path: Path, row: int) -> str:
    """Text of line ``row`` (1-based), read only to word an error message precisely."""
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if number == row:
                return line.rstrip("\r\n")
    return ""


def _parse_timestamps(path: Path, text) -> np.ndarray:
    """Vectorised ISO parse to UTC nanoseconds; naive times are IST."""
    import pandas as pd

    _raise_on_first(path, text.isna().to_numpy(), lambda row: _missing_cell(path, row, "timestamp"))
    try:
        parsed = pd.to_datetime(text, format="ISO8601")
    except (ValueError, OverflowError):
        parsed = _parse_slowly(path, text)
    naive = parsed.dt.tz is None
    if not naive:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    values = parsed.to_numpy()
    # Nanosecond timestamps only reach 1677-2262; beyond that is a typo, not history.
    outside = (values < np.datetime64("1678-01-01")) | (values > np.datetime64("2261-12-31"))
    _raise_on_first(path, outside, lambda row: DataError(
        path, f"timestamp '{text.iloc[row - 2]}' is outside 1678-2261; fix the year or delete the row", row=row))
    utc = values.astype("datetime64[ns]").view(np.int64)
    return utc - IST_OFFSET_NS if naive else utc


def _parse_slowly(path: Path, text):
    """Find why the fast parse failed and raise, or parse mixed explicit offsets as UTC."""
    import pandas as pd

    aware = text.str.contains(r":\d\d(?:\.\d+)?\s*(?:Z|[+-]\d\d(?::?\d\d)?)$", regex=True).to_numpy()
    if aware.any() and not aware.all():
        first = int(np.flatnonzero(aware != aware[0])[0])
        raise DataError(path, f"timestamp '{text.iloc[first]}' {'has' if aware[first] else 'lacks'} a UTC "
                              f"offset but row 2 '{text.iloc[0]}' {'has' if aware[0] else 'lacks'} one; use "
                              "one form for the whole file (times without an offset are read as IST)",
                        row=first + 2)
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=bool(aware[0]))
    bad = parsed.isna().to_numpy()
    if not bad.any():
        return parsed  # every row carries an explicit offset, so UTC is unambiguous
    first = int(np.flatnonzero(bad)[0])
    raise DataError(path, f"timestamp '{text.iloc[first]}' is not a valid date or date-time; write it as "
                          "YYYY-MM-DD or YYYY-MM-DD HH:MM:SS (IST) or fix the row", row=first + 2)


def _numeric(path: Path, frame, column: str) -> np.ndarray:
    """Column as float64; text that is not a number raises with its row."""
    import pandas as pd

    series = frame[column]
    if series.dtype != np.float64:
        series = pd.to_numeric(series, errors="coerce")
        bad = series.isna().to_numpy() & frame[column].notna().to_numpy()
        _raise_on_first(path, bad, lambda row: DataError(
            path, f"{column} is not a number ('{frame[column].iloc[row - 2]}'); {_FIX_ROW}", row=row))
    # Copy: pandas hands out read-only views, and callers may expect ordinary arrays.
    return np.array(series.to_numpy(dtype=np.float64), dtype=np.float64)


def _check_values(path: Path, cols: dict[str, np.ndarray], oi: np.ndarray | None) -> None:
    """Raise for the first row with a missing, non-positive or inconsistent value."""
    o, h, lo, c, v = (cols[k] for k in PRICES + ("volume",))
    checks: list[tuple[np.ndarray, Callable[[int], DataError]]] = []
    for name, arr in list(cols.items()) + ([("oi", oi)] if oi is not None else []):
        checks.append((~np.isfinite(arr), lambda row, name=name: _missing_cell(path, row, name)))
    for name in PRICES:
        arr = cols[name]
        checks.append((arr <= 0, lambda row, name=name, arr=arr: DataError(
            path, f"{name} is {arr[row - 2]:.12g}; prices must be positive, {_FIX_ROW}", row=row)))
    for name, arr in (("volume", v), ("oi", oi)):
        if arr is not None:
            checks.append((arr < 0, lambda row, name=name, arr=arr: DataError(
                path, f"{name} is {arr[row - 2]:.12g}; it cannot be negative, {_FIX_ROW}", row=row)))
    checks.append((h < lo, lambda row: DataError(
        path, f"high {h[row - 2]:.12g} is below low {lo[row - 2]:.12g}; swap them if they were "
              f"entered the wrong way round, or {_FIX_ROW}", row=row)))
    for name, arr in (("open", o), ("close", c)):
        checks.append(((arr < lo) | (arr > h), lambda row, name=name, arr=arr: DataError(
            path, f"{name} {arr[row - 2]:.12g} is outside the bar's range [low {lo[row - 2]:.12g}, "
                  f"high {h[row - 2]:.12g}]; {_FIX_ROW}", row=row)))
    firsts = [(int(m.argmax()), i) for i, (m, _) in enumerate(checks) if m.any()]
    if firsts:
        index, which = min(firsts)
        raise checks[which][1](index + 2)


def _missing_cell(path: Path, row: int, column: str) -> DataError:
    """Word a missing value by what the line really holds: blank, short, empty or NaN."""
    line = _raw_line(path, row)
    if not line.strip():
        return DataError(path, "line is blank; delete it", row=row)
    header = _raw_line(path, 1).lstrip("\ufeff").split(",")
    fields = line.split(",")
    if len(fields) < len(header):
        return DataError(path, f"row has {len(fields)} of {len(header)} fields, so {column} is missing; "
                               f"{_FIX_ROW}", row=row)
    names = [n.strip().strip('"').strip().lower() for n in header]
    cell = fields[names.index(column)].strip()
    what = "empty" if cell in ("", '""') else cell
    return DataError(path, f"{column} is {what}; fill or delete the row", row=row)


def _raise_on_first(path: Path, mask: np.ndarray, error: Callable[[int], DataError]) -> None:
    if mask.any():
        raise error(int(mask.argmax()) + 2)
