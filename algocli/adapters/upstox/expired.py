"""Upstox's expired option contracts and their candles, and its historical PCR.

* ``GET /v2/expired-instruments/expiries?instrument_key=`` → ``data: ["YYYY-MM-DD", ...]``
  (https://upstox.com/developer/api-documentation/get-expiries; Upstox Plus, six months back).
* ``GET /v2/expired-instruments/option/contract?instrument_key=&expiry_date=`` → the option
  contract rows, each ``instrument_key`` an expired key ``NSE_FO|47983|17-04-2025``
  (https://upstox.com/developer/api-documentation/get-expired-option-contracts).
* ``GET /v2/expired-instruments/historical-candle/{key}/{interval}/{to}/{from}`` → candles
  ``[ISO time, o, h, l, c, volume, oi]`` (https://upstox.com/developer/api-documentation/get-expired-historical-candle-data);
  intervals ``1minute``, ``3minute``, ``5minute``, ``15minute``, ``30minute``, ``day``.
* ``GET /v2/market/pcr?instrument_key=&expiry=&date=&bucket_interval=`` → ``data{pcr,
  spot_closing_price, insights: [{pcr, spot_price, time "HH:MM"}]}``
  (https://upstox.com/developer/api-documentation/get-pcr): one expiry's PCR through one day.
"""

from __future__ import annotations

from datetime import date, datetime
from urllib.parse import quote

import numpy as np

from algocli.domain.hrn import derivative_hrn
from algocli.domain.instrument import Instrument
from algocli.domain.models import Interval
from algocli.errors import BrokerError, UsageError

__all__ = ["CANDLE_PATH", "CONTRACTS_PATH", "EXPIRIES_PATH", "INTERVALS", "PCR_PATH", "contract",
           "fetch_candles", "fetch_contracts", "fetch_expiries", "fetch_pcr", "pcr_rows"]

EXPIRIES_PATH = "/v2/expired-instruments/expiries"
CONTRACTS_PATH = "/v2/expired-instruments/option/contract"
CANDLE_PATH = "/v2/expired-instruments/historical-candle"
PCR_PATH = "/v2/market/pcr"
INTERVALS = {Interval.MINUTE_1: "1minute", Interval.MINUTE_3: "3minute", Interval.MINUTE_5: "5minute",
             Interval.MINUTE_15: "15minute", Interval.MINUTE_30: "30minute", Interval.DAY_1: "day"}
_SEGMENT_EXCHANGE = {"NSE_FO": "NSE", "BSE_FO": "BSE"}


def _q(text: str) -> str:
    return quote(text, safe="")


def _dates(data: object) -> list[date]:
    out = set()
    for item in data if isinstance(data, list) else []:
        try:
            out.add(date.fromisoformat(str(item)[:10]))
        except ValueError:
            continue
    return sorted(out)


async def fetch_expiries(client, underlying_key: str) -> list[date]:
    """The expired expiries Upstox keeps for ``underlying_key``, ascending."""
    return _dates(await client.get(f"{EXPIRIES_PATH}?instrument_key={_q(underlying_key)}"))


async def fetch_contracts(client, underlying_key: str, expiry: date) -> list[Instrument]:
    """The option contracts of one expired expiry, as instruments keyed by their expired key."""
    data = await client.get(f"{CONTRACTS_PATH}?instrument_key={_q(underlying_key)}&expiry_date={expiry.isoformat()}")
    rows = [contract(row) for row in (data if isinstance(data, list) else [])]
    return [r for r in rows if r is not None]


def contract(row: object) -> Instrument | None:
    """An option row of the contract answer as an ``Instrument`` (None for a row that is not an option)."""
    if not isinstance(row, dict) or row.get("instrument_type") not in ("CE", "PE"):
        return None
    try:
        expiry = date.fromisoformat(str(row["expiry"])[:10])
        strike = float(row["strike_price"])
        key = str(row["instrument_key"])
    except (KeyError, TypeError, ValueError):
        raise BrokerError(f"Upstox sent an option contract without expiry, strike or key: {row!r}") from None
    exchange = row.get("exchange") or _SEGMENT_EXCHANGE.get(str(row.get("segment")), "NSE")
    symbol = str(row.get("underlying_symbol") or row.get("name") or "").upper()
    tick = row.get("tick_size")
    return Instrument(derivative_hrn(exchange, symbol, expiry, row["instrument_type"], strike), exchange=exchange,
                      kind=row["instrument_type"], symbol=symbol, name=symbol, expiry=expiry, strike=strike,
                      lot_size=int(row.get("lot_size") or 1),
                      tick_size=float(tick) / 100 if isinstance(tick, (int, float)) and tick else 0.05,
                      token=str(row.get("exchange_token") or ""), dhan_instrument="OPTIDX"
                      if row.get("underlying_type") == "INDEX" else "OPTSTK", upstox_key=key)


async def fetch_candles(client, key: str, interval: Interval, start: date, end: date) -> dict[str, np.ndarray]:
    """One expired contract's candles from ``start`` to ``end`` (one request), sorted oldest first.

    Raises:
        UsageError: An interval Upstox does not serve for expired contracts.
    """
    from algocli.adapters.upstox.http import candle_bars

    if interval not in INTERVALS:
        raise UsageError(f"--interval {interval.value}: Upstox's expired candles come in "
                         f"{', '.join(i.value for i in INTERVALS)}")
    data = await client.get(f"{CANDLE_PATH}/{_q(key)}/{INTERVALS[interval]}/{end.isoformat()}/{start.isoformat()}")
    candles = data.get("candles") if isinstance(data, dict) else None
    cols = candle_bars(key, candles if isinstance(candles, list) else [], daily=interval is Interval.DAY_1)
    order = np.argsort(cols["ts"], kind="stable")
    return {k: v[order] for k, v in cols.items()}


async def fetch_pcr(client, underlying_key: str, expiry: date, day: date, bucket: int) -> dict:
    """The ``data`` of ``/v2/market/pcr`` for one expiry through one day."""
    data = await client.get(f"{PCR_PATH}?instrument_key={_q(underlying_key)}&expiry={expiry.isoformat()}"
                            f"&date={day.isoformat()}&bucket_interval={bucket}")
    return data if isinstance(data, dict) else {}


def pcr_rows(data: dict, underlying: str, expiry: date, day: date) -> list[dict]:
    """One ``PCR_COLUMNS`` row per insight: the time is the bucket's start on ``day`` (IST).

    The endpoint gives the PCR and the spot only: ``oi_pcr`` takes its ``pcr`` (Upstox does not
    say how it is computed; its values match the whole expiry's OI PCR), the other figures are
    left empty. The ``expiry`` is the one asked for (the answer's ``expiry_date`` is not
    reliable, see the docs' sample).
    """
    rows = []
    for item in data.get("insights") or []:
        if not isinstance(item, dict) or not isinstance(item.get("pcr"), (int, float)):
            continue
        try:
            moment = datetime.combine(day, datetime.strptime(str(item.get("time")), "%H:%M").time())
        except ValueError:
            continue
        spot = item.get("spot_price")
        rows.append({"timestamp": moment.strftime("%Y-%m-%d %H:%M:%S"), "underlying": underlying,
                     "expiry": expiry.isoformat(), "spot": spot if isinstance(spot, (int, float)) else None,
                     "atm_strike": None, "oi_pcr": float(item["pcr"]), "volume_pcr": None, "change_oi_pcr": None,
                     "max_pain": None})
    return rows



def _client(session, settings, limiter, options: dict):
    from algocli.adapters.upstox.http import UpstoxRest

    return UpstoxRest(session, settings, limiter=limiter, **{k: v for k, v in options.items() if k != "pace"})


def _key(underlying: Instrument) -> str:
    from algocli.adapters.upstox.options import underlying_key

    return underlying.upstox_key or underlying_key(underlying.hrn)


def _by_expiry(job, listed: list[date], kept: str = "expired expiries only, up to six months back",
               ) -> dict[date, list[date]]:
    """The trading days of the range grouped by the expiry asked for on each (``job.expiry``);
    ``kept`` says which expiries ``listed`` holds, for the error.

    Raises:
        OptionsError: Upstox lists no such expiry for any day of the range (days it lists none
            for, while others have one, are skipped with a note).
    """
    from algocli.data.download_options import OptionsError

    have = ", ".join(d.isoformat() for d in listed[-8:]) or "none"
    groups: dict[date, list[date]] = {}
    if isinstance(job.expiry, date):
        if job.expiry not in listed:
            raise OptionsError(f"Upstox lists no contracts expiring {job.expiry} (it has {have})")
        groups[job.expiry] = [d for d in job.days if d <= job.expiry]
        return groups
    code = {"current": 0, "next": 1, "far": 2}[job.expiry]
    skipped = []
    for day in job.days:
        ahead = [e for e in listed if e >= day]
        if len(ahead) > code:
            groups.setdefault(ahead[code], []).append(day)
        else:
            skipped.append(day)
    what = f"a {job.expiry} expiry"
    if skipped and not groups:
        fix = "pick a listed one with --expiry YYYY-MM-DD, or" if listed else "ask for"
        raise OptionsError(f"--expiry {job.expiry}: Upstox lists no contracts of {what} for any day from "
                           f"{skipped[0]} to {skipped[-1]} (it has {have}; it lists {kept}); {fix} an earlier "
                           "--from/--to")
    if skipped:
        job.result.notes.append(f"{len(skipped)} day(s) from {skipped[0]} to {skipped[-1]} skipped: Upstox lists no "
                                f"contracts of {what} for them (it has {have})")
    return groups


def _near_atm(strikes: list[float], closes: np.ndarray, window) -> set[float]:
    """The strikes within ``window`` of ATM (the listed strike nearest the close, lower on a tie) at any close."""
    grid = np.asarray(sorted(strikes), dtype=np.float64)
    if not len(grid) or not len(closes):
        return set()
    right = np.clip(np.searchsorted(grid, closes), 1, len(grid) - 1)
    left = right - 1
    atm = np.where(np.abs(closes - grid[left]) <= np.abs(grid[right] - closes), left, right) if len(grid) > 1 \
        else np.zeros(len(closes), dtype=np.int64)
    out = set()
    for k in window.offsets:
        at = atm + k
        out.update(grid[at[(at >= 0) & (at < len(grid))]].tolist())
    return out


async def download(job, session, settings, limiter, options: dict) -> None:
    """Fetch the expired contracts that came within ``job.window`` of ATM, whole over the range, into
    ``job.contracts``."""
    from algocli.adapters.upstox.http import add_months
    from algocli.data.download import split_range
    from algocli.data.download_options import OptionsError
    from algocli.domain.session import ist_date

    client, key = _client(session, settings, limiter, options), _key(job.underlying)
    listed = await fetch_expiries(client, key)
    job.result.requests += 1
    bars = job.under_bars
    if bars is None or not len(bars):
        raise OptionsError(f"no candles of {job.underlying.hrn} in the range: ATM cannot be found")
    days = np.array([ist_date(int(t)) for t in bars.ts], dtype=object)
    for expiry, span in sorted(_by_expiry(job, listed).items()):
        contracts = await fetch_contracts(client, key, expiry)
        job.result.requests += 1
        closes = bars.close[(days >= span[0]) & (days <= span[-1])]
        for right in ("CE", "PE"):
            side = [c for c in contracts if c.option_type == right]
            near = _near_atm([c.strike for c in side], closes, job.window)
            for inst in sorted((c for c in side if c.strike in near), key=lambda c: c.strike):
                pieces = []
                try:
                    for lo, hi in split_range(span[0], min(span[-1], expiry), lambda d: add_months(d, 1)):
                        pieces.append(await fetch_candles(client, inst.upstox_key, job.interval, lo, hi))
                        job.result.requests += 1
                finally:  # a failure or Ctrl-C in a later piece keeps the earlier ones
                    if pieces:  # written now: a killed run keeps it
                        job.save(inst, _one_per_start(pieces, job.result))


def _one_per_start(pieces: list[dict[str, np.ndarray]], result) -> dict[str, np.ndarray]:
    """The pieces' columns sorted by bar start, one bar per start (the first); repeats are counted."""
    cols = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
    order = np.argsort(cols["ts"], kind="stable")
    ts = cols["ts"][order]
    first = np.ones(len(ts), dtype=bool)
    first[1:] = ts[1:] != ts[:-1]
    result.duplicates += int((~first).sum())
    return {k: v[order][first] for k, v in cols.items()}


async def download_pcr(job, session, settings, limiter, options: dict) -> list[dict]:
    """``PCR_COLUMNS`` rows of every trading day of the range, for the expiry asked on each day
    (expired expiries and live ones), one per bucket of the interval's minutes (60 for daily bars)."""
    from algocli.adapters.upstox.options import fetch_expiries as live_expiries

    client, key = _client(session, settings, limiter, options), _key(job.underlying)
    listed = sorted(set(await fetch_expiries(client, key)) | set(await live_expiries(client, key)))
    job.result.requests += 2
    bucket = 60 if job.interval is Interval.DAY_1 else job.interval.minutes
    rows = []
    for expiry, span in sorted(_by_expiry(job, listed, "expired and live expiries").items()):
        for day in span:
            rows += pcr_rows(await fetch_pcr(client, key, expiry, day, bucket), job.underlying.hrn, expiry, day)
            job.result.requests += 1
    return rows
