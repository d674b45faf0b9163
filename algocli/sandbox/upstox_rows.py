"""Upstox's JSON shapes for the sandbox's orders, trades and positions, and the placement check.

Split from ``algocli.sandbox.upstox_orders`` (the routes and their state): these are pure
functions of the matching engine's records and the instrument key to report. Field names
follow https://upstox.com/developer/api-documentation/orders and the positions and
portfolio-stream pages it links; product codes map as Upstox's (``I`` intraday, ``D``
delivery or, on derivative segments, margin, ``MTF``).

Statuses: the engine's PENDING is ``open``, FILLED ``complete``, REJECTED ``rejected``, and
both CANCELLED and EXPIRED ``cancelled``: Upstox lists no expired status (the order-details page), so an
order the session's close ended is ``cancelled`` with the reason in ``status_message``. An
after-market order waiting for the open is ``after market order req received`` (``modify after
market order req received`` once modified), and ``cancelled after market order`` if cancelled.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import datetime

from algocli.adapters.upstox.parsing import is_instrument_key
from algocli.sandbox.exchange import SimOrder, SimTrade, Venue
from algocli.sandbox.instruments import UpstoxKeys
from algocli.sandbox.replay import IST

__all__ = ["AMO_MODIFIED", "AMO_WAITING", "DERIVATIVE_SEGMENTS", "STATUS", "default_key", "order_json", "parse_place",
           "positions_json", "product_in", "product_out", "trade_json", "upstox_status", "user_id"]

STATUS = {"PENDING": "open", "FILLED": "complete", "CANCELLED": "cancelled", "REJECTED": "rejected",
          "EXPIRED": "cancelled"}
AMO_WAITING = "after market order req received"
AMO_MODIFIED = "modify after market order req received"
DERIVATIVE_SEGMENTS = frozenset({"NSE_FO", "BSE_FO", "NCD_FO", "BCD_FO", "MCX_FO", "NSE_COM"})
_ORDER_TYPES = ("MARKET", "LIMIT", "SL", "SL-M")
_MAX_TAG = 40


def default_key(instrument: str) -> str:
    """``NSE_EQ:1333`` → ``NSE_EQ|1333``: the key of a sandbox instrument by the default rule."""
    segment, _, ident = instrument.partition(":")
    return f"{segment}|{ident}"


def ist_text(ns: int) -> str | None:
    """UTC nanoseconds as Upstox writes times: ``YYYY-MM-DD HH:MM:SS`` in IST; None for 0."""
    if not ns:
        return None
    return datetime.fromtimestamp(ns / 1e9, IST).strftime("%Y-%m-%d %H:%M:%S")


def upstox_status(order: SimOrder) -> str:
    """The order's status as Upstox writes it (see the module docstring)."""
    if order.queued and order.is_open:
        return AMO_MODIFIED if order.modifications else AMO_WAITING
    if order.queued and order.status == "CANCELLED":
        return "cancelled after market order"
    return STATUS[order.status]


def user_id(account: str) -> str:
    """A stable user id for an account (the token itself is never echoed)."""
    return "SB" + hashlib.sha256(account.encode()).hexdigest()[:6].upper()


def product_out(product: str, key: str) -> str:
    if product == "INTRADAY":
        return "I"
    if product == "MARGIN" and key.partition("|")[0] not in DERIVATIVE_SEGMENTS:  # Upstox's segment, not Dhan's
        return "MTF"
    return "D"


def product_in(code: str, key: str) -> str | None:
    if code == "I":
        return "INTRADAY"
    if code == "D":
        return "MARGIN" if key.partition("|")[0] in DERIVATIVE_SEGMENTS else "CNC"
    if code == "MTF":
        return "MARGIN"
    return None


def order_json(order: SimOrder, account: str, status: str | None = None, *, key: str | None = None,
               symbol: str | None = None) -> dict:
    """An order book / details / stream entry for ``order`` as it is now.

    ``key`` is the instrument key to report (default ``SEGMENT|ID`` of the instrument) and
    ``symbol`` its trading symbol (default the key's identifier).
    """
    key = key or default_key(order.instrument)
    segment, _, ident = key.partition("|")
    ident = symbol or ident
    status = status or upstox_status(order)
    working = status not in ("complete", "rejected", "cancelled")
    uid = user_id(account)
    accepted = status not in ("put order req received", "rejected")
    return {
        "exchange": segment.partition("_")[0], "product": product_out(order.product, key),
        "instrument_token": key, "trading_symbol": ident, "tradingsymbol": ident,
        "price": order.price if order.order_type != "MARKET" else 0.0, "quantity": order.quantity,
        "status": status, "tag": order.client_id, "placed_by": uid, "order_type": order.order_type,
        "validity": order.validity, "trigger_price": 0.0, "disclosed_quantity": 0,
        "transaction_type": order.side, "average_price": round(order.average_price, 4),
        "filled_quantity": order.filled_quantity,
        "pending_quantity": order.quantity - order.filled_quantity if working else 0,
        "status_message": order.reason, "status_message_raw": order.reason or None,
        "exchange_order_id": f"1{order.order_id}" if accepted else "", "parent_order_id": None,
        "order_id": order.order_id, "order_request_id": "1", "order_ref_id": f"R{order.order_id}",
        "guid": None, "variety": "SIMPLE", "is_amo": order.amo,
        "order_timestamp": ist_text(order.created_ns),
        "exchange_timestamp": ist_text(order.updated_ns) if accepted else None,
    }


def trade_json(trade: SimTrade, order: SimOrder, *, key: str | None = None, symbol: str | None = None) -> dict:
    """A trade-book entry; ``key`` and ``symbol`` as for ``order_json``."""
    key = key or default_key(trade.instrument)
    segment, _, ident = key.partition("|")
    ident = symbol or ident
    return {
        "exchange": segment.partition("_")[0], "product": product_out(order.product, key),
        "trading_symbol": ident, "tradingsymbol": ident, "instrument_token": key,
        "order_type": order.order_type, "transaction_type": trade.side, "quantity": trade.quantity,
        "exchange_order_id": f"1{order.order_id}", "order_id": trade.order_id,
        "exchange_timestamp": ist_text(trade.ts), "average_price": trade.price, "trade_id": trade.trade_id,
        "order_ref_id": f"R{order.order_id}", "order_timestamp": ist_text(order.created_ns),
    }


def parse_place(body: dict, v3: bool, keys: UpstoxKeys) -> tuple[tuple[str, str] | None, dict]:
    """Check a placement body; returns ((code, message), {}) or (None, Exchange.place kwargs)."""
    def bad(message: str, code: str = "UDAPI100038"):
        return (code, message), {}

    quantity = body.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        return bad("Invalid input: quantity must be a positive whole number")
    key = body.get("instrument_token")
    if not is_instrument_key(key):
        return bad("Invalid instrument key", "UDAPI100011")
    product = product_in(body.get("product"), key)
    if product is None or (v3 and body.get("product") not in ("I", "D", "MTF")):
        return bad(f"Invalid input: product {body.get('product')!r} is not I, D or MTF in the sandbox")
    order_type = body.get("order_type")
    if order_type not in _ORDER_TYPES:
        return bad("Invalid order type", "UDAPI1004")
    validity = body.get("validity")
    if validity not in ("DAY", "IOC"):
        return bad("Invalid validity", "UDAPI1007")
    side = body.get("transaction_type")
    if side not in ("BUY", "SELL"):
        return bad("Invalid input: transaction_type must be BUY or SELL")
    price = body.get("price", 0)
    if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0 or not math.isfinite(price):
        return bad("Invalid input: price must be a number >= 0")
    tag = body.get("tag")
    if tag is not None and (not isinstance(tag, str) or len(tag) > _MAX_TAG):
        return bad(f"Invalid input: tag must be text of at most {_MAX_TAG} characters")
    amo = body.get("is_amo", False)
    if not isinstance(amo, bool):
        return bad("Invalid input: is_amo must be true or false")
    return None, {"instrument": keys.instrument(key), "side": side, "quantity": quantity,
                  "order_type": order_type, "price": float(price), "product": product, "validity": validity,
                  "client_id": tag or None, "amo": amo}


def positions_json(exchange: Venue, account: str, key_of: Callable[[str], str],
                   symbol_of: Callable[[str], str]) -> list[dict]:
    """The account's short-term positions; ``key_of(instrument)`` names each, ``symbol_of(key)`` its symbol."""
    acct = exchange.account(account)
    out = []
    for instrument, (qty, avg, realised) in acct.positions.items():
        buy_qty, sell_qty, buy_value, sell_value = acct.traded(instrument)
        last = exchange.last[instrument].ltp if instrument in exchange.last else avg
        unrealised = qty * (last - avg) if qty else 0.0
        products = [o.product for o in acct.orders.values() if o.instrument == instrument and o.filled_quantity]
        key = key_of(instrument)
        segment = key.partition("|")[0]
        ident = symbol_of(key)
        out.append({
            "exchange": segment.partition("_")[0],
            "multiplier": 1.0, "value": round(buy_value - sell_value, 4), "pnl": round(realised + unrealised, 4),
            "product": product_out(products[-1] if products else "INTRADAY", key),
            "instrument_token": key, "average_price": avg, "buy_value": buy_value, "overnight_quantity": 0,
            "day_buy_value": buy_value, "day_buy_price": buy_value / buy_qty if buy_qty else 0.0,
            "overnight_buy_amount": 0.0, "overnight_buy_quantity": 0, "day_buy_quantity": buy_qty,
            "day_sell_value": sell_value, "day_sell_price": sell_value / sell_qty if sell_qty else 0.0,
            "overnight_sell_amount": 0.0, "overnight_sell_quantity": 0, "day_sell_quantity": sell_qty,
            "quantity": int(qty), "last_price": last, "unrealised": round(unrealised, 4),
            "realised": round(realised, 4), "sell_value": sell_value, "trading_symbol": ident,
            "tradingsymbol": ident, "close_price": last,
            "buy_price": buy_value / buy_qty if buy_qty else 0.0,
            "sell_price": sell_value / sell_qty if sell_qty else 0.0,
        })
    return out
