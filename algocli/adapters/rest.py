"""The one HTTP exchange both broker adapters build on: send, read, parse JSON.

Transport failures (timeout, connection reset, DNS) become ``TransportError`` so each
adapter can decide what they mean: retry a read, or declare an order's outcome unknown.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp


class TransportError(Exception):
    """The request may not have reached the broker, or its answer was lost."""


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
