"""``algo pcr``: an underlying's option chain summarised, with its put-call ratios.

One snapshot by default, refreshed every ``--interval`` seconds with ``--watch`` (Dhan
answers one chain request per 3 seconds, so shorter intervals wait). ``--json`` prints the
summary as one JSON object for scripts. A broker failure ends the command with one line
and exit status 1; a bad underlying or expiry with status 2.
"""

from __future__ import annotations

from typing import Annotated

import typer

from algocli.cli.main import app

SOURCES = ("dhan", "upstox")


@app.command("pcr")
def pcr_command(
    underlying: Annotated[str, typer.Argument(help="The underlying, e.g. \"NSE:NIFTY 50\" (or NSE:NIFTY BANK, "
                                                   "NSE:NIFTY FIN SERVICE, BSE:SENSEX).")],
    expiry: Annotated[str, typer.Option("--expiry", help="current, next or a YYYY-MM-DD expiry.")] = "current",
    source: Annotated[str | None, typer.Option("--source", help="dhan or upstox; default the broker whose "
                                               "access token is set (DHAN_ACCESS_TOKEN first).")] = None,
    window: Annotated[int, typer.Option("--window", min=0, help="Strikes each side of ATM for the windowed "
                                        "PCR and the table.")] = 10,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.5, help="Seconds between refreshes with "
                                            "--watch.")] = 5.0,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the tables.")] = False,
    low: Annotated[float, typer.Option("--low", help="OI PCR below this is the 'low' band.")] = 0.7,
    high: Annotated[float, typer.Option("--high", help="OI PCR above this is the 'high' band.")] = 1.3,
    reading: Annotated[str, typer.Option("--reading", help="How a band maps to a bias: writers, contrarian "
                                         "or buyers (see the README).")] = "writers",
) -> None:
    """Show an underlying's option chain and its put-call ratios (OI, volume, change in OI)."""
    import asyncio

    from algocli.errors import UsageError
    from algocli.options.pcr import Bands

    try:
        bands = Bands(low, high, reading)  # type: ignore[arg-type]
    except ValueError as exc:
        raise UsageError(f"{exc}; fix --low/--high/--reading") from None
    from algocli.options.chain import parse_expiry

    try:
        parse_expiry(expiry)  # whether the broker lists it is known at the first fetch
    except ValueError as exc:
        raise UsageError(f"--{exc}") from None
    chosen = _source(source)
    asyncio.run(_run(chosen, underlying, expiry, window, bands, watch=watch, interval=interval, json_out=json_out))


def _source(source: str | None) -> str:
    from algocli.errors import UsageError

    if source is not None:
        if source.lower() not in SOURCES:
            from algocli.config.errors import suggest

            raise UsageError(f"--source {source!r} is not one of {', '.join(SOURCES)}{suggest(source.lower(), SOURCES)}")
        return source.lower()
    from algocli.adapters.dhan.settings import DhanSettings
    from algocli.adapters.upstox.settings import UpstoxSettings

    if DhanSettings().access_token.get_secret_value():
        return "dhan"
    if UpstoxSettings().access_token.get_secret_value():
        return "upstox"
    raise UsageError("no broker token: set DHAN_ACCESS_TOKEN and DHAN_CLIENT_ID, or UPSTOX_ACCESS_TOKEN "
                     "(environment or .env), or pass --source")


class _Fetcher:
    """One broker's chain of one underlying; the expiry is resolved once, on the first fetch."""

    def __init__(self, session, source: str, underlying: str, expiry: str) -> None:
        self.source, self.underlying, self.spec = source, underlying, expiry
        self.expiry, self.name = None, None
        if source == "dhan":
            from algocli.adapters.dhan.http import DhanRest
            from algocli.adapters.dhan.settings import DhanSettings

            settings = DhanSettings()
            self.client, self.client_id = DhanRest(session, settings, retries=2), settings.client_id
        else:
            from algocli.adapters.upstox.http import UpstoxRest
            from algocli.adapters.upstox.settings import UpstoxSettings

            self.client, self.client_id = UpstoxRest(session, UpstoxSettings(), retries=2), ""

    async def chain(self):
        from algocli.errors import UsageError
        from algocli.options.chain import resolve_expiry

        if self.source == "dhan":
            from algocli.adapters.dhan import options as broker

            extra = (self.client_id,)
        else:
            from algocli.adapters.upstox import options as broker

            extra = ()
        if self.expiry is None:
            self.underlying, self.name = _underlying(broker, self.source, self.underlying)
            try:
                self.expiry = resolve_expiry(self.spec, await broker.fetch_expiries(self.client, self.underlying,
                                                                                    *extra))
            except ValueError as exc:
                raise UsageError(f"--expiry: {exc}") from None
        return await broker.fetch_chain(self.client, self.underlying, self.expiry, *extra, name=self.name)


def _underlying(broker, source: str, text: str) -> tuple[str, str | None]:
    """What to ask ``broker`` for, and the name its contracts take (None: the broker module's own).

    An index the broker module knows by name, alias (``NSE:NIFTY``) or broker id (``IDX_I:13``,
    ``NSE_INDEX|Nifty 50``) is named by it; anything else goes through the instrument list, as
    ``download-data`` does, so ``NSE_EQ:1333`` and ``NSE:HDFCBANK`` both name ``NSE:HDFCBANK ...``
    contracts. Without the list the text is asked for as given.
    """
    from algocli.errors import AlgoError

    if broker.underlying_name(text) is not None:
        return text, None
    try:
        from algocli.instruments import open_master

        inst = open_master(warn=lambda line: None).resolve(text)
    except AlgoError:
        return text, None
    if broker.underlying_name(inst.hrn) is not None:
        return inst.hrn, None
    ident = inst.dhan_id if source == "dhan" else inst.upstox_key
    return (ident, inst.hrn) if ident else (text, None)


async def _run(source: str, underlying: str, expiry: str, window: int, bands, *, watch: bool, interval: float,
               json_out: bool) -> None:
    import asyncio
    import json

    import aiohttp

    from algocli.cli.console import console
    from algocli.options.pcr import summarise

    async with aiohttp.ClientSession() as session:
        fetcher = _Fetcher(session, source, underlying, expiry)
        summary = summarise(await fetcher.chain(), window)
        if json_out and not watch:
            print(json.dumps(summary.as_dict(bands)))
            return
        if not watch:
            console.print(_render(summary, bands))
            return
        from rich.live import Live

        with Live(_render(summary, bands), console=console, auto_refresh=False) as live:
            while True:
                await asyncio.sleep(interval)
                summary = summarise(await fetcher.chain(), window)
                if json_out:
                    print(json.dumps(summary.as_dict(bands)), flush=True)
                live.update(_render(summary, bands), refresh=True)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _render(summary, bands):
    """The summary line, the PCR table and the strikes around ATM, as one Rich renderable."""
    from rich.console import Group
    from rich.table import Table

    from algocli.options.pcr import window as strikes_around

    chain = summary.chain
    head = (f"{chain.underlying}  expiry {chain.expiry.isoformat()}  ({chain.source}, "
            f"{chain.fetched_at:%Y-%m-%d %H:%M:%S})\nspot {_fmt(chain.spot)}  ATM {_fmt(summary.atm, 0)}  "
            f"max pain {_fmt(summary.max_pain, 0)}  call OI wall {_fmt(summary.max_call_oi_strike, 0)}  "
            f"put OI wall {_fmt(summary.max_put_oi_strike, 0)}")
    ratios = Table(title="Put-call ratios", title_justify="left")
    for col in ("", "whole chain", f"ATM ±{summary.window_strikes}", "band", "bias"):
        ratios.add_column(col, justify="left" if not col else "right")
    for label, name in (("OI PCR", "oi_pcr"), ("Volume PCR", "vol_pcr"), ("Change-in-OI PCR", "chg_oi_pcr")):
        whole, part = getattr(summary.whole, name), getattr(summary.windowed, name)
        ratios.add_row(label, _fmt(whole, 3), _fmt(part, 3), bands.band(whole) or "-", bands.bias(whole) or "-")
    strikes = Table(title="Strikes around ATM (OI and change in OI in units)", title_justify="left")
    for col in ("call OI", "chg OI", "LTP", "strike", "LTP", "chg OI", "put OI"):
        strikes.add_column(col, justify="right", style="bold" if col == "strike" else None)
    for row in strikes_around(chain, summary.window_strikes):
        ce, pe = row.ce, row.pe
        left = ["-"] * 3 if ce is None else [f"{ce.oi:,}", f"{ce.change_in_oi:+,}", _fmt(ce.ltp)]
        right = ["-"] * 3 if pe is None else [_fmt(pe.ltp), f"{pe.change_in_oi:+,}", f"{pe.oi:,}"]
        strikes.add_row(*left, _fmt(row.strike, 0), *right, style="reverse" if row.strike == summary.atm else None)
    return Group(head, ratios, strikes)
