"""Historical option data in Dhan's and Upstox's wire formats, from the sandbox's option bars.

Routes (added by ``add_routes``, which ``algocli.sandbox.options.add_routes`` calls):

* Dhan ``POST /v2/charts/rollingoption`` (https://dhanhq.co/docs/v2/expired-options-data/):
  ``securityId`` of the underlying, ``exchangeSegment`` NSE_FNO, ``instrument`` OPTIDX/OPTSTK,
  ``expiryFlag`` WEEK/MONTH, ``expiryCode`` 0 current, 1 next, 2 far, ``strike`` ``ATM``/``ATM±k``
  (k ≤ 10 for OPTIDX, 3 for OPTSTK), ``drvOptionType`` CALL/PUT, ``requiredData``, ``fromDate``
  and ``toDate`` (``YYYY-MM-DD``, ``toDate`` exclusive, at most 31 days), ``interval`` 1, 5, 15,
  25 or 60 (number or string). For each of the underlying's candles: its expiry is the one
  the code names on that day by the NSE rules (``algocli.data.expiries``), ATM the listed strike
  of that expiry nearest the underlying's close (lower on a tie), ``ATM+k`` the k-th listed
  strike above it; the candle is that contract's bar at the same start, with ``strike`` the
  real strike, ``spot`` the underlying's close and ``iv`` Black-76 on the spot (percent, 0
  without vollib). Bars the contract lacks are left out. Answer
  ``{"data": {"ce": {<requiredData>..., "timestamp"}, "pe": null}}``.
* Upstox ``GET /v2/expired-instruments/expiries?instrument_key=``,
  ``GET /v2/expired-instruments/option/contract?instrument_key=&expiry_date=`` (rows as the
  live contract route's, with the expired key ``NSE_FO|71001|27-06-2024``) and
  ``GET /v2/expired-instruments/historical-candle/{expired key}/{interval}/{to}/{from}``
  (``1minute`` .. ``30minute``, ``day``; newest first). Expired means before the replay
  clock's IST date (every listed expiry when there is no clock).
* Upstox ``GET /v2/market/pcr?instrument_key=&expiry=&date=&bucket_interval=``: the whole
  expiry's OI PCR (Σ put OI / Σ call OI of what was replayed) at 09:15 and every
  ``bucket_interval`` minutes up to the close, ``spot_price`` the underlying's last close then;
  ``pcr`` and ``spot_closing_price`` at the day's close. Times after the replay clock are left out.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import numpy as np
from aiohttp import web

from algocli.data.expiries import upcoming
from algocli.domain.models import Interval
from algocli.domain.session import SESSION_CLOSE_NS, SESSION_OPEN_NS, ist_date, ist_midnight_ns
from algocli.errors import AlgoError, ConfigError
from algocli.options.chain import option_symbol
from algocli.options.greeks import IST, leg_greeks, year_fraction
from algocli.sandbox.history import _candles, _dhan_error, _upstox_error

__all__ = ["DHAN_ROLLING_PATH", "UPSTOX_CANDLE_PATH", "UPSTOX_CONTRACT_PATH", "UPSTOX_EXPIRIES_PATH",
           "UPSTOX_PCR_PATH", "add_routes"]

DHAN_ROLLING_PATH = "/v2/charts/rollingoption"
UPSTOX_EXPIRIES_PATH = "/v2/expired-instruments/expiries"
UPSTOX_CONTRACT_PATH = "/v2/expired-instruments/option/contract"
UPSTOX_CANDLE_PATH = "/v2/expired-instruments/historical-candle/{key}/{interval}/{to_date}/{from_date}"
UPSTOX_PCR_PATH = "/v2/market/pcr"
_INTERVALS = {1: Interval.MINUTE_1, 5: Interval.MINUTE_5, 15: Interval.MINUTE_15, 25: Interval.MINUTE_25,
              60: Interval.HOUR_1}
_UPSTOX_INTERVALS = {"1minute": Interval.MINUTE_1, "3minute": Interval.MINUTE_3, "5minute": Interval.MINUTE_5,
                     "15minute": Interval.MINUTE_15, "30minute": Interval.MINUTE_30, "day": Interval.DAY_1}
_FIELDS = ("open", "high", "low", "close", "iv", "volume", "strike", "oi", "spot")
_STRIKE = re.compile(r"^ATM(?:([+-])(\d+))?$")
_MAX_OFFSET = {"OPTIDX": 10, "OPTSTK": 3}
_MINUTE_NS = 60_000_000_000


def add_routes(app: web.Application, dhan: bool = True, upstox: bool = True) -> None:
    """Mount the routes on an app that has the option routes (``OPTIONS_KEY``)."""
    if dhan:
        app.router.add_post(DHAN_ROLLING_PATH, _dhan_rolling)
    if upstox:
        app.router.add_get(UPSTOX_EXPIRIES_PATH, _upstox_expiries)
        app.router.add_get(UPSTOX_CONTRACT_PATH, _upstox_contracts)
        app.router.add_get(UPSTOX_CANDLE_PATH, _upstox_candles)
        app.router.add_get(UPSTOX_PCR_PATH, _upstox_pcr)


def _box(request: web.Request):
    from algocli.sandbox.options import OPTIONS_KEY

    return request.app[OPTIONS_KEY]


def _options_of(box, underlying) -> list:
    """Every listed option on ``underlying``, live or not."""
    return box.contracts(underlying, date.min)


def _expired(box, expiry: date) -> bool:
    """Whether ``expiry`` counts as expired at the replay clock: after its day, or on it from its F&O
    session's close. The replay's last instant is the second before the close (15:29:59 of the
    bundled sample's expiry day); its closing prices are known then, so it counts."""
    now = box.history.clock()
    if now is None:
        return True
    day = ist_date(now)
    if expiry != day:
        return expiry < day
    from algocli.market.calendar import default_calendar

    session = default_calendar().session(day, "FNO")
    close = session.bounds_ns()[1] if session is not None else ist_midnight_ns(day) + SESSION_CLOSE_NS
    return now + 1_000_000_000 >= close


# --- Dhan ------------------------------------------------------------------------------------

def _bad(message: str) -> web.Response:
    return _dhan_error(400, "DH-905", "Input_Exception", message)


def _rolling_request(body: object) -> dict | str:
    """The checked request's fields, or what is wrong with it."""
    if not isinstance(body, dict):
        return "The request body is not a JSON object."
    try:
        interval = _INTERVALS[int(str(body.get("interval", 1)))]
    except (KeyError, ValueError):
        return f"Invalid interval {body.get('interval')!r}; use 1, 5, 15, 25 or 60."
    kind, flag, side = body.get("instrument"), body.get("expiryFlag"), body.get("drvOptionType")
    if body.get("exchangeSegment") not in ("NSE_FNO", "BSE_FNO") or kind not in _MAX_OFFSET:
        return "exchangeSegment must be NSE_FNO or BSE_FNO and instrument OPTIDX or OPTSTK."
    if flag not in ("WEEK", "MONTH") or side not in ("CALL", "PUT"):
        return "expiryFlag must be WEEK or MONTH and drvOptionType CALL or PUT."
    code = body.get("expiryCode")
    if not isinstance(code, int) or not 0 <= code <= 2:
        return "expiryCode must be 0 (current), 1 (next) or 2 (far)."
    m = _STRIKE.match(str(body.get("strike", "")))
    offset = 0 if m is None or m[1] is None else int(m[2]) * (1 if m[1] == "+" else -1)
    if m is None or abs(offset) > _MAX_OFFSET[kind]:
        return f"strike must be ATM or ATM±k with k up to {_MAX_OFFSET[kind]}."
    wanted = body.get("requiredData")
    if not isinstance(wanted, list) or not wanted or not set(wanted) <= set(_FIELDS):
        return f"requiredData must be a non-empty list of {', '.join(_FIELDS)}."
    try:
        first, to = date.fromisoformat(str(body.get("fromDate"))), date.fromisoformat(str(body.get("toDate")))
    except ValueError:
        return "fromDate and toDate must be YYYY-MM-DD."
    if not first < to or (to - first).days > 31:
        return "toDate must be after fromDate, at most 31 days later."
    return {"interval": interval, "cycle": "week" if flag == "WEEK" else "month", "code": code, "offset": offset,
            "right": "CE" if side == "CALL" else "PE", "fields": wanted, "from": first, "to": to,
            "security": str(body.get("securityId", "")).strip()}


async def _dhan_rolling(request: web.Request) -> web.Response:
    box = _box(request)
    try:
        body = await request.json()
    except ValueError:
        body = None
    box.requests.append((request.path, body if isinstance(body, dict) else {}))
    if not box.history.token_ok(request.headers.get("access-token")):
        return _dhan_error(401, "DH-901", "Invalid_Authentication", "Client ID or user generated access token "
                                                                    "is invalid or expired.")
    asked = _rolling_request(body)
    if isinstance(asked, str):
        return _bad(asked)
    under = (box.underlying(dhan_id=f"IDX_I:{asked['security']}")
             or box.underlying(dhan_id=f"NSE_EQ:{asked['security']}"))
    if under is None:
        return _dhan_error(400, "DH-907", "Data_Error", f"No options data for securityId {asked['security']}.")
    try:
        rows = _rolling_rows(box, under, asked)
    except AlgoError as exc:
        return _dhan_error(400, "DH-907", "Data_Error", str(exc))
    leg = {name: [r[name] for r in rows] for name in asked["fields"]}
    leg["timestamp"] = [r["timestamp"] for r in rows]
    sides = {"ce": None, "pe": None}
    sides["ce" if asked["right"] == "CE" else "pe"] = leg
    return web.json_response({"data": sides})


def _rolling_rows(box, under, asked: dict) -> list[dict]:
    """One row per candle of the asked rolling series (see the module docstring)."""
    history, now = box.history, box.history.clock()
    spot = history.candles(under.dhan_id, asked["interval"], now)
    lo, hi = ist_midnight_ns(asked["from"]), ist_midnight_ns(asked["to"])
    grid: dict[date, list] = {}
    for inst in _options_of(box, under):
        if inst.option_type == asked["right"]:
            grid.setdefault(inst.expiry, []).append(inst)
    for listed in grid.values():
        listed.sort(key=lambda i: i.strike)
    symbol = option_symbol(under.hrn)[1]
    expiry_on: dict[date, date] = {}
    bars: dict[str, object] = {}
    rows = []
    for k in range(int(np.searchsorted(spot.ts, lo)), int(np.searchsorted(spot.ts, hi))):
        ts, close = int(spot.ts[k]), float(spot.close[k])
        day = ist_date(ts)
        if day not in expiry_on:
            try:
                expiry_on[day] = upcoming(asked["cycle"], day, asked["code"], symbol=symbol)
            except AlgoError as exc:
                raise ConfigError(str(exc)) from None
        listed = grid.get(expiry_on[day])
        if not listed:
            continue
        atm = min(range(len(listed)), key=lambda i: (abs(listed[i].strike - close), listed[i].strike))
        at = atm + asked["offset"]
        if not 0 <= at < len(listed):
            continue
        inst = listed[at]
        if inst.dhan_id not in bars:
            bars[inst.dhan_id] = history.candles(inst.dhan_id, asked["interval"], now) \
                if inst.dhan_id in history.bars else None
        b = bars[inst.dhan_id]
        j = int(np.searchsorted(b.ts, ts)) if b is not None else 0
        if b is None or j >= len(b) or int(b.ts[j]) != ts:
            continue
        rows.append({"timestamp": ts // 1_000_000_000, "open": float(b.open[j]), "high": float(b.high[j]),
                     "low": float(b.low[j]), "close": float(b.close[j]), "volume": _whole(b.volume[j]),
                     "oi": _whole(b.oi[j]) if b.oi is not None else 0, "strike": float(inst.strike), "spot": close,
                     "iv": _iv(inst, float(b.close[j]), close, ts)})
    return rows


def _whole(value) -> int | float:
    value = float(value)
    return int(value) if value.is_integer() else value


def _iv(inst, price: float, spot: float, ts: int) -> float:
    t = year_fraction(datetime.fromtimestamp(ts / 1e9, IST), inst.expiry)
    if t <= 0:
        return 0.0
    try:
        return round(leg_greeks(inst.option_type, price, spot, float(inst.strike), t)["iv_pct"] or 0.0, 4)
    except ConfigError:  # vollib (the options extra) is not installed
        return 0.0


# --- Upstox ----------------------------------------------------------------------------------

def _upstox(request: web.Request):
    """``(box, query, underlying)`` of an authorised request naming a known underlying, else the error."""
    from algocli.sandbox.options import _upstox_request

    return _upstox_request(request)


async def _upstox_expiries(request: web.Request) -> web.Response:
    got = _upstox(request)
    if isinstance(got, web.Response):
        return got
    box, _, under = got
    expired = sorted({e for e in {i.expiry for i in _options_of(box, under)} if _expired(box, e)})
    return web.json_response({"status": "success", "data": [e.isoformat() for e in expired]})


def _expired_key(inst) -> str:
    return f"{inst.upstox_key}|{inst.expiry:%d-%m-%Y}"


async def _upstox_contracts(request: web.Request) -> web.Response:
    from algocli.sandbox.options import _contract_row

    got = _upstox(request)
    if isinstance(got, web.Response):
        return got
    box, query, under = got
    try:
        expiry = date.fromisoformat(query.get("expiry_date", ""))
    except ValueError:
        return _upstox_error(400, "UDAPI1088", "expiry_date must be YYYY-MM-DD")
    if not _expired(box, expiry):
        return _upstox_error(400, "UDAPI1088", f"{expiry} has not expired; use /v2/option/contract")
    rows = [_contract_row(i, under) | {"instrument_key": _expired_key(i)}
            for i in _options_of(box, under) if i.expiry == expiry]
    return web.json_response({"status": "success", "data": rows})


def _authorised(box, request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    return box.history.token_ok(header[7:].strip() if header[:7].lower() == "bearer " else None)


async def _upstox_candles(request: web.Request) -> web.Response:
    box = _box(request)
    info = dict(request.match_info)
    box.requests.append((request.path, info))
    if not _authorised(box, request):
        return _upstox_error(401, "UDAPI100050", "Invalid token used to access API")
    found = [i for i in box.instruments if i.option_type is not None and i.expiry is not None
             and _expired(box, i.expiry) and _expired_key(i) == info["key"]]
    if not found or found[0].dhan_id not in box.history.bars:
        return _upstox_error(400, "UDAPI100011", "Invalid expired instrument key")
    interval = _UPSTOX_INTERVALS.get(info["interval"])
    try:
        first, to = date.fromisoformat(info["from_date"]), date.fromisoformat(info["to_date"])
    except ValueError:
        first = to = None
    if interval is None or first is None or to < first:
        return _upstox_error(400, "UDAPI100036", "Invalid input: interval 1minute..30minute or day, dates "
                                                 "YYYY-MM-DD with to_date not before from_date")
    bars = box.history.candles(found[0].dhan_id, interval, box.history.clock())
    return _candles(bars, ist_midnight_ns(first), ist_midnight_ns(to + timedelta(days=1)) - 1)


async def _upstox_pcr(request: web.Request) -> web.Response:
    got = _upstox(request)
    if isinstance(got, web.Response):
        return got
    box, query, under = got
    try:
        expiry, day = date.fromisoformat(query.get("expiry", "")), date.fromisoformat(query.get("date", ""))
        bucket = int(query.get("bucket_interval", ""))
    except ValueError:
        return _upstox_error(400, "UDAPI100036", "Invalid input: expiry and date YYYY-MM-DD, bucket_interval "
                                                 "in minutes")
    legs = [i for i in _options_of(box, under) if i.expiry == expiry]
    if not legs or bucket < 1:
        return _upstox_error(400, "UDAPI1088", f"no {under.hrn} contracts expire on {expiry}")
    now = box.history.clock()
    midnight = ist_midnight_ns(day)
    insights = []
    for t in range(midnight + SESSION_OPEN_NS, midnight + SESSION_CLOSE_NS, bucket * _MINUTE_NS):
        if now is not None and t > now:
            break
        point = _snapshot(box, under, legs, t)
        if point is not None:
            insights.append({"pcr": point[0], "spot_price": point[1],
                             "time": datetime.fromtimestamp(t / 1e9, IST).strftime("%H:%M")})
    close = _snapshot(box, under, legs, min(midnight + SESSION_CLOSE_NS, now if now is not None else 1 << 62))
    return web.json_response({"status": "success", "data": {
        "instrument_key": under.upstox_key, "expiry_date": f"{expiry:%d-%m-%Y}",
        "pcr": close[0] if close else None, "spot_closing_price": close[1] if close else None,
        "insights": insights}})


def _snapshot(box, under, legs: list, t: int) -> tuple[float, float] | None:
    """(Σ put OI / Σ call OI, spot) of what was replayed by ``t``; None before anything was."""
    spot = box._quote(under.dhan_id, t)
    sums = {"CE": 0, "PE": 0}
    for inst in legs:
        quote = box._quote(inst.dhan_id, t)
        if quote is not None:
            sums[inst.option_type] += quote["oi"]
    if spot is None or sums["CE"] <= 0:
        return None
    return sums["PE"] / sums["CE"], spot["ltp"]
