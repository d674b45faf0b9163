"""Dhan and Upstox historical candles, served from the sandbox's bars.

Routes (added by ``add_routes``):

* Dhan: ``POST /v2/charts/historical`` (daily) and ``POST /v2/charts/intraday``
  (``interval`` 1, 5, 15, 25 or 60, as a number or a string). Auth is the ``access-token``
  header. Dates are ``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM:SS`` (IST): a date-only ``toDate``
  is exclusive (as Dhan documents for daily), a date-time one inclusive. An intraday
  span over 90 days is refused. The answer is Dhan's bare object of parallel arrays
  (``open, high, low, close, volume, timestamp`` in epoch seconds of the bar start, plus
  ``open_interest`` when ``oi`` is true). Errors use Dhan's body
  ``{"errorType", "errorCode", "errorMessage"}``: 401 ``DH-901`` for a refused token,
  400 ``DH-905`` for bad input, 400 ``DH-907`` for an unknown security.
* Upstox v3: ``GET /v3/historical-candle/{key}/{unit}/{interval}/{to_date}[/{from_date}]``
  and ``GET /v3/historical-candle/intraday/{key}/{unit}/{interval}``. Units ``minutes``
  (1, 3, 5, 10, 15, 25, 30, 60), ``hours`` (1) and ``days`` (1). Span limits as Upstox's: one month
  for 1-15 minutes, a quarter for longer intraday candles, ten years for days
  (``UDAPI1148``). The answer is ``{"status": "success", "data": {"candles": [...]}}``,
  newest first, each ``[ISO time +05:30, o, h, l, c, volume, oi]``. Upstox's official SDK
  sends no ``Authorization`` header on these calls, so a request without one is served;
  a ``Bearer`` token that is present must pass the token rule (else 401 ``UDAPI100050``).
  Unknown keys get 400 ``UDAPI100011``, bad units or dates 400 ``UDAPI100036``.

Fault injection (tests): ``HistorySandbox.fail_next`` holds HTTP statuses (429 or 5xx) that
answer the next requests on any of these routes, one per request, in the broker's own error
body (Dhan ``DH-904``/``DH-908``, Upstox ``UDAPI10005``/``UDAPI100500``); the instruments in
``HistorySandbox.fail_always`` get HTTP 500 on every request. Failed requests are still
logged in ``requests``.

Tokens follow the hub's rule (``TickHub.token_ok``: the ``--token`` list, and
``reject_tokens``) when the app has a hub; otherwise any non-empty token is accepted.

Candles are the stored bars resampled on the NSE grid (``csv_feed.resample``; daily bars
at 00:00 IST). With a clock (``now``), only bars whose last tick has been replayed are
served, the Upstox intraday route serves the clock's IST date, and the Upstox historical
route stops the day before it; without one, every bar is history and the intraday route
serves each instrument's last date. That is Upstox's split: ``to_date`` is inclusive
("The ending date (inclusive)", https://upstox.com/developer/api-documentation/get-historical-candle-data),
but the current trading day comes only from the intraday route
(https://upstox.com/developer/api-documentation/v3/get-historical-candle-data: "Use the
Intraday Candle Data API V3 to retrieve data specific to the current trading day").
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import numpy as np
from aiohttp import web

from algocli.adapters.upstox.parsing import from_instrument_key
from algocli.data.csv_feed import DAY_NS, MINUTE_NS, infer_interval_minutes, resample
from algocli.data.history import Bars
from algocli.domain.models import IST_OFFSET_NS, Interval
from algocli.domain.session import SESSION_CLOSE_NS, SESSION_OPEN_NS, ist_date, ist_midnight_ns
from algocli.errors import DataError
from algocli.sandbox.hub import TickHub
from algocli.sandbox.replay import TICKS_PER_BAR, Replayer

__all__ = ["DHAN_HISTORICAL_PATH", "DHAN_INTRADAY_PATH", "HISTORY_KEY", "UPSTOX_HISTORICAL_PATH",
           "UPSTOX_INTRADAY_PATH", "HistorySandbox", "add_routes", "replayed_bars"]

DHAN_HISTORICAL_PATH = "/v2/charts/historical"
DHAN_INTRADAY_PATH = "/v2/charts/intraday"
UPSTOX_INTRADAY_PATH = "/v3/historical-candle/intraday/{key}/{unit}/{interval}"
UPSTOX_HISTORICAL_PATH = "/v3/historical-candle/{key}/{unit}/{interval}/{to_date}"
DHAN_SEGMENTS = ("IDX_I", "NSE_EQ", "NSE_FNO", "NSE_CURRENCY", "BSE_EQ", "MCX_COMM", "BSE_CURRENCY", "BSE_FNO")
DHAN_INSTRUMENTS = ("INDEX", "FUTIDX", "OPTIDX", "EQUITY", "FUTSTK", "OPTSTK", "FUTCOM", "OPTFUT", "FUTCUR",
                    "OPTCUR")
DHAN_INTERVALS = {1: Interval.MINUTE_1, 5: Interval.MINUTE_5, 15: Interval.MINUTE_15, 25: Interval.MINUTE_25,
                  60: Interval.HOUR_1}
UPSTOX_UNITS = {("minutes", 1): Interval.MINUTE_1, ("minutes", 3): Interval.MINUTE_3,
                ("minutes", 5): Interval.MINUTE_5, ("minutes", 10): Interval.MINUTE_10,
                ("minutes", 15): Interval.MINUTE_15, ("minutes", 25): Interval.MINUTE_25,
                ("minutes", 30): Interval.MINUTE_30, ("minutes", 60): Interval.HOUR_1,
                ("hours", 1): Interval.HOUR_1, ("days", 1): Interval.DAY_1}
MAX_DHAN_INTRADAY = timedelta(days=90)
IST = timezone(timedelta(hours=5, minutes=30), "IST")
SECOND_NS = 1_000_000_000
_DAY_MINUTES = Interval.DAY_1.minutes


@dataclass
class HistorySandbox:
    """State of the historical routes, kept on the app as ``app[HISTORY_KEY]``.

    Attributes:
        bars: The candles served, per instrument id (``NSE_EQ:1333``).
        hub: Token rule; None accepts any non-empty token.
        now: Current exchange time (UTC ns) or None for "every bar is history".
        upstox_keys: Upstox instrument key → instrument id, for keys not ``SEGMENT|ID``.
        requests: ``(route, request)`` per call: the JSON body for Dhan, the path
            parameters for Upstox.
        fail_next: HTTP statuses (429 or 5xx) answering the next requests, one each, in order.
        fail_always: Instrument ids whose every request is answered with HTTP 500.
    """

    bars: dict[str, Bars]
    hub: TickHub | None = None
    now: Callable[[], int | None] | None = None
    upstox_keys: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, dict]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    fail_always: set[str] = field(default_factory=set)

    def injected_fault(self, instrument: str | None) -> int | None:
        """The status to fail this request with, if a test asked for one (consumes ``fail_next``)."""
        if self.fail_next:
            return self.fail_next.pop(0)
        return 500 if instrument is not None and instrument in self.fail_always else None

    def token_ok(self, token: str | None) -> bool:
        if not token:
            return False
        return self.hub.token_ok(token) if self.hub is not None else True

    def clock(self) -> int | None:
        return self.now() if self.now is not None else None

    def candles(self, instrument: str, interval: Interval, now: int | None) -> Bars:
        """The bars of ``instrument`` replayed by ``now``, resampled to ``interval``.

        Raises:
            DataError: The stored bars are coarser than ``interval``.
        """
        bars = self.bars[instrument]
        if now is not None:
            bars = bars.slice(0, _replayed_count(bars, now))
        return resample(bars, interval)


HISTORY_KEY = web.AppKey("history", HistorySandbox)


def _replayed_count(bars: Bars, now: int) -> int:
    """How many leading bars have had their last tick (one second before the bar ends) by ``now``."""
    ts = np.asarray(bars.ts, dtype=np.int64)
    if len(ts) == 0:
        return 0
    minutes = infer_interval_minutes(ts)
    midnight = (ts + IST_OFFSET_NS) // DAY_NS * DAY_NS - IST_OFFSET_NS
    if minutes is None:
        minutes = _DAY_MINUTES if bool((ts == midnight).all()) else 1
    close = midnight + SESSION_CLOSE_NS
    if minutes >= _DAY_MINUTES:
        ends = close
    else:  # as the replay cuts them: at the session close
        ends = ts + minutes * MINUTE_NS
        ends = np.where((ts < close) & (ends > close), close, ends)
    return int(np.searchsorted(ends - SECOND_NS, now, side="right"))


def replayed_bars(replayer: Replayer) -> dict[str, Bars]:
    """The candles a ``Replayer`` publishes, per instrument.

    Its own ``bars`` when it keeps them; otherwise rebuilt from its tick paths, which is
    exact: the first and last tick of a bar carry its open and close, the extremes its
    high and low, and the tick sizes add up to its (whole-number) volume. A bar whose
    ticks span the whole session (09:15 to 15:29:59 IST) is daily and is stamped 00:00 IST.
    """
    own = getattr(replayer, "bars", None)
    if isinstance(own, Mapping):
        return dict(own)
    out: dict[str, Bars] = {}
    for path in replayer.paths:
        n = len(path) // TICKS_PER_BAR
        ts = np.asarray(path.ts, dtype=np.int64).reshape(n, TICKS_PER_BAR)
        price = np.asarray(path.price, dtype=np.float64).reshape(n, TICKS_PER_BAR)
        first, last = ts[:, 0], ts[:, -1]
        midnight = (first + IST_OFFSET_NS) // DAY_NS * DAY_NS - IST_OFFSET_NS
        daily = bool(((first == midnight + SESSION_OPEN_NS) & (last == midnight + SESSION_CLOSE_NS - SECOND_NS)).all())
        volume = np.asarray(path.ltq, dtype=np.float64).reshape(n, TICKS_PER_BAR).sum(axis=1)
        oi = None if path.oi is None else np.asarray(path.oi, dtype=np.float64)[::TICKS_PER_BAR].copy()
        out[path.instrument] = Bars(path.instrument, midnight if daily else first.copy(), price[:, 0].copy(),
                                    price.max(axis=1), price.min(axis=1), price[:, -1].copy(), volume, oi)
    return out


def _replay_clock(replayer: Replayer) -> Callable[[], int | None]:
    def now() -> int | None:
        if replayer.exchange_ns is not None:
            return replayer.exchange_ns
        first = replayer.first_ns
        return None if first is None else first - 1  # nothing replayed yet

    return now


def add_routes(app: web.Application, bars: Mapping[str, Bars] | Replayer | None, *, dhan: bool = True,
               upstox: bool = True, hub: TickHub | None = None, now: Callable[[], int | None] | None = None,
               instrument_keys: Mapping[str, str] | None = None,
               history: Mapping[str, Bars] | None = None) -> HistorySandbox | None:
    """Serve Dhan's and Upstox's historical-candle endpoints from ``bars``.

    Args:
        app: The sandbox application.
        bars: Candles per instrument id; or a ``Replayer``, whose replayed candles are served
            as its replay clock reveals them; None mounts nothing.
        dhan, upstox: Which broker's routes to mount.
        hub: Token rule; default the app's hub (``app[HUB]``) if it has one.
        now: Current exchange time in UTC ns (None = no limit); see the module docstring.
        instrument_keys: Instrument id → Upstox instrument key, for keys not ``SEGMENT|ID``.
        history: With a ``Replayer``: the candles to serve (all the data, also before the
            replay's start) in place of the replayed ones, still limited by its clock.

    Returns:
        The routes' state (also ``app[HISTORY_KEY]``), or None when nothing was mounted.
    """
    if bars is None or not (dhan or upstox):
        return None
    if isinstance(bars, Replayer):
        now = now or _replay_clock(bars)
        bars = replayed_bars(bars) if history is None else history
    if hub is None:
        from algocli.sandbox.app import HUB

        hub = app.get(HUB)
    keys = {key: instrument for instrument, key in (instrument_keys or {}).items()}
    state = HistorySandbox(dict(bars), hub, now, keys)
    app[HISTORY_KEY] = state
    if dhan:
        app.router.add_post(DHAN_HISTORICAL_PATH, _dhan_historical)
        app.router.add_post(DHAN_INTRADAY_PATH, _dhan_intraday)
    if upstox:
        app.router.add_get(UPSTOX_INTRADAY_PATH, _upstox_intraday)  # before the 4-part route it would match
        app.router.add_get(UPSTOX_HISTORICAL_PATH, _upstox_historical)
        app.router.add_get(UPSTOX_HISTORICAL_PATH + "/{from_date}", _upstox_historical)
    return state


# --- Dhan ----------------------------------------------------------------------------------

def _dhan_error(status: int, code: str, kind: str, message: str) -> web.Response:
    return web.json_response({"errorType": kind, "errorCode": code, "errorMessage": message}, status=status)


def _bad_input(message: str) -> web.Response:
    return _dhan_error(400, "DH-905", "Input_Exception", message)


def _dhan_moment(text: object, *, to: bool) -> int | None:
    """UTC ns bound of a Dhan date: date-only ``toDate`` exclusive, date-time inclusive."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    try:
        if len(text) == 10:
            midnight = ist_midnight_ns(date.fromisoformat(text))
            return midnight - 1 if to else midnight
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S" if len(text) == 19 else "%Y-%m-%d %H:%M")
    except ValueError:
        return None
    return int(moment.replace(tzinfo=IST).timestamp()) * SECOND_NS


def _numbers(values: np.ndarray) -> list:
    """JSON numbers, whole ones as integers (volumes and OI)."""
    return [int(v) if v.is_integer() else v for v in values.tolist()]


async def _dhan_historical(request: web.Request) -> web.Response:
    return await _dhan(request, daily=True)


async def _dhan_intraday(request: web.Request) -> web.Response:
    return await _dhan(request, daily=False)


async def _dhan(request: web.Request, *, daily: bool) -> web.Response:
    state = request.app[HISTORY_KEY]
    if not state.token_ok(request.headers.get("access-token")):
        return _dhan_error(401, "DH-901", "Invalid_Authentication",
                           "Client ID or user generated access token is invalid or expired.")
    try:
        body = json.loads(await request.text())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _bad_input("The request body is not a JSON object.")
    state.requests.append(("dhan:" + ("historical" if daily else "intraday"), body))
    required = ("securityId", "exchangeSegment", "instrument", "fromDate", "toDate") + (() if daily else ("interval",))
    missing = [name for name in required if body.get(name) in (None, "")]
    if missing:
        return _bad_input(f"Missing required fields: {', '.join(missing)}.")
    segment, security = body["exchangeSegment"], str(body["securityId"]).strip()
    if segment not in DHAN_SEGMENTS:
        return _bad_input(f"Invalid exchangeSegment {segment!r}.")
    if body["instrument"] not in DHAN_INSTRUMENTS:
        return _bad_input(f"Invalid instrument {body['instrument']!r}.")
    if daily:
        interval = Interval.DAY_1
    else:
        try:
            interval = DHAN_INTERVALS[int(str(body["interval"]))]
        except (KeyError, ValueError):
            return _bad_input(f"Invalid interval {body['interval']!r}; use 1, 5, 15, 25 or 60.")
    lo, hi = _dhan_moment(body["fromDate"], to=False), _dhan_moment(body["toDate"], to=True)
    if lo is None or hi is None:
        return _bad_input("Invalid date format; use YYYY-MM-DD or YYYY-MM-DD HH:MM:SS.")
    if hi < lo:
        return _bad_input("toDate is before fromDate.")
    if not daily and hi - lo > MAX_DHAN_INTRADAY // timedelta(microseconds=1) * 1000:
        return _bad_input("The date range exceeds 90 days; request at most 90 days of intraday data at a time.")
    instrument = f"{segment}:{security}"
    fault = state.injected_fault(instrument)
    if fault is not None:
        return (_dhan_error(429, "DH-904", "Rate_Limit", "Too many requests; retry later.") if fault == 429 else
                _dhan_error(fault, "DH-908", "Internal_Server_Error", "Internal server error; retry later."))
    if instrument not in state.bars:
        return _dhan_error(400, "DH-907", "Data_Error", f"No data for securityId {security} in {segment}.")
    try:
        bars = state.candles(instrument, interval, state.clock())
    except DataError as exc:
        return _dhan_error(400, "DH-907", "Data_Error", str(exc))
    i, j = np.searchsorted(bars.ts, lo, side="left"), np.searchsorted(bars.ts, hi, side="right")
    out = {"open": bars.open[i:j].tolist(), "high": bars.high[i:j].tolist(), "low": bars.low[i:j].tolist(),
           "close": bars.close[i:j].tolist(), "volume": _numbers(bars.volume[i:j]),
           "timestamp": (bars.ts[i:j] // SECOND_NS).tolist()}
    if body.get("oi") in (True, "true", "True", 1):
        oi = bars.oi[i:j] if bars.oi is not None else np.zeros(j - i)
        out["open_interest"] = _numbers(oi)
    return web.json_response(out)


# --- Upstox --------------------------------------------------------------------------------

def _upstox_error(status: int, code: str, message: str) -> web.Response:
    """Upstox's error envelope, with both the camelCase and the snake_case field names."""
    error = {"errorCode": code, "message": message, "propertyPath": None, "invalidValue": None,
             "error_code": code, "property_path": None, "invalid_value": None}
    return web.json_response({"status": "error", "errors": [error]}, status=status)


def _upstox_denied(state: HistorySandbox, request: web.Request) -> web.Response | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None  # the official SDK calls these routes without a token
    token = header[7:].strip() if header[:7].lower() == "bearer " else None
    if state.token_ok(token):
        return None
    return _upstox_error(401, "UDAPI100050", "Invalid token used to access API")


def _upstox_target(state: HistorySandbox, request: web.Request) -> tuple[str, Interval] | web.Response:
    info = request.match_info
    key = info["key"]
    instrument = state.upstox_keys.get(key) or (from_instrument_key(key) if "|" in key else None)
    fault = state.injected_fault(instrument)
    if fault is not None:
        return (_upstox_error(429, "UDAPI10005", "Too Many Request Sent") if fault == 429 else
                _upstox_error(fault, "UDAPI100500", "Something went wrong; please try again"))
    if instrument is None or instrument not in state.bars:
        return _upstox_error(400, "UDAPI100011", "Invalid Instrument key")
    try:
        interval = UPSTOX_UNITS[(info["unit"], int(info["interval"]))]
    except (KeyError, ValueError):
        return _upstox_error(400, "UDAPI100036", f"Invalid input: the sandbox serves minutes 1, 3, 5, 10, 15, "
                                                 f"25, 30 and 60, hours 1 and days 1, not "
                                                 f"{info['unit']}/{info['interval']}")
    return instrument, interval


def _candles(bars: Bars, lo: int, hi: int) -> web.Response:
    i, j = int(np.searchsorted(bars.ts, lo, side="left")), int(np.searchsorted(bars.ts, hi, side="right"))
    oi = bars.oi if bars.oi is not None else np.zeros(len(bars))
    rows = []
    for k in range(j - 1, i - 1, -1):  # newest first
        stamp = datetime.fromtimestamp(int(bars.ts[k]) // SECOND_NS, IST).isoformat()
        rows.append([stamp, float(bars.open[k]), float(bars.high[k]), float(bars.low[k]), float(bars.close[k]),
                     *_numbers(np.array([bars.volume[k], oi[k]]))])
    return web.json_response({"status": "success", "data": {"candles": rows}})


def _months_later(day: date, months: int) -> date:
    m = day.month - 1 + months
    year, month = day.year + m // 12, m % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


async def _upstox_historical(request: web.Request) -> web.Response:
    state = request.app[HISTORY_KEY]
    denied = _upstox_denied(state, request)
    if denied is not None:
        return denied
    info = dict(request.match_info)
    state.requests.append(("upstox:historical", info))
    target = _upstox_target(state, request)
    if isinstance(target, web.Response):
        return target
    instrument, interval = target
    months = 120 if info["unit"] == "days" else (1 if info["unit"] == "minutes" and int(info["interval"]) <= 15
                                                 else 3)
    try:
        to = date.fromisoformat(info["to_date"])
        since = date.fromisoformat(info["from_date"]) if "from_date" in info else (
            _months_later(to, -months) + timedelta(days=1))
    except ValueError:
        return _upstox_error(400, "UDAPI100036", "Invalid input: dates must be YYYY-MM-DD")
    if to < since or to > _months_later(since, months):
        return _upstox_error(400, "UDAPI1148", "Invalid date range")
    now = state.clock()
    try:
        bars = state.candles(instrument, interval, now)
    except DataError as exc:
        return _upstox_error(400, "UDAPI100036", f"Invalid input: {exc}")
    hi = ist_midnight_ns(to + timedelta(days=1)) - 1
    if now is not None:
        hi = min(hi, ist_midnight_ns(ist_date(now)) - 1)  # today is the intraday route's
    return _candles(bars, ist_midnight_ns(since), hi)


async def _upstox_intraday(request: web.Request) -> web.Response:
    state = request.app[HISTORY_KEY]
    denied = _upstox_denied(state, request)
    if denied is not None:
        return denied
    state.requests.append(("upstox:intraday", dict(request.match_info)))
    target = _upstox_target(state, request)
    if isinstance(target, web.Response):
        return target
    instrument, interval = target
    now = state.clock()
    try:
        bars = state.candles(instrument, interval, now)
    except DataError as exc:
        return _upstox_error(400, "UDAPI100036", f"Invalid input: {exc}")
    if now is not None:
        today = ist_date(now)
    elif len(state.bars[instrument]):
        today = ist_date(int(state.bars[instrument].ts[-1]))
    else:
        return _candles(bars, 0, -1)
    return _candles(bars, ist_midnight_ns(today), ist_midnight_ns(today + timedelta(days=1)) - 1)
