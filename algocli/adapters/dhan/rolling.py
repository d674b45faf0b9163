"""Dhan's expired-options data: ``POST /v2/charts/rollingoption`` (https://dhanhq.co/docs/v2/expired-options-data/).

One request asks for one ATM-relative strike (``ATM``, ``ATM+1`` .. ``ATM+10`` for index
options near expiry, ``±3`` for others) of one side (``CALL``/``PUT``) of the current, next
or far expiry (``expiryFlag`` WEEK or MONTH, ``expiryCode`` 0/1/2 as Dhan's annexure numbers
expiries, https://dhanhq.co/docs/v2/annexure/), at most 30 days at a time. The answer holds
column arrays for the asked side, the other one ``null``::

    {"data": {"ce": {"open": [...], "high": [...], "low": [...], "close": [...], "volume": [...],
                     "oi": [...], "iv": [...], "strike": [...], "spot": [...], "timestamp": [...]},
              "pe": null}}

``timestamp`` is epoch seconds of the bar start. ``strike`` is the real strike each bar was
taken from: ATM moves with the spot, so one relative series is many contracts (see
``algocli.data.download_options``). ``toDate`` is taken as exclusive, as on Dhan's other
chart routes.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from algocli.domain.models import Interval
from algocli.errors import UsageError

__all__ = ["CODES", "FIELDS", "INTERVALS", "MAX_DAYS", "MAX_OFFSET", "ROLLING_PATH", "body", "offset_label",
           "parse"]

ROLLING_PATH = "/charts/rollingoption"
FIELDS = ("open", "high", "low", "close", "iv", "volume", "strike", "oi", "spot")
INTERVALS = {Interval.MINUTE_1: 1, Interval.MINUTE_5: 5, Interval.MINUTE_15: 15, Interval.MINUTE_25: 25,
             Interval.HOUR_1: 60}
CODES = {"current": 0, "next": 1, "far": 2}
MAX_DAYS = 30
MAX_OFFSET = {"OPTIDX": 10, "OPTSTK": 3}
SIDES = {"CE": ("CALL", "ce"), "PE": ("PUT", "pe")}
_SECOND_NS = 1_000_000_000


def offset_label(k: int) -> str:
    """``0`` → ``ATM``, ``2`` → ``ATM+2``, ``-1`` → ``ATM-1`` (Dhan's ``strike`` values)."""
    return "ATM" if k == 0 else f"ATM{k:+d}"


def body(security_id: int, instrument: str, cycle: str, code: int, offset: int, right: str,
         interval: Interval, start: date, end: date) -> dict:
    """The request for ``[start, end]`` (IST dates, both included).

    Args:
        security_id: The underlying's Dhan security id (NIFTY 13).
        instrument: ``OPTIDX`` or ``OPTSTK``.
        cycle: ``week`` or ``month``.
        code: 0 current, 1 next, 2 far expiry.
        offset: Strikes from ATM (``ATM+offset``).
        right: ``CE`` or ``PE``.
        interval: One of ``INTERVALS``.

    Raises:
        UsageError: An interval Dhan does not serve.
    """
    if interval not in INTERVALS:
        raise UsageError(f"--interval {interval.value}: Dhan's rolling options come in "
                         f"{', '.join(i.value for i in INTERVALS)}")
    return {"exchangeSegment": "NSE_FNO", "interval": INTERVALS[interval], "securityId": security_id,
            "instrument": instrument, "expiryFlag": cycle.upper(),
            "expiryCode": code, "strike": offset_label(offset), "drvOptionType": SIDES[right][0],
            "requiredData": list(FIELDS), "fromDate": start.isoformat(),
            "toDate": (end + timedelta(days=1)).isoformat()}


def parse(payload: object, right: str) -> dict[str, np.ndarray]:
    """The asked side's columns: ``ts`` (UTC ns) and ``FIELDS`` as float64; empty when Dhan sent none.

    A column missing from the answer is zeros (``oi`` and ``iv`` of a quiet strike), except
    ``strike``, without which no bar can be placed: then nothing is returned.
    """
    data = payload.get("data") if isinstance(payload, dict) else None
    side = data.get(SIDES[right][1]) if isinstance(data, dict) else None
    stamps = side.get("timestamp") if isinstance(side, dict) else None
    if not isinstance(stamps, list) or not stamps or not isinstance(side.get("strike"), list):
        return {"ts": np.zeros(0, dtype=np.int64), **{f: np.zeros(0) for f in FIELDS}}
    n = len(stamps)
    out = {"ts": np.asarray(stamps, dtype=np.int64) * _SECOND_NS}
    for name in FIELDS:
        values = side.get(name)
        ok = isinstance(values, list) and len(values) == n
        out[name] = np.asarray([v if isinstance(v, (int, float)) else 0.0 for v in values], dtype=np.float64) \
            if ok else np.zeros(n)
    return out


def _instrument_type(underlying) -> tuple[int, str]:
    """The underlying's Dhan security id and the options' instrument type (``OPTIDX``/``OPTSTK``)."""
    segment, _, ident = (underlying.dhan_id or "").partition(":")
    if not ident.isdigit():
        raise UsageError(f"{underlying.hrn} has no Dhan id in the instrument list; Dhan cannot serve its options")
    return int(ident), "OPTIDX" if segment == "IDX_I" else "OPTSTK"


def check_window(underlying, window) -> None:
    """Refuse offsets beyond what Dhan serves (±10 for index options, ±3 for others) before any request."""
    _, kind = _instrument_type(underlying)
    most = MAX_OFFSET[kind]
    if max(abs(window.lo), abs(window.hi)) > most:
        raise UsageError(f"--strikes: Dhan serves {'index' if kind == 'OPTIDX' else 'stock'} options from ATM-{most} "
                         f"to ATM+{most}")


def _plan(job) -> list[tuple[int, date, date]]:
    """``(expiry code, first day, last day)`` per request range, each at most ``MAX_DAYS`` long.

    A fixed code (current/next/far) covers the whole range; a date is asked, day by day, with the
    code that names it on that day (consecutive days with one code share requests).
    """
    from algocli.data.download import split_range
    from algocli.data.expiries import expiry_days

    step = lambda d: d + timedelta(days=MAX_DAYS)  # noqa: E731
    if not isinstance(job.expiry, date):
        return [(CODES[job.expiry], a, b) for a, b in split_range(job.start, job.end, step)]
    runs: list[list] = []
    for day in job.days:
        if day > job.expiry:
            break
        code = len(expiry_days(job.cycle, day, job.expiry, symbol=job.symbol)) - 1
        if code > max(CODES.values()):
            continue  # further out than Dhan's far expiry
        if runs and runs[-1][0] == code and (day - runs[-1][1]).days < MAX_DAYS:
            runs[-1][2] = day
        else:
            runs.append([code, day, day])
    skipped = [d for d in job.days if d <= job.expiry and not any(r[1] <= d <= r[2] for r in runs)]
    if skipped:
        job.result.notes.append(f"{len(skipped)} day(s) before {skipped[-1]} skipped: {job.expiry} was more than "
                                "two expiries away then (Dhan serves current, next and far)")
    return [(c, a, b) for c, a, b in runs]


async def download(job, session, settings, limiter, options: dict) -> None:
    """Fetch every asked ``(offset, side)`` rolling series and file its candles under real contracts
    (``algocli.data.download_options.split_rolling``) into ``job.contracts``, also when a request fails."""
    from functools import lru_cache

    from algocli.adapters.dhan.http import DhanApiError, DhanRest
    from algocli.data.download_options import RollingSplit, contract_instrument, unknown_lots
    from algocli.data.expiries import upcoming
    from algocli.domain.session import ist_midnight_ns

    security_id, kind = _instrument_type(job.underlying)
    client = DhanRest(session, settings, **options)
    lo_ns, hi_ns = ist_midnight_ns(job.start), ist_midnight_ns(job.end + timedelta(days=1))
    expiry_of = lru_cache(maxsize=None)(lambda day, code: upcoming(job.cycle, day, code, symbol=job.symbol))
    split = RollingSplit(expiry_of, (lambda e: e == job.expiry) if isinstance(job.expiry, date) else (lambda e: True))
    names: dict[tuple, tuple] = {}  # (expiry, strike, side) -> (Instrument, lot known)
    try:
        for code, first, last in _plan(job):
            for offset in job.window.offsets:
                for right in SIDES:
                    request = body(security_id, kind, job.cycle, code, offset, right, job.interval, first, last)
                    try:
                        payload = await client.request("POST", ROLLING_PATH, request, limiter=limiter)
                    except DhanApiError as exc:
                        if exc.code != "DH-907":  # "no data": a strike that did not trade
                            raise
                        payload = None
                    job.result.requests += 1
                    cols = parse(payload, right)
                    inside = (cols["ts"] >= lo_ns) & (cols["ts"] < hi_ns)
                    # each contract this answer added to is written now: a killed run keeps it
                    for key in split.add({k: v[inside] for k, v in cols.items()}, right, code):
                        if key not in names:
                            names[key] = contract_instrument(job.symbol, *key, job.lookup)
                        job.save(names[key][0], split.columns(key)[0])
    finally:
        job.result.duplicates += sum(split.columns(key)[1] for key in split.parts)
        guessed = [inst.hrn for inst, known in sorted(names.values(), key=lambda v: v[0].hrn) if not known]
        if guessed:
            job.result.notes.append(unknown_lots(guessed))
