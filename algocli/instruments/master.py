"""The merged instrument master: look names up, both ways, and search.

Rows of a real master (a couple of hundred thousand) live in a pandas frame, and an
``Instrument`` is built only for rows that are asked for. A master built from a short list
(a data folder's ``instruments.csv``) keeps the list and looks names up in dicts: a small
backtest never imports pandas (a quarter of a second); the frame is built only when a
search or a year-less contract needs it. Lookups accept any spelling
in ``Instrument.ids()`` plus what ``hrn.parse_contract`` reads, so a YAML file, a
command line or a broker message can all name the same row.

When a derivative is named without its year (``NSE:NIFTY 26 DEC 24000 CE``), the nearest
contract with that day and month expiring on or after ``today`` is meant; if all have
expired, the latest one, and ``warn`` is told which (a backtest of old data may want it).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from algocli.broker.spec import broker_spec, broker_specs
from algocli.domain.session import ist_today
from algocli.errors import ConfigError
from algocli.instruments.brokers import index_name
from algocli.domain.hrn import normalise, parse_contract, plain_hrn
from algocli.instruments.model import COLUMNS, Instrument
from algocli.instruments.table import cells, frame_row

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["InstrumentMaster", "merge"]


def _id_columns() -> list[str]:
    """The ``Instrument`` columns holding a registered broker's id."""
    return [spec.id_field for spec in broker_specs().values() if spec.id_field in COLUMNS and
            spec.id_field != "broker_ids"]


def _present(column: str, frame: pd.DataFrame) -> tuple[list[str], list[int]]:
    """The non-empty cells of ``frame[column]`` (upper-cased) and their row positions."""
    values = frame[column].str.upper()
    present = values != ""
    return values[present].tolist(), np.flatnonzero(present.to_numpy()).tolist()


def _present_in_rows(column: str, rows: list[list[str]]) -> tuple[list[str], list[int]]:
    """``_present`` for rows of cells (``table.cells``)."""
    at = COLUMNS.index(column)
    hits = [(pos, row[at].upper()) for pos, row in enumerate(rows) if row[at]]
    return [text for _, text in hits], [pos for pos, _ in hits]


def _lookup(present: Callable[[str], tuple[list[str], list[int]]]) -> dict[str, int]:
    """Every id and HRN (upper case) to its row position.

    Args:
        present: Gives a column's non-empty cells and their positions (``_present``).

    Returns:
        The lookup; on a clash the HRN wins, then the first registered broker's column.
    """
    by_id: dict[str, int] = {}
    for column in (*reversed(_id_columns()), "hrn"):  # later columns win a clash: the HRN is final
        values, positions = present(column)
        by_id.update(zip(values, positions))
    texts, positions = present("broker_ids")  # brokers without a column of their own
    for pos, text in zip(positions, texts):
        for item in text.split(";"):
            by_id.setdefault(item.partition("=")[2], pos)
    return by_id


def merge(*sources: Iterable[Instrument]) -> list[Instrument]:
    """One row per HRN. Earlier sources win a field; later ones fill the fields they lack."""
    rows: dict[str, Instrument] = {}
    for source in sources:
        for inst in source:
            have = rows.get(inst.hrn)
            if have is None:
                rows[inst.hrn] = inst
                continue
            filled = {f: getattr(inst, f) for f in COLUMNS if not getattr(have, f) and getattr(inst, f)}
            if have.broker_ids and inst.broker_ids:  # each broker's id from the first source that has it
                filled["broker_ids"] = tuple({**dict(inst.broker_ids), **dict(have.broker_ids)}.items())
            if filled:
                rows[inst.hrn] = _replace(have, filled)
    return list(rows.values())


def _replace(inst: Instrument, changes: dict) -> Instrument:
    values = {f: getattr(inst, f) for f in COLUMNS}
    values.update(changes)
    return Instrument(**values)


class InstrumentMaster:
    """Instrument rows with lookups by HRN and by each broker's id.

    Args:
        instruments: The rows (one per HRN, see ``merge``), or a frame of strings as
            ``table.read_frame`` returns, whose rows become ``Instrument`` only when used.
        source: Where they came from, as messages name it after "in" (``the instrument list of 2026-11-21 in
                data/instruments``, a path, ...).
        today: The IST date used to pick a year-less contract; defaults to today.
        warn: Receives one line when a year-less contract names only expired ones.
    """

    def __init__(self, instruments: Iterable[Instrument] | pd.DataFrame, source: str = "the instrument master",
                 today: date | None = None, warn: Callable[[str], None] | None = None) -> None:
        self.source = source
        self.today = today or ist_today()
        self.warn = warn
        self._warned: set[str] = set()
        if hasattr(instruments, "columns"):  # a frame (read_frame); not isinstance: pandas may not be imported
            self._frame_cache = instruments.reset_index(drop=True)
            self._cells: list[list[str]] | None = None
            self._cache: dict[int, Instrument] = {}
            self._size = len(self._frame_cache)
            self._by_id = _lookup(lambda column: _present(column, self._frame_cache))
        else:
            rows = list(instruments)
            self._frame_cache = None
            self._cells = [cells(i) for i in rows]
            self._cache = dict(enumerate(rows))
            self._size = len(rows)
            self._by_id = _lookup(lambda column: _present_in_rows(column, self._cells))

    @property
    def _frame(self) -> pd.DataFrame:
        """The rows as a frame of strings, built on first use for a master made from a list."""
        if self._frame_cache is None:
            import pandas as pd

            self._frame_cache = pd.DataFrame(self._cells, columns=list(COLUMNS), dtype=object)
        return self._frame_cache

    def _row(self, pos: int) -> Instrument:
        inst = self._cache.get(pos)
        if inst is None:
            raw = {c: self._frame.at[pos, c] for c in COLUMNS}
            inst = self._cache[pos] = frame_row(Path(self.source), pos + 2, raw)
        return inst

    def __len__(self) -> int:
        return self._size

    def __iter__(self):
        return (self._row(i) for i in range(self._size))

    def get(self, text: str) -> Instrument | None:
        """The instrument ``text`` names, or None. See the module docstring for what is accepted."""
        key = text.strip().upper()
        pos = self._by_id.get(key)
        if pos is None:
            pos = self._by_id.get(normalise(text))
        if pos is not None:
            return self._row(pos)
        exchange, sep, rest = normalise(text).partition(":")
        if sep:
            pos = self._by_id.get(plain_hrn(exchange, index_name(rest)))
            if pos is not None and self._row(pos).kind == "INDEX":
                return self._row(pos)
        return self._contract(text)

    def resolve(self, text: str, *, field: str = "instrument") -> Instrument:
        """Like ``get``, but an unknown name is a ``ConfigError`` naming ``field`` and close matches."""
        inst = self.get(text)
        if inst is not None:
            return inst
        near = self.near(text)
        hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        raise ConfigError(f"{field}: {text!r} is not in {self.source}{hint} "
                          "(`algo instruments search TEXT` lists names; `algo instruments refresh` updates the list)")

    def broker_id(self, text: str, broker: str) -> str:
        """The id ``broker`` (a registered broker's name) uses for ``text``.

        Raises:
            ConfigError: Unknown name or broker, or the broker does not list it.
        """
        inst = self.resolve(text)
        spec = broker_spec(broker)
        value = spec.instrument_id(inst)
        if not value:
            raise ConfigError(f"instrument {inst.hrn!r} is not listed by {spec.title} in {self.source}; "
                              f"trade it through another broker or refresh the list")
        return value

    def search(self, text: str, limit: int = 20) -> list[Instrument]:
        """Rows whose HRN, name or ids contain every word of ``text`` (any case).

        Exact matches come first, then equities and indices, then the nearest expiries.
        """
        words = normalise(text).replace(":", " ").split()
        if not words or not self._size:
            return []
        import pandas as pd

        frame = self._frame
        haystack = frame["hrn"] + " " + frame["name"].str.upper() + " " + frame["isin"]
        for column in _id_columns():
            haystack = haystack + " " + frame[column].str.upper()
        mask = np.ones(len(frame), dtype=bool)
        for word in words:
            mask &= haystack.str.contains(word, regex=False).to_numpy()
        hits = frame[mask]
        exact = hits["hrn"].isin([normalise(text), f"NSE:{normalise(text)}"]).to_numpy()
        rank = hits["kind"].map({"EQ": 0, "INDEX": 0, "FUT": 1, "CE": 2, "PE": 2}).to_numpy()
        expiry = pd.to_datetime(hits["expiry"].replace("", None), errors="coerce")
        days = ((expiry - pd.Timestamp(self.today)).dt.days.fillna(-10**6)).to_numpy()
        expired = days < 0
        order = np.lexsort((hits["hrn"].to_numpy(), np.abs(days), expired & (rank > 0), rank, ~exact))
        return [self._row(int(i)) for i in hits.index.to_numpy()[order][:limit]]

    def _contract(self, text: str) -> Instrument | None:
        want = parse_contract(text)
        if want is None:
            return None
        frame = self._frame
        mask = ((frame["exchange"] == want.exchange) & (frame["symbol"] == want.underlying)
                & (frame["kind"] == want.kind)).to_numpy().copy()
        if want.strike is not None:
            import pandas as pd

            mask &= pd.to_numeric(frame["strike"], errors="coerce").fillna(-1.0).to_numpy() == want.strike
        picks = [int(i) for i in np.flatnonzero(mask) if want.matches(self._row(int(i)).expiry)]
        if not picks:
            return None
        live = [i for i in picks if self._row(i).expiry >= self.today]
        if live:
            return self._row(min(live, key=lambda i: self._row(i).expiry))
        chosen = self._row(max(picks, key=lambda i: self._row(i).expiry))
        if self.warn is not None and want.year is None and text not in self._warned:
            self._warned.add(text)
            self.warn(f"{text!r}: every such contract expired before {self.today.isoformat()}; using the latest, "
                      f"{chosen.hrn} (write the year to choose another)")
        return chosen

    def near(self, text: str) -> list[str]:
        """Up to three listed names close to ``text``, the closest first."""
        wanted = normalise(text)
        head = wanted.partition(":")[2][:3] or wanted[:3]
        pool = [h for h in self._frame["hrn"].tolist() if head and head in h][:5000]
        return difflib.get_close_matches(wanted, pool, n=3, cutoff=0.6)
