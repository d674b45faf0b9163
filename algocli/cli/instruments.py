"""``algo instruments``: search the instrument master, show one instrument, refresh the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from algocli.cli.console import console, err_console
from algocli.cli.main import app

instruments_app = typer.Typer(help="Find instruments by name and see their broker ids, lot and tick sizes.",
                              no_args_is_help=True)
app.add_typer(instruments_app, name="instruments")

_Offline = Annotated[bool, typer.Option("--offline", help="Use the cached list only; never download.")]
_DATA = Path("data")  # the bundled sample's folder: a fresh clone finds names offline
_Data = Annotated[Path, typer.Option("--data", help="Also list this data folder's instruments.csv, when it "
                                     "has one.")]


def _warn(line: str) -> None:
    err_console.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)


def _master(offline: bool, data: Path):
    from algocli.errors import UsageError
    from algocli.instruments.cache import open_master

    extra = data / "instruments.csv"
    if data != _DATA and not extra.is_file():
        raise UsageError(f"--data {data}: there is no {extra}; name a folder `algo download-data` wrote into")
    return open_master(refresh="never" if offline else "auto", extra=[extra], warn=_warn)


def _table(rows) -> Table:
    """One row per instrument, one id column per registered broker."""
    from algocli.broker.spec import broker_specs

    brokers = list(broker_specs().values())
    table = Table(show_edge=False, header_style="bold")
    for name, justify in (("name", "left"), ("kind", "left"), ("lot", "right"), ("tick ₹", "right"),
                          *((spec.title, "left") for spec in brokers)):
        table.add_column(name, justify=justify, overflow="fold")
    for inst in rows:
        table.add_row(inst.hrn, inst.contract, str(inst.lot_size), f"{inst.tick_size:g}",
                      *(spec.instrument_id(inst) or "-" for spec in brokers))
    return table


@instruments_app.command("search")
def search_command(
    text: Annotated[list[str], typer.Argument(help="Words to look for: symbol, name, expiry, strike, id.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most this many.")] = 20,
    offline: _Offline = False,
    data: _Data = _DATA,
) -> None:
    """List instruments whose name or ids contain every word of TEXT, e.g. `nifty 26 dec 24000`."""
    from algocli.errors import UsageError

    query = " ".join(text)
    if not query.strip():
        raise UsageError("TEXT is empty; give a word of the name, symbol or id, e.g. `algo instruments search "
                         "hdfc`")
    master = _master(offline, data)
    rows = master.search(query, limit=limit + 1)  # one more tells whether the list was cut
    if not rows:
        console.print(f"no instrument matches {query!r} in {master.source}", markup=False, highlight=False)
        raise typer.Exit(1)
    more = " (more match: add a word, or raise --limit)" if len(rows) > limit else ""
    console.print(_table(rows[:limit]))
    console.print(f"{min(len(rows), limit)} shown{more}, from {master.source}", markup=False, highlight=False,
                  style="dim")


@instruments_app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="A name (NSE:HDFCBANK) or a broker id (NSE_EQ:1333).")],
    offline: _Offline = False,
    data: _Data = _DATA,
) -> None:
    """Show one instrument: its canonical name, each broker's id, lot and tick size."""
    inst = _master(offline, data).resolve(name, field="name")
    console.print(_table([inst]))
    if inst.expiry is not None:
        console.print(f"expiry {inst.expiry.isoformat()}", markup=False, highlight=False)


@instruments_app.command("refresh")
def refresh_command() -> None:
    """Download every broker's instrument file now and rebuild the cache (cron-friendly: one line)."""
    from algocli.errors import BrokerError
    from algocli.instruments.cache import refresh_master

    master, outcome = refresh_master(force=True)  # nothing at all: MasterUnavailable says why each download failed
    summary = "; ".join(f"{source}: {line}" for source, line in sorted(outcome.items()))
    console.print(f"instruments: {len(master):,} in {master.source} ({summary})", markup=False, highlight=False,
                  soft_wrap=True)
    failed = sorted(source for source, line in outcome.items() if line.failed)
    if failed:
        raise BrokerError(_failed_line(failed, outcome))


def _failed_line(failed: list[str], outcome: dict) -> str:
    """The error after a refresh in which ``failed`` brokers' downloads failed: for each, what is true
    of its cache (nothing cached: its instruments are missing; else the older list kept)."""
    parts = []
    for source in failed:
        kept = str(outcome[source]).rpartition("; using the cache of ")[2]
        if str(outcome[source]).endswith("; nothing cached"):
            parts.append(f"{source}: nothing was cached for it, so the list has none of its instruments")
        else:
            parts.append(f"{source}: its cached list of {kept} was kept")
    return (f"{' and '.join(failed)} download{'s' if len(failed) > 1 else ''} failed (see above); "
            f"{'; '.join(parts)}; fix the network or the URL and run `algo instruments refresh` again")
