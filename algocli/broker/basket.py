"""What every mode's baskets share: the order legs are sent in, and the margin of all legs at once.

**Order.** Buys go before sells (each group keeps the strategy's order). Brokers block margin per
order as it arrives, so a short option placed after the long that hedges it needs the hedged
(smaller) margin, while the same short placed first needs its full naked margin
(https://help.upstox.com/support/solutions/articles/260240-what-is-the-required-margin-on-basket-,
https://support.fyers.in/portal/en/kb/articles/how-can-i-utilise-the-order-level-hedge-benefit-through-basket-orders-on-fyers).
A buy also never fails for want of the margin a sell would have released first: both are counted
together before anything is sent (below).

**Margin.** ``basket_need`` adds up, leg by leg, what each leg needs: the opening part's margin
under the product rules (``algocli.market.products``; its whole value without rules), plus its
charges, less the margin a closing part releases. No spread benefit is assumed, so a hedged
basket is checked against more than a broker would block: a basket that passes here is not
refused for margin at the broker, short of prices moving.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from algocli.broker.costs import CostContext, price_fill
from algocli.domain.models import OrderSide

if TYPE_CHECKING:
    from algocli.broker.costs import CostModel
    from algocli.domain.models import Instrument, Order
    from algocli.market.products import ProductRules

__all__ = ["BasketLeg", "basket_need", "describe_leg", "send_order", "unwind_tag"]


@dataclass(frozen=True, slots=True)
class BasketLeg:
    """One leg as the margin check sees it.

    Attributes:
        name: The instrument's name in the run (the key of the account's net positions).
        instrument: The instrument's model (kind, strike, lot).
        product: The order's product (``INTRADAY``, ``MARGIN``, ``CNC``...).
        buy: True for a buy.
        quantity: Units.
        price: The limit price, or the last known price of a market leg.
        ts: The order's time (UTC ns): dates the charges.
    """

    name: str
    instrument: Instrument
    product: str
    buy: bool
    quantity: int
    price: float
    ts: int


def send_order(orders: Sequence[Order]) -> list[int]:
    """Indices of ``orders`` in the order they are sent: buys first, then sells, each group as given."""
    return sorted(range(len(orders)), key=lambda k: orders[k].side is not OrderSide.BUY)


def describe_leg(k: int, order: Order) -> str:
    """``leg 2 (SELL 50 NSE:NIFTY...)``: how reasons name a leg (``k`` counts from 1, in the strategy's order)."""
    return f"leg {k} ({order.side.value} {order.quantity} {order.instrument})"


def unwind_tag(tag: str) -> str:
    """The tag of the market orders that flatten a failed basket's filled legs."""
    return f"{tag}-unwind"


def basket_need(legs: Sequence[BasketLeg], net: Mapping[str, int], rules: ProductRules | None,
                cost_model: CostModel) -> list[float]:
    """The margin the legs need together, after each leg (see the module docstring).

    Args:
        legs: The legs, in the order they are checked.
        net: The account's net position per instrument name before the basket.
        rules: The product rules; None: every opening leg needs its whole value.
        cost_model: Prices each leg's charges (a stateful model's day is left as it was).

    Returns:
        The running total after each leg: ``[need of leg 1, legs 1-2, ...]``.
    """
    held_now = dict(net)
    book = getattr(cost_model, "book", None)
    saved = copy.deepcopy(book) if book is not None else None
    need, totals = 0.0, []
    try:
        for leg in legs:
            model, name = leg.instrument, leg.name
            held = held_now.get(name, 0)
            closing = min(abs(held), leg.quantity) if held and (held < 0) == leg.buy else 0
            opening = leg.quantity - closing
            if rules is None:
                opens, released = opening * leg.price, closing * leg.price
            else:
                pct, _, unit = rules.margin_basis(model, leg.product, not leg.buy, leg.price)
                opens = opening * unit * pct / 100.0
                after = held + (closing if leg.buy else -closing)
                released = (rules.blocked(model, leg.product, held, leg.price)
                            - rules.blocked(model, leg.product, after, leg.price))
            charges = price_fill(cost_model, CostContext(model, leg.product, leg.buy, leg.quantity, leg.price,
                                                         leg.ts))[0]
            need += opens + charges - released
            totals.append(need)
            held_now[name] = held + (leg.quantity if leg.buy else -leg.quantity)
    finally:
        if saved is not None:
            cost_model.book = saved
    return totals
