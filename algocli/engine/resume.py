"""Rebuilding strategies' own state when a paper or live run resumes from its journal.

The journal restores candles, orders, fills and positions, but not what a strategy keeps
in its own attributes (the previous bar's averages, a counter, a flag). On a resume each
journaled candle is replayed through ``on_candle`` in timeline order, each history's
cursor on that candle, with order entry muted: submissions, cancels and modifications are
dropped, and risk checks are not run. Reads are live: ``ctx.open_orders()`` and
``ctx.get_position()`` show the restored orders and positions (as they are now, not as
they were at the replayed candle), so strategies keep order and position knowledge in the
context rather than in private memory; the bundled ones do. Option chains are the
exception: a paper or live run's come from the broker, which serves today's chain, not the
replayed candle's, so while candles are replayed ``ctx.option_chain`` and ``ctx.pcr`` read
as "no chain yet" (None), as before a run's first fetch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from algocli.domain.candle import Candle
from algocli.errors import StrategyError
from algocli.options.source import ChainSource

if TYPE_CHECKING:
    from algocli.broker.orderbook import OrderRouter
    from algocli.domain.models import Order, Signal
    from algocli.engine.core import EngineCore


class _NoPastChains(ChainSource):
    """The chain source while candles are replayed: a past candle's chain is not known (and so
    neither its PCR: ``ChainSource.pcr`` of no chain)."""

    def chain(self, underlying: str, expiry="current", *, greeks: bool = True, max_age: float | None = None):
        return None


class MutedRouter:
    """An ``OrderRouter`` that reads through to the real one and drops every order action."""

    def __init__(self, router: OrderRouter) -> None:
        self._router = router
        self.orders = router.orders
        self.fills = router.fills
        self.pending = router.pending

    def submit(self, strategy_id: str, signal: Signal, ts: int, timeline_bar: int) -> Order | None:
        return None

    def deny(self, strategy_id: str, signal: Signal, ts: int, reason: str) -> None:
        return None

    def submit_basket(self, strategy_id: str, signals: list[Signal], ts: int, timeline_bar: int,
                      tag: str) -> list[Order]:
        return []

    def cancel(self, order_id: str, strategy_id: str, ts: int | None = None,
               reason: str = "cancelled by strategy") -> bool:
        return False

    def modify(self, order_id: str, strategy_id: str, quantity: int | None, price: float | None) -> bool:
        return False

    def open_orders(self, strategy_id: str | None = None, instrument: str | None = None) -> list[Order]:
        return self._router.open_orders(strategy_id, instrument)

    def on_tick(self, instrument: str, price: float, ts: int, timeline_bar: int) -> None:
        return None


def replay_candles(core: EngineCore, clock, exclude: set[str] = frozenset()) -> dict[str, StrategyError]:
    """Replay every candle in the histories through the strategies, order entry muted.

    Args:
        core: The engine core, its histories restored from the journal and ``on_init``
            already called.
        clock: The run's clock (``ts_mv`` timeline and ``cursor``).
        exclude: Strategy ids not to replay (halted ones).

    Returns:
        The strategies that raised, with the error; they are not replayed further.
    """
    histories = core.histories
    subs: dict[str, list] = {inst: [] for inst in histories}
    for slot in core.slots:
        if slot.id not in exclude:
            for inst in slot.instruments:
                subs[inst].append(slot)
    failed: dict[str, StrategyError] = {}
    real, risk, chains = core.broker, core.risk, getattr(core, "chains", None)
    core.broker, core.risk = MutedRouter(real), None
    if chains is not None:  # the broker's chains are today's: not asked for past candles
        core.chains = _NoPastChains()
    nxt = {inst: 0 for inst in histories}
    try:
        for k, ts in enumerate(clock.ts_mv):
            clock.cursor = k
            due = []
            for inst, h in histories.items():
                i = nxt[inst]
                while i < h.length and h.ts_mv[i] <= ts:  # a late candle may be off the timeline
                    due.append((h, i))
                    i += 1
                nxt[inst] = i
            for h, i in due:
                h.cursor = i
                candle = Candle((h, i, h.instrument))
                for slot in subs[h.instrument]:
                    if slot.id in failed:
                        continue
                    try:
                        slot.strategy.on_candle(candle)
                    except Exception as exc:
                        failed[slot.id] = exc if isinstance(exc, StrategyError) else StrategyError(
                            f"strategy {slot.id} raised {type(exc).__name__} on {h.instrument} while its "
                            f"state was rebuilt from the journal: {exc}")
    finally:
        core.broker, core.risk = real, risk
        if chains is not None:
            core.chains = chains
        for h in histories.values():
            h.cursor = h.length - 1
        clock.cursor = len(clock.ts_mv) - 1
    return failed


def position_gaps(instruments: list[str], net: dict[str, int], theirs: dict[str, int],
                  baseline: dict[str, int]) -> list[tuple[str, int, int]]:
    """Where the broker does not hold what the account held at the start plus this run's fills.

    Args:
        instruments: The run's instruments.
        net: This run's net quantity per instrument (its ledger).
        theirs: The broker's net positions.
        baseline: What the account held when the run first started.

    Returns:
        ``(instrument, expected, broker's)`` for each instrument that differs.
    """
    ours = dict(baseline)
    for inst, qty in net.items():
        ours[inst] = ours.get(inst, 0) + qty
    return [(inst, ours.get(inst, 0), theirs.get(inst, 0)) for inst in instruments
            if ours.get(inst, 0) != theirs.get(inst, 0)]
