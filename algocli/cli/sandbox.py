"""``algo sandbox``: a local exchange that replays CSV candles over the Dhan and Upstox protocols.

What the user reads goes to stderr; stdout carries only ``export NAME=value`` lines, the
environment that points ``algo paper``, ``algo live`` and ``algo download-data`` at the
sandbox, so it can be redirected, sourced (``--env-file``) or ``eval``ed (``--print-env``).
"""

from __future__ import annotations

import ipaddress
import logging
import shlex
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from algocli.cli.console import err_console, escape
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
                                                         help="Instrument to replay, a name (NSE:INFY) or id "
                                                              "(NSE_EQ:1594); repeatable. Default: every CSV "
                                                              "in --data.")] = None,
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
                               help="Start the replay when the first client subscribes, so it sees every "
                                    "candle from the first.")] = False,
    allow_remote: Annotated[bool, typer.Option("--allow-remote",
                                               help="Allow a --host other than loopback.")] = False,
    env_file: Annotated[Path | None, typer.Option("--env-file", help="Also write the export lines to this file, "
                                                  "to `source` in another shell.")] = None,
    print_env: Annotated[bool, typer.Option("--print-env", help="Only print the export lines for --host and "
                                            "--port, and exit: eval \"$(algo sandbox --print-env)\".")] = False,
) -> None:
    """A local Dhan/Upstox look-alike for trying everything offline: it replays candles as live ticks and
    serves both brokers' order, portfolio, historical-candle and instrument endpoints, for `algo paper`,
    `algo live` (and --dry-run) and `algo download-data`.

    Stdout gets only `export NAME=value` lines, the variables that point those commands here
    (`--env-file` writes them to a file, `--print-env` prints them and exits); the rest goes to
    stderr. Ctrl-C stops it.
    """
    host = host.strip().strip("[]")  # [::1] as in a URL
    if not allow_remote and not _is_loopback(host):
        raise UsageError(f"--host {host} is not a loopback address; the sandbox accepts any token and serves "
                         "made-up prices, so it listens on 127.0.0.1 unless you add --allow-remote")
    tokens = list(token or [])
    if print_env:
        if port == 0:
            raise UsageError("--print-env needs the --port the sandbox listens on (0 picks a port only when it "
                             "starts); give the same --port to both")
        from algocli.sandbox.app import available_protocols

        _emit_env(env_lines(host, port, available_protocols(), bool(tokens)), env_file)
        return
    if env_file is not None and not env_file.parent.is_dir():
        raise UsageError(f"--env-file {env_file}: the folder {env_file.parent} does not exist; create it or "
                         "name a file in an existing folder")
    begin = _parse_start(start)
    import asyncio

    from algocli.sandbox.app import serve
    from algocli.sandbox.hub import Faults

    _show_warnings()
    faults = Faults(drop_every=drop_every, silence_after=silence_after, malformed_every=malformed_every,
                    reject_tokens=reject_tokens)

    def ready(listening) -> None:
        for line in _notes(listening, data, speed, begin, bool(tokens), wait_for_client, env_file, reject_tokens):
            err_console.print(line, markup=False, highlight=False, soft_wrap=True)
        _emit_env(env_lines(listening.host, listening.port, listening.protocols, bool(tokens)), env_file)

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
                    warn=lambda m: err_console.print(f"[yellow]warning:[/] {escape(m)}", highlight=False))

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


def env_lines(host: str, port: int, protocols, fixed_token: bool) -> list[str]:
    """The ``export NAME=value`` lines that point the brokers' settings at a sandbox on ``host:port``.

    Args:
        host: The address it listens on.
        port: Its port.
        protocols: The broker protocols it serves (``dhan``, ``upstox``).
        fixed_token: It was given --token: the token lines are left as comments, because a
            token given on the command line may be a real one and is never printed.
    """
    from algocli.sandbox.instruments import DHAN_COMPACT_PATH, UPSTOX_PATH

    host = f"[{host}]" if ":" in host else host
    base, ws = f"http://{host}:{port}", f"ws://{host}:{port}"
    env: list[tuple[str, str]] = []
    if "dhan" in protocols:
        env += [("DHAN_FEED_URL", f"{ws}/dhan/feed"), ("DHAN_API_BASE_URL", f"{base}/v2"),
                ("DHAN_ORDER_UPDATE_URL", f"{ws}/dhan/orders"), ("DHAN_SCRIP_MASTER_URL", f"{base}{DHAN_COMPACT_PATH}"),
                ("DHAN_CLIENT_ID", "sandbox"), ("DHAN_ACCESS_TOKEN", "sandbox")]
    if "upstox" in protocols:
        env += [("UPSTOX_API_BASE_URL", base), ("UPSTOX_ORDER_BASE_URL", base),
                ("UPSTOX_INSTRUMENTS_URL", base + UPSTOX_PATH.format(name="complete")),
                ("UPSTOX_ACCESS_TOKEN", "sandbox")]
    lines = []
    for name, value in env:
        if fixed_token and name.endswith("_ACCESS_TOKEN"):
            lines.append(f"# export {name}=<your --token value>")
        else:
            lines.append(f"export {name}={shlex.quote(value)}")
    return lines


def _emit_env(lines: list[str], env_file: Path | None) -> None:
    """The export lines on stdout, and in ``env_file`` (readable by its owner only) when given."""
    if env_file is not None:
        from algocli.persistence.artifacts import atomic_write_text

        try:  # by a rename: a terminal sourcing it meanwhile reads the old lines or the new, never half
            atomic_write_text(env_file, "# written by algo sandbox; `source` it to use the sandbox\n"
                              + "\n".join(lines) + "\n", mode=0o600)
        except OSError as exc:
            raise UsageError(f"--env-file {env_file}: cannot write it ({exc.strerror or exc}); "
                             "name another file") from None
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _notes(listening, data: Path, speed: float, begin: datetime | None, fixed_token: bool, waiting: bool,
           env_file: Path | None, reject_tokens: bool = False) -> list[str]:
    """What the sandbox tells its user (stderr) once it listens."""
    from algocli.sandbox.app import ist_text

    host = f"[{listening.host}]" if ":" in listening.host else listening.host
    pace = "as fast as possible" if speed == 0 or speed == float("inf") else f"at {speed:g}x"
    lines = [
        f"algo sandbox: Listening on http://{host}:{listening.port}  (status: GET /health)",
        f"Replaying {', '.join(listening.instruments)} {pace}: {listening.ticks_total} ticks from {data}",
        f"Exchange time starts {ist_text(listening.first_ns)} IST"
        + (f" (--start {begin:%Y-%m-%d %H:%M})" if begin else ""),
    ]
    if waiting:
        lines.append("The replay starts when the first client subscribes (--wait-for-client).")
    where = f"below and in {env_file}" if env_file is not None else "below (stdout)"
    lines.append(f"The variables for `algo paper`, `algo live` and `algo download-data` are the export lines {where};")
    lines.append(f"in another shell: eval \"$(algo sandbox --print-env --port {listening.port})\"")
    missing = [p for p in ("dhan", "upstox") if p not in listening.protocols]
    if missing:
        lines.append(f"Not served: {', '.join(missing)} (its protocol module is missing).")
    if reject_tokens:
        lines.append("Every access token is refused (--reject-tokens): clients see the brokers' authentication errors.")
    else:
        lines.append("Only the --token values are accepted; set the *_ACCESS_TOKEN variables to yours."
                     if fixed_token else "Any access token is accepted.")
    lines.append("Ctrl-C stops the sandbox.")
    return lines


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
