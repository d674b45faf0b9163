"""Benchmark: decoding Dhan market feed v2 packets into ``Tick`` objects on one core.

A realistic mix for 100 NSE instruments: 50% Quote, 30% Ticker, 20% Full packets, each
its own WebSocket message (how Dhan sends them), prices on the 0.05 grid and rising
cumulative volume. Measures ``DhanDecoder.decode`` called once per message, and once per
buffer of 64 concatenated packets (the framing loop). Usage::

    python benchmarks/bench_dhan_decode.py [--packets 300000] [--repeat 5]

Each figure is the best of ``--repeat`` runs; the target is 200,000 packets/s.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from algocli.adapters.dhan.parsing import (  # noqa: E402
    DepthLevel, DhanDecoder, encode_full, encode_quote, encode_ticker,
)

TARGET = 200_000


def make_packets(n: int, instruments: int = 100, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    price = [rng.uniform(100, 5000) for _ in range(instruments)]
    volume = [0] * instruments
    ltt = 1_735_000_000 + 19_800
    out = []
    for i in range(n):
        k = rng.randrange(instruments)
        sid = 1000 + k
        price[k] = max(1.0, price[k] + rng.choice((-0.05, 0.0, 0.05)))
        p = round(price[k] / 0.05) * 0.05
        qty = rng.randint(1, 500)
        volume[k] += qty
        ltt += i % 2
        r = rng.random()
        if r < 0.5:
            out.append(encode_quote(1, sid, p, qty, ltt, atp=p, volume=volume[k], day_open=p, day_high=p, day_low=p))
        elif r < 0.8:
            out.append(encode_ticker(1, sid, p, ltt))
        else:
            depth = [DepthLevel(100 * j, 120 * j, j, j, p - 0.05 * j, p + 0.05 * j) for j in range(1, 6)]
            out.append(encode_full(1, sid, p, qty, ltt, atp=p, volume=volume[k], day_open=p, day_high=p,
                                   day_low=p, depth=depth))
    return out


def bench_messages(packets: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        decoder = DhanDecoder()
        decode = decoder.decode
        gc.collect()
        t = time.perf_counter()
        for msg in packets:
            decode(msg, 0)
        best = min(best, time.perf_counter() - t)
        assert decoder.malformed == 0
    return len(packets) / best


def bench_buffers(packets: list[bytes], repeat: int, per: int = 64) -> float:
    buffers = [b"".join(packets[i:i + per]) for i in range(0, len(packets), per)]
    best = float("inf")
    for _ in range(repeat):
        decoder = DhanDecoder()
        decode = decoder.decode
        gc.collect()
        t = time.perf_counter()
        n = 0
        for buf in buffers:
            n += len(decode(buf, 0))
        best = min(best, time.perf_counter() - t)
        assert n == len(packets) and decoder.malformed == 0
    return len(packets) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    packets = make_packets(args.packets)
    per_message = bench_messages(packets, args.repeat)
    per_buffer = bench_buffers(packets, args.repeat)
    print(f"Dhan decode, {args.packets:,} packets (50% quote, 30% ticker, 20% full; 100 instruments)")
    print(f"  one packet per message : {per_message:12,.0f} packets/s")
    print(f"  64 packets per buffer  : {per_buffer:12,.0f} packets/s")
    verdict = "meets" if per_message >= TARGET else "MISSES"
    print(f"  target {TARGET:,} packets/s: {verdict}")


if __name__ == "__main__":
    main()
