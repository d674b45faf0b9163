"""Futures and options legs of a run: premium paid and received, charges and expiry settlement.

One row per contract that traded, from the run's fills and orders:

- **Bought / sold**: units bought and sold by the strategies' own orders (the settlement is apart).
- **Premium paid / received**: Σ price x quantity of those buys / sells (for futures, the contract
  value at the traded price; a future's P&L is received less paid, like an option's).
- **Settlement**: what the engine booked at expiry for a position still open (orders tagged
  ``expiry``): units, the settlement price (an option's intrinsic value against the
  underlying's close on the expiry day, a future's close that day; zero for a worthless
  option) and the signed value (received positive, paid negative).
- **Charges**: the sum of the contract's fills' charges, settlement included (STT on an
  exercised long option is charged there).
- **Net P&L** = received − paid + settlement value − charges, for a contract closed by the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from algocli.domain.models import OrderSide

if TYPE_CHECKING:
    from algocli.analytics.result import RunResult

__all__ = ["LegRow", "SETTLEMENT_TAG", "derivative_legs", "shown_instruments"]

SETTLEMENT_TAG = "expiry"  # the tag the engines put on expiry settlement orders


@dataclass(frozen=True, slots=True)
class LegRow:
    """One contract's trading in a run (see the module docstring)."""

    instrument: str
    expiry: str
    kind: str
    tags: str
    bought: int
    sold: int
    premium_paid: float
    premium_received: float
    settled_qty: int
    settlement_price: float | None
    settlement_value: float
    charges: float
    open_qty: int

    @property
    def net_pnl(self) -> float | None:
        """Received − paid + settlement − charges; None while a position is still open."""
        if self.open_qty:
            return None
        return self.premium_received - self.premium_paid + self.settlement_value - self.charges


def derivative_legs(result: RunResult) -> list[LegRow]:
    """Each futures or options contract that traded in ``result``, in order of its first fill.

    Args:
        result: A finished run.

    Returns:
        One ``LegRow`` per contract with an expiry; empty for a run without derivatives.
    """
    if not any(getattr(inst, "expiry", None) for inst in result.instruments.values()):
        return []  # an equity run: no fill to look at
    tags = {o.order_id: o.tag for o in result.orders}
    acc: dict[str, dict] = {}
    for f in result.fills:
        inst = result.instruments.get(f.instrument)
        expiry = getattr(inst, "expiry", None)
        if expiry is None:
            continue
        row = acc.setdefault(f.instrument, {
            "expiry": expiry.isoformat(), "kind": getattr(inst, "option_type", None) or "FUT", "tags": [],
            "bought": 0, "sold": 0, "paid": 0.0, "received": 0.0, "settled": 0, "price": None, "value": 0.0,
            "charges": 0.0, "position": 0})
        tag = tags.get(f.order_id)
        value = f.price * f.quantity
        buy = f.side == OrderSide.BUY
        row["charges"] += f.commission
        row["position"] += f.quantity if buy else -f.quantity
        if tag == SETTLEMENT_TAG:
            row["settled"] += f.quantity
            row["price"] = f.price
            row["value"] += -value if buy else value
            continue
        if tag and tag not in row["tags"]:
            row["tags"].append(tag)
        if buy:
            row["bought"] += f.quantity
            row["paid"] += value
        else:
            row["sold"] += f.quantity
            row["received"] += value
    return [LegRow(name, r["expiry"], r["kind"], " ".join(r["tags"]), r["bought"], r["sold"], round(r["paid"], 2),
                   round(r["received"], 2), r["settled"], r["price"], round(r["value"], 2), round(r["charges"], 2),
                   r["position"])
            for name, r in acc.items()]


def shown_instruments(result: RunResult) -> tuple[list[str], int]:
    """The instruments a report names and charts: all but the option contracts the run loaded and
    did not trade (a ``data.options`` universe lists every strike), and how many it leaves out.

    Args:
        result: A finished run.

    Returns:
        The instruments in the run's order, and the count of untraded option contracts left out.
    """
    traded = {f.instrument for f in result.fills}
    untraded = {i for i in result.bars
                if getattr(result.instruments.get(i), "option_type", None) is not None and i not in traded}
    return [i for i in result.bars if i not in untraded], len(untraded)
