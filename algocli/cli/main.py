"""The ``algo`` command: the Typer app and the one place errors become exit codes."""

from __future__ import annotations

import sys
import traceback

import typer

from algocli.errors import AlgoError

app = typer.Typer(
    name="algo",
    help="Backtest, paper-trade and live-trade strategies on NSE/BSE from a YAML run definition.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,  # a token can sit in a local variable
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """algo: algorithmic trading for Indian markets."""


def _register() -> None:
    from algocli.cli import (backtest, download, halt, instruments, live, paper, sandbox,  # noqa: F401
                            strategies)  # (commands register on import)


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
    from algocli.cli.console import err_console

    _tune_allocator()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    _configure_logging(debug)
    if debug:  # accepted anywhere on the line, not only before the command
        args = ["--debug"] + [a for a in args if a != "--debug"]
    _register()
    try:
        status = app(args=args, prog_name="algo", standalone_mode=False)
        # Without standalone mode click returns a ``typer.Exit``'s code instead of raising it.
        return status if isinstance(status, int) else 0
    except AlgoError as exc:
        if debug:
            traceback.print_exc()
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
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
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            highlight=False, soft_wrap=True)
        return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
