"""Upstox REST over aiohttp: one request policy, and v3 historical candles as ``Bars``.

Requests send ``Authorization: Bearer <token>`` when a token is set (the token is
unwrapped from its ``SecretStr`` only for the header, never logged) and
``Accept: application/json``.

Errors (https://upstox.com/developer/api-documentation/error-codes), with the shared
``RestClient`` policy (``algocli.adapters.rest``): HTTP 429 or 5xx, a timeout or a dropped
connection (or a success status with a body that cannot be read) are retried with
``Backoff`` up to ``retries`` times, then ``BrokerError``. HTTP 401/403 is ``FeedAuthError``
(log in again; retrying cannot help). Any other failure, or a body whose ``status`` is not
``success``, is a ``BrokerError`` naming the ``UDAPI...`` code and message from Upstox's
error envelope.

Order entry goes through ``UpstoxRest.send``: one attempt, never retried. A timeout, a
dropped connection, HTTP 429 or 5xx, or an answer that cannot be read leaves the outcome
unknown (``UpstoxUncertain``: the request may have been carried out); a definitive refusal
is ``UpstoxApiError``. v2 paths carry ``Api-Version: 2.0`` as the official SDK sends it.
A shared ``RateLimiter`` (``algocli.broker.ratelimit``), when given, is awaited before
every HTTP request, retries included.

Historical candles (https://upstox.com/developer/api-documentation/v3/get-historical-candle-data):

* past days: ``GET /v3/historical-candle/{key}/{unit}/{interval}/{to_date}/{from_date}``
  (``to_date`` first, both inclusive ``YYYY-MM-DD``), split into calls no longer than
  Upstox allows: one month for 1-15 minute candles, one quarter for longer minute
  candles, ten years for days. Minute candles start in January 2022 and daily ones in
  January 2000, so earlier dates are not asked for.
* today (IST): ``GET /v3/historical-candle/intraday/{key}/{unit}/{interval}``
  (https://upstox.com/developer/api-documentation/v3/get-intra-day-candle-data). The
  historical route never serves the current trading day, even when ``to_date`` names it:
  that day comes only from the intraday route. Upstox's "current trading day" is its own,
  not this machine's (a sandbox replaying 2024-06-14 says it is the 14th), so the intraday
  route is also asked when the range's last weekday got no historical candle though the
  days just before it did; its candles outside the range are dropped.

Intervals map to ``minutes/1, 3, 5, 10, 15, 25, 30, 60`` and ``days/1``. Candles are
``[ISO-8601 time with offset, open, high, low, close, volume, oi]``, newest first; they are
merged, de-duplicated on the bar start (the later answer wins) and sorted ascending.
Daily candles are stamped 00:00 IST of their IST date.
"""

from __future__ import annotations

import asyncio
import calendar
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, timedelta, timezone
from urllib.parse import quote

import aiohttp
import numpy as np
from yarl import URL

from algocli.adapters.upstox.parsing import to_instrument_key
from algocli.adapters.upstox.settings import UpstoxSettings
from algocli.adapters.history import IST, bound_ns, interval_of, merge_chunks
from algocli.adapters.rest import RestClient, Transient
from algocli.data.feed import FeedAuthError
from algocli.data.history import Bars
from algocli.data.reconnect import Backoff
from algocli.domain.models import IST_OFFSET_NS, Interval
from algocli.domain.session import ist_date, ist_midnight_ns
from algocli.errors import BrokerError, ConfigError

__all__ = ["HISTORICAL_PATH", "INTRADAY_PATH", "UNITS", "UpstoxApiError", "UpstoxRest", "UpstoxUncertain", "add_months",
           "candle_bars", "error_summary", "historical", "span_months"]


HISTORICAL_PATH = "/v3/historical-candle"
INTRADAY_PATH = "/v3/historical-candle/intraday"
UNITS = {Interval.MINUTE_1: ("minutes", 1), Interval.MINUTE_3: ("minutes", 3), Interval.MINUTE_5: ("minutes", 5),
         Interval.MINUTE_10: ("minutes", 10), Interval.MINUTE_15: ("minutes", 15),
         Interval.MINUTE_25: ("minutes", 25), Interval.MINUTE_30: ("minutes", 30),
         Interval.HOUR_1: ("minutes", 60), Interval.DAY_1: ("days", 1)}  # all native: v3 takes minutes 1-300
FIRST_DAY = {"minutes": date(2022, 1, 1), "hours": date(2022, 1, 1), "days": date(2000, 1, 1)}
DERIVATIVE_SEGMENTS = frozenset({"NSE_FO", "BSE_FO", "NCD_FO", "BCD_FO", "MCX_FO", "NSE_COM"})
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
DAY_NS = 86_400 * 1_000_000_000
_RECENT_DAYS = 7  # a week covers a weekend plus the longest run of NSE holidays
_RELOGIN = "log in to Upstox again and set a fresh UPSTOX_ACCESS_TOKEN in the environment or .env"


class UpstoxApiError(BrokerError):
    """Upstox refused a request. ``code`` is the ``UDAPI...`` code or None, ``status`` the HTTP status."""

    def __init__(self, message: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class UpstoxUncertain(BrokerError):
    """A request that changes state got no definitive answer (timeout, dropped connection,
    HTTP 429 or 5xx, unreadable body): Upstox may or may not have carried it out."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def span_months(unit: str, interval: int) -> int:
    """The longest span one historical call may cover, in months (Upstox's v3 historical-candle limits)."""
    if unit == "days":
        return 120
    if unit == "minutes" and interval <= 15:
        return 1
    return 3


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole calendar months, clamped to the month's last day."""
    m = day.month - 1 + months
    year, month = day.year + m // 12, m % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def error_summary(payload: object) -> str:
    """``UDAPI1148: Invalid date range`` from an Upstox error envelope, else ``""``."""
    if isinstance(payload, dict):
        errors = payload.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            code = first.get("errorCode") or first.get("error_code") or ""
            return f"{code}: {first.get('message', '')}".strip(": ")
    return ""


class UpstoxRest(RestClient):
    """A small Upstox REST client on a caller-owned ``aiohttp.ClientSession`` (``RestClient``'s policy).

    Args:
        session: Used for every request; not closed here.
        settings: ``api_base_url`` and ``access_token``.
        retries: Extra attempts after a transient failure.
        backoff: Delays between attempts; default 0.5 s doubling to 8 s, with full jitter.
        timeout: Seconds per attempt.
        sleep: Awaitable sleep in seconds.
        limiter: Awaited (``acquire()``) before every request; None sends at once.
    """

    name = "Upstox"
    uncertain_error = UpstoxUncertain
    exhausted_error = BrokerError

    def __init__(self, session: aiohttp.ClientSession, settings: UpstoxSettings, *, retries: int = 4,
                 backoff: Backoff | None = None, timeout: float = 30.0,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep, limiter=None) -> None:
        super().__init__(session, settings.api_base_url, retries=retries, backoff=backoff, timeout=timeout,
                         sleep=sleep, limiter=limiter, secrets=(settings.access_token.get_secret_value(),))
        self._token = settings.access_token

    def headers(self, method: str, path: str, body: object) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self._token.get_secret_value()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if path.startswith("/v2/"):
            headers["Api-Version"] = "2.0"  # as the official SDK sends it
        if body is not None:
            headers["Content-Type"] = "application/json"
        return headers

    def url(self, base: str, path: str) -> URL:
        return URL(base.rstrip("/") + path, encoded=True)  # paths arrive percent-encoded

    def body(self, body: object) -> dict:
        return {"data": json.dumps(body)}

    def classify(self, method: str, path: str, status: int, payload: object, text: str) -> object:
        """The ``data`` of a success envelope (a v3 ``metadata`` block is dropped)."""
        detail = error_summary(payload)
        if status in (401, 403):
            raise FeedAuthError(f"Upstox refused the access token (HTTP {status}"
                                f"{', ' + detail if detail else ''}); {_RELOGIN}")
        if status == 429 or status >= 500:
            raise Transient(f"HTTP {status}{', ' + detail if detail else ''}", status)
        if status < 300 and not isinstance(payload, dict):
            raise Transient(f"HTTP {status} with an unreadable body", status)
        if status >= 300 or payload.get("status") != "success":
            what = detail or (text.strip()[:200] or "no body")
            code = detail.partition(":")[0] or None
            raise UpstoxApiError(f"Upstox rejected {method} {path} (HTTP {status}, {what})", code, status)
        return payload.get("data")

    async def send(self, method: str, path: str, body: object = None, *, base_url: str | None = None,
                   limiter=None) -> object:
        """One ``method`` request to ``(base_url or self.base_url) + path``, never retried.

        For requests that change state (order place, modify, cancel). ``limiter`` (else the
        client's own) is awaited first.

        Raises:
            UpstoxUncertain: Timeout, dropped connection, HTTP 429 or 5xx, or a success
                status with a body that cannot be read: the request may have been carried out.
            FeedAuthError: HTTP 401/403.
            UpstoxApiError: Any other refusal (the request was not carried out).
        """
        return await self.request(method, path, body, retry=False, limiter=limiter, base_url=base_url)

    async def get(self, path: str) -> object:
        """GET ``base_url + path`` (already percent-encoded), retried on transient failures.

        Raises:
            FeedAuthError: HTTP 401/403.
            BrokerError: Any other refusal, or transient failures past ``retries``.
        """
        return await self.request("GET", path)


def candle_bars(instrument: str, candles: list, *, daily: bool) -> dict[str, np.ndarray]:
    """Columns of Upstox candles ``[time, o, h, l, c, volume, oi]`` (any order)."""
    n = len(candles)
    ts = np.empty(n, dtype=np.int64)
    values = np.zeros((n, 6), dtype=np.float64)
    for i, candle in enumerate(candles):
        if not isinstance(candle, (list, tuple)) or len(candle) < 6:
            raise BrokerError(f"Upstox sent a malformed candle for {instrument}: {candle!r}")
        moment = datetime.fromisoformat(str(candle[0]))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=IST)
        ts[i] = (moment - _EPOCH) // timedelta(microseconds=1) * 1000
        values[i, :5] = candle[1:6]
        if len(candle) > 6 and candle[6] is not None:
            values[i, 5] = candle[6]
    if daily:
        ts = (ts + IST_OFFSET_NS) // DAY_NS * DAY_NS - IST_OFFSET_NS
    return {"ts": ts, "open": values[:, 0], "high": values[:, 1], "low": values[:, 2], "close": values[:, 3],
            "volume": values[:, 4], "oi": values[:, 5]}


async def historical(session: aiohttp.ClientSession, settings: UpstoxSettings | Callable[[], UpstoxSettings],
                     instrument: str, start: date | datetime, end: date | datetime,
                     interval: Interval | str = Interval.DAY_1, *, instrument_keys: Mapping[str, str] | None = None,
                     today: date | None = None, rest: UpstoxRest | None = None, **options) -> Bars:
    """Candles of one instrument from Upstox v3, as ``Bars``.

    Args:
        session: The aiohttp session to send on (not closed here).
        settings: ``UpstoxSettings`` (``api_base_url``, ``access_token``), or a callable
            returning them, called only once the arguments have been checked.
        instrument: Our id, ``SEGMENT:ID`` (``NSE_EQ:1333``).
        start, end: Inclusive range. A ``date`` covers its whole IST day; a naive
            ``datetime`` is IST. Daily bars are selected by IST date.
        interval: ``1m``, ``3m``, ``5m``, ``10m``, ``15m``, ``25m``, ``30m``, ``1h`` or ``1d``.
        instrument_keys: Our id → Upstox instrument key; otherwise ``SEGMENT|ID``.
        today: The IST date served by the intraday endpoint; default today's IST date.
        rest: A configured ``UpstoxRest`` to send through (``session``/``settings`` unused).
        **options: ``UpstoxRest`` options when ``rest`` is None (``retries``, ``backoff``,
            ``timeout``, ``sleep``).

    Returns:
        ``Bars`` sorted by bar start (UTC ns); ``oi`` is set for derivative segments.

    Raises:
        ConfigError: Bad instrument, interval or range.
        FeedAuthError: Upstox refused the token (HTTP 401/403).
        BrokerError: Upstox rejected the request or kept failing.
    """
    ival = interval_of(interval)
    try:
        key = to_instrument_key(instrument, instrument_keys)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    unit, step = UNITS[ival]
    daily = unit == "days"
    with_oi = key.partition("|")[0] in DERIVATIVE_SEGMENTS
    lo, hi = bound_ns(start, end=False), bound_ns(end, end=True)
    if hi < lo:
        raise ConfigError(f"historical range ends ({end}) before it starts ({start})")
    first, last = ist_date(lo), ist_date(hi)
    if daily:
        lo, hi = ist_midnight_ns(first), ist_midnight_ns(last + timedelta(days=1)) - 1
    today = today or datetime.now(IST).date()
    if rest is None and callable(settings):
        settings = settings()
    client = rest or UpstoxRest(session, settings, **options)
    encoded = quote(key, safe="")
    chunks: list[dict[str, np.ndarray]] = []
    day, past_end = max(first, FIRST_DAY[unit]), min(last, today - timedelta(days=1))
    months = span_months(unit, step)
    while day <= past_end:
        to = min(add_months(day, months) - timedelta(days=1), past_end)
        data = await client.get(f"{HISTORICAL_PATH}/{encoded}/{unit}/{step}/{to.isoformat()}/{day.isoformat()}")
        chunks.append(candle_bars(instrument, _candles(data, instrument), daily=daily))
        day = to + timedelta(days=1)
    if first <= today <= last or _tail_missing(chunks, max(first, FIRST_DAY[unit]), min(last, today)):
        data = await client.get(f"{INTRADAY_PATH}/{encoded}/{unit}/{step}")
        chunks.append(candle_bars(instrument, _candles(data, instrument), daily=daily))
    return merge_chunks(instrument, chunks, lo, hi, with_oi)


def _tail_missing(chunks: list[dict[str, np.ndarray]], first: date, last: date) -> bool:
    """True when the range's last weekday may be Upstox's current trading day, which only
    the intraday route serves: it got no historical candle, though the days just before it
    did (or there are none before it in the range). A range whose data stopped long before
    its end (a delisted stock) costs no extra request."""
    tail = last - timedelta(days=max(0, last.weekday() - 4))  # Saturday/Sunday -> Friday
    if tail < first:
        return False
    newest = max((int(c["ts"].max()) for c in chunks if len(c["ts"])), default=None)
    if newest is not None and newest >= ist_midnight_ns(tail):
        return False
    since = ist_date(newest) if newest is not None else first
    return since >= tail - timedelta(days=_RECENT_DAYS)


def _candles(data: object, instrument: str) -> list:
    candles = data.get("candles") if isinstance(data, dict) else None
    if candles is None:
        return []
    if not isinstance(candles, list):
        raise BrokerError(f"Upstox sent candles for {instrument} as {type(candles).__name__}, not a list")
    return candles
