"""``algo download-data``: fetch historical candles from a broker into the backtester's CSV files.

``--source`` is any broker registered in ``algocli.broker_specs`` (``dhan`` and ``upstox``
ship with the project).

Made to run from cron: it never prompts, the progress bar appears only on a terminal, and
stdout ends with exactly one summary line::

    download-data: 2 instruments, 2 ok, 0 failed, 9,840 new bars, 0 duplicates, 3 gaps -> data/5m

``--options``/``--pcr`` download one underlying's option candles and PCR history instead
(``algocli.data.download_options``); their last line is ``download-data: <underlying> options, ...``.

Exit status: 0 when every instrument is up to date, 1 when any failed (the others are
still written) or the token was refused, 2 for a usage error (bad date or interval,
``--to`` before ``--from``, unknown instrument, an ``--out`` that cannot be written, an existing
file there that cannot be resumed), before any request is sent. 130 when Ctrl-C or SIGTERM
(``timeout``, cron, systemd) stopped it: what was fetched is written, one line says how much,
and the same command resumes.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from algocli.cli.console import console, err_console, escape
from algocli.cli.main import app
from algocli.cli.params import folder
from algocli.errors import AlgoError, UsageError

_OUT_FIX = "pass another --out"


def _date(text: str | None, flag: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not a date; write it as YYYY-MM-DD (IST), e.g. 2024-01-01") from None


def _master():
    """The instrument master (its ``resolve`` reads HRNs such as ``NSE:HDFCBANK`` and broker ids).

    Only the brokers' own lists are used (the sandbox's, when its URLs are exported): a
    bundled sample list must never choose the contract whose data is downloaded.
    """
    from algocli.instruments import open_master

    return open_master(warn=lambda line: err_console.print(f"warning: {line}", markup=False, highlight=False))


def _resolver():
    """The instrument master's ``resolve``."""
    return _master().resolve


def _check_flags(interval: str, options: bool, expiry: str, cycle: str | None, strikes: str) -> None:
    """What the flags alone can show, before the instrument list is opened (a download when it is
    stale): a bad one is said at once, not after a network error that would hide it. ``options``:
    --options or --pcr was given; without them their flags would be ignored, so they are refused."""
    from algocli.data.download import parse_interval

    parse_interval(interval)
    if not options:
        for flag, given in (("--expiry", expiry != "current"), ("--cycle", cycle is not None),
                            ("--strikes", strikes != "ATM")):
            if given:
                raise UsageError(f"{flag} applies with --options or --pcr; add one, or drop {flag}")
        return
    from algocli.data.download_options import expiry_spec, strike_window
    from algocli.data.expiries import CYCLES

    strike_window(strikes)
    expiry_spec(expiry)
    if cycle is not None and cycle not in CYCLES:
        raise UsageError(f"--cycle {cycle!r} is not one of {', '.join(CYCLES)}")


class Interrupted(AlgoError):
    """SIGINT (Ctrl-C) or SIGTERM stopped the download after what it fetched was written.

    Attributes:
        signum: The signal.
    """

    exit_code = 130

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


def run_until_signal(main: Callable[[], Awaitable]):
    """``main()`` on a fresh event loop, cancelled by SIGINT or SIGTERM.

    A cancelled download writes what it fetched on its way out (its ``except BaseException`` and
    ``finally`` blocks run), so one stopped by Ctrl-C, or by the SIGTERM of ``timeout``, cron or
    systemd, keeps its progress. Off the main thread, where no handler can be set, this is
    plain ``asyncio.run``.

    Raises:
        Interrupted: A signal stopped ``main``.
    """
    import asyncio

    caught: list[int] = []

    async def guarded():
        loop, task = asyncio.get_running_loop(), asyncio.current_task()

        def stop(signum: int) -> None:
            caught.append(signum)
            task.cancel()

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, stop, sig)
            except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or no support
                continue
            installed.append((sig, previous))
        try:
            return await main()
        finally:
            for sig, previous in installed:
                loop.remove_signal_handler(sig)
                if previous is not None:
                    signal.signal(sig, previous)

    try:
        return asyncio.run(guarded())
    except (asyncio.CancelledError, KeyboardInterrupt):
        if caught:
            raise Interrupted(caught[0]) from None
        raise


def _interrupted(new_bars: int, out_dir: Path | None) -> typer.Exit:
    """Say what an interrupted download kept, in one line; the exit status 130."""
    from algocli.persistence.output import shown

    where = f" in {shown(out_dir)}" if out_dir is not None else ""
    err_console.print(f"interrupted: {new_bars:,} new bar{'s' if new_bars != 1 else ''} saved{where}; run the same "
                      "command to resume", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(130)


def _record_names(out_dir: Path, instruments) -> None:
    """Add the downloaded instruments to ``<out>/instruments.csv``, so a backtest on the folder
    names them offline, whatever the master holds later."""
    from algocli.instruments.master import merge
    from algocli.instruments.table import read_instruments, write_instruments

    path = out_dir / "instruments.csv"
    have = read_instruments(path) if path.is_file() else []
    write_instruments(path, merge(instruments, have))


@app.command("download-data")
def download_command(
    instruments: Annotated[list[str], typer.Argument(
        help="Instruments by name, e.g. NSE:HDFCBANK 'NSE:NIFTY 50' (or broker ids such as NSE_EQ:1333).")],
    start: Annotated[str, typer.Option("--from", help="First IST date, YYYY-MM-DD.", show_default=False)],
    source: Annotated[str, typer.Option("--source", help="A registered broker: dhan, upstox or one a plugin "
                                        "adds (credentials from its settings, e.g. DHAN_* / UPSTOX_* in the "
                                        "environment or .env).", show_default=False)],
    interval: Annotated[str | None, typer.Option("--interval", "-i", help="1m 3m 5m 10m 15m 25m 30m 1h 1d; one the "
                                                 "source lacks is built from 1m (default 1d; 1m with --options).",
                                                 show_default=False)] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last IST date, YYYY-MM-DD (default today).",
                                            show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", parser=folder, help="Folder of the CSV files (default data/<interval>).",
                                             show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no table: only the summary "
                                        "line (and errors on stderr).")] = False,
    options: Annotated[bool, typer.Option("--options", help="Option candles of the one underlying named: Dhan's "
                                          "rolling series split into real contracts, or Upstox's expired "
                                          "contracts; with the underlying's candles and an instruments.csv.")] = False,
    pcr: Annotated[bool, typer.Option("--pcr", help="Historical PCR of the underlying into pcr.csv (Upstox).")] = False,
    expiry: Annotated[str, typer.Option("--expiry", help="With --options/--pcr: current, next, far or "
                                        "YYYY-MM-DD.")] = "current",
    cycle: Annotated[str | None, typer.Option("--cycle", help="With --options/--pcr: week or month expiries "
                                              "(default week for NIFTY, else month).", show_default=False)] = None,
    strikes: Annotated[str, typer.Option("--strikes", help="With --options: ATM offsets, e.g. ATM-5:ATM+5.")] = "ATM",
) -> None:
    """Download candles into CSV files the backtester reads; run it again to add only what is missing."""
    import time

    from algocli.data.download import check_range, download, sources
    from algocli.domain.session import ist_date

    source = source.strip().lower()
    if source not in sources():
        from algocli.config.errors import suggest

        raise UsageError(f"--source {source!r} is not one of {', '.join(sources())} (the registered brokers)"
                         f"{suggest(source, sources())}")
    interval = (interval or ("1m" if options or pcr else "1d")).strip()
    _check_flags(interval, options or pcr, expiry, cycle, strikes)
    today = ist_date(time.time_ns())  # today in India
    first = _date(start, "--from")
    last = _date(end, "--to") or today
    check_range(first, last, today)
    if out is not None:  # before the instrument list is opened (a download): the default is checked later
        from algocli.persistence.output import check_output_dir

        check_output_dir(out, fix=_OUT_FIX)
    if options or pcr:
        return _download_options(instruments, source, interval, first, last, out, expiry=expiry,
                                 cycle=cycle, strikes=strikes, options=options, pcr=pcr)
    resolve = _resolver()
    started: list = []
    try:
        with _progress(quiet) as progress:
            result = run_until_signal(lambda: download(instruments, resolve=resolve, source=source, interval=interval,
                                                       start=first, end=last, out_dir=out, progress=progress,
                                                       report=started.append))
    except Interrupted:
        result = started[0] if started else None
        if result is not None:
            _record_names(result.out_dir, [resolve(f.name) for f in result.files if f.bars])
        raise _interrupted(result.new_bars if result else 0, result.out_dir if result else out) from None
    done = [resolve(f.name) for f in result.files if f.ok]
    if done:
        _record_names(result.out_dir, done)
    refused = str(result.aborted) if result.aborted is not None else None
    for f in result.files:
        if not f.ok and f.error != refused and not f.error.startswith("not tried"):  # the token: said once below
            err_console.print(f"[bold red]error:[/] {escape(f.name)}: {escape(f.error)}", highlight=False, soft_wrap=True)
    if not quiet:
        console.print(_table(result))
        for f in result.files:  # gaps and holidays in words, below the table where long lines do not squeeze it
            if not f.ok or f.quality is None:
                continue
            for label, items in (("gaps", f.quality.describe(3)), ("holidays", f.quality.describe_holidays(3))):
                if items:
                    console.print(f"{f.name} {label}: " + "; ".join(items), markup=False, highlight=False,
                                  soft_wrap=True)
    console.print(result.summary_line(), markup=False, highlight=False, soft_wrap=True)
    if result.aborted is not None:
        raise result.aborted  # the one-line "renew the token" message, exit 1
    if result.failed:
        raise typer.Exit(1)


def _download_options(names: list[str], source: str, interval: str, first: date, last: date, out: Path | None,
                      **kwargs) -> None:
    """``--options``/``--pcr``: one underlying's option candles and PCR (``algocli.data.download_options``)."""
    from algocli.data.download_options import download_options

    if len(names) != 1:
        raise UsageError(f"--options/--pcr take one underlying, not {len(names)}; e.g. 'NSE:NIFTY 50'")
    master = _master()
    options, pcr = kwargs.pop("options"), kwargs.pop("pcr")
    started: list = []
    try:
        _, result = run_until_signal(lambda: download_options(
            names[0], resolve=master.resolve, lookup=master.get, source=source, interval=interval, start=first,
            end=last, candles=options, pcr=pcr, out_dir=out, report=started.append, **kwargs))
    except Interrupted:
        result = started[0] if started else None
        raise _interrupted(result.saved_bars if result else 0, result.out_dir if result else out) from None
    for note in result.notes:
        err_console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    if result.error:
        err_console.print(f"[bold red]error:[/] {escape(result.error)}", highlight=False, soft_wrap=True)
    console.print(result.summary_line(), markup=False, highlight=False, soft_wrap=True)
    if result.error:
        raise typer.Exit(1)


class _progress:
    """A Rich progress bar on stderr, one row per instrument, only on a terminal and without --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and err_console.is_terminal
        self.bar = None
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("requests"), TimeElapsedColumn(), console=err_console, transient=True)
        self.bar.__enter__()
        return self.update

    def update(self, name: str, done: int, total: int) -> None:
        task = self.tasks.get(name)
        if task is None:
            task = self.tasks[name] = self.bar.add_task(name, total=max(total, 1))
        self.bar.update(task, completed=done if total else 1, total=max(total, 1))

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


def _table(result):
    from rich.table import Table

    from algocli.domain.models import Interval
    from algocli.persistence.artifacts import ist_strings

    daily = result.interval is Interval.DAY_1
    table = Table(title=f"{result.source} {result.interval.value} -> {result.out_dir}", show_edge=False,
                  header_style="bold", title_justify="left")
    for name, justify in (("instrument", "left"), ("bars", "right"), ("first", "left"),
                          ("last", "left"), ("new", "right"), ("dup", "right"), ("gaps", "right"),
                          ("notes", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for f in result.files:
        first, last = (ist_strings([f.first_ns, f.last_ns]).tolist() if f.first_ns is not None else ["-", "-"])
        first, last = (t[:10] if daily else t[:16].replace("T", " ") for t in (first, last))
        if not f.ok:
            notes = f"[red]failed:[/] {escape(f.error)}"
        else:
            q = f.quality
            parts = []
            if q is not None and q.gaps:
                parts.append(f"{q.missing_days} day(s) without data, {q.missing_bars} bar(s) missing")
            if f.duplicates:
                parts.append(f"{f.duplicates} repeated in the answers")
            if f.overlap:
                parts.append(f"{f.overlap} re-fetched (already stored)")
            notes = "; ".join(parts) or ("up to date" if not f.planned else "ok")
        gaps = str(len(f.quality.gaps)) if f.quality is not None else "-"
        table.add_row(f.name, f"{f.bars:,}", first, last, f"{f.new_bars:,}", f"{f.dropped:,}", gaps,
                      notes)
    return table
