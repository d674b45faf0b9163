"""The ``algo`` command: the Typer app and the one place errors become exit codes.

Start-up matters here: ``algo --help`` and ``algo --version`` import only Typer and the command
modules, which import their heavy dependencies (pandas, pydantic, plotly, aiohttp) inside the
commands that use them. tests/cli/test_main_imports.py keeps it so.
"""

from __future__ import annotations

import gc
import os
import re
import sys
import traceback

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from algocli.errors import AlgoError


class _ReadableHelp:
    """Help in Click's plain layout, with arguments named as the command's help text names them.

    Typer's Rich help prints a type beside every parameter, flags included (``--yes <bool>``,
    ``text... <list[str]>``), and importing Rich's Markdown for it costs about 0.1 s of every
    ``--help``. Plain Click help prints flags as flags; this mixin prints arguments as
    ``CONFIG`` or ``TEXT...`` (one or more words) in the usage line, the Arguments list and
    errors ("Missing argument 'CONFIG'").
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument) and param.metavar is None:
                param.metavar = param.name.upper()

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: typer.Context, formatter: typer._click.HelpFormatter) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if isinstance(param, TyperArgument):
                arguments.append((_argument_name(param), record[1]))
            else:  # one value per use: ``--token <str>``, not ``<list[str]>``; the range follows in [x>=0]
                options.append((_ONE_VALUE.sub(r"<\1>", record[0]), record[1]))
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


_ONE_VALUE = re.compile(r"<(?:list\[)?(\w+)(?:\]| range)>")  # <list[str]>, <int range>


def _argument_name(param: TyperArgument) -> str:
    """``CONFIG`` for one value, ``TEXT...`` for one or more, as the help texts spell them."""
    return f"{param.metavar}..." if param.nargs != 1 else param.metavar


class AlgoCommand(_ReadableHelp, TyperCommand):
    """A command whose help prints flags as flags and arguments by name (see ``_ReadableHelp``)."""


class AlgoGroup(_ReadableHelp, TyperGroup):
    """A group like ``AlgoCommand`` whose command list shows each command's whole first paragraph."""

    def format_options(self, ctx: typer.Context, formatter: typer._click.HelpFormatter) -> None:
        super().format_options(ctx, formatter)
        self.format_commands(ctx, formatter)

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        return [*super().collect_usage_pieces(ctx), self.subcommand_metavar]

    def format_commands(self, ctx: typer.Context, formatter: typer._click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, _summary(command)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _summary(command: typer._click.Command) -> str:
    """The first paragraph of a command's help, on one line.

    Click cuts it at the first full stop or to fit one line ("e.g." ends it, "and write CSV and
    HTML..."); the list wraps it instead.
    """
    if command.short_help:
        return command.short_help
    return " ".join((command.help or "").split("\n\n", 1)[0].split())


app = typer.Typer(
    name="algo",
    help="Backtest, paper-trade and live-trade strategies on NSE/BSE from a YAML run definition.",
    cls=AlgoGroup,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain Click help: see _ReadableHelp
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,  # a token can sit in a local variable
)


def _print_version(value: bool) -> None:
    if value:
        from algocli import __version__

        print(f"algo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """algo: algorithmic trading for Indian markets."""


# Command name -> the module of algocli.cli that registers it on import (tests/cli/test_main.py
# checks that the two agree).
COMMANDS = {"backtest": "backtest", "download-data": "download", "halt": "halt", "live": "live",
            "paper": "paper", "sandbox": "sandbox", "strategies": "strategies", "instruments": "instruments",
            "montecarlo": "montecarlo", "optimize": "optimize", "pcr": "pcr", "walkforward": "walkforward"}


def _register(args: list[str] | None = None) -> None:
    """Import the module of the command ``args`` names, none for ``--version``, else every one.

    Importing the eight command modules and letting Typer read all their signatures costs
    0.05-0.1 s that ``algo backtest`` has no use for; help and a mistyped name need them all.
    """
    import importlib

    args = args or []
    name = next((a for a in args if not a.startswith("-")), None)
    if name in COMMANDS:
        modules = [COMMANDS[name]]
    else:
        modules = [] if name is None and "--version" in args else list(COMMANDS.values())
    for module in modules:
        importlib.import_module(f"algocli.cli.{module}")
    _use_readable_help(app)


def _use_readable_help(typer_app: typer.Typer) -> None:
    """Give every command and sub-group registered on ``typer_app`` the help of ``AlgoCommand``.

    The command modules register with plain ``@app.command``; setting the class here keeps
    them free of help-layout details. A command that chose its own class keeps it.
    """
    for info in typer_app.registered_commands:
        if info.cls in (None, TyperCommand):  # ``@app.command`` records TyperCommand when given none
            info.cls = AlgoCommand
    for group in typer_app.registered_groups:
        sub = group.typer_instance
        if not isinstance(sub.info.cls, type):  # Typer's "not set" placeholder
            sub.info.cls = AlgoGroup
        sub.rich_markup_mode = None
        _use_readable_help(sub)


def _tune_allocator() -> None:
    """Make glibc hand large freed blocks straight back to the OS.

    glibc raises its mmap threshold after the first large free, so later multi-megabyte
    numpy arrays land on the heap and stay resident after they are freed. Loading a
    million-row CSV then keeps ~100 MB of dead pages for the rest of the run. A fixed
    1 MiB threshold keeps peak RSS near the live data. Other platforms are left alone.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _skip_pydantic_plugins() -> None:
    """Skip pydantic's plugin discovery, which scans every installed package's entry points
    when the first model is built (about a tenth of the sample backtest's start-up).

    Pydantic plugins are observability hooks (https://docs.pydantic.dev/latest/concepts/plugins/);
    set ``PYDANTIC_DISABLE_PLUGINS=`` (empty) to have them loaded.
    """
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "1")


def _configure_logging(debug: bool) -> None:
    """Library log lines go to stderr only with --debug.

    Without it the user sees the dashboard, the one-line error and the artifacts; feed
    reconnects and skipped packets are counted on the dashboard instead of scrolling past.
    """
    import logging

    root = logging.getLogger()
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    elif not root.handlers:
        root.addHandler(logging.NullHandler())


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status: 0 ok, 1 failure, 2 usage or config error, 130 interrupted."""
    from algocli.cli.console import err_console, escape

    _tune_allocator()
    _skip_pydantic_plugins()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    _configure_logging(debug)
    if debug:  # accepted anywhere on the line, not only before the command
        args = ["--debug"] + [a for a in args if a != "--debug"]
    _register(args)
    from algocli.cli.console import guard_stdout

    restore = guard_stdout()
    try:
        status = app(args=args, prog_name="algo", standalone_mode=False)
        # Without standalone mode click returns a ``typer.Exit``'s code instead of raising it.
        return status if isinstance(status, int) else 0
    except AlgoError as exc:
        if debug:
            traceback.print_exc()
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except typer.TyperException as exc:  # bad flags or arguments
        exc.show(file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as exc:  # a bug: say so in one line, keep the traceback for --debug
        if debug:
            traceback.print_exc()
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} (rerun with --debug for the traceback)",
            highlight=False, soft_wrap=True)
        return 1
    finally:
        restore()


def run() -> None:
    """Console-script entry point."""
    status = main()
    # The interpreter's last collection as it exits would walk every object the command left
    # behind (after a 1M-bar backtest, 0.2 s for its orders' and fills' cycles). The process is
    # done with them: set them aside, as main() returned with everything written and closed.
    gc.freeze()
    sys.exit(status)
