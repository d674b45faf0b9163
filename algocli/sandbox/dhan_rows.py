"""Dhan's JSON shapes for the sandbox's orders, trades, positions and order-update alerts.

Split from ``algocli.sandbox.dhan_orders`` (the routes and their state): these are pure
functions of the matching engine's records and the request fields the engine does not keep
(``Extras``). Field names as Dhan's v2 API sends them
(https://dhanhq.co/docs/v2/orders/, https://dhanhq.co/docs/v2/portfolio/,
https://dhanhq.co/docs/v2/order-update/); times IST ``YYYY-MM-DD HH:MM:SS``.

Exchange statuses map to Dhan's: PENDING → ``PENDING`` (``PART_TRADED`` once partly filled),
FILLED → ``TRADED``, CANCELLED → ``CANCELLED``, REJECTED → ``REJECTED``, EXPIRED (unfilled at
the session's close) → ``EXPIRED``; a rejected or expired order's reason is its
``omsErrorDescription`` (``ReasonDescription`` on the stream). A trade event becomes
an alert whose ``TradedQty`` is the order's cumulative traded quantity after that trade.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from algocli.domain.models import Tick
from algocli.sandbox.exchange import Account, SimOrder, SimTrade
from algocli.sandbox.replay import IST

__all__ = ["Extras", "alert", "book_entry", "dhan_status", "position_entry", "trade_entry"]

# order-update codes (https://dhanhq.co/docs/v2/order-update/)
_EXCHANGE_OF = {"NSE_EQ": ("NSE", "E"), "NSE_FNO": ("NSE", "D"), "NSE_CURRENCY": ("NSE", "C"),
                "BSE_EQ": ("BSE", "E"), "BSE_FNO": ("BSE", "D"), "BSE_CURRENCY": ("BSE", "C"),
                "MCX_COMM": ("MCX", "M"), "IDX_I": ("NSE", "I")}
_PRODUCT_CODE = {"CNC": "C", "INTRADAY": "I", "MARGIN": "M", "MTF": "F", "CO": "V", "BO": "B"}
_ORDER_TYPE_CODE = {"LIMIT": "LMT", "MARKET": "MKT", "STOP_LOSS": "SL", "STOP_LOSS_MARKET": "SLM"}
_EXPLAINED = ("REJECTED", "EXPIRED")  # statuses whose reason Dhan gives (omsErrorDescription, ReasonDescription)


@dataclass
class Extras:
    """Request fields the exchange does not keep."""

    segment: str
    security_id: str
    order_type: str
    disclosed: int = 0
    trigger: float = 0.0
    amo: bool = False

    @classmethod
    def of(cls, order: SimOrder) -> Extras:
        """What can be told of an order placed on the engine directly (not over Dhan's routes)."""
        segment, _, security = order.instrument.partition(":")
        return cls(segment, security, order.order_type)


def _ist(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, IST).strftime("%Y-%m-%d %H:%M:%S")


def dhan_status(order: SimOrder) -> str:
    """The exchange's status as Dhan writes it."""
    if order.status == "FILLED":
        return "TRADED"
    if order.status == "PENDING":
        return "PART_TRADED" if order.filled_quantity else "PENDING"
    return order.status  # CANCELLED, REJECTED, EXPIRED


def book_entry(order: SimOrder, x: Extras) -> dict:
    """One order-book object."""
    return {
        "dhanClientId": order.account, "orderId": order.order_id, "correlationId": order.client_id or "",
        "orderStatus": dhan_status(order), "transactionType": order.side, "exchangeSegment": x.segment,
        "productType": order.product, "orderType": x.order_type, "validity": order.validity,
        "tradingSymbol": x.security_id, "securityId": x.security_id, "quantity": order.quantity,
        "disclosedQuantity": x.disclosed, "price": order.price, "triggerPrice": x.trigger,
        "afterMarketOrder": x.amo, "boProfitValue": 0.0, "boStopLossValue": 0.0, "legName": "",
        "createTime": _ist(order.created_ns), "updateTime": _ist(order.updated_ns),
        "exchangeTime": _ist(order.updated_ns), "drvExpiryDate": "0001-01-01", "drvOptionType": None,
        "drvStrikePrice": 0.0, "omsErrorCode": order.status if order.status in _EXPLAINED else "",
        "omsErrorDescription": order.reason if order.status in _EXPLAINED else "", "algoId": "",
        "remainingQuantity": order.quantity - order.filled_quantity,
        "averageTradedPrice": round(order.average_price, 4), "filledQty": order.filled_quantity,
    }


def trade_entry(trade: SimTrade, order: SimOrder, x: Extras) -> dict:
    """One trade-book object."""
    when = _ist(trade.ts)
    return {
        "dhanClientId": trade.account, "orderId": trade.order_id, "exchangeOrderId": f"1100{trade.order_id}",
        "exchangeTradeId": trade.trade_id, "transactionType": trade.side, "exchangeSegment": x.segment,
        "productType": order.product, "orderType": x.order_type, "tradingSymbol": x.security_id,
        "securityId": x.security_id, "tradedQuantity": trade.quantity, "tradedPrice": trade.price,
        "createTime": when, "updateTime": when, "exchangeTime": when, "drvExpiryDate": "0001-01-01",
        "drvOptionType": None, "drvStrikePrice": 0.0,
    }


def position_entry(acct: Account, instrument: str, last: Tick | None) -> dict:
    """One positions object, from the account's position and trades in ``instrument``."""
    net, avg, realised = acct.positions[instrument]
    segment, _, security = instrument.partition(":")
    buy_qty, sell_qty, buy_value, sell_value = acct.traded(instrument)
    ltp = last.ltp if last is not None else avg
    mine = [t for side in ("BUY", "SELL") for t in acct.trades if t.instrument == instrument and t.side == side]
    product = acct.orders[max(mine, key=lambda t: t.ts).order_id].product if mine else "INTRADAY"
    return {
        "dhanClientId": acct.account_id, "tradingSymbol": security, "securityId": security,
        "positionType": "LONG" if net > 0 else ("SHORT" if net < 0 else "CLOSED"),
        "exchangeSegment": segment, "productType": product,
        "buyAvg": round(buy_value / buy_qty, 4) if buy_qty else 0.0, "buyQty": buy_qty,
        "costPrice": round(avg, 4), "sellAvg": round(sell_value / sell_qty, 4) if sell_qty else 0.0,
        "sellQty": sell_qty, "netQty": int(net), "realizedProfit": round(realised, 4),
        "unrealizedProfit": round(net * (ltp - avg), 4) if net else 0.0, "rbiReferenceRate": 1.0,
        "multiplier": 1, "carryForwardBuyQty": 0, "carryForwardSellQty": 0, "carryForwardBuyValue": 0.0,
        "carryForwardSellValue": 0.0, "dayBuyQty": buy_qty, "daySellQty": sell_qty,
        "dayBuyValue": round(buy_value, 4), "daySellValue": round(sell_value, 4),
        "drvExpiryDate": "0001-01-01", "drvOptionType": None, "drvStrikePrice": 0.0, "crossCurrency": False,
    }


def alert(kind: str, payload: SimOrder | SimTrade, acct: Account, x: Extras, ref_ltp: float) -> dict:
    """An exchange event as the order-update stream's ``Data``.

    Args:
        kind: ``"order"`` (payload the order as it is now) or ``"trade"`` (payload one fill).
        payload: The order or the trade.
        acct: The account that owns it.
        x: The order's request fields.
        ref_ltp: The instrument's last traded price (``RefLtp``).
    """
    if isinstance(payload, SimTrade):
        trade = payload
        order = acct.orders[trade.order_id]
        mine = [t for t in acct.trades if t.order_id == order.order_id]
        upto = mine[:mine.index(trade) + 1] if trade in mine else [*mine, trade]
        traded = sum(t.quantity for t in upto)
        avg = sum(t.quantity * t.price for t in upto) / traded
        status = "TRADED" if traded >= order.quantity else "PART_TRADED"
        last_price, when = trade.price, trade.ts
    else:
        order = payload
        traded, avg, status = order.filled_quantity, order.average_price, dhan_status(order)
        last_price, when = (order.average_price if traded else 0.0), order.updated_ns
    exchange, segment = _EXCHANGE_OF.get(x.segment, (x.segment, "E"))
    return {
        "Exchange": exchange, "Segment": segment, "Source": "P", "SecurityId": x.security_id,
        "ClientId": order.account, "ExchOrderNo": f"1100{order.order_id}", "OrderNo": order.order_id,
        "Product": _PRODUCT_CODE.get(order.product, "I"), "TxnType": order.side[0],
        "OrderType": _ORDER_TYPE_CODE.get(x.order_type, "MKT"), "Validity": order.validity,
        "DiscQuantity": x.disclosed, "DiscQtyRem": x.disclosed, "RemainingQuantity": order.quantity - traded,
        "Quantity": order.quantity, "TradedQty": traded, "Price": order.price, "TriggerPrice": x.trigger,
        "TradedPrice": last_price, "AvgTradedPrice": round(avg, 4), "OrderDateTime": _ist(order.created_ns),
        "ExchOrderTime": _ist(order.created_ns), "LastUpdatedTime": _ist(when), "Status": status,
        "ReasonDescription": order.reason if status in _EXPLAINED else "CONFIRMED", "Remarks": "",
        "MktType": "NL", "LegNo": 1, "OffMktFlag": "1" if x.amo else "0", "AlgoOrdNo": "",
        "Instrument": "EQUITY" if segment == "E" else "", "Symbol": x.security_id, "ProductName": order.product,
        "LotSize": 1, "StrikePrice": 0.0, "ExpiryDate": "", "OptType": "XX", "DisplayName": x.security_id,
        "Isin": "", "Series": "EQ" if segment == "E" else "", "TickSize": 0.05, "Multiplier": 1,
        "GoodTillDaysDate": "", "RefLtp": ref_ltp, "AlgoId": "", "CorrelationId": order.client_id or "",
    }
