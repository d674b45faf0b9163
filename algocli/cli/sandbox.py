"""``algo sandbox``: a local exchange that replays CSV candles over the Dhan and Upstox protocols."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from algocli.cli.console import console, err_console
from algocli.cli.main import app
from algocli.errors import UsageError


@app.command("sandbox")
def sandbox_command(
    data: Annotated[Path, typer.Option("--data", help="Folder of SEGMENT_ID.csv candle files to replay.")]
    = Path("data"),
    speed: Annotated[float, typer.Option("--speed", min=0.0,
                                         help="Exchange seconds per wall second (60: a 1-minute bar per "
                                              "second); 0 = as fast as possible.")] = 60.0,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port to listen on.")] = 8765,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; loopback only unless --allow-remote.")]
    = "127.0.0.1",
    start: Annotated[str | None, typer.Option("--start", help='Replay from this IST time, e.g. "2024-06-10 09:15".')]
    = None,
    instrument: Annotated[list[str] | None, typer.Option("--instrument", "-i",
                                                         help="Instrument to replay (repeatable); default: "
                                                              "every CSV in --data.")] = None,
    token: Annotated[list[str] | None, typer.Option("--token", help="Access token to accept (repeatable); "
                                                                    "default: any token.")] = None,
    drop_every: Annotated[int, typer.Option("--drop-every", min=0,
                                            help="Fault: close each feed connection after N packets.")] = 0,
    silence_after: Annotated[int, typer.Option("--silence-after", min=0,
                                               help="Fault: stop sending after N packets, socket left open.")] = 0,
    malformed_every: Annotated[int, typer.Option("--malformed-every", min=0,
                                                 help="Fault: replace every Nth packet with garbage.")] = 0,
    reject_tokens: Annotated[bool, typer.Option("--reject-tokens", help="Fault: refuse every token.")] = False,
    wait_for_client: Annotated[bool, typer.Option("--wait-for-client",
                               help="Start the replay when the first client subscribes.")] = False,
    allow_remote: Annotated[bool, typer.Option("--allow-remote",
                                               help="Allow a --host other than loopback.")] = False,
) -> None:
    """Replay candles as live ticks on a local Dhan/Upstox look-alike, for `algo paper`. Ctrl-C stops it."""
    host = host.strip().strip("[]")  # [::1] as in a URL
    if not allow_remote and not _is_loopback(host):
        raise UsageError(f"--host {host} is not a loopback address; the sandbox accepts any token and serves "
                         "made-up prices, so it listens on 127.0.0.1 unless you add --allow-remote")
    begin = _parse_start(start)
    from algocli.sandbox.app import serve
    from algocli.sandbox.hub import Faults

    _show_warnings()
    faults = Faults(drop_every=drop_every, silence_after=silence_after, malformed_every=malformed_every,
                    reject_tokens=reject_tokens)
    tokens = list(token or [])
    # a token given on the command line may be a real one: show where it goes, never its value
    shown_token = "<your --token value>" if tokens else "sandbox"

    def ready(listening) -> None:
        console.print(_panel(listening, data, speed, begin, shown_token, bool(tokens)), highlight=False)
        sys.stdout.flush()

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (`&` in sh)
            try:
                loop.add_signal_handler(signum, task.cancel)
            except (NotImplementedError, RuntimeError):  # not available on this platform or thread
                pass
        await serve(data, instrument or None, host=host, port=port, speed=speed, start=begin,
                    faults=faults, tokens=tokens, on_ready=ready, wait_for_client=wait_for_client,
                    warn=lambda m: err_console.print(f"[yellow]warning:[/] {m}", highlight=False))

    try:
        asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        err_console.print("sandbox stopped")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_start(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--start {text!r} is not a date-time; write it as YYYY-MM-DD or "
                         "\"YYYY-MM-DD HH:MM\" (IST)") from None


def _panel(listening, data: Path, speed: float, begin: datetime | None, token: str, fixed_token: bool):
    from rich.panel import Panel
    from rich.text import Text

    from algocli.sandbox.app import ist_text
    from algocli.sandbox.instruments import DHAN_COMPACT_PATH, UPSTOX_PATH

    host = f"[{listening.host}]" if ":" in listening.host else listening.host
    base = f"http://{host}:{listening.port}"
    pace = "as fast as possible" if speed == 0 or speed == float("inf") else f"at {speed:g}x"
    names = ", ".join(listening.instruments)
    lines = [
        f"Listening on {base}  (status: GET /health)",
        f"Replaying {names} {pace}: {listening.ticks_total} ticks from {data}",
        f"Exchange time starts {ist_text(listening.first_ns)} IST"
        + (f" (--start {begin:%Y-%m-%d %H:%M})" if begin else ""),
        "",
        "Environment for `algo paper` and `algo live` (export it, or put it in .env):",
    ]
    env = []
    if "dhan" in listening.protocols:
        env += [f"DHAN_FEED_URL=ws://{host}:{listening.port}/dhan/feed",
                f"DHAN_API_BASE_URL={base}/v2", f"DHAN_ORDER_UPDATE_URL=ws://{host}:{listening.port}/dhan/orders",
                f"DHAN_SCRIP_MASTER_URL={base}{DHAN_COMPACT_PATH}",
                "DHAN_CLIENT_ID=sandbox", f"DHAN_ACCESS_TOKEN={token}"]
    if "upstox" in listening.protocols:
        env += [f"UPSTOX_API_BASE_URL={base}", f"UPSTOX_ORDER_BASE_URL={base}",
                f"UPSTOX_INSTRUMENTS_URL={base}{UPSTOX_PATH.format(name='complete')}",
                f"UPSTOX_ACCESS_TOKEN={token}"]
    if not env:
        env = ["(no broker protocol is available in this installation)"]
    missing = [p for p in ("dhan", "upstox") if p not in listening.protocols]
    tail = [""]
    if missing:
        tail.append(f"Not served: {', '.join(missing)} (its protocol module is missing).")
    tail.append("Any access token is accepted." if not fixed_token else "Only the --token values are accepted.")
    tail.append("Ctrl-C stops the sandbox.")
    return Panel(Text("\n".join(lines + env + tail)), title="algo sandbox", expand=False)


class _ConsoleHandler(logging.Handler):
    """The sandbox's log lines on stderr: warnings marked, notes plain."""

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "[yellow]warning:[/] " if record.levelno >= logging.WARNING else ""
        err_console.print(f"{prefix}{record.getMessage()}", highlight=False, soft_wrap=True)


def _show_warnings() -> None:
    """Print the sandbox's log (a missing protocol module, the end of the replay) on stderr."""
    logger = logging.getLogger("algocli.sandbox")
    if not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        logger.addHandler(_ConsoleHandler(logging.INFO))
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
