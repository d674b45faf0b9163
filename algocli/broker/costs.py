"""Transaction costs charged on each fill.

Every fill, in every mode (the simulated broker in backtest and paper, the live router for
a real broker's fills), is priced by a ``CostModel`` given one ``CostContext``: the
instrument, the product, the side, the quantity, the price and the time. Segment-aware,
date-versioned Indian charges plug in through that one signature.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import ConfigDict, Field, field_validator, model_serializer, model_validator

from algocli.domain.strict import NumbersModel

if TYPE_CHECKING:
    from algocli.domain.models import Instrument

Product = Literal["INTRADAY", "CNC", "MARGIN"]
#: Charge tables shipped with ``algocli.market`` (``charges: none`` charges nothing at all).
SHIPPED_CHARGES = ("dhan", "upstox", "none")
_ZERO_KINDS = (0.0,) * 7
#: ``broker:`` keys that switch the product rules on.
RULE_KEYS = frozenset({"product", "products", "charges", "squareoff", "margin"})


@dataclass(slots=True)  # not frozen: one is built per fill, and a frozen init costs twice as much
class CostContext:
    """What a cost model needs to know about one fill.

    Attributes:
        instrument: The instrument model (exchange, kind, segment, lot and tick sizes).
        product: The broker product the order was placed under (``CNC``, ``INTRADAY``,
            ``MARGIN``, ...), or None where the run does not name one.
        buy: True for a buy fill.
        quantity: Units filled.
        price: Fill price in rupees.
        ts: Fill time, UTC nanoseconds (the charge tables are dated by it).
    """

    instrument: Instrument
    product: str | None
    buy: bool
    quantity: int
    price: float
    ts: int


class CostModel(Protocol):
    """Anything that prices a fill's charges in rupees.

    A model may also have ``breakdown(ctx)``, returning an object with the attributes
    ``total`` and ``brokerage``, ``stt``, ``exchange_txn``, ``ipft``, ``sebi``, ``stamp``,
    ``dp``, ``gst`` (``algocli.market.charges.Breakdown``); a fill then carries each kind.
    Without it, the whole charge is the fill's ``brokerage``.
    """

    def charges(self, ctx: CostContext) -> float: ...


def flat_charges(total: float) -> tuple[float, ...]:
    """``price_fill``'s tuple for a model without a breakdown: all of ``total`` is brokerage."""
    return (total, total, *_ZERO_KINDS)


def price_fill(model: CostModel, ctx: CostContext) -> tuple[float, ...]:
    """One fill's charges: the total, then ``Fill``'s eight kinds in ``CHARGE_FIELDS`` order.

    Called once per fill (never per bar), in time order: a stateful model (Indian charges
    keep the day's unsettled delivery quantity) sees every fill once.

    Args:
        model: The run's cost model.
        ctx: The fill.

    Returns:
        ``(total, brokerage, stt, exchange_txn, ipft, sebi, stamp, dp, gst)`` in rupees.
    """
    breakdown = getattr(model, "breakdown", None)
    if breakdown is None:
        return flat_charges(model.charges(ctx))
    b = breakdown(ctx)
    return (b.total, b.brokerage, b.stt, b.exchange_txn, b.ipft, b.sebi, b.stamp, b.dp, b.gst)


def replay_charges(model: CostModel, fills: Iterable[CostContext]) -> None:
    """Feed a resumed run's restored fills to a stateful cost model, in time order, once.

    Indian charges keep the day's state (what a later CNC sell squares, the DP already
    charged); replaying the journaled fills rebuilds it, so the first new fill after a
    restart is charged as it would have been without one. The restored fills keep the
    charges the journal gave them. A model without state (``book``) is left alone.
    """
    breakdown = getattr(model, "breakdown", None)
    if breakdown is None or getattr(model, "book", None) is None:
        return
    for ctx in sorted(fills, key=lambda c: c.ts):
        breakdown(ctx)


class AccountConfig(NumbersModel):
    """The ``broker:`` keys every broker takes, simulated or real: products and charges.

    ``commission_rate`` is a flat fraction of traded value (for non-Indian data and the
    backtesting.py comparisons). ``charges`` prices each fill with Indian charges from dated
    tables (``algocli.market.charges``): ``dhan``, ``upstox``, ``none`` or the path of a CSV
    table of your own; ``rounding`` is ``paise`` (each charge of each fill to the paisa) or
    ``contract_note`` (STT and stamp duty per trade date to the rupee). One or the other.

    Product rules (``algocli.market.products``: the broker's INTRADAY square-off, margin instead
    of the whole value) apply in backtest and paper when the section names ``product``,
    ``products``, ``charges``, ``squareoff`` or ``margin``; a section with none of them behaves as
    before (every position needs its whole value, nothing is squared off), so flat-commission
    comparisons are untouched. ``squareoff``: ``off``, a broker (``dhan``, ``upstox``, ``zerodha``),
    one ``HH:MM`` IST for every segment, or ``{equity|fno|currency|commodity: HH:MM}``; default: the
    times of the ``charges`` broker (Dhan's otherwise). ``margin``: ``{kind: percent of notional}``
    over the shipped defaults (``equity_intraday`` 20, ``futures`` 15, ...).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    product: Product = Field("INTRADAY", description="default product for every order")
    products: dict[str, Product] = Field(default_factory=dict, description="per-instrument product overrides")
    commission_rate: float = Field(0.0, ge=0, lt=0.1, description="fraction of traded value, each side")
    charges: str | None = Field(None, description="Indian charges: dhan | upstox | none | path of a CSV table")
    rounding: Literal["paise", "contract_note"] | None = Field(
        None, description="with charges: paise (default) or contract_note (STT and stamp to the rupee per day)")
    squareoff: str | dict[str, str] | None = Field(
        None, description="INTRADAY square-off: off | dhan | upstox | zerodha | HH:MM | {segment: HH:MM}")
    margin: dict[str, float] | None = Field(None, description="margin percent of notional per kind, e.g. "
                                                              "{equity_intraday: 20, futures: 15}")

    def product_rules(self, broker: str = ""):
        """The run's ``ProductRules``, or None when the section asks for none (see the class docstring).

        Args:
            broker: The broker section's ``name``; a real broker's times are the defaults for it.

        Raises:
            ConfigError: A bad ``squareoff`` time or segment, or a bad ``margin`` kind or percent.
        """
        if not self.model_fields_set & RULE_KEYS:
            return None
        from algocli.market.products import ProductRules

        whose = self.charges if self.charges in ("dhan", "upstox") else broker
        return ProductRules.build(whose, self.squareoff, self.margin)

    @field_validator("charges")
    @classmethod
    def _shipped_lower(cls, value: str | None) -> str | None:
        if value is not None and value.strip().lower() in SHIPPED_CHARGES:
            return value.strip().lower()
        if value is not None and not value.strip():
            raise ValueError("empty; give dhan, upstox, none or the path of a CSV charges table")
        return value  # a path: ``charges_table`` resolves it beside the run definition

    def charges_table(self, folder: Path) -> str | None:
        """``charges`` as ``IndianCharges`` takes it: a shipped name, or a path made absolute
        under ``folder`` (the run definition's folder, like every path in it)."""
        if self.charges is None or self.charges in SHIPPED_CHARGES:
            return self.charges
        path = Path(self.charges).expanduser()
        return str(path if path.is_absolute() else Path(folder) / path)

    @model_serializer(mode="wrap")
    def _dump_one_cost_model(self, handler):
        # config.resolved.yaml must validate again: never both cost models, no empty keys
        data = handler(self)
        for key in ("squareoff", "margin"):
            if data.get(key) is None:
                data.pop(key, None)
        if self.charges is None:
            data.pop("charges", None)
            data.pop("rounding", None)
        else:
            data.pop("commission_rate", None)
            data["rounding"] = self.rounding or "paise"
        return data

    @model_validator(mode="after")
    def _one_cost_model(self) -> AccountConfig:
        if self.charges is not None and "commission_rate" in self.model_fields_set:
            raise ValueError("commission_rate and charges are both given; keep one: charges for Indian charges "
                             "by kind, commission_rate for a flat fraction of traded value")
        if self.rounding is not None and self.charges is None:
            raise ValueError("rounding applies to charges only; add charges: dhan | upstox | PATH, or drop rounding")
        return self


class PercentCommission:
    """A flat fraction of traded value, charged on each side (0.0003 = 3 bp)."""

    __slots__ = ("rate",)

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)

    def charges(self, ctx: CostContext) -> float:
        return ctx.quantity * ctx.price * self.rate
