"""Where ``ctx.option_chain`` and ``ctx.pcr`` get their chains: the run's bars, a recorded PCR series, a broker.

Every source answers ``chain(underlying, expiry)`` and ``pcr(underlying, expiry, window)`` at the run's
current moment, or None when it has nothing yet. This module has the backtest's (``BarChains``, with
``PcrReplay``) and the PCR time series both sides share (``pcr_row``, ``read_pcr_csv``); the paper and
live source is ``algocli.options.broker_source``.

**A backtest's chain** (``BarChains``) is built at the current bar from the option universe's bars
(``data.options``), as the sandbox builds the chains it serves (``algocli.sandbox.options``), so a
strategy sees the same numbers in a backtest and in paper against ``algo sandbox``:

* ``ltp``: the contract's last close at or before the bar; ``spot``: the underlying's;
* ``volume``: the session's cumulative volume up to the bar (what the brokers' chain endpoints
  report: the day's traded volume, reset each session), in units as the CSV has it;
* ``oi``: the ``oi`` column at that bar; ``prev_oi`` and ``prev_close``: the previous session's
  last bar (on the data's first day: its first bar's OI and open);
* ``fetched_at``: when the bar's close was struck, its end (``ctx.now`` + the interval, cut at the
  F&O session close; a daily bar's is the close), as a paper run reads the chain at the bar's close;
  IV and greeks: Black-76 (``algocli.options.greeks``) valued then, to the expiry day's session
  close, when vollib (the ``options`` extra) is installed, else None. (Valued at the bar's start,
  a 15:15 price would be given 15 more minutes to expiry than it had.)

A chain is built only when a strategy asks, once per bar and expiry (later calls in the bar reuse
it), so runs that never ask pay nothing. Greeks cost about 10 ms per 75-leg chain and are computed
only for ``option_chain``, never for ``pcr``.

**A recorded PCR series** (``data.options.pcr``: a ``pcr.csv`` written by a paper or live run, or by
``algo download-data``) makes a backtest's ``ctx.pcr`` return the last recorded row at or before the
bar instead of computing PCR from bars: row ``bar`` (the candle the snapshot was taken for) when the
file has it, else ``timestamp``.
"""

from __future__ import annotations

import csv
import io
from bisect import bisect_right
from datetime import date, datetime
from pathlib import Path

import numpy as np

from algocli.options.chain import Leg, OptionChain, StrikeRow
from algocli.options.pcr import PCR_COLUMNS, PcrFigures, Summary, pcr, window

__all__ = ["BarChains", "CSV_COLUMNS", "ChainSource", "PcrReplay", "figures", "pcr_row", "read_pcr_csv",
           "replay_chains"]

# ``PCR_COLUMNS`` (shared with ``algo download-data``) first; then what a paper/live snapshot adds.
CSV_COLUMNS = PCR_COLUMNS + ("bar", "mode", "source", "put_oi", "call_oi", "put_volume", "call_volume",
                             "put_chg_oi", "call_chg_oi", "window_strikes", "window_oi_pcr", "window_volume_pcr",
                             "window_change_oi_pcr")
_TIME = "%Y-%m-%d %H:%M:%S"
_IST_NS = 19_800_000_000_000
_DAY_NS = 86_400 * 10**9


def figures(chain: OptionChain, n: int | None) -> PcrFigures:
    """PCR over the whole chain (``n`` None) or over ATM ± ``n`` strikes (``algocli.options.pcr``)."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise ValueError(f"window={n!r}: give a number of strikes each side of ATM (0 or more), or None")
    return pcr(chain.rows if n is None else window(chain, n))


class ChainSource:
    """What the context asks; ``chain`` is each source's own, ``pcr`` derives from it by default."""

    def chain(self, underlying: str, expiry, *, greeks: bool = True, max_age: float | None = None
              ) -> OptionChain | None:
        raise NotImplementedError

    def pcr(self, underlying: str, expiry, n: int | None, *, max_age: float | None = None) -> PcrFigures | None:
        """The PCR figures of the chain ``chain`` returns (None when it returns none)."""
        chain = self.chain(underlying, expiry, greeks=False, max_age=max_age)
        return None if chain is None else figures(chain, n)


# --- backtests: chains from bars ---------------------------------------------------------------


class _Contract:
    """One contract's columns, read once per run, and where each IST session starts."""

    __slots__ = ("inst", "ts", "open", "close", "oi", "cumvol")

    def __init__(self, inst, h) -> None:
        n = h.length
        self.inst = inst
        self.ts = h.column("ts")[:n]
        self.open = h.column("open")[:n]
        self.close = h.column("close")[:n]
        self.oi = h.column("oi")[:n] if h.oi_mv is not None else np.zeros(n)
        self.cumvol = np.concatenate(([0.0], np.cumsum(h.column("volume")[:n])))

    def quote(self, now: int, day_start: int) -> dict | None:
        """The leg's fields at ``now`` (see the module docstring); None before its first bar."""
        i = int(np.searchsorted(self.ts, now, side="right")) - 1
        if i < 0:
            return None
        d0 = int(np.searchsorted(self.ts, day_start))  # first bar of ``now``'s session
        volume = self.cumvol[i + 1] - self.cumvol[d0] if i >= d0 else 0.0
        return {"ltp": float(self.close[i]), "volume": int(volume), "oi": int(self.oi[i]),
                "prev_close": float(self.close[d0 - 1] if d0 else self.open[0]),
                "prev_oi": int(self.oi[d0 - 1] if d0 else self.oi[0])}


class BarChains(ChainSource):
    """A backtest's chains, built from the option universe's bars at the current bar (module docstring).

    Args:
        core: The run's ``EngineCore``: its clock, histories and option universe.
        replay: A recorded PCR series that ``pcr`` answers from instead (``data.options.pcr``).
        rate: The rate the greeks discount the premium at (``algocli.options.greeks``).
    """

    def __init__(self, core, replay: PcrReplay | None = None, rate: float | None = None) -> None:
        self._core = core
        self.replay = replay
        self._rate = rate
        self._contracts: dict[str, dict[date, list[_Contract]]] = {}  # underlying -> expiry -> contracts
        self._expiries: dict[str, list[date]] = {}
        self._built: dict[tuple[str, date], tuple[int, OptionChain, bool]] = {}  # -> (bar ns, chain, greeks)

    def _listing(self, key: str) -> dict[date, list[_Contract]]:
        found = self._contracts.get(key)
        if found is None:
            from algocli.strategy.contracts import options_on

            hists = self._core.histories
            rows = options_on(self._core.universe, key)
            if not rows:
                raise ValueError(f"no options of {key} are listed in this run (add data.options with underlying "
                                 f"{key!r} and its contracts' instruments.csv)")
            self._expiries[key] = sorted({r.expiry for r in rows})
            found = self._contracts[key] = {}
            for r in rows:
                if r.hrn in hists:
                    found.setdefault(r.expiry, []).append(_Contract(r, hists[r.hrn]))
        return found

    def expiry(self, underlying: str, code, now: int) -> tuple[str, date]:
        """The canonical underlying and the expiry ``code`` names on ``now``'s date (``pick_expiry``)."""
        from algocli.domain.session import ist_date
        from algocli.strategy.contracts import canonical_underlying, pick_expiry

        key = canonical_underlying(underlying)
        self._listing(key)
        return key, pick_expiry(self._expiries[key], ist_date(now), code, exchange=key.partition(":")[0])

    def chain(self, underlying: str, expiry="current", *, greeks: bool = True, max_age: float | None = None
              ) -> OptionChain | None:
        """The chain at the current bar, or None before the underlying's and the contracts' first bars."""
        now = self._core.now_ns
        key, day = self.expiry(underlying, expiry, now)
        built = self._built.get((key, day))
        if built is None or built[0] != now:
            chain = self._build(key, day, now)
            if chain is None:
                return None
            built = (now, chain, False)
        if greeks and not built[2]:
            _fill_greeks(built[1], self._rate)
            built = (now, built[1], True)
        self._built[(key, day)] = built
        return built[1]

    def _build(self, key: str, day: date, now: int) -> OptionChain | None:
        from algocli.domain.candle import ns_to_ist

        h = self._core.histories.get(key)
        if h is None:
            raise ValueError(f"no price for {key} in this run: list it among the strategy's instruments")
        spot_i = int(np.searchsorted(h.column("ts")[:h.length], now, side="right")) - 1
        if spot_i < 0:
            return None
        day_start = (now + _IST_NS) // _DAY_NS * _DAY_NS - _IST_NS
        rows: dict[float, StrikeRow] = {}
        for c in self._listing(key).get(day, ()):
            quote = c.quote(now, day_start)
            if quote is None:
                continue
            strike = float(c.inst.strike)
            row = rows.setdefault(strike, StrikeRow(strike))
            setattr(row, c.inst.option_type.lower(), Leg(c.inst.hrn, c.inst.hrn, **quote))
        if not rows:
            return None
        return OptionChain("backtest", key, day, float(h.close_mv[spot_i]), ns_to_ist(struck_at(now, h.interval)),
                           list(rows.values()))

    def pcr(self, underlying: str, expiry="current", n: int | None = None, *, max_age: float | None = None
            ) -> PcrFigures | None:
        if self.replay is not None:
            now = self._core.now_ns
            from algocli.domain.session import ist_date

            return self.replay.at(underlying, expiry, n, now, ist_date(now))
        return super().pcr(underlying, expiry, n)


def struck_at(now: int, interval) -> int:
    """When the close of the bar starting at ``now`` (UTC ns) was struck: ``now`` + ``interval``, cut at
    the day's F&O session close (``greeks.session_close``); a daily bar's is that close. ``now`` when
    the interval is unknown."""
    from algocli.domain.session import MINUTE_NS, ist_date, ist_midnight_ns
    from algocli.options.greeks import session_close

    minutes = getattr(interval, "minutes", None)
    if not minutes:
        return now
    day = ist_date(now)
    close = session_close(day)
    close_ns = ist_midnight_ns(day) + (close.hour * 60 + close.minute) * MINUTE_NS
    if minutes >= 375:  # a daily bar (stamped at midnight): its close is the session's
        return close_ns
    end = now + minutes * MINUTE_NS
    return min(end, close_ns) if now < close_ns else end


def _fill_greeks(chain: OptionChain, rate: float | None) -> None:
    """Black-76 greeks on ``chain`` when vollib is installed; without it the legs keep None."""
    from algocli.errors import ConfigError
    from algocli.options.greeks import DEFAULT_RATE, fill_greeks

    try:
        fill_greeks(chain, rate=DEFAULT_RATE if rate is None else rate)
    except ConfigError:
        pass  # ``delta:`` strikes say how to install it; a chain without greeks is still a chain


# --- the PCR time series ------------------------------------------------------------------------


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return str(value)


def pcr_row(summary: Summary, *, taken_at: datetime, bar: datetime | None, mode: str) -> dict[str, str]:
    """One ``pcr.csv`` row (``CSV_COLUMNS``) for a snapshot's summary.

    Args:
        summary: ``algocli.options.pcr.summarise`` of the snapshot.
        taken_at: When it was taken (exchange time, IST).
        bar: The start of the candle being processed when it was taken (None before the first).
        mode: The run's mode, as ``run.json`` names it (``paper``, ``live``, ``live-dry-run``).
    """
    chain, whole, part = summary.chain, summary.whole, summary.windowed
    values = {
        "timestamp": taken_at.strftime(_TIME), "underlying": chain.underlying, "expiry": chain.expiry.isoformat(),
        "spot": chain.spot, "atm_strike": summary.atm, "oi_pcr": whole.oi_pcr, "volume_pcr": whole.vol_pcr,
        "change_oi_pcr": whole.chg_oi_pcr, "max_pain": summary.max_pain,
        "bar": "" if bar is None else bar.strftime(_TIME), "mode": mode, "source": chain.source,
        "put_oi": whole.put_oi, "call_oi": whole.call_oi, "put_volume": whole.put_volume,
        "call_volume": whole.call_volume, "put_chg_oi": whole.put_chg_oi, "call_chg_oi": whole.call_chg_oi,
        "window_strikes": summary.window_strikes, "window_oi_pcr": part.oi_pcr, "window_volume_pcr": part.vol_pcr,
        "window_change_oi_pcr": part.chg_oi_pcr,
    }
    return {k: _text(values[k]) for k in CSV_COLUMNS}


class _Series:
    """One underlying's and expiry's recorded rows, by the instant each is visible from."""

    def __init__(self) -> None:
        self.at: list[int] = []
        self.rows: list[dict[str, str]] = []


def read_pcr_csv(path: Path) -> dict[str, dict[date, _Series]]:
    """A ``pcr.csv`` as underlying → expiry → rows in time order.

    A run's record (it has a ``mode`` column) read while the run appends to it, or left by a killed
    run, can end in a row without its line end: that row is not complete and is skipped.

    Raises:
        ConfigError: The file is missing or unreadable, lacks a column, or a row has a bad time,
            expiry or number (named with its line).
    """
    from algocli.domain.session import ist_midnight_ns
    from algocli.errors import ConfigError
    from algocli.strategy.contracts import canonical_underlying

    try:
        with open(path, newline="", encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the PCR series: {exc.strerror or exc}; fix data.options.pcr") from None
    header, newline, _ = text.partition("\n")
    if newline and not text.endswith("\n") and "mode" in header.rstrip("\r").split(","):
        text = text[:text.rfind("\n") + 1]  # a run's row being written or cut by a kill: each row it writes ends a line
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in ("timestamp", "underlying", "expiry", "oi_pcr") if c not in (reader.fieldnames or ())]
    if missing:
        raise ConfigError(f"{path}: no {', '.join(missing)} column; a PCR series has the columns "
                          f"{', '.join(PCR_COLUMNS)} (a paper or live run's pcr.csv)")
    out: dict[str, dict[date, _Series]] = {}
    for line, row in enumerate(reader, 2):
        try:
            when = datetime.strptime(row.get("bar") or row["timestamp"], _TIME)
            expiry = date.fromisoformat(row["expiry"])
            for name in ("oi_pcr", "volume_pcr", "change_oi_pcr", "window_oi_pcr"):
                _number(row.get(name))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: line {line}: {exc}; fix or remove the row") from None
        ns = ist_midnight_ns(when.date()) + (when.hour * 3600 + when.minute * 60 + when.second) * 10**9
        series = out.setdefault(canonical_underlying(row["underlying"]), {}).setdefault(expiry, _Series())
        if series.at and ns < series.at[-1]:
            raise ConfigError(f"{path}: line {line}: {when} is earlier than the row before; a PCR series "
                              "is in time order")
        series.at.append(ns)
        series.rows.append(row)
    return out


def _number(text: str | None) -> float | None:
    return None if text is None or not text.strip() else float(text)


def _count(text: str | None) -> int:
    value = _number(text)
    return 0 if value is None else int(value)


class PcrReplay:
    """``ctx.pcr`` from a recorded series: the last row at or before the bar.

    ``window=None`` reads the row's whole-chain figures, ``window=N`` its ``window_*`` ones, which
    the row must have been recorded with (``window_strikes == N``). The sums of the figures are
    the row's ``put_oi`` ... columns (0 when the file has none; the window's are not recorded).

    Args:
        path: The ``pcr.csv``.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._series = read_pcr_csv(self.path)

    def at(self, underlying: str, expiry, n: int | None, now: int, today: date) -> PcrFigures | None:
        """The figures at ``now`` (UTC ns), or None before the first recorded row.

        Raises:
            ValueError: The file has no row of the underlying or expiry, or not the window asked for.
        """
        from algocli.strategy.contracts import canonical_underlying, pick_expiry

        key = canonical_underlying(underlying)
        by_expiry = self._series.get(key)
        if not by_expiry:
            raise ValueError(f"{self.path} records no PCR of {key} (it has: {', '.join(self._series) or 'none'})")
        series = by_expiry[pick_expiry(by_expiry, today, expiry, exchange=key.partition(":")[0])]
        k = bisect_right(series.at, now) - 1
        if k < 0:
            return None
        row = series.rows[k]
        if n is None:
            return PcrFigures(_number(row.get("oi_pcr")), _number(row.get("volume_pcr")),
                              _number(row.get("change_oi_pcr")), _count(row.get("put_oi")),
                              _count(row.get("call_oi")), _count(row.get("put_volume")),
                              _count(row.get("call_volume")), _count(row.get("put_chg_oi")),
                              _count(row.get("call_chg_oi")))
        recorded = _count(row.get("window_strikes")) if row.get("window_strikes") else None
        if recorded != n:
            raise ValueError(f"window={n}: {self.path} recorded PCR over the whole chain"
                             + (f" and ATM ± {recorded} strikes" if recorded is not None else "")
                             + "; ask for window=None" + (f" or {recorded}" if recorded is not None else ""))
        return PcrFigures(_number(row.get("window_oi_pcr")), _number(row.get("window_volume_pcr")),
                          _number(row.get("window_change_oi_pcr")), 0, 0, 0, 0, 0, 0)



def replay_chains(core, path: Path, where: str) -> BarChains:
    """A backtest's chains whose ``pcr`` replays the series at ``path`` (``data.options.pcr``).

    Raises:
        ConfigError: The file does not exist or is not a PCR series (named with ``where``, the YAML).
    """
    from algocli.errors import ConfigError

    if not Path(path).is_file():
        raise ConfigError(f"{where}: data.options.pcr: {path} does not exist; give the pcr.csv a paper or live "
                          "run wrote (relative to data.path)")
    return BarChains(core, replay=PcrReplay(path))
