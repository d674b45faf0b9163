"""The margin open positions block, bar by bar, rebuilt from a run's fills (vectorised, once).

``available margin = equity - blocked``, where each instrument's net position blocks its margin
(``algocli.market.products.ProductRules.blocked``: a percent of notional per kind) at the bar's
close, or its whole value when the run has no product rules. Cash is the ledger's cash; the two
are different series: an INTRADAY position of Rs 1 lakh at 20 % leaves Rs 80,000 of a Rs 1 lakh
account available while the cash column shows the cash paid out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from algocli.domain.instrument import Instrument
    from algocli.domain.models import Fill
    from algocli.market.products import ProductRules


def blocked_series(fills: list[Fill], index: np.ndarray, closes: dict[str, tuple[np.ndarray, np.ndarray]],
                   instruments: dict[str, Instrument], product_of, rules: ProductRules | None) -> np.ndarray:
    """Rupees blocked by open positions at each instant of ``index``.

    Args:
        fills: The run's fills, each with its ``bar`` on the timeline ``index``.
        index: The run's timeline, UTC ns.
        closes: Per instrument, its bars' ``(ts, close)``.
        instruments: Instrument models by name.
        product_of: ``instrument name -> product``.
        rules: The run's product rules; None: every position blocks its whole value.
    """
    n = len(index)
    out = np.zeros(n)
    by_inst: dict[str, list[Fill]] = {}
    for f in fills:
        by_inst.setdefault(f.instrument, []).append(f)
    for inst, rows in by_inst.items():
        # a fill in a candle that never closed (the run stopped inside it) counts at the last bar
        bars = np.minimum(np.array([f.bar for f in rows], dtype=np.int64), max(n - 1, 0))
        signed = np.array([f.signed_quantity for f in rows], dtype=float)
        pos = np.cumsum(np.bincount(bars, weights=signed, minlength=n)[:n])
        ts, close = closes[inst]
        k = np.searchsorted(ts, index, side="right") - 1
        last = np.where(k >= 0, np.asarray(close, dtype=float)[np.clip(k, 0, None)], 0.0)
        if rules is None:
            out += np.abs(pos) * last
            continue
        model, product = instruments[inst], product_of(inst)
        for short in (False, True):
            pct, _, unit = rules.margin_basis(model, product, short, np.nan)
            side = np.where(pos < 0, -pos, 0.0) if short else np.where(pos > 0, pos, 0.0)
            # NaN back: a percent of the price; a number: of a fixed notional (a short option's strike)
            out += side * (last if np.isnan(unit) else unit) * pct / 100.0
    return out
