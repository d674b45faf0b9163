"""The REST client every broker adapter builds on: send, classify, retry, pace, log without secrets.

``exchange`` sends one request and parses the JSON answer; transport failures (timeout,
connection reset, DNS) become ``TransportError``. ``RestClient`` adds one policy for every
broker:

* **Classification** (``classify``, written per broker): an answer is data, a refused
  token (``FeedAuthError``), a definitive refusal (the broker's ``ApiError``) or a
  ``Transient`` failure worth another attempt (HTTP 429 or 5xx, a timeout, a dropped
  connection, and whatever else the broker documents as temporary).
* **Retries**: a transient failure is retried after ``Backoff`` delays up to ``retries``
  times; then ``exhausted_error`` says how often it failed. A request that must never be
  sent twice (order entry) passes ``retry=False``: its first transient failure raises
  ``uncertain_error`` at once, since the broker may or may not have carried it out.
* **Rate limiting**: ``limiter.acquire()`` (the account's shared ``RateLimiter``) is awaited
  before every attempt, retries included; ``pace`` spaces the starts of this client's
  requests.
* **Secret-free logging**: the token is unwrapped only to build a header; every message
  this module logs or raises passes through ``redact`` first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable

import aiohttp

from algocli.data.reconnect import Backoff
from algocli.errors import BrokerError

__all__ = ["RestClient", "Transient", "TransportError", "exchange", "redact"]

_log = logging.getLogger(__name__)
_SECRETS = re.compile(r"((?:code|token|access_token)=|Bearer\s+)[^&\s'\"]+", re.IGNORECASE)
REDACTED = "<redacted>"


class TransportError(Exception):
    """The request may not have reached the broker, or its answer was lost."""


class Transient(Exception):
    """A failure worth another attempt; ``status`` is the HTTP status, if there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def redact(text: str, *secrets: str) -> str:
    """``text`` with ``token=``/``code=`` values, bearer tokens and each of ``secrets`` blanked."""
    text = _SECRETS.sub(r"\1" + REDACTED, text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


async def exchange(session: aiohttp.ClientSession, method: str, url, *, timeout: float,
                   headers: dict[str, str], **body) -> tuple[int, object, str]:
    """Send one request; return (HTTP status, parsed JSON or None, raw text).

    ``body`` goes to aiohttp as is (``json=`` or ``data=``).
    """
    try:
        async with session.request(method, url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout),
                                   **body) as resp:
            status = resp.status
            text = await resp.text()
    except asyncio.TimeoutError:
        raise TransportError(f"no answer within {timeout:g}s") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise TransportError(f"{exc.__class__.__name__}: {exc}") from None
    try:
        payload = json.loads(text) if text.strip() else None
    except ValueError:
        payload = None
    return status, payload, text


class RestClient:
    """One broker's REST API on a caller-owned ``aiohttp.ClientSession``.

    Subclasses set ``name``, ``uncertain_error`` and ``exhausted_error`` and write
    ``headers``, ``url`` and ``classify``.

    Args:
        session: Used for every request; not closed here.
        base_url: Prefixed to every path unless a call gives its own.
        retries: Extra attempts after a transient failure (at most ``retries + 1`` calls).
        backoff: Delays between attempts; default 0.5 s doubling to 8 s, with full jitter.
        timeout: Seconds per attempt.
        pace: Least seconds between the starts of two requests from this client.
        sleep: Awaitable sleep in seconds (tests may pass a fake).
        limiter: Awaited (``acquire()``) before every attempt when a call gives none.
        secrets: Values that must never appear in a log line or an error (the token).
    """

    name = "broker"
    uncertain_error: type[BrokerError] = BrokerError  # a request sent once whose outcome is unknown
    exhausted_error: type[BrokerError] = BrokerError  # transient failures past the retries

    def __init__(self, session: aiohttp.ClientSession, base_url: str, *, retries: int = 4,
                 backoff: Backoff | None = None, timeout: float = 30.0, pace: float = 0.0,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep, limiter=None,
                 secrets: tuple[str, ...] = ()) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.retries = max(0, retries)
        self.backoff = backoff or Backoff(0.5, 8.0)
        self.timeout = timeout
        self.pace = pace
        self.limiter = limiter
        self._sleep = sleep
        self._secrets = secrets
        self._last_start: float | None = None
        self.calls = 0  # HTTP requests sent, retries included

    # --- per broker ------------------------------------------------------------------------

    def headers(self, method: str, path: str, body: object) -> dict[str, str]:
        """The request's headers (the only place the token is unwrapped)."""
        raise NotImplementedError

    def url(self, base: str, path: str):
        """The URL to send to (a string, or a ``yarl.URL`` for paths already encoded)."""
        return base + path

    def body(self, body: object) -> dict:
        """``body`` as aiohttp's keyword (``json=`` by default)."""
        return {"json": body}

    def classify(self, method: str, path: str, status: int, payload: object, text: str) -> object:
        """The data of a good answer; else raise ``FeedAuthError``, ``Transient`` or a refusal."""
        raise NotImplementedError

    # --- the policy --------------------------------------------------------------------------

    async def request(self, method: str, path: str, body: object = None, *, retry: bool = True,
                      limiter=None, backoff: Backoff | None = None, base_url: str | None = None) -> object:
        """Send ``method path`` and return what ``classify`` made of the answer.

        Args:
            method: ``GET``, ``POST``, ``PUT`` or ``DELETE``.
            path: Appended to the base URL.
            body: The request body; None sends none.
            retry: Retry transient failures up to ``retries`` times. False (order entry)
                raises ``uncertain_error`` at the first one: never send an order twice.
            limiter: Awaited before every attempt; default the client's own.
            backoff: Delays between attempts; default ``self.backoff``.
            base_url: Another host for this call (an order host).

        Raises:
            FeedAuthError: The broker refused the token.
            BrokerError: ``uncertain_error``/``exhausted_error`` for transient failures, or
                the broker's own refusal.
        """
        gate = limiter if limiter is not None else self.limiter
        delays = backoff or self.backoff
        attempt = 0
        while True:
            try:
                if gate is not None:
                    await gate.acquire()
                return await self._once(method, path, body, base_url)
            except Transient as exc:
                if not retry:
                    raise self._error(self.uncertain_error, f"{self.name} {method} {path}: {exc}", exc.status)
                if attempt >= self.retries:
                    raise self._error(self.exhausted_error,
                                      f"{self.name} {method} {path} failed {attempt + 1} times; last: {exc}. Check "
                                      f"{self.name}'s status and the network, then retry", exc.status)
                delay = delays.next_delay()
                attempt += 1
                _log.warning("%s %s %s: %s; retry %d of %d in %.2fs", self.name, method, path,
                             redact(str(exc), *self._secrets), attempt, self.retries, delay)
                await self._sleep(delay)

    def _error(self, cls: type[BrokerError], message: str, status: int | None) -> BrokerError:
        message = redact(message, *self._secrets)
        try:
            return cls(message, status=status)
        except TypeError:  # an error class without a status
            return cls(message)

    async def _once(self, method: str, path: str, body: object, base_url: str | None) -> object:
        await self._wait_turn()
        self.calls += 1
        sent = {} if body is None else self.body(body)
        try:
            status, payload, text = await exchange(self.session, method, self.url(base_url or self.base_url, path),
                                                   headers=self.headers(method, path, body), timeout=self.timeout,
                                                   **sent)
        except TransportError as exc:
            raise Transient(redact(str(exc), *self._secrets)) from None
        return self.classify(method, path, status, payload, text)

    async def _wait_turn(self) -> None:
        if self.pace <= 0:
            return
        loop = asyncio.get_running_loop()
        if self._last_start is not None:
            wait = self._last_start + self.pace - loop.time()
            if wait > 0:
                await self._sleep(wait)
        self._last_start = loop.time()
