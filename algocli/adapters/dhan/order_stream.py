"""Dhan's live order-update WebSocket: log in, read ``order_alert`` messages, reconnect.

https://dhanhq.co/docs/v2/order-update/

Each attempt reads the settings again (tokens roll over daily), opens
``DhanSettings.order_update_url`` and sends the login text frame
``{"LoginReq":{"MsgCode":42,"ClientId":..,"Token":..},"UserType":"SELF"}``. Every
``{"Type":"order_alert","Data":{..}}`` that follows is handed to ``on_alert(Data)``; other
types and frames that are not JSON are counted and skipped. The loop is the shared
``algocli.adapters.socket.ReconnectingSocket``: a dropped socket is reopened after a
jittered, capped exponential backoff, and ``on_connected`` is called after every login so
the caller can reconcile what it may have missed while disconnected (Dhan does not replay
old alerts).

Fatal, with no retry: an empty token or client id, an HTTP 401/403 on the upgrade, or a
socket closed with code 1008 (policy violation) before any alert arrived, which is how a
refused login ends. ``status.fatal`` then holds a ``FeedAuthError`` that says how to renew.

The token travels only inside the login frame; it is never logged or kept in an error.

``order_from_alert`` turns an alert's ``Data`` into a ``BrokerOrder``. Status words are
compared case-insensitively (the docs' sample writes ``Cancelled``): ``TRANSIT`` →
``PENDING``, ``PENDING`` → ``OPEN``, ``PART_TRADED`` → ``PARTIALLY_FILLED``, ``TRADED`` →
``FILLED``, and ``REJECTED``/``CANCELLED``/``EXPIRED`` as they are. Stop-loss order types have
no ``OrderType`` of their own: ``SL`` reads as ``LIMIT``, ``SLM`` as ``MARKET``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone

import aiohttp

from algocli.adapters.socket import ReconnectingSocket, SocketStatus
from algocli.broker.protocol import BrokerOrder
from algocli.adapters.dhan.settings import DhanSettings
from algocli.data.feed import FeedAuthError
from algocli.data.reconnect import Backoff
from algocli.domain.models import OrderSide, OrderStatus, OrderType

__all__ = ["DHAN_STATUS", "DhanOrderStream", "OrderStreamStatus", "as_float", "as_int", "dhan_order_status",
           "ist_ns", "login_message", "order_from_alert", "order_type_of", "side_of"]

_log = logging.getLogger(__name__)
IST = timezone(timedelta(hours=5, minutes=30), "IST")
_RENEW = ("generate a new access token on web.dhan.co (or renew it with GET /v2/RenewToken), set "
          "DHAN_ACCESS_TOKEN in the environment or .env and check DHAN_CLIENT_ID")

DHAN_STATUS: dict[str, OrderStatus] = {
    "TRANSIT": OrderStatus.PENDING,
    "PENDING": OrderStatus.OPEN,
    "TRIGGERED": OrderStatus.OPEN,
    "PART_TRADED": OrderStatus.PARTIALLY_FILLED,
    "TRADED": OrderStatus.FILLED,
    "REJECTED": OrderStatus.REJECTED,
    "CANCELLED": OrderStatus.CANCELLED,
    "EXPIRED": OrderStatus.EXPIRED,
}
_SEGMENT_OF = {("NSE", "E"): "NSE_EQ", ("NSE", "D"): "NSE_FNO", ("NSE", "C"): "NSE_CURRENCY",
               ("BSE", "E"): "BSE_EQ", ("BSE", "D"): "BSE_FNO", ("BSE", "C"): "BSE_CURRENCY",
               ("MCX", "M"): "MCX_COMM", ("MCX", "D"): "MCX_COMM", ("NSE", "I"): "IDX_I", ("BSE", "I"): "IDX_I"}
_PRODUCT_OF = {"C": "CNC", "I": "INTRADAY", "M": "MARGIN", "F": "MTF", "V": "CO", "B": "BO"}
_ORDER_TYPE_OF = {"LMT": OrderType.LIMIT, "LIMIT": OrderType.LIMIT, "SL": OrderType.LIMIT,
                  "STOP_LOSS": OrderType.LIMIT, "MKT": OrderType.MARKET, "MARKET": OrderType.MARKET,
                  "SLM": OrderType.MARKET, "STOP_LOSS_MARKET": OrderType.MARKET}


def dhan_order_status(word: object, filled: int = 0) -> str:
    """Dhan's order status word as an ``OrderStatus`` value (unknown words read as ``OPEN``)."""
    status = DHAN_STATUS.get(str(word or "").strip().upper())
    if status is None:
        _log.warning("unknown Dhan order status %r; treating the order as working", word)
        status = OrderStatus.OPEN
    if status is OrderStatus.OPEN and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    return status.value


def ist_ns(text: object) -> int:
    """``"YYYY-MM-DD HH:MM:SS"`` IST as UTC nanoseconds; 0 when empty or unreadable."""
    try:
        moment = datetime.strptime(str(text).strip()[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST)
    except ValueError:
        return 0
    return int(moment.timestamp()) * 1_000_000_000


def as_int(value: object) -> int:
    try:
        return int(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def side_of(word: object) -> OrderSide:
    return OrderSide.SELL if str(word or "").strip().upper() in ("S", "SELL") else OrderSide.BUY


def order_type_of(word: object) -> OrderType:
    return _ORDER_TYPE_OF.get(str(word or "").strip().upper(), OrderType.MARKET)


def order_from_alert(data: dict, names: Mapping[str, str] | None = None) -> BrokerOrder:
    """One order-update ``Data`` object as a ``BrokerOrder``.

    Args:
        data: The alert's ``Data``.
        names: Dhan ``SEGMENT:ID`` → our instrument name; ids not in it are kept as
            ``instrument``.
    """
    exchange = str(data.get("Exchange") or "").upper()
    segment = str(data.get("Segment") or "").upper()
    name = _SEGMENT_OF.get((exchange, segment), f"{exchange}_{segment}" if exchange else segment)
    instrument = f"{name}:{data.get('SecurityId', '')}"
    filled = as_int(data.get("TradedQty"))
    status = dhan_order_status(data.get("Status"), filled)
    order_type = order_type_of(data.get("OrderType"))
    price = as_float(data.get("Price"))
    reason = str(data.get("ReasonDescription") or "")
    return BrokerOrder(
        broker_order_id=str(data.get("OrderNo") or ""),
        client_id=str(data.get("CorrelationId") or "") or None,
        instrument=names.get(instrument, instrument) if names else instrument,
        side=side_of(data.get("TxnType")),
        quantity=as_int(data.get("Quantity")),
        order_type=order_type,
        limit_price=price if order_type is OrderType.LIMIT and price > 0 else None,
        status=status,
        filled_quantity=filled,
        average_price=as_float(data.get("AvgTradedPrice")),
        reason="" if reason.upper() == "CONFIRMED" else reason,
        product=_PRODUCT_OF.get(str(data.get("Product") or "").upper(), str(data.get("Product") or "INTRADAY")),
        updated_ts=ist_ns(data.get("LastUpdatedTime")),
    )


def login_message(client_id: str, token: str) -> str:
    """The login text frame (the one place the token goes on this socket)."""
    return json.dumps({"LoginReq": {"MsgCode": 42, "ClientId": client_id, "Token": token}, "UserType": "SELF"})


OrderStreamStatus = SocketStatus  # what the stream has done, for status output and tests


class DhanOrderStream(ReconnectingSocket):
    """The order-update socket, kept open by ``run()`` until stopped or refused.

    Args:
        session: aiohttp session to connect with (not closed here).
        settings_factory: Called before every connection attempt.
        on_alert: Receives each alert's ``Data`` dict (exceptions are logged, not raised).
        on_connected: Called after each login (reconcile anything missed meanwhile).
        backoff: Delays between attempts; default 0.5 s doubling to 30 s, with full jitter.
        heartbeat: Seconds between the client's WebSocket pings.
    """

    raise_fatal = False  # a refused login is kept in status.fatal; the broker's poll carries on

    def __init__(self, session: aiohttp.ClientSession, settings_factory: Callable[[], DhanSettings],
                 on_alert: Callable[[dict], None], *, on_connected: Callable[[], None] | None = None,
                 backoff: Backoff | None = None, heartbeat: float = 10.0) -> None:
        super().__init__("Dhan order updates", status=SocketStatus(), backoff=backoff or Backoff(0.5, 30.0),
                         on_connect=on_connected)
        self.session = session
        self.settings_factory = settings_factory
        self.on_alert = on_alert
        self.heartbeat = heartbeat
        self._closed = ""

    def _closed_reason(self) -> str:
        return self._closed

    async def _attempt(self) -> None:
        settings = self.settings_factory()
        token = settings.access_token.get_secret_value()
        if not token or not settings.client_id:
            raise FeedAuthError(f"DHAN_ACCESS_TOKEN or DHAN_CLIENT_ID is empty; {_RENEW}")
        self.secrets = (token,)
        try:
            ws = await self.session.ws_connect(settings.order_update_url, heartbeat=self.heartbeat,
                                               timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0))
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in (401, 403):
                raise FeedAuthError(f"Dhan refused the order-update login (HTTP {exc.status}); {_RENEW}") from None
            raise
        alerts = 0
        reason = ""
        async with ws:
            await ws.send_str(login_message(settings.client_id, token))
            _log.info("Dhan order updates connected to %s", settings.order_update_url)
            self._connected()
            while True:
                msg = await ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.ERROR):
                    reason = str(msg.extra or "") if msg.type == aiohttp.WSMsgType.CLOSE else ""
                    break
                data = self._alert_data(msg)
                if data is None:
                    self.status.skipped += 1
                    continue
                alerts += 1
                self.status.messages += 1
                try:
                    self.on_alert(data)
                except Exception:  # a broken callback must not take the stream down
                    _log.exception("Dhan order-update callback failed")
        if ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION and alerts == 0:
            raise FeedAuthError(f"Dhan closed the order-update socket after the login (code 1008"
                                f"{': ' + reason if reason else ''}); {_RENEW}")
        self._closed = f"closed by the server (code {ws.close_code})"

    @staticmethod
    def _alert_data(msg: aiohttp.WSMessage) -> dict | None:
        if msg.type != aiohttp.WSMsgType.TEXT:
            return None
        try:
            message = json.loads(msg.data)
        except ValueError:
            return None
        if not isinstance(message, dict) or message.get("Type") != "order_alert":
            return None
        data = message.get("Data")
        return data if isinstance(data, dict) else None
