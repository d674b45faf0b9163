"""Benchmark: tick-to-order latency of ``algo paper`` with 100 instruments on the Dhan protocol.

An ``algo sandbox`` child process replays generated 1-minute candles of 100 instruments
over the Dhan market feed v2 protocol; in this process a ``DhanDataFeed`` decodes them and
a ``PaperEngine`` runs a strategy that places a market order on every candle, so every
tick that closes a candle produces an order. Two figures per order, both measured from
``Tick.received_ns`` (taken when the WebSocket message is handed to the feed, before it
is decoded):

* submit: when the order reaches ``SimulatedBroker.submit`` (journaled, not yet filled);
* tick done: ``PaperEngine.stats.latencies_ns``, after the engine has also matched the
  order on the same tick (it fills there, as next-open fills do) and journaled the fill.

Every candle, order and fill is fsynced to the journal before it takes effect, so the
figures include two fsyncs per candle-closing tick (the order and its fill) on the disk holding ``--journal-dir``.
Usage::

    python benchmarks/bench_paper_latency.py [--instruments 100] [--bars 40] [--speed 1200]
                                             [--journal-dir DIR]

The bar is p99 < 2 ms. If ``benchmarks/bench_dhan_decode.py`` is importable, its
per-message decode rate is printed as well.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from algocli import BaseStrategy, Signal, SignalAction  # noqa: E402
from algocli.adapters.dhan.data import DhanDataFeed  # noqa: E402
from algocli.broker.costs import PercentCommission  # noqa: E402
from algocli.broker.fill_models import NextOpen  # noqa: E402
from algocli.adapters.dhan.settings import DhanSettings  # noqa: E402
from algocli.domain.models import Interval  # noqa: E402
from algocli.engine.paper import PaperEngine  # noqa: E402

ALGO = Path(sys.executable).parent / "algo"
TARGET_P99_MS = 2.0


class EveryCandle(BaseStrategy):
    """Buys one unit on a candle when flat, sells it on the next: an order on every candle."""

    def on_candle(self, candle):
        inst = candle.instrument
        pos = self.context.get_position(inst)
        if pos is None or pos.quantity == 0:
            return Signal(inst, SignalAction.BUY, 1)
        return Signal(inst, SignalAction.SELL, pos.quantity)


def write_data(folder: Path, instruments: int, bars: int, seed: int = 11) -> list[str]:
    """``instruments`` CSVs of ``bars`` 1-minute candles from 2024-06-10 09:15 IST."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-06-10T09:15")
    stamps = [str(start + np.timedelta64(i, "m")).replace("T", " ") + ":00" for i in range(bars)]
    ids = []
    for k in range(instruments):
        sid = 10_001 + k
        close = 100.0 * (1 + k / 10) * np.exp(np.cumsum(rng.normal(0, 0.001, bars)))
        open_ = np.r_[close[0], close[:-1]]
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, bars))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, bars))
        volume = rng.integers(1_000, 50_000, bars)
        rows = [f"{t},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{v}"
                for t, o, h, lo, c, v in zip(stamps, open_, high, low, close, volume)]
        (folder / f"NSE_EQ_{sid}.csv").write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
        ids.append(f"NSE_EQ:{sid}")
    return ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


async def wait_health(port: int, pred, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = await asyncio.to_thread(health, port)
        if h is not None and pred(h):
            return h
        await asyncio.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


async def run(instruments: list[str], port: int, journal: Path, timeout: float) -> tuple[PaperEngine, list[int], dict]:
    engine = PaperEngine(instruments, interval=Interval.MINUTE_1, initial_capital=1e9, fill_model=NextOpen(),
                         cost_model=PercentCommission(0.0003), journal_path=journal, name="bench-latency")
    engine.add_strategy(EveryCandle(), instruments, "every")
    at_submit: list[int] = []
    current = [None]
    on_tick, submit = engine.on_tick, engine.broker.submit

    def tick_hook(tick):
        current[0] = tick
        on_tick(tick)

    def submit_hook(*args, **kwargs):
        order = submit(*args, **kwargs)
        tick = current[0]
        if tick is not None and tick.received_ns:
            at_submit.append(time.monotonic_ns() - tick.received_ns)
        return order

    engine.broker.submit = submit_hook

    def settings() -> DhanSettings:
        return DhanSettings(feed_url=f"ws://127.0.0.1:{port}/dhan/feed", client_id="bench",
                            access_token="sandbox", _env_file=None)

    feed = DhanDataFeed(settings, mode="quote", name="bench")
    feed.on_tick(tick_hook)
    await feed.connect()
    await feed.subscribe(instruments)
    engine.start()
    try:
        done = await wait_health(port, lambda h: h["replay_done"], timeout, "the replay to finish")
        await asyncio.sleep(0.5)  # the last packets
    finally:
        await feed.disconnect()
    engine.stop(engine.exchange_now())
    return engine, at_submit, {"health": done, "malformed": feed.status.malformed,
                               "reconnects": feed.status.reconnects}


def summary(label: str, ns: list[int]) -> str:
    a = np.asarray(ns, dtype=np.float64) / 1e6
    p50, p99 = np.percentile(a, [50, 99])
    return f"  {label:<34} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   max {a.max():7.3f} ms   n {len(a):,}"


def decode_rate() -> str | None:
    try:
        import bench_dhan_decode as dec
    except ImportError:
        return None
    if not (hasattr(dec, "make_packets") and hasattr(dec, "bench_messages")):
        return None
    rate = dec.bench_messages(dec.make_packets(100_000), 3)
    return f"Dhan decode (bench_dhan_decode.bench_messages, 100,000 packets): {rate:,.0f} packets/s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instruments", type=int, default=100)
    ap.add_argument("--bars", type=int, default=40, help="1-minute candles per instrument")
    ap.add_argument("--speed", type=float, default=1200.0, help="sandbox speed (1200: 50 ms per minute bar)")
    ap.add_argument("--journal-dir", type=Path, default=None, help="where the journal is fsynced (default: a temp dir)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-paper-") as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        data.mkdir()
        instruments = write_data(data, args.instruments, args.bars)
        journal_dir = args.journal_dir or tmp
        journal_dir.mkdir(parents=True, exist_ok=True)
        journal = journal_dir / f"bench-latency-{os.getpid()}.jsonl"
        port = free_port()
        env = {**os.environ, "NO_COLOR": "1"}
        proc = subprocess.Popen([str(ALGO), "sandbox", "--data", str(data), "--speed", f"{args.speed:g}",
                                 "--port", str(port), "--wait-for-client"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while health(port) is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the sandbox did not start (exit {proc.poll()})")
                time.sleep(0.1)
            wall = args.bars * 60 / args.speed
            engine, at_submit, info = asyncio.run(run(instruments, port, journal, timeout=wall * 5 + 30))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            journal.unlink(missing_ok=True)

    h = info["health"]
    print(f"paper latency, {args.instruments} instruments x {args.bars} one-minute bars over the Dhan protocol "
          f"(sandbox speed {args.speed:g}, journal fsynced in {journal_dir if args.journal_dir else 'a temp dir'})")
    print(f"  ticks published {h['ticks_published']:,}, received {engine.stats.ticks:,}; candles "
          f"{engine.stats.candles:,}; orders {len(engine.broker.orders):,}; fills {len(engine.broker.fills):,}; "
          f"malformed {info['malformed']}, reconnects {info['reconnects']}")
    if not at_submit or not engine.stats.latencies_ns:
        print("  no order was placed: nothing to measure")
        return 1
    print(summary("packet -> order at the broker", at_submit))
    print(summary("packet -> tick done (order filled)", engine.stats.latencies_ns))
    p99 = float(np.percentile(np.asarray(at_submit) / 1e6, 99))
    print(f"  bar p99 < {TARGET_P99_MS:g} ms (packet -> order): {'meets' if p99 < TARGET_P99_MS else 'MISSES'}")
    rate = decode_rate()
    if rate:
        print(rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
