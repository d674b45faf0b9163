"""Broker instrument files written by hand from the documented formats, and a loopback server for them.

These rows follow Dhan's compact scrip master (https://dhanhq.co/docs/v2/instruments/: tick sizes in
paise, ``SEM_EXPIRY_DATE`` with a time) and Upstox's instrument JSON
(https://upstox.com/developer/api-documentation/instruments: expiry in epoch milliseconds at
23:59:59 IST, tick sizes in paise), independently of the sandbox's own writer.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from aiohttp import web

IST = timezone(timedelta(hours=5, minutes=30))

DHAN_HEADER = ("SEM_EXM_EXCH_ID,SEM_SEGMENT,SEM_SMST_SECURITY_ID,SEM_INSTRUMENT_NAME,SEM_EXPIRY_CODE,"
               "SEM_TRADING_SYMBOL,SEM_LOT_UNITS,SEM_CUSTOM_SYMBOL,SEM_EXPIRY_DATE,SEM_STRIKE_PRICE,"
               "SEM_OPTION_TYPE,SEM_TICK_SIZE,SEM_EXPIRY_FLAG,SEM_EXCH_INSTRUMENT_TYPE,SEM_SERIES,SM_SYMBOL_NAME")
DHAN_ROWS = [
    "NSE,E,1333,EQUITY,,HDFCBANK,1.0,HDFC Bank,,,XX,10.0000,NA,ES,EQ,HDFC BANK LTD",
    "NSE,E,2885,EQUITY,,RELIANCE,1.0,Reliance Industries,,,XX,10.0000,NA,ES,EQ,RELIANCE INDUSTRIES LTD",
    "NSE,I,13,INDEX,,NIFTY,1.0,Nifty 50,,,XX,5.0000,NA,INDEX,X,",
    "NSE,I,25,INDEX,,BANKNIFTY,1.0,Nifty Bank,,,XX,5.0000,NA,INDEX,X,",
    "NSE,D,35019,OPTIDX,0,NIFTY-Dec2024-24000-CE,75.0,NIFTY 26 DEC 24000 CALL,2024-12-26 14:30:00,24000.00000,CE,"
    "5.0000,M,OP,NA,",
    "NSE,D,35020,OPTIDX,0,NIFTY-Dec2024-24000-PE,75.0,NIFTY 26 DEC 24000 PUT,2024-12-26 14:30:00,24000.00000,PE,"
    "5.0000,M,OP,NA,",
    "NSE,D,35006,FUTIDX,0,NIFTY-Dec2024-FUT,75.0,NIFTY DEC FUT,2024-12-26 14:30:00,-0.01000,XX,10.0000,M,FUT,NA,",
    "MCX,M,426262,FUTCOM,0,GOLD-Feb2025-FUT,1.0,GOLD FEB FUT,2025-02-05 23:30:00,-0.01000,XX,100.0000,M,FUT,NA,",
    "NSE,C,10084,FUTCUR,0,USDINR-Dec2024-FUT,1.0,USDINR DEC FUT,2024-12-27 12:30:00,-0.01000,XX,0.2500,M,FUT,NA,",
]


def dhan_csv() -> bytes:
    return ("\n".join([DHAN_HEADER, *DHAN_ROWS]) + "\n").encode()


def _expiry_ms(day: str) -> int:
    return int(datetime.fromisoformat(f"{day}T23:59:59").replace(tzinfo=IST).timestamp() * 1000)


UPSTOX_ROWS = [
    {"segment": "NSE_EQ", "name": "HDFC BANK LTD", "exchange": "NSE", "isin": "INE040A01034", "instrument_type": "EQ",
     "instrument_key": "NSE_EQ|INE040A01034", "lot_size": 1, "freeze_quantity": 100000.0, "exchange_token": "1333",
     "tick_size": 10.0, "trading_symbol": "HDFCBANK", "short_name": "HDFC Bank", "security_type": "NORMAL"},
    {"segment": "NSE_EQ", "name": "INFOSYS LIMITED", "exchange": "NSE", "isin": "INE009A01021",
     "instrument_type": "EQ", "instrument_key": "NSE_EQ|INE009A01021", "lot_size": 1, "exchange_token": "1594",
     "tick_size": 10.0, "trading_symbol": "INFY"},
    {"segment": "NSE_INDEX", "name": "Nifty 50", "exchange": "NSE", "instrument_type": "INDEX",
     "instrument_key": "NSE_INDEX|Nifty 50", "exchange_token": "26000", "trading_symbol": "NIFTY", "tick_size": 5.0},
    {"segment": "NSE_INDEX", "name": "Nifty Bank", "exchange": "NSE", "instrument_type": "INDEX",
     "instrument_key": "NSE_INDEX|Nifty Bank", "exchange_token": "26009", "trading_symbol": "BANKNIFTY"},
    {"segment": "NSE_FO", "name": "NIFTY", "exchange": "NSE", "expiry": _expiry_ms("2024-12-26"), "weekly": False,
     "instrument_key": "NSE_FO|35019", "exchange_token": "35019", "trading_symbol": "NIFTY 24000 CE 26 DEC 24",
     "tick_size": 5.0, "lot_size": 75, "instrument_type": "CE", "freeze_quantity": 1800.0,
     "underlying_key": "NSE_INDEX|Nifty 50", "underlying_type": "INDEX", "underlying_symbol": "NIFTY",
     "strike_price": 24000.0, "minimum_lot": 75},
    {"segment": "NSE_FO", "name": "NIFTY", "exchange": "NSE", "expiry": _expiry_ms("2025-12-30"), "weekly": False,
     "instrument_key": "NSE_FO|52301", "exchange_token": "52301", "trading_symbol": "NIFTY 24000 CE 30 DEC 25",
     "tick_size": 5.0, "lot_size": 75, "instrument_type": "CE", "underlying_symbol": "NIFTY", "strike_price": 24000.0},
    {"segment": "NSE_FO", "name": "NIFTY", "exchange": "NSE", "expiry": _expiry_ms("2024-12-26"),
     "instrument_key": "NSE_FO|35006", "exchange_token": "35006", "trading_symbol": "NIFTY FUT 26 DEC 24",
     "tick_size": 10.0, "lot_size": 75, "instrument_type": "FUT", "underlying_symbol": "NIFTY", "strike_price": 0.0},
    {"segment": "MCX_FO", "name": "GOLD", "exchange": "MCX", "instrument_type": "FUT", "instrument_key": "MCX_FO|1",
     "expiry": _expiry_ms("2025-02-05"), "underlying_symbol": "GOLD", "lot_size": 1, "tick_size": 100.0},
]


def upstox_gz(rows: list[dict] | None = None) -> bytes:
    return gzip.compress(json.dumps(UPSTOX_ROWS if rows is None else rows).encode())


class FileServer:
    """Serves ``files`` (path → bytes) over HTTP on 127.0.0.1; counts requests; can fail on demand."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.hits: list[str] = []
        self.fail_status: int | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        if self.fail_status is not None:
            return web.Response(status=self.fail_status, text="unavailable")
        body = self.files.get(request.path)
        if body is None:
            return web.Response(status=404)
        return web.Response(body=body)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def serving(files: dict[str, bytes]) -> Iterator[FileServer]:
    server = FileServer(files)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict = {}

    async def start() -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", server._handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.port = site._server.sockets[0].getsockname()[1]
        state["runner"] = runner
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert started.wait(10), "file server did not start"
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
