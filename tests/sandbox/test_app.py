"""The sandbox server: protocol mounting, /health, loading the candles, serve()."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import sys
import types
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from algocli.data.csv_feed import load_csv
from algocli.errors import DataError, UsageError
from algocli.sandbox.app import PROTOCOLS, Listening, build_app, instrument_for, ist_text, load_bars, serve
from algocli.sandbox.hub import Faults, TickHub
from algocli.sandbox.replay import TICKS_PER_BAR, Replayer

ROOT = Path(__file__).resolve().parents[2]
MINUTE_CSV = ROOT / "data" / "NSE_EQ_2885.csv"


def small_data(tmp_path: Path, rows: int = 31) -> Path:
    """A folder with the first ``rows - 1`` one-minute bars of the sample file."""
    folder = tmp_path / "data"
    folder.mkdir()
    lines = MINUTE_CSV.read_text(encoding="utf-8").splitlines()[:rows]
    (folder / "NSE_EQ_2885.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


async def get_json(port: int, path: str = "/health") -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}{path}") as response:
            assert response.status == 200
            return await response.json()


async def start(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


def test_health_reports_instruments_ticks_and_clients():
    bars = load_csv(MINUTE_CSV, "NSE_EQ:2885").slice(0, 10)

    async def main():
        hub = TickHub()
        replayer = Replayer({"NSE_EQ:2885": bars}, hub, speed=0)
        app = build_app(hub, dhan=False, upstox=False, replayer=replayer)
        assert app[PROTOCOLS] == []
        runner, port = await start(app)
        try:
            before = await get_json(port)
            hub.register()
            await replayer.run()
            after = await get_json(port)
        finally:
            await runner.cleanup()
        return before, after

    before, after = asyncio.run(main())
    assert before["instruments"] == ["NSE_EQ:2885"]
    assert (before["ticks_published"], before["clients"], before["replay_done"]) == (0, 0, False)
    assert (after["ticks_published"], after["ticks_total"], after["clients"]) == (40, 40, 1)
    assert after["replay_done"] is True
    assert after["exchange_time_ns"] == int(bars.ts[-1]) + 59 * 10**9


def test_health_without_a_replayer_lists_what_the_hub_saw():
    async def main():
        hub = TickHub()
        from algocli.domain.models import Tick

        hub.publish(Tick("NSE_EQ:1", 0, 1.0))
        runner, port = await start(build_app(hub, dhan=False, upstox=False))
        try:
            return await get_json(port)
        finally:
            await runner.cleanup()

    body = asyncio.run(main())
    assert body["instruments"] == ["NSE_EQ:1"] and body["ticks_published"] is None


def test_missing_protocol_modules_are_skipped_with_a_warning(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "algocli.sandbox.dhan", None)  # as if the file did not exist
    monkeypatch.setitem(sys.modules, "algocli.sandbox.upstox", types.ModuleType("algocli.sandbox.upstox"))
    with caplog.at_level(logging.WARNING, logger="algocli.sandbox.app"):
        app = build_app(TickHub())
    assert app[PROTOCOLS] == []
    messages = [r.getMessage() for r in caplog.records]
    assert any("algocli.sandbox.dhan is not available" in m for m in messages)
    assert any("algocli.sandbox.upstox has no add_routes" in m for m in messages)
    routes = {r.resource.canonical for r in app.router.routes()}
    assert "/health" in routes and not any("/order" in r for r in routes)  # no order entry without its protocol


async def pong(request: web.Request) -> web.Response:
    return web.Response(text="pong")


def test_protocol_modules_are_mounted_with_the_hub(monkeypatch):
    calls = []
    for name in ("dhan", "upstox"):
        module = types.ModuleType(f"algocli.sandbox.{name}")

        def add_routes(app, hub, name=name):
            calls.append((name, hub))
            app.router.add_get(f"/{name}/ping", pong)

        module.add_routes = add_routes
        monkeypatch.setitem(sys.modules, module.__name__, module)
    hub = TickHub()
    app = build_app(hub, upstox=False)
    assert calls == [("dhan", hub)] and app[PROTOCOLS] == ["dhan"]
    routes = {r.resource.canonical for r in app.router.routes()}
    assert {"/dhan/ping", "/health"} <= routes and not any(r.startswith("/upstox") for r in routes)


def test_the_real_protocol_modules_mount():
    app = build_app(TickHub())
    assert app[PROTOCOLS] == ["dhan", "upstox"]


def test_instrument_names_come_from_file_names(tmp_path):
    assert instrument_for(Path("NSE_EQ_1333.csv")) == "NSE_EQ:1333"
    assert instrument_for(Path("/x/NSE_FNO_35001.csv")) == "NSE_FNO:35001"
    with pytest.raises(DataError, match="SEGMENT_ID.csv"):
        instrument_for(Path("prices.csv"))


def test_load_bars_reads_every_csv_or_the_named_ones(tmp_path):
    folder = small_data(tmp_path)
    shutil.copyfile(ROOT / "data" / "NSE_EQ_1333.csv", folder / "NSE_EQ_1333.csv")
    warnings: list[str] = []
    everything = load_bars(folder, warn=warnings.append)
    # a whole-folder replay leaves the daily file out when intraday files are there, and says so
    assert list(everything) == ["NSE_EQ:2885"]
    assert len(everything["NSE_EQ:2885"]) == 30
    assert len(warnings) == 1 and "NSE_EQ:1333" in warnings[0] and "--instrument" in warnings[0]
    assert list(load_bars(folder, ["NSE_EQ:1333", "NSE_EQ:2885"])) == ["NSE_EQ:1333", "NSE_EQ:2885"]
    assert list(load_bars(folder, ["NSE_EQ:2885"])) == ["NSE_EQ:2885"]
    with pytest.raises(DataError, match="no data file for NSE_EQ:7"):
        load_bars(folder, ["NSE_EQ:7"])
    with pytest.raises(DataError, match="not a folder"):
        load_bars(folder / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"no \*\.csv"):
        load_bars(empty)


def test_load_bars_finds_a_named_instrument_by_the_ids_instruments_csv_lists(tmp_path):
    """`algo sandbox -i NSE:RELIANCE` replays NSE_EQ_2885.csv, as a run definition's name finds it."""
    from algocli.errors import ConfigError

    folder = small_data(tmp_path)
    shutil.copyfile(ROOT / "data" / "instruments.csv", folder / "instruments.csv")
    by_name = load_bars(folder, ["NSE:RELIANCE"])
    assert list(by_name) == ["NSE_EQ:2885"] and len(by_name["NSE_EQ:2885"]) == 30
    with pytest.raises(ConfigError, match=r"^--instrument: 'NSE:RELINCE' is not in .*instruments.csv; did you "
                                          r"mean 'NSE:RELIANCE'\?"):
        load_bars(folder, ["NSE:RELINCE"])
    with pytest.raises(DataError, match=r"no data file for NSE_EQ:1333; expected NSE_EQ_1333.csv"):
        load_bars(folder, ["NSE:HDFCBANK"])  # listed, but its candles are not in the folder


def test_serve_listens_replays_and_stops_on_cancel(tmp_path):
    folder = small_data(tmp_path)
    ready: list[Listening] = []

    async def main():
        task = asyncio.create_task(serve(folder, port=0, speed=0, tokens=["t1"], faults=Faults(drop_every=3),
                                         on_ready=ready.append))
        for _ in range(200):
            await asyncio.sleep(0.02)
            if ready:
                body = await get_json(ready[0].port)
                if body["replay_done"]:
                    break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return body

    body = asyncio.run(main())
    listening = ready[0]
    assert listening.port > 0 and listening.instruments == ("NSE_EQ:2885",)
    assert ist_text(listening.first_ns) == "2024-06-10 09:15"
    assert listening.ticks_total == 30 * TICKS_PER_BAR == body["ticks_published"]
    with socket.socket() as probe:  # the port is free again
        assert probe.connect_ex(("127.0.0.1", listening.port)) != 0


def test_serve_refuses_a_start_after_the_data(tmp_path):
    folder = small_data(tmp_path)
    with pytest.raises(DataError, match="no bars at or after 2030-01-01 09:15.*2024-06-10 09:44"):
        asyncio.run(serve(folder, port=0, start=datetime(2030, 1, 1, 9, 15)))


def test_serve_reports_a_busy_port(tmp_path):
    folder = small_data(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(UsageError, match=f"cannot listen on 127.0.0.1:{port}"):
            asyncio.run(serve(folder, port=port, speed=0, dhan=False, upstox=False))
