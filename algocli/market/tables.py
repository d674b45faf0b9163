"""Date-versioned charge tables: the CSV reader and the lookup by (kind, segment, exchange, side, date).

Every rate the charges calculator uses is a row of a CSV file shipped in
``algocli/market/data`` (``statutory.csv`` for taxes and exchange fees, ``brokers/<name>.csv``
for a broker's brokerage, DP and square-off fees), or of a table of the user's own read by
the same code. One row per rate and period::

    kind,segment,exchange,side,basis,rate,cap,symbols,effective_from,effective_to,source,note
    stt,futures,*,sell,pct,0.05,,,2026-04-01,,https://cleartax.in/s/securities-transaction-tax-stt,Budget 2026-27

- ``kind``: ``brokerage``, ``stt``, ``ctt``, ``stt_exercise``, ``exchange_txn``, ``ipft``, ``sebi``,
  ``stamp``, ``dp``, ``gst`` or ``auto_squareoff``.
- ``segment``: ``equity_delivery``, ``equity_intraday``, ``futures``, ``options``,
  ``currency_futures``, ``currency_options``, ``commodity_futures``, ``commodity_options``; or a
  family (``equity``, ``currency``, ``commodity``) or ``*`` for a row that holds for several.
- ``exchange``: ``NSE``, ``BSE``, ``MCX`` or ``*``. ``side``: ``buy``, ``sell`` or ``both``.
- ``basis`` and ``rate``: ``pct`` (``rate`` percent of turnover: price x quantity, the premium for
  options), ``pct_cap`` (the same, at most ``cap`` rupees), ``flat`` (``rate`` rupees per order; for
  ``dp``, per instrument per day) or ``zero``. ``gst`` is ``pct`` of the taxable charges.
- ``symbols``: space-separated symbols the row is limited to (BSE's SENSEX/BANKEX options rate);
  empty for all.
- ``effective_from``/``effective_to``: ISO dates, both inclusive; ``effective_to`` empty while in
  force. The rows of one key must neither overlap nor leave a gap.
- ``source``: the public page the rate was read from. ``note`` is free text.

A key is (kind, segment, exchange, side, symbol). A lookup tries the most specific key first (the
exact segment, then its family, then ``*``; the exchange, then ``*``; the side, then ``both``; the
symbol, then any) and bisects the key's rows, sorted by date, for the fill's date. A later file's
rows for a key replace the earlier file's rows for that key, so a user table overrides the shipped
rows it names and inherits the rest.

Lines starting with ``#`` are comments.
"""

from __future__ import annotations

import csv
import logging
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from algocli.errors import DataError

__all__ = ["BASES", "COLUMNS", "EXCHANGES", "FAMILIES", "KINDS", "SEGMENTS", "SIDES", "ChargeTable", "Row",
           "csv_lines", "read_rows"]

log = logging.getLogger(__name__)

KINDS = ("brokerage", "stt", "ctt", "stt_exercise", "exchange_txn", "ipft", "sebi", "stamp", "dp", "gst",
         "auto_squareoff")
SEGMENTS = ("equity_delivery", "equity_intraday", "futures", "options", "currency_futures", "currency_options",
            "commodity_futures", "commodity_options")
FAMILIES = {"equity_delivery": "equity", "equity_intraday": "equity", "currency_futures": "currency",
            "currency_options": "currency", "commodity_futures": "commodity", "commodity_options": "commodity"}
_SEGMENT_NAMES = (*SEGMENTS, "equity", "currency", "commodity", "*")
EXCHANGES = ("NSE", "BSE", "MCX", "*")
SIDES = ("buy", "sell", "both")
BASES = ("pct", "pct_cap", "flat", "zero")
COLUMNS = ("kind", "segment", "exchange", "side", "basis", "rate", "cap", "symbols", "effective_from",
           "effective_to", "source", "note")
_REQUIRED = ("kind", "segment", "exchange", "side", "basis", "rate", "effective_from")


@dataclass(frozen=True, slots=True)
class Row:
    """One rate in force over a period (see the module docstring for the fields)."""

    kind: str
    segment: str
    exchange: str
    side: str
    basis: str
    rate: float
    cap: float | None
    symbols: tuple[str, ...]
    start: date
    end: date | None
    source: str
    note: str
    path: str
    line: int

    def amount(self, turnover: float) -> float:
        """The charge in rupees, unrounded, on ``turnover`` (price x quantity) for one order or fill."""
        basis = self.basis
        if basis == "pct":
            return turnover * self.rate / 100.0
        if basis == "pct_cap":
            return min(turnover * self.rate / 100.0, self.cap)
        if basis == "flat":
            return self.rate
        return 0.0

    @property
    def where(self) -> str:
        return f"{self.path}, row {self.line}"


def _choice(value: str, allowed: tuple[str, ...], field: str, path: Path, line: int, *, upper: bool = False) -> str:
    value = value.strip().upper() if upper else value.strip().lower()
    if value not in allowed:
        raise DataError(path, f"field {field!r}: {value!r} is not one of {', '.join(allowed)}; use one of them", line)
    return value


def _number(value: str, field: str, path: Path, line: int, example: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise DataError(path, f"field {field!r}: {value!r} is not a number; write it like {example}", line) from None
    if number < 0 or number != number:
        raise DataError(path, f"field {field!r}: {value!r} is negative or not a number; write it like {example}",
                        line)
    return number


def _date(value: str, field: str, path: Path, line: int) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise DataError(path, f"field {field!r}: {value!r} is not a date; write it as YYYY-MM-DD, e.g. 2024-10-01",
                        line) from None


def _row(cells: dict[str, str], path: Path, line: int, require_source: bool) -> Row:
    for field in _REQUIRED:
        if not cells.get(field, "").strip():
            raise DataError(path, f"field {field!r} is empty; fill it in (see algocli/market/tables.py)", line)
    kind = _choice(cells["kind"], KINDS, "kind", path, line)
    segment = _choice(cells["segment"], _SEGMENT_NAMES, "segment", path, line)
    exchange = _choice(cells["exchange"], EXCHANGES, "exchange", path, line, upper=True)
    side = _choice(cells["side"], SIDES, "side", path, line)
    basis = _choice(cells["basis"], BASES, "basis", path, line)
    rate = _number(cells["rate"], "rate", path, line, "0.03 (percent) or 20 (rupees)")
    cap_text = (cells.get("cap") or "").strip()
    cap = _number(cap_text, "cap", path, line, "20 (rupees)") if cap_text else None
    if basis == "pct_cap" and cap is None:
        raise DataError(path, "field 'cap' is empty but basis is pct_cap; give the cap in rupees, e.g. 20", line)
    start = _date(cells["effective_from"], "effective_from", path, line)
    end_text = (cells.get("effective_to") or "").strip()
    end = _date(end_text, "effective_to", path, line) if end_text else None
    if end is not None and end < start:
        raise DataError(path, f"field 'effective_to': {end} is before effective_from {start}; swap or fix them", line)
    source = (cells.get("source") or "").strip()
    if require_source and not source.startswith(("http://", "https://")):
        raise DataError(path, "field 'source' must be the public URL the rate was read from", line)
    symbols = tuple((cells.get("symbols") or "").upper().split())
    return Row(kind, segment, exchange, side, basis, rate, cap, symbols, start, end, source,
               (cells.get("note") or "").strip(), str(path), line)


def csv_lines(path: Path, what: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number, cells)`` of each CSV line of ``path`` that is neither blank nor a ``#`` comment.

    Raises:
        DataError: The file cannot be read (it names ``what`` and the path).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(path, f"cannot read the {what} ({exc.strerror or exc}); check the path") from None
    reader = csv.reader(text.splitlines())
    for cells in reader:
        if cells and "".join(cells).strip() and not cells[0].lstrip().startswith("#"):
            yield reader.line_num, cells


def read_rows(path: str | Path, *, require_source: bool = False) -> list[Row]:
    """Read and check one charge table.

    Args:
        path: The CSV file (the header names the columns of ``COLUMNS``; ``cap``, ``symbols``,
            ``effective_to``, ``source`` and ``note`` may be left out).
        require_source: Every row must name its public source URL (the shipped tables do).

    Returns:
        The rows in file order.

    Raises:
        DataError: The file is missing or unreadable, a column is unknown or missing, a field is
            invalid, or two rows of one key overlap or leave a gap; the message names the file, the
            row, the field and the fix.
    """
    path = Path(path)
    header: list[str] | None = None
    rows: list[Row] = []
    for line, cells in csv_lines(path, "charges table"):
        if header is None:
            header = [c.strip().lower() for c in cells]
            unknown = [c for c in header if c not in COLUMNS]
            missing = [c for c in _REQUIRED if c not in header]
            if unknown or missing:
                what = f"unknown column {unknown[0]!r}" if unknown else f"missing column {missing[0]!r}"
                raise DataError(path, f"{what}; the header is {','.join(COLUMNS)}", line)
            continue
        if len(cells) > len(header):
            raise DataError(path, f"{len(cells)} fields but the header has {len(header)}; quote fields with commas",
                            line)
        rows.append(_row(dict(zip(header, cells)), path, line, require_source))
    if header is None:
        raise DataError(path, f"the charges table is empty; the header is {','.join(COLUMNS)}")
    _check_periods(rows)
    return rows


def _keys(row: Row) -> list[tuple[str, str, str, str, str]]:
    return [(row.kind, row.segment, row.exchange, row.side, symbol) for symbol in (row.symbols or ("",))]


def _group(rows: Iterable[Row]) -> dict[tuple, list[Row]]:
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        for key in _keys(row):
            groups.setdefault(key, []).append(row)
    for group in groups.values():
        group.sort(key=lambda r: r.start)
    return groups


def _check_periods(rows: list[Row]) -> None:
    """Rows of one key must follow each other day after day: no overlap, no gap."""
    for group in _group(rows).values():
        for prev, row in zip(group, group[1:]):
            if prev.end is None or row.start <= prev.end:
                raise DataError(row.path, f"effective_from {row.start} overlaps row {prev.line} "
                                f"({prev.start} to {prev.end or 'open'}) of the same kind, segment, exchange and "
                                f"side; end row {prev.line} on {row.start - timedelta(days=1)}", row.line)
            if row.start != prev.end + timedelta(days=1):
                raise DataError(row.path, f"effective_from {row.start} leaves a gap after row {prev.line} "
                                f"(ends {prev.end}); start it on {prev.end + timedelta(days=1)}", row.line)


class ChargeTable:
    """Rates by key and date, from one or more files (later files override earlier keys).

    Args:
        rows_by_file: Each file's rows, in precedence order (the shipped table first).
        on_warning: Called once per key with a one-line message when a date falls outside the
            key's rows (the nearest row's rate is used then). Default: log a warning.
    """

    def __init__(self, rows_by_file: Iterable[list[Row]], on_warning: Callable[[str], None] | None = None) -> None:
        self._rows: dict[tuple, list[Row]] = {}
        for rows in rows_by_file:
            self._rows.update(_group(rows))  # a later file's key replaces the whole key
        self._starts = {key: [r.start.toordinal() for r in rows] for key, rows in self._rows.items()}
        self._warned: set[tuple] = set()
        self.on_warning = on_warning or log.warning

    @classmethod
    def from_files(cls, paths: Iterable[str | Path], *, on_warning: Callable[[str], None] | None = None,
                   shipped: int = 0) -> ChargeTable:
        """Read ``paths`` in precedence order; the first ``shipped`` must cite a source for every row."""
        return cls([read_rows(p, require_source=i < shipped) for i, p in enumerate(paths)], on_warning)

    def rows(self) -> list[Row]:
        """Every row in force in the table (after overrides), sorted by kind, segment and date."""
        seen: dict[int, Row] = {}
        for rows in self._rows.values():
            for row in rows:
                seen[id(row)] = row
        return sorted(seen.values(), key=lambda r: (r.kind, r.segment, r.exchange, r.side, r.symbols, r.start))

    def lookup(self, kind: str, segment: str, exchange: str, side: str, symbol: str, day: date) -> Row | None:
        """The row of ``kind`` in force on ``day``, or None when no key matches (no such charge).

        Args:
            kind: One of ``KINDS``.
            segment: One of ``SEGMENTS``.
            exchange: ``NSE``, ``BSE`` or ``MCX``.
            side: ``buy`` or ``sell``.
            symbol: The instrument's symbol (for rows limited to some symbols).
            day: The fill's trade date (IST).
        """
        family = FAMILIES.get(segment, segment)
        for seg in dict.fromkeys((segment, family, "*")):
            for exch in (exchange, "*"):
                for sd in (side, "both"):
                    for sym in (symbol, ""):
                        key = (kind, seg, exch, sd, sym)
                        rows = self._rows.get(key)
                        if rows is not None:
                            return self._at(key, rows, day)
        return None

    def _at(self, key: tuple, rows: list[Row], day: date) -> Row:
        i = bisect_right(self._starts[key], day.toordinal()) - 1
        row = rows[max(i, 0)]
        if i < 0 or (row.end is not None and day > row.end):
            if key not in self._warned:
                self._warned.add(key)
                span = f"{rows[0].start} to {rows[-1].end or 'today'}"
                self.on_warning(f"charges table: no {key[0]} row for {key[1]} {key[2]} on {day} (rows cover {span}); "
                                f"using the rate of {row.where}; add a row for the period to your table")
        return row
