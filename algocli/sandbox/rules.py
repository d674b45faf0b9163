"""What the sandbox's exchange refuses or ends by itself: the price band and the market's hours.

**Price band.** NSE gives stocks with derivatives, and index futures, a *dynamic operating
range of 10 %* around the day's base price, and rejects orders priced outside it ("FAQs on Price
Band/ Operating Range Flex", https://nseindia.com/trade/price-band-operating-range-flex-faqs, and the
NSE circular reported at https://business-standard.com/article/pti-stories/nse-to-introduce-dynamic-price-band-for-futures-contracts-119020801406_1.html). The sandbox
applies that simplest rule to every LIMIT order and LIMIT modification: the price must lie
within ±10 % of the base price, which is the instrument's previous session close (its last
replayed price of the session before) or, on the first replayed session, that session's
first price. Not modelled: the range's widening in 5 % steps after trades near the edge, the
fixed 2-20 % bands of stocks without derivatives (set per stock by the exchange), and
options, whose ranges are delta-based (an engine given the option ids leaves them
unbanded). MARKET orders carry no price to check.

**Hours.** The replay announces each session's close (``Exchange.close_session``): every
working order then expires, as the exchange ends DAY (and IOC) validity at the close, and the
market stays closed until the next session's first tick. An order placed while it is closed is
rejected, unless it is an after-market order (Dhan's ``afterMarketOrder``,
https://dhanhq.co/docs/v2/orders/; Upstox's ``is_amo``,
https://upstox.com/developer/api-documentation/place-order), which waits for the next session's open.
"""

from __future__ import annotations

from collections.abc import Collection

from algocli.domain.candle import ns_to_ist
from algocli.domain.models import IST_OFFSET_NS, Tick
from algocli.domain.session import DAY_NS

__all__ = ["CLOSED_REASON", "OPERATING_RANGE", "PriceBands", "expired_reason"]

OPERATING_RANGE = 0.10  # NSE's dynamic operating range, as a fraction of the base price
CLOSED_REASON = ("the market is closed: orders are taken from the next session's open; send it as an after-market "
                 "order (AMO) to queue it for the open")
_SLACK = 1e-9  # a price exactly on the edge is inside


def expired_reason(close_ns: int) -> str:
    """Why a working order ended at the session close ``close_ns`` (UTC ns)."""
    return f"validity ran out: the order was still unfilled at the session's close ({ns_to_ist(close_ns):%H:%M} IST)"


def _day(ns: int) -> int:
    return (ns + IST_OFFSET_NS) // DAY_NS


class PriceBands:
    """Each instrument's base price for the session, and the band orders must be priced in.

    Args:
        width: Half-width of the band as a fraction of the base price (None: no band at all).
        unbanded: Instruments without a band (options, whose ranges are delta-based).
    """

    def __init__(self, width: float | None = OPERATING_RANGE, unbanded: Collection[str] = ()) -> None:
        self.width = width
        self.unbanded = frozenset(unbanded)
        self.base: dict[str, float] = {}

    def on_tick(self, tick: Tick, previous: Tick | None) -> None:
        """Note ``tick``; ``previous`` is the instrument's tick before it (None for its first)."""
        if previous is None:
            self.base[tick.instrument] = tick.ltp  # the first replayed session: its first price
        elif _day(previous.ts) != _day(tick.ts):
            self.base[tick.instrument] = previous.ltp  # a new session: the previous session's close

    def problem(self, instrument: str, price: float) -> str:
        """Why a LIMIT price is refused ("" when it is inside the band, or nothing is known yet)."""
        base = self.base.get(instrument)
        if self.width is None or base is None or instrument in self.unbanded:
            return ""
        low, high = base * (1 - self.width), base * (1 + self.width)
        if low - _SLACK <= price <= high + _SLACK:
            return ""
        return (f"price {price:.2f} is outside the day's operating range {low:.2f}-{high:.2f} of {instrument} "
                f"(±{self.width:.0%} of the base price {base:.2f}); price the order inside it")
