"""Paper and live chains: fetched from the feed's broker when a strategy asks, and recorded in ``pcr.csv``.

``ctx.option_chain``/``ctx.pcr`` in ``algo paper`` and ``algo live`` call the same fetchers as ``algo pcr``
(``algocli.adapters.dhan.options``, ``algocli.adapters.upstox.options``), against the broker the run's feed
reads: ``feed: dhan`` (``DHAN_*``), ``feed: upstox`` (``UPSTOX_*``), or ``feed: sandbox`` (the sandbox's URL
and token, the chain endpoints of ``data.protocol``).

* **Refresh**: a snapshot is reused while it is younger than ``max_age`` seconds (default
  ``DEFAULT_MAX_AGE``, 60) of exchange time (the feed's clock: wall time live, the replay's time
  against the sandbox), so a strategy asking on every 1-minute candle costs one request a minute.
  Dhan allows one chain request per 3 s per client (https://dhanhq.co/docs/v2/option-chain/); its
  process-wide limiter spaces the calls, so asking for several underlyings or expiries at once waits.
* **Blocking**: the fetch runs on a worker thread while the strategy waits for it (one HTTP round trip
  per refresh, at most ``timeout`` seconds): a strategy sees the chain of the moment it asked, as in
  a backtest. The expiry list is fetched once per underlying and IST day. Against the sandbox each
  request also says the run's exchange time (``X-Sandbox-Time``), so a replay running ahead of the
  run (``--speed 0``) still answers the chain of the moment the strategy asked (``algocli.sandbox.options``).
* **Failures**: a failed fetch leaves a line for the operator and returns the previous snapshot, or
  None when there is none yet; strategies treat None as "no chain now".
* **Record**: each fetched snapshot's summary (``algocli.options.source.pcr_row``) is appended to
  ``pcr.csv`` in the run's folder, the mode named as ``run.json`` names it; a backtest replays the
  file with ``data.options.pcr``.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from algocli.options.chain import OptionChain
from algocli.options.pcr import DEFAULT_WINDOW, PcrFigures, summarise
from algocli.options.source import CSV_COLUMNS, ChainSource, pcr_row

__all__ = ["BrokerChains", "ChainFetcher", "DEFAULT_MAX_AGE", "NoChains", "PCR_FILE", "SANDBOX_CLOCK_HEADER",
           "attach_broker_chains", "fetcher_for"]

DEFAULT_MAX_AGE = 60.0  # seconds of exchange time a snapshot is reused for
PCR_FILE = "pcr.csv"
_REQUEST_TIMEOUT = 10.0
SANDBOX_CLOCK_HEADER = "X-Sandbox-Time"  # the client's exchange time, UTC ns; only the sandbox reads it


class ChainFetcher:
    """One broker's chain and expiry calls, run to completion from synchronous code.

    Args:
        broker: ``dhan`` or ``upstox``.
        settings: Builds the broker's settings (base URL, token, client id).
        timeout: Longest wait for one call, retries and rate-limit spacing included.
        sandbox: Say the caller's exchange time (``at``) in ``SANDBOX_CLOCK_HEADER`` (``feed: sandbox``).
    """

    def __init__(self, broker: str, settings: Callable[[], object], timeout: float = 30.0,
                 sandbox: bool = False) -> None:
        self.broker = broker
        self._settings = settings
        self.timeout = timeout
        self.sandbox = sandbox

    def expiries(self, underlying: str, at: int | None = None) -> list[date]:
        """The underlying's live expiries (one request); ``at``: the caller's exchange time, UTC ns."""
        return self._call(lambda mod, client, extra: mod.fetch_expiries(client, underlying, *extra), at)

    def chain(self, underlying: str, expiry: date, at: int | None = None) -> OptionChain:
        """Every strike of the underlying's ``expiry`` (one request); ``at`` as for ``expiries``."""
        return self._call(lambda mod, client, extra: mod.fetch_chain(client, underlying, expiry, *extra), at)

    def _call(self, request, at: int | None):
        box: dict = {}
        headers = {SANDBOX_CLOCK_HEADER: str(at)} if self.sandbox and at else None
        worker = threading.Thread(target=self._work, args=(request, box, headers), name="option-chain", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            raise TimeoutError(f"no answer from {self.broker} within {self.timeout:g} s")
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _work(self, request, box: dict, headers: dict | None) -> None:
        import asyncio

        try:
            box["value"] = asyncio.run(self._request(request, headers))
        except BaseException as exc:  # handed to the waiting strategy thread
            box["error"] = exc

    async def _request(self, request, headers: dict | None):
        import aiohttp

        settings = self._settings()
        async with aiohttp.ClientSession(headers=headers) as session:
            if self.broker == "dhan":
                from algocli.adapters.dhan import options as mod
                from algocli.adapters.dhan.http import DhanRest

                client, extra = DhanRest(session, settings, retries=2, timeout=_REQUEST_TIMEOUT), \
                    (settings.client_id,)
            else:
                from algocli.adapters.upstox import options as mod
                from algocli.adapters.upstox.http import UpstoxRest

                client, extra = UpstoxRest(session, settings, retries=2, timeout=_REQUEST_TIMEOUT), ()
            return await request(mod, client, extra)


def fetcher_for(feed: str, config: object) -> ChainFetcher | None:
    """The chain fetcher of a run's feed (``feed: dhan``, ``upstox`` or ``sandbox``); None for another feed."""
    if feed == "sandbox":
        base, token = str(config.url).rstrip("/"), config.token
        if config.protocol == "dhan":
            from algocli.adapters.dhan.settings import DhanSettings

            return ChainFetcher("dhan", lambda: DhanSettings(api_base_url=f"{base}/v2", client_id="sandbox",
                                                             access_token=token, _env_file=None), sandbox=True)
        from algocli.adapters.upstox.settings import UpstoxSettings

        return ChainFetcher("upstox", lambda: UpstoxSettings(api_base_url=base, access_token=token, _env_file=None),
                            sandbox=True)
    if feed == "dhan":
        from algocli.adapters.dhan.settings import DhanSettings

        return ChainFetcher("dhan", DhanSettings)
    if feed == "upstox":
        from algocli.adapters.upstox.settings import UpstoxSettings

        return ChainFetcher("upstox", UpstoxSettings)
    return None


class NoChains(ChainSource):
    """A paper or live run whose feed has no chain endpoint: every ask is a clear error."""

    def __init__(self, feed: str) -> None:
        self.feed = feed

    def chain(self, underlying: str, expiry="current", *, greeks: bool = True, max_age: float | None = None):
        raise ValueError(f"option chains in paper and live runs come from the feed's broker, and feed "
                         f"{self.feed!r} has none; use feed dhan, upstox or sandbox")


class BrokerChains(ChainSource):
    """Snapshots from a broker, refreshed when older than ``max_age`` and recorded (module docstring).

    Args:
        fetcher: The broker's chain calls.
        core: The engine core (the candle being processed, for the record's ``bar``).
        clock: Exchange time now, UTC ns (0 before the first tick: wall time is used).
        record: The ``pcr.csv`` to append each snapshot's summary to (None: no record).
        mode: The run's mode for the record (``RunMode`` value).
        notes: Receives a line per failed fetch (the engine's operator events).
    """

    def __init__(self, fetcher: ChainFetcher, core, *, clock: Callable[[], int], record: Path | None,
                 mode: str, notes: list[str] | None = None) -> None:
        self.fetcher = fetcher
        self._core = core
        self._clock = clock
        self.record = record
        self.mode = mode
        self.notes = notes if notes is not None else []
        self.window = DEFAULT_WINDOW  # the last window ``pcr`` was asked for: the record's window_* figures
        self._snaps: dict[tuple[str, date], tuple[int, OptionChain]] = {}
        self._expiries: dict[str, tuple[date, list[date]]] = {}  # underlying -> (IST day, expiries)
        self.fetches = 0
        self._cut = False  # a torn last row of the record is cut once, before this run's first append

    def _now(self) -> int:
        return self._clock() or time.time_ns()

    def chain(self, underlying: str, expiry="current", *, greeks: bool = True, max_age: float | None = None
              ) -> OptionChain | None:
        from algocli.domain.session import ist_date
        from algocli.errors import UsageError
        from algocli.strategy.contracts import canonical_underlying, pick_expiry

        key = canonical_underlying(underlying)
        now = self._now()
        limit = (DEFAULT_MAX_AGE if max_age is None else max_age) * 1e9
        try:
            listed = self._listed(key, ist_date(now), now)
        except UsageError as exc:  # an underlying the broker lists no chain for
            raise ValueError(str(exc)) from None
        except Exception as exc:
            return self._failed(key, exc)
        day = pick_expiry(listed, ist_date(now), expiry)  # a code that fits no listed expiry: ValueError
        snap = self._snaps.get((key, day))
        if snap is not None and now - snap[0] < limit:
            return snap[1]
        try:
            chain = self.fetcher.chain(key, day, now)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        except Exception as exc:
            return self._failed(key, exc)
        self.fetches += 1
        now = self._now()  # its age counts from its arrival, not from the wait for Dhan's 3-second slot
        self._snaps[(key, day)] = (now, chain)
        self._append(chain, now)
        return chain

    def _failed(self, key: str, exc: Exception) -> OptionChain | None:
        """The broker failed: a line for the operator, and the newest snapshot of ``key`` (None without one)."""
        self.notes.append(f"option chain of {key} ({self.fetcher.broker}) failed: {exc}; the strategy gets "
                          "the previous snapshot")
        old = [s for (k, _), s in self._snaps.items() if k == key]
        return max(old, key=lambda s: s[0])[1] if old else None

    def _listed(self, key: str, today: date, now: int) -> list[date]:
        cached = self._expiries.get(key)
        if cached is None or cached[0] != today:
            cached = self._expiries[key] = (today, self.fetcher.expiries(key, now))
        return cached[1]

    def pcr(self, underlying: str, expiry="current", n: int | None = None, *, max_age: float | None = None
            ) -> PcrFigures | None:
        if n is not None:
            self.window = n
        return super().pcr(underlying, expiry, n, max_age=max_age)

    def _append(self, chain: OptionChain, now: int) -> None:
        """Append the snapshot's row to ``record`` so that a reader never sees a half-written header.

        A run's ``pcr.csv`` is read while the run appends to it (``tail``, a backtest's
        ``data.options.pcr``), and a reader can catch a write half done. So the header comes into
        being with the first row by a rename, each later row is one ``write`` of a whole line, and a
        row a killed run left torn is cut before the first append (``read_pcr_csv`` skips one).
        """
        if self.record is None:
            return
        from algocli.domain.candle import ns_to_ist

        clock = getattr(self._core, "clock", None)
        bar = ns_to_ist(self._core.now_ns) if clock is not None and clock.ts_mv and clock.cursor >= 0 else None
        row = pcr_row(summarise(chain, self.window), taken_at=ns_to_ist(now), bar=bar, mode=self.mode)
        if not self._cut:
            from algocli.persistence.journal import cut_torn_tail

            cut_torn_tail(self.record)
            self._cut = True
        new = not self.record.exists() or self.record.stat().st_size == 0
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)
        if new:
            from algocli.persistence.artifacts import atomic_write_text

            atomic_write_text(self.record, text.getvalue())
        else:
            with open(self.record, "ab", buffering=0) as fh:
                fh.write(text.getvalue().encode("utf-8"))


def attach_broker_chains(engine, feed: str, feed_config: object, mode: str, out_dir: Path) -> None:
    """Give a paper or live engine's strategies chains from its feed's broker, recorded in ``out_dir/pcr.csv``.

    Nothing is fetched or written until a strategy asks.
    """
    fetcher = fetcher_for(feed, feed_config)
    if fetcher is None:
        engine.core.chains = NoChains(feed)
        return
    engine.core.chains = BrokerChains(fetcher, engine.core, clock=engine.exchange_now, record=Path(out_dir) / PCR_FILE,
                                      mode=mode, notes=engine.events)
