"""What a strategy can see and do: history, indicators, its positions, and order entry.

Every read is bounded by the current bar: at bar t an indicator equals TA-Lib applied to
the instrument's whole history up to and including t, and nothing after t is visible.
"""

from __future__ import annotations

import functools
import math
from numbers import Integral, Real
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from algocli.domain.models import (
    Order, OrderType, Position, Signal, SignalAction,
)

if TYPE_CHECKING:
    from algocli.data.history import History
    from algocli.options.chain import OptionChain
    from algocli.options.pcr import PcrFigures
    from algocli.strategy.contracts import OptionPick
    from algocli.strategy.lines import Crossing, Line
    from algocli.domain.candle import Candle
    from algocli.engine.core import EngineCore

_NAN = math.nan


class _NotRead:
    length = 0


_UNREAD = (_NotRead(), -1, None)  # an SMA entry whose length never matches: read it


class IndicatorRead(NamedTuple):
    """One TA-Lib series a strategy read, for drawing it beside the candles it was read on.

    Attributes:
        strategy: The reading strategy's id.
        instrument: The instrument whose history it was computed on.
        name: TA-Lib function name (``SMA``, ``BBANDS``...).
        params: The function's parameters as the strategy passed them.
        price: Input column for single-input functions, None for TA-Lib's default (close).
        group: TA-Lib's group (``Overlap Studies`` are drawn on the price scale).
        outputs: Output name (``real``, ``upperband``...) to the series over the whole history.
        styles: Output name to TA-Lib's drawing hint (``Line``, ``Dashed Line``, ``Histogram``...).
    """

    strategy: str
    instrument: str
    name: str
    params: dict
    price: str | None
    group: str
    outputs: dict[str, np.ndarray]
    styles: dict[str, str]


def _shared(a: str, b: str) -> int:
    """Length of the longest run of characters ``a`` and ``b`` share."""
    import difflib

    return difflib.SequenceMatcher(None, a, b).find_longest_match().size


class StrategyContext:
    """The strategy's window onto the run. One context per strategy."""

    __slots__ = ("_core", "_histories", "_strategy_id", "warmup", "_cache", "_sma", "_read", "_chains", "_baskets",
                 "wake", "started")

    def __init__(self, core: EngineCore, strategy_id: str) -> None:
        self._core = core
        self._histories: dict[str, History] = core.histories
        self._strategy_id = strategy_id
        # First bar (per instrument) at which every indicator the strategy asked for is
        # defined; buy & hold is measured from there, as backtesting.py does.
        self.warmup: dict[str, int] = {}
        self._cache: dict[tuple, tuple] = {}
        self._sma: dict[str, dict] = {}  # instrument -> period -> entry, the hottest read
        # (instrument, history key) -> (name, params, price): what the report draws. Filled on a
        # cache miss only, so a backtest records each series once and no bar pays for it.
        self._read: dict[tuple, tuple] = {}
        self._chains: dict[str, list] = {}  # underlying -> its option rows, listed once per run
        self._baskets = 0
        self.wake: dict[str, list[Crossing]] = {}  # instrument -> the conditions that call on_candle (wake_on)
        self.started = False  # set once every on_init has run

    def __getattr__(self, name: str):
        """Only reached for a name the context lacks: say which one a strategy may have meant."""
        if name.startswith("_"):
            raise AttributeError(name)
        import difflib

        public = [n for n in dir(type(self)) if not n.startswith("_")]
        near = difflib.get_close_matches(name, public, n=1, cutoff=0.6) or [
            n for n in public if _shared(name, n) >= min(5, len(name))]  # `history`: `get_historical`
        hint = f"did you mean {' or '.join(f'`{n}`' for n in near[:2])}?" if near else f"it has {', '.join(public)}"
        raise AttributeError(f"the strategy context has no `{name}`; {hint}")

    @property
    def strategy_id(self) -> str:
        return self._strategy_id

    # --- data -------------------------------------------------------------------------

    def _history(self, instrument: str) -> History:
        try:
            return self._histories[instrument]
        except KeyError:
            named = self._core.aliases.get(instrument)  # a broker id of a run instrument
            if named is not None:
                return self._histories[named]
            known = ", ".join(sorted(self._histories)) or "none"
            raise KeyError(f"no data for {instrument!r} in this run (loaded: {known})") from None

    def get_historical(self, instrument: str, periods: int, field: str = "close") -> np.ndarray:
        """The last ``periods`` values of ``field`` up to the current bar (read-only).

        Raises:
            ValueError: ``periods`` is negative or not a whole number (a slice would quietly give
                an empty or wrong window).
        """
        if periods.__class__ is not int or periods < 0:  # an int is the per-bar case: no ABC check for it
            if not isinstance(periods, Integral) or isinstance(periods, bool) or periods < 0:
                raise ValueError(f"get_historical periods must be a whole number of bars, 0 or more, got {periods!r}")
        return self._history(instrument).window(periods, field)

    def get_candle(self, instrument: str, offset: int = 0) -> Candle | None:
        """The current candle (``offset=0``) or an earlier one (``-1`` is the previous)."""
        from algocli.domain.candle import Candle

        h = self._history(instrument)
        i = h.clock.cursor + offset
        if offset > 0 or i < 0:
            return None
        return Candle((h, i, h.instrument))

    @property
    def now(self):
        """Start time of the bar being processed (aware IST datetime)."""
        from algocli.domain.candle import ns_to_ist

        return ns_to_ist(self._core.now_ns)

    # --- indicators ---------------------------------------------------------------------
    #
    # Each context keeps its own cache, key -> (history, outputs, length). The TA-Lib work
    # itself is shared per history (``History.indicator``), so two strategies asking for
    # the same SMA compute it once, while each records its own warm-up for buy & hold.
    # ``length`` detects a history that grew (paper and live append bars).

    def _entry(self, key: tuple, instrument: str, name: str, params: dict, price: str | None) -> tuple:
        h = self._history(instrument)
        hkey = (name, price, tuple(sorted(params.items())))
        try:
            if hkey not in h.indicators:
                _check_arguments(name, params, price)
            outputs = h.indicator(hkey, name, params, price)
        except Exception as exc:  # TA-Lib's own errors name neither the call nor the fix
            raise ValueError(f"indicator {name}({params}) on {h.instrument} failed: {exc}") from exc
        self.warmup[h.instrument] = max(self.warmup.get(h.instrument, 0), h.first_valid[hkey])
        if (h.instrument, hkey) not in self._read:
            self._read[(h.instrument, hkey)] = (name, dict(params), price)
        entry = (h, outputs, h.length, outputs[0])
        self._cache[key] = entry
        return entry

    def _outputs(self, key: tuple, instrument: str, name: str, params: dict, price: str | None) -> tuple:
        e = self._cache.get(key)
        if e is None or e[0].length != e[2]:
            e = self._entry(key, instrument, name, params, price)
        return e

    def _sma_entry(self, instrument: str, period: int, field: str) -> tuple:
        h, _, length, values = self._entry(("SMA", instrument, period, field), instrument, "SMA",
                                           {"timeperiod": period}, field)
        e = self._sma.setdefault(instrument, {})[period if field == "close" else (period, field)] = (h, length, values)
        return e

    def sma(self, instrument: str, period: int, field: str = "close") -> float:
        """Simple moving average of ``field``."""
        # Strategies call this every bar: nested dicts keyed by plain str/int skip building
        # and hashing a tuple key, which is most of the cost of a cached read, and one unpacking
        # of a (history, length, values) triple is cheaper than three subscripts.
        try:
            h, length, values = self._sma[instrument][period if field == "close" else (period, field)]
        except KeyError:  # computed below, outside the handler: an exception raised and kept while
            h, length, values = _UNREAD  # TA-Lib loads would hold this KeyError and its frames for good
        if h.length != length:
            h, length, values = self._sma_entry(instrument, period, field)
        i = h.clock.cursor
        return values[i] if i >= 0 else _NAN

    def ema(self, instrument: str, period: int, field: str = "close") -> float:
        """Exponential moving average, seeded exactly as TA-Lib seeds it over the full history."""
        e = self._outputs(("EMA", instrument, period, field), instrument, "EMA", {"timeperiod": period}, field)
        i = e[0].clock.cursor
        return e[3][i] if i >= 0 else _NAN

    def rsi(self, instrument: str, period: int = 14) -> float:
        """Relative strength index of closes."""
        e = self._outputs(("RSI", instrument, period), instrument, "RSI", {"timeperiod": period}, None)
        i = e[0].clock.cursor
        return e[3][i] if i >= 0 else _NAN

    def _triple(self, e: tuple) -> tuple[float, float, float]:
        i = e[0].clock.cursor
        if i < 0:
            return (_NAN, _NAN, _NAN)
        a, b, c = e[1]
        return (a[i], b[i], c[i])

    def macd(self, instrument: str, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[float, float, float]:
        """MACD line, signal line and histogram."""
        params = {"fastperiod": fast, "slowperiod": slow, "signalperiod": signal}
        return self._triple(self._outputs(("MACD", instrument, fast, slow, signal), instrument, "MACD", params, None))

    def bollinger_bands(self, instrument: str, period: int = 20, std: float = 2.0) -> tuple[float, float, float]:
        """Upper, middle and lower Bollinger band of closes."""
        params = {"timeperiod": period, "nbdevup": std, "nbdevdn": std, "matype": 0}
        return self._triple(self._outputs(("BBANDS", instrument, period, std), instrument, "BBANDS", params, None))

    def atr(self, instrument: str, period: int = 14) -> float:
        """Average true range."""
        e = self._outputs(("ATR", instrument, period), instrument, "ATR", {"timeperiod": period}, None)
        i = e[0].clock.cursor
        return e[3][i] if i >= 0 else _NAN

    def indicator(self, name: str, instrument: str, *, price: str | None = None, **params) -> float | tuple[float, ...]:
        """Any TA-Lib function by name, e.g. ``indicator("ADX", inst, timeperiod=14)``.

        Returns a float, or a tuple for functions with several outputs (in TA-Lib's order).
        ``price`` picks the input column for single-input functions (default ``close``).
        """
        name = name.upper()
        e = self._outputs((name, instrument, price, tuple(sorted(params.items()))), instrument, name, params, price)
        i = e[0].clock.cursor
        vals = tuple(o[i] if i >= 0 else _NAN for o in e[1])
        return vals[0] if len(vals) == 1 else vals

    def line(self, name: str, instrument: str, *, output: int = 0, price: str | None = None, **params) -> Line:
        """A TA-Lib output to read every bar by bars-ago: ``line[0]`` now, ``line[-1]`` the bar before.

        Ask for it once (in ``on_init``) and read it in ``on_candle``: a read costs an index,
        where ``sma``/``indicator`` look the series up on every call. Example::

            self.fast = self.context.line("SMA", inst, timeperiod=10)
            ...
            if self.fast.cross(self.slow) > 0: ...  # crossed above on this bar
        """
        from algocli.strategy.lines import Line

        name = name.upper()
        self._history(instrument)  # names the instrument when the run has no data for it
        try:  # at once, not on the first bar's read: a misspelt name or parameter is a setup error
            _check_arguments(name, params, price)
        except Exception as exc:
            raise ValueError(f"indicator line {name}({params}) on {instrument} failed: {exc}") from exc
        return Line(self, (name, instrument, price, tuple(sorted(params.items()))), instrument, name,
                    dict(params), price, output)

    def wake_on(self, *conditions: Crossing) -> None:
        """Call ``on_candle`` for a condition's instrument only on the bars where one of the
        conditions given for it holds, e.g. ``ctx.wake_on(fast.crossing(slow))``.

        For a strategy that acts only on such bars: the others cost it nothing, and a backtest
        skips them without calling into Python. Orders still fill on every bar. Call it in
        ``on_init``; an instrument without a condition gets every bar.
        """
        from algocli.strategy.lines import Crossing

        if self.started:
            raise RuntimeError("wake_on belongs in on_init: the run has already decided which bars call on_candle")
        for c in conditions:
            if not isinstance(c, Crossing):
                raise TypeError(f"wake_on takes conditions such as line.crossing(other), not {type(c).__name__}")
            self._history(c.instrument)  # names the instrument when the run has no data for it
            self.wake.setdefault(c.instrument, []).append(c)

    def indicator_series(self, name: str, instrument: str, periods: int, *, output: int = 0,
                         price: str | None = None, **params) -> np.ndarray:
        """The last ``periods`` values of a TA-Lib output up to the current bar (read-only)."""
        name = name.upper()
        e = self._outputs((name, instrument, price, tuple(sorted(params.items()))), instrument, name, params, price)
        end = e[0].clock.cursor + 1
        arr = np.frombuffer(e[1][output], dtype=np.float64)[max(0, end - periods): end]
        arr.flags.writeable = False  # a view into the cache: writing would corrupt later reads
        return arr

    def indicators_read(self) -> list[IndicatorRead]:
        """Every TA-Lib series this strategy has read, in first-read order, over the whole history.

        Called once when the run ends; a series the history dropped since (paper and live
        append bars) is computed again over the full length.
        """
        from algocli.data.ta import ta_function

        reads = []
        for (instrument, hkey), (name, params, price) in self._read.items():
            h = self._histories[instrument]
            outputs = h.indicator(hkey, name, params, price)
            fn = ta_function(name)  # its metadata
            flags = fn.info.get("output_flags", {})
            names = list(fn.output_names)
            reads.append(IndicatorRead(
                self._strategy_id, instrument, name, dict(params), price, fn.info.get("group", ""),
                {n: np.asarray(o) for n, o in zip(names, outputs)},
                {n: (flags.get(n) or ["Line"])[0] for n in names}))
        return reads

    # --- portfolio ----------------------------------------------------------------------

    def get_position(self, instrument: str) -> Position | None:
        """This strategy's open position in ``instrument``, or None when flat."""
        pos = self._core.ledger.positions.get((self._strategy_id, instrument))
        if pos is None and instrument in self._core.aliases:  # a broker id: the run's name for it
            instrument = self._core.aliases[instrument]
            pos = self._core.ledger.positions.get((self._strategy_id, instrument))
        if pos is None or pos.quantity == 0:
            return None
        h = self._histories.get(instrument)
        if h is not None and h.clock.cursor >= 0:
            pos.last_price = h.close_mv[h.clock.cursor]  # mark to the current close
        return pos

    def get_balance(self) -> float:
        """Account cash."""
        return self._core.ledger.cash

    def get_equity(self) -> float:
        """Account equity: cash plus positions at their last close."""
        return self._core.equity()

    def open_orders(self, instrument: str | None = None) -> list[Order]:
        """This strategy's working orders (of ``instrument``, or all), oldest first.

        After a paper or live run resumes, these are the orders restored from the journal
        or found at the broker: read them here instead of remembering order ids, and a
        restarted strategy moves or cancels the order it placed before the restart.
        """
        return self._core.broker.open_orders(self._strategy_id, instrument)

    get_open_orders = open_orders  # the specification's name

    # --- orders -------------------------------------------------------------------------

    def round_to_tick(self, instrument: str, price: float, side) -> float:
        """``price`` on the exchange's tick for ``instrument`` today, rounded against the trader:
        up for a buy, down for a sell (``side``: ``OrderSide``, ``"BUY"``/``"SELL"`` or True for a buy).

        A limit price off the tick is rejected with the tick in the reason; use this to place one
        that is not. The tick depends on the instrument and its price (NSE's price bands).
        """
        from algocli.domain.instrument import Instrument
        from algocli.domain.session import ist_date
        from algocli.market.ticks import round_to_tick

        h = self._history(instrument)  # an instrument not in the run: KeyError naming those that are
        inst = self._core.instruments.get(instrument) or Instrument(instrument)
        day = ist_date(h.ts_mv[h.cursor]) if h.cursor >= 0 else None  # before the first bar: today
        return round_to_tick(inst, price, side, day)

    def submit_order(self, signal: Signal) -> str | None:
        """Submit an order for ``signal``; returns its order id (None for HOLD)."""
        return self._core.submit(self._strategy_id, signal)

    def buy(self, instrument: str, quantity: int, limit_price: float | None = None, tag: str | None = None) -> str:
        """Submit a buy: market, or limit when ``limit_price`` is given."""
        otype = OrderType.LIMIT if limit_price is not None else OrderType.MARKET
        return self.submit_order(Signal(instrument, SignalAction.BUY, quantity, otype, limit_price, tag))

    def sell(self, instrument: str, quantity: int, limit_price: float | None = None, tag: str | None = None) -> str:
        """Submit a sell (or short sale): market, or limit when ``limit_price`` is given."""
        otype = OrderType.LIMIT if limit_price is not None else OrderType.MARKET
        return self.submit_order(Signal(instrument, SignalAction.SELL, quantity, otype, limit_price, tag))

    def close_position(self, instrument: str, tag: str | None = None) -> str | None:
        """Submit a market order that flattens this strategy's position, if any."""
        pos = self.get_position(instrument)
        if pos is None:
            return None
        if pos.quantity > 0:
            return self.sell(instrument, pos.quantity, tag=tag)
        return self.buy(instrument, -pos.quantity, tag=tag)

    # --- options and baskets ------------------------------------------------------------------

    def option(self, underlying: str, expiry="current", strike="ATM", right: str = "CE", *,
               spot: float | None = None) -> OptionPick:
        """The option contract named the way traders say it, e.g.
        ``ctx.option("NSE:NIFTY 50", expiry="current", strike="ATM+2", right="CE")``.

        Codes (``algocli.strategy.contracts``): expiry ``current``/``next`` (week), ``current_month``/
        ``next_month`` or a date; strike ``ATM``, ``ATM+N``/``ATM-N`` (listed strikes), ``OTMn``/``ITMn``, a
        number, or ``delta:X`` (the strike whose delta in ``option_chain`` is nearest X, -X for a put;
        in a backtest it needs vollib, the ``options`` extra). Contracts come from the run's option universe
        (a backtest's ``data.options``), ATM from the underlying's close at the current bar (or ``spot``).

        Args:
            underlying: The underlying's name (``NSE:NIFTY 50``).
            expiry: Expiry code or date.
            strike: Strike code or number.
            right: ``CE`` or ``PE``.
            spot: Price to find ATM against, instead of the underlying's current close.

        Returns:
            ``OptionPick``: ``name`` (trade it by this), ``lot_size`` (this contract's), ``instrument``, ``spot``.

        Raises:
            ValueError: A code does not fit the listed contracts, the underlying has no price yet, or the
                contract has no data in this run.
        """
        from algocli.domain.session import ist_date
        from algocli.strategy.contracts import OptionPick, canonical_underlying, options_on, pick_option

        key = canonical_underlying(underlying)
        rows = self._chains.get(key)
        if rows is None:
            universe = getattr(self._core, "universe", None) or self._core.instruments.values()
            rows = self._chains[key] = options_on(universe, key)
        if spot is None:
            h = self._histories.get(key) or self._histories.get(underlying)
            if h is None or h.cursor < 0:
                raise ValueError(f"no price for {key} yet: list it among the strategy's instruments (or pass spot=)")
            spot = float(h.close_mv[h.cursor])
        inst = pick_option(rows, key, spot, ist_date(self._core.now_ns), expiry=expiry, strike=strike, right=right,
                           chain_for=lambda day: self._chain_source().chain(key, day))
        if inst.hrn not in self._histories:
            raise ValueError(f"{inst.hrn} is listed but has no data in this run; add its CSV beside the options' "
                             "instruments.csv (data.options.path)")
        return OptionPick(inst.hrn, inst.lot_size, inst, spot)

    def _chain_source(self):
        source = getattr(self._core, "chains", None)
        if source is None:  # a backtest: chains from the option universe's bars, built when first asked
            from algocli.options.source import BarChains

            source = self._core.chains = BarChains(self._core)
        return source

    def option_chain(self, underlying: str, expiry="current", *, max_age: float | None = None) -> OptionChain | None:
        """The option chain of ``underlying``'s ``expiry`` now, e.g. ``ctx.option_chain("NSE:NIFTY 50")``.

        Per strike (``chain.rows``, ascending) a call and a put leg (``row.ce``/``row.pe``, either may be
        None) with ``ltp``, ``volume`` (the session's, in units), ``oi``, ``prev_oi`` (the previous
        session's close), ``change_in_oi``, ``iv_pct`` and ``delta``/``gamma``/``theta``/``vega``
        (None where not computable), and ``name`` (trade the leg by it); ``chain.spot`` and
        ``chain.expiry``. Figures from it: ``algocli.options.pcr`` (``summarise``, ``max_pain``,
        ``atm_strike``). Read it, do not modify it: it is shared by every call in the bar.

        In a backtest it is built at the current bar from ``data.options``' bars (last close, the day's
        cumulative volume, OI; greeks by Black-76 when vollib, the ``options`` extra, is installed).
        In paper and live it is the feed's broker's chain, fetched when the last one is older than
        ``max_age`` seconds and recorded in the run's ``pcr.csv`` (``algocli.options.broker_source``).

        Args:
            underlying: The underlying's name (``NSE:NIFTY 50``).
            expiry: Expiry code as for ``option`` (``current``, ``next``, ``current_month``, a date).
            max_age: Paper and live: seconds a snapshot is reused for (default 60); ignored in backtests.

        Returns:
            The ``algocli.options.chain.OptionChain``, or None when there is none now (before the first
            bars of the underlying and its options, or the broker failed and there was no earlier one).

        Raises:
            ValueError: The underlying has no options in this run, or the expiry code fits none.
        """
        return self._chain_source().chain(underlying, expiry, max_age=max_age)

    def pcr(self, underlying: str, expiry="current", window: int | None = None, *,
            max_age: float | None = None) -> PcrFigures | None:
        """The put-call ratios of ``underlying``'s ``expiry`` now, e.g. ``ctx.pcr("NSE:NIFTY 50", window=10)``.

        ``oi_pcr`` (Σ put OI / Σ call OI), ``vol_pcr`` (Σ put volume / Σ call volume, today's) and
        ``chg_oi_pcr`` (Σ put change in OI / Σ call change in OI, None unless both are positive), each
        None when its denominator is not positive, with the sums behind them (``put_oi``, ``call_oi``...):
        ``algocli.options.pcr.pcr`` over the chain ``option_chain`` returns. A backtest given
        ``data.options.pcr`` (a recorded ``pcr.csv``) returns the last recorded row at or before the bar
        instead.

        Args:
            underlying: The underlying's name (``NSE:NIFTY 50``).
            expiry: Expiry code as for ``option``.
            window: Strikes each side of ATM to count (None: the whole chain).
            max_age: Paper and live: seconds a snapshot is reused for (default 60).

        Returns:
            ``algocli.options.pcr.PcrFigures``, or None when there is no chain (or recorded row) yet.

        Raises:
            ValueError: As ``option_chain``; a bad ``window``; or a replayed file without that window.
        """
        return self._chain_source().pcr(underlying, expiry, window, max_age=max_age)

    def basket(self, legs, tag: str | None = None) -> list[str]:
        """Submit several legs (a straddle, strangle, spread, iron condor) as one basket.

        The legs are checked together (exchange rules, risk limits, and the margin of all of them
        at once) and placed all or none: if one fails, every leg is REJECTED with a reason that names
        the failing leg. Every leg carries ``tag`` (default ``basket-N``) in orders.csv and fills.csv.

        Live, the margin is checked against the broker's available funds before any leg is sent, and
        the legs go out buys first; a leg the broker refuses after others were accepted fails the
        basket: the others are cancelled and what filled is flattened by market orders tagged
        ``<tag>-unwind``, with a warning (``algocli.engine.live_basket``).

        Args:
            legs: ``Signal``s, or ``(instrument, "BUY"|"SELL", quantity)`` tuples (market orders).
            tag: The basket's common tag.

        Returns:
            The legs' order ids, in the legs' order.
        """
        import dataclasses

        self._baskets += 1
        tag = tag or f"basket-{self._baskets}"
        signals = [dataclasses.replace(_leg(leg), tag=tag) for leg in legs]
        if not signals:
            raise ValueError("a basket needs at least one leg")
        core, sid = self._core, self._strategy_id
        ts = core.now_ns
        reason = None
        if core.risk is not None:
            for k, signal in enumerate(signals, 1):
                why = core.risk.check(sid, signal, core)
                if why is not None:
                    reason = f"basket {tag}: leg {k} ({_describe(signal)}) refused: {why}"
                    break
        submit = getattr(core.broker, "submit_basket", None)
        if reason is None and submit is None:
            reason = f"basket {tag}: this run's broker places no baskets; submit the legs one by one"
        if reason is not None:
            return [core.deny(sid, signal, ts, reason).order_id for signal in signals]
        return [o.order_id for o in submit(sid, signals, ts, core.timeline_bar, tag)]

    def cancel_order(self, order_id: str) -> bool:
        """Cancel an open order; True if it was still open."""
        return self._core.broker.cancel(order_id, self._strategy_id, self._core.now_ns)  # stamped with this bar

    def modify_order(self, order_id: str, quantity: int | None = None, price: float | None = None) -> bool:
        """Change an open order's quantity or limit price; True if it was still open.

        Raises:
            ValueError: ``quantity`` is not a positive whole number, or ``price`` not a positive one.
        """
        if quantity is not None:
            if isinstance(quantity, bool) or not isinstance(quantity, Integral) or quantity <= 0:
                raise ValueError(f"modify_order quantity must be a positive whole number, got {quantity!r}")
            quantity = int(quantity)
        if price is not None and (isinstance(price, bool) or not isinstance(price, Real) or not 0 < price < math.inf):
            raise ValueError(f"modify_order price must be a positive number, got {price!r}")
        return self._core.broker.modify(order_id, self._strategy_id, quantity, price)


def _leg(leg) -> Signal:
    """A basket leg as a Signal: a Signal, or an ``(instrument, side, quantity)`` tuple."""
    if isinstance(leg, Signal):
        return leg
    try:
        instrument, side, quantity = leg
        action = SignalAction(str(side).upper())
        if action is SignalAction.HOLD:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"basket leg {leg!r} is not a Signal or (instrument, 'BUY'|'SELL', quantity)") from None
    return Signal(instrument, action, quantity)


def _describe(signal: Signal) -> str:
    return f"{signal.action.value} {signal.quantity} {signal.instrument}"


def _check_arguments(name: str, params: dict, price: str | None) -> None:
    """Reject what TA-Lib would silently ignore: a misspelled parameter, or ``price`` on a
    function without a single price input (it would run with its defaults instead)."""
    parameters, input_names = _ta_signature(name)
    unknown = sorted(set(params) - set(parameters))
    if unknown:
        known = ", ".join(parameters) or "none"
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; {name} takes: {known}")
    if price is not None and "price" not in input_names:
        raise ValueError(f"{name} reads {input_names}, so price= does not apply")


@functools.cache
def _ta_signature(name: str) -> tuple[tuple[str, ...], dict]:
    """A TA-Lib function's parameter names and inputs, read once per process (building the
    ``abstract.Function`` costs more than a small backtest's indicator)."""
    from algocli.data.ta import ta_function

    fn = ta_function(name)
    return tuple(fn.parameters), dict(fn.input_names)
