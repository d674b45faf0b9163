"""Dhan REST v2 over aiohttp: one request policy, and historical candles as ``Bars``.

Requests carry Dhan's headers (``access-token``, ``client-id``, JSON both ways). The
token is unwrapped from its ``SecretStr`` only to build the header and never appears in
a log line or an exception. ``DhanRest.request`` sends any method (order entry, order book,
positions) with the shared ``RestClient`` policy (``algocli.adapters.rest``); ``retry=False``
turns off the retries for requests that must not be sent twice.

Errors (https://dhanhq.co/docs/v2/annexure/#trading-api-error). Dhan's status codes are not
reliable on their own (some errors arrive with HTTP 200), so the body decides first:

* HTTP 429 or 5xx, ``DH-904`` (rate limit), ``DH-908``/``DH-909`` (server, network), the
  data-API codes ``800``/``805``, a timeout or a dropped connection are transient: retried
  with ``Backoff`` up to ``retries`` times, then ``DhanTransientError`` (a ``BrokerError``).
* HTTP 401/403, ``DH-901`` or the data-API codes ``807``-``810`` mean the token or client
  id was refused: ``FeedAuthError`` (renew the token; retrying cannot help).
* Anything else (``DH-905`` bad input, ``DH-907`` no data, ...) is a ``BrokerError`` that
  names Dhan's code and message.

Historical candles (https://dhanhq.co/docs/v2/historical-data/). ``1d`` comes from
``POST /charts/historical`` in one request (no span limit is documented; ``toDate`` is
exclusive). ``1m``, ``5m``, ``15m``, ``25m`` and ``1h`` come from ``POST /charts/intraday``
with Dhan's own intervals 1, 5, 15, 25 and 60, in requests of at most 90 days, spaced
``pace`` seconds apart (Dhan allows 5 data requests a second). The chunks are merged by the
shared ``adapters.history.merge_chunks`` (de-duplicated on the bar start, the later answer
wins, and sorted). Timestamps are epoch seconds of the bar start; daily ones are normalised
to 00:00 IST of their IST date, whichever midnight Dhan used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta

import aiohttp
import numpy as np

from algocli.adapters.dhan.parsing import SEGMENTS
from algocli.adapters.dhan.settings import DhanSettings
from algocli.adapters.history import IST, bound_ns, interval_of, merge_chunks
from algocli.adapters.rest import RestClient, Transient
from algocli.data.feed import FeedAuthError
from algocli.data.history import Bars
from algocli.data.reconnect import Backoff
from algocli.domain.models import IST_OFFSET_NS, Interval
from algocli.domain.session import ist_date, ist_midnight_ns
from algocli.errors import BrokerError, ConfigError

__all__ = ["HISTORICAL_PATH", "INTERVALS", "INTRADAY_PATH", "MAX_INTRADAY_DAYS", "DhanApiError", "DhanRest",
           "DhanTransientError", "historical", "instrument_fields", "merge_chunks", "window"]


HISTORICAL_PATH = "/charts/historical"
INTRADAY_PATH = "/charts/intraday"
INTERVALS = {Interval.MINUTE_1: 1, Interval.MINUTE_5: 5, Interval.MINUTE_15: 15, Interval.MINUTE_25: 25,
             Interval.HOUR_1: 60}  # ours → Dhan's intraday ``interval`` (minutes)
MAX_INTRADAY_DAYS = 90
INSTRUMENT_TYPES = {"NSE_EQ": "EQUITY", "BSE_EQ": "EQUITY", "IDX_I": "INDEX"}
DERIVATIVE_TYPES = ("FUTIDX", "OPTIDX", "FUTSTK", "OPTSTK", "FUTCOM", "OPTFUT", "FUTCUR", "OPTCUR")
DERIVATIVE_SEGMENTS = frozenset({"NSE_FNO", "BSE_FNO", "MCX_COMM", "NSE_CURRENCY", "BSE_CURRENCY"})
SECOND_NS = 1_000_000_000
DAY_S = 86_400
IST_OFFSET_S = IST_OFFSET_NS // SECOND_NS

_AUTH_CODES = frozenset({"DH-901", "807", "808", "809", "810"})
_TRANSIENT_CODES = frozenset({"DH-904", "DH-908", "DH-909", "800", "805"})
_RENEW = ("generate a new access token on web.dhan.co (or renew it with GET /v2/RenewToken), set "
          "DHAN_ACCESS_TOKEN in the environment or .env and check DHAN_CLIENT_ID")


class DhanApiError(BrokerError):
    """Dhan refused a request. ``code`` is Dhan's (``DH-905``, ``DH-907``, ``813``, ...) or
    None, ``status`` the HTTP status."""

    def __init__(self, message: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class DhanTransientError(BrokerError):
    """A request failed in a way another attempt might not (timeout, dropped connection, HTTP
    429 or 5xx, ``DH-904``/``DH-908``/``DH-909``): raised once the retries are spent, or at once
    by ``DhanRest.request(..., retry=False)``. For an order request the outcome is unknown."""


class DhanRest(RestClient):
    """A small Dhan REST v2 client on a caller-owned ``aiohttp.ClientSession`` (``RestClient``'s policy).

    Args:
        session: Used for every request; not closed here.
        settings: Base URL, client id and token.
        retries: Extra attempts after a transient failure (so at most ``retries + 1`` calls).
        backoff: Delays between attempts; default 0.5 s doubling to 8 s, with full jitter.
        timeout: Seconds per attempt.
        pace: Least seconds between the starts of two requests from this client.
        sleep: Awaitable sleep in seconds (tests may pass a fake).

    Raises (from ``post`` and ``request``):
        FeedAuthError: The token is empty or Dhan refused it.
        DhanApiError: Dhan rejected the request.
        DhanTransientError: It kept failing (or failed once, with ``retry=False``).
    """

    name = "Dhan"
    uncertain_error = DhanTransientError
    exhausted_error = DhanTransientError

    def __init__(self, session: aiohttp.ClientSession, settings: DhanSettings, *, retries: int = 4,
                 backoff: Backoff | None = None, timeout: float = 30.0, pace: float = 0.2,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        super().__init__(session, settings.api_base_url, retries=retries, backoff=backoff, timeout=timeout,
                         pace=pace, sleep=sleep, secrets=(settings.access_token.get_secret_value(),))
        self._token = settings.access_token
        self._client_id = settings.client_id

    def headers(self, method: str, path: str, body: object) -> dict[str, str]:
        token = self._token.get_secret_value()
        if not token:
            raise FeedAuthError(f"DHAN_ACCESS_TOKEN is empty; {_RENEW}")
        headers = {"access-token": token, "Content-Type": "application/json", "Accept": "application/json"}
        if self._client_id:
            headers["client-id"] = self._client_id
        return headers

    async def post(self, path: str, body: dict) -> object:
        """POST ``body`` as JSON to ``base_url + path``; return the decoded JSON answer."""
        return await self.request("POST", path, body)

    def classify(self, method: str, path: str, status: int, payload: object, text: str) -> object:
        """Dhan's body decides first: some errors arrive with HTTP 200 (see the module docstring)."""
        code, message = _error_of(payload)
        if code in _AUTH_CODES or (status in (401, 403) and code not in ("DH-902", "DH-903")):
            detail = f"{code} {message}".strip() if code else f"HTTP {status}"
            raise FeedAuthError(f"Dhan refused the access token ({detail}); {_RENEW}")
        if status == 429 or status >= 500 or code in _TRANSIENT_CODES:
            detail = f", {code} {message}".rstrip() if code else ""
            raise Transient(f"HTTP {status}{detail}", status)
        if code is not None or status >= 400:
            what = f"{code}: {message}" if code else (text.strip()[:200] or "no body")
            raise DhanApiError(f"Dhan rejected {method} {path} (HTTP {status}, {what})", code, status)
        if payload is None:
            raise Transient(f"HTTP {status} with a body that is not JSON", status)
        return payload


def _error_of(payload: object) -> tuple[str | None, str]:
    """Dhan's error code and message from either error shape, or ``(None, "")``."""
    if isinstance(payload, list) and len(payload) == 1:
        payload = payload[0]  # /ip/getIP style: an error object inside an array
    if not isinstance(payload, dict):
        return None, ""
    if payload.get("errorCode"):
        return str(payload["errorCode"]), str(payload.get("errorMessage") or payload.get("errorType") or "")
    if str(payload.get("status", "")).lower() in ("failed", "failure", "error"):
        data = payload.get("data")
        if isinstance(data, dict) and data:
            code, message = next(iter(data.items()))
            return str(code), str(message)
        return "failed", str(payload.get("remarks") or data or "")
    return None, ""


def instrument_fields(instrument: str, instrument_type: str | None = None) -> dict:
    """``NSE_EQ:1333`` → ``{"securityId": "1333", "exchangeSegment": "NSE_EQ", "instrument": "EQUITY"}``.

    Cash segments are ``EQUITY`` and ``IDX_I`` is ``INDEX``; derivative segments need
    ``instrument_type`` (``FUTIDX``, ``OPTIDX``, ``FUTSTK``, ``OPTSTK``, ...).

    Raises:
        ConfigError: A malformed id, an unknown segment, or a derivative without a type.
    """
    segment, sep, ident = instrument.partition(":")
    if not sep or not ident.isdigit() or not ident.isascii():
        raise ConfigError(f"instrument {instrument!r} is not SEGMENT:SECURITY_ID with a numeric Dhan security "
                          "id (e.g. NSE_EQ:1333)")
    if segment not in SEGMENTS:
        raise ConfigError(f"instrument {instrument!r}: unknown Dhan exchange segment {segment!r}; use one of "
                          f"{', '.join(SEGMENTS)}")
    kind = instrument_type or INSTRUMENT_TYPES.get(segment)
    if kind is None:
        raise ConfigError(f"instrument {instrument!r} is a derivative; pass its Dhan instrument type "
                          f"({', '.join(DERIVATIVE_TYPES)})")
    return {"securityId": ident, "exchangeSegment": segment, "instrument": kind}


def window(start: date | datetime, end: date | datetime, daily: bool) -> tuple[int, int]:
    """``[lo, hi]`` bar-start bounds in UTC ns; daily bars are selected by their IST date."""
    lo, hi = bound_ns(start, end=False), bound_ns(end, end=True)
    if daily:
        lo = ist_midnight_ns(ist_date(lo))
        hi = ist_midnight_ns(ist_date(hi) + timedelta(days=1)) - 1
    if hi < lo:
        raise ConfigError(f"historical range ends ({end}) before it starts ({start})")
    return lo, hi


def _columns(payload: object, daily: bool, path: str) -> dict[str, np.ndarray]:
    if isinstance(payload, dict) and "timestamp" not in payload and isinstance(payload.get("data"), dict):
        payload = payload["data"]  # tolerate the SDK-style envelope
    if not isinstance(payload, dict):
        raise BrokerError(f"Dhan {path} answered {type(payload).__name__}, not the object of candle arrays")
    stamps = payload.get("timestamp") or []
    n = len(stamps)
    out: dict[str, np.ndarray] = {}
    for name in ("open", "high", "low", "close", "volume"):
        values = payload.get(name) or []
        if len(values) != n:
            raise BrokerError(f"Dhan {path} answered {len(values)} {name} values for {n} timestamps")
        out[name] = np.asarray(values, dtype=np.float64)
    oi = payload.get("open_interest")
    out["oi"] = np.asarray(oi, dtype=np.float64) if oi is not None and len(oi) == n else np.zeros(n)
    seconds = np.rint(np.asarray(stamps, dtype=np.float64)).astype(np.int64)
    if daily:  # IST or UTC midnight: keep the IST date, stamp it at 00:00 IST
        seconds = (seconds + IST_OFFSET_S) // DAY_S * DAY_S - IST_OFFSET_S
    out["ts"] = seconds * SECOND_NS
    return out


def _ist_text(ns: int) -> str:
    return datetime.fromtimestamp(ns / SECOND_NS, IST).strftime("%Y-%m-%d %H:%M:%S")


async def historical(session: aiohttp.ClientSession, settings: DhanSettings | Callable[[], DhanSettings],
                     instrument: str, start: date | datetime, end: date | datetime,
                     interval: Interval | str = Interval.DAY_1, *, instrument_type: str | None = None,
                     expiry_code: int = 0, oi: bool | None = None, rest: DhanRest | None = None,
                     **options) -> Bars:
    """Candles of one instrument from Dhan, as ``Bars``.

    Args:
        session: The aiohttp session to send on (not closed here).
        settings: ``DhanSettings`` (``api_base_url``, ``client_id``, ``access_token``), or a
            callable returning them, called only once the arguments have been checked.
        instrument: ``SEGMENT:SECURITY_ID``, e.g. ``NSE_EQ:1333``.
        start, end: Inclusive range. A ``date`` covers its whole IST day; a naive
            ``datetime`` is IST. Daily bars are selected by IST date.
        interval: ``1m``, ``5m``, ``15m``, ``25m``, ``1h`` or ``1d``.
        instrument_type: Dhan's ``instrument`` for derivatives (``FUTIDX``, ``OPTSTK``, ...).
        expiry_code: Daily requests' ``expiryCode`` (0 = near).
        oi: Ask for open interest; default for derivative segments only.
        rest: A configured ``DhanRest`` to send through (``session``/``settings`` unused).
        **options: ``DhanRest`` options when ``rest`` is None (``retries``, ``backoff``,
            ``timeout``, ``pace``, ``sleep``).

    Returns:
        ``Bars`` sorted by bar start (UTC ns), one per start; ``oi`` is set when asked for.

    Raises:
        ConfigError: Bad instrument, interval or range.
        FeedAuthError: The token is empty or refused (renew ``DHAN_ACCESS_TOKEN``).
        BrokerError: Dhan rejected the request or kept failing.
    """
    ival = interval_of(interval)
    if ival is not Interval.DAY_1 and ival not in INTERVALS:
        raise ConfigError(f"Dhan has no {ival.value} candles; it serves 1m, 5m, 15m, 25m, 1h and 1d (build "
                          f"{ival.value} from 1m, as `algo download-data` does)")
    fields = instrument_fields(instrument, instrument_type)
    with_oi = fields["exchangeSegment"] in DERIVATIVE_SEGMENTS if oi is None else oi
    daily = ival is Interval.DAY_1
    lo, hi = window(start, end, daily)
    if rest is None and callable(settings):
        settings = settings()
    client = rest or DhanRest(session, settings, **options)
    chunks: list[dict[str, np.ndarray]] = []
    if daily:
        body = {**fields, "expiryCode": expiry_code, "oi": with_oi,
                "fromDate": ist_date(lo).isoformat(), "toDate": (ist_date(hi) + timedelta(days=1)).isoformat()}
        chunks.append(_columns(await client.post(HISTORICAL_PATH, body), True, HISTORICAL_PATH))
    else:
        from_ns = ist_midnight_ns(ist_date(lo))
        stop = ist_midnight_ns(ist_date(hi) + timedelta(days=1))
        span = MAX_INTRADAY_DAYS * 86_400 * SECOND_NS
        no_data: list[DhanApiError] = []
        while from_ns < stop:
            to_ns = min(from_ns + span, stop)
            body = {**fields, "interval": str(INTERVALS[ival]), "oi": with_oi,
                    "fromDate": _ist_text(from_ns), "toDate": _ist_text(to_ns)}
            try:
                chunks.append(_columns(await client.post(INTRADAY_PATH, body), False, INTRADAY_PATH))
            except DhanApiError as exc:
                if exc.code != "DH-907":
                    raise
                no_data.append(exc)  # "no data" for a quiet stretch of a long range
            from_ns = to_ns
        if no_data and not chunks:
            raise no_data[0]
    return merge_chunks(instrument, chunks, lo, hi, with_oi)
