"""One exception tree for everything an operator can see.

Each class says what the operator should do. The CLI maps the tree to exit codes in
one place (``algocli.cli.main``)::

    AlgoError                      exit 1
    ├── UsageError                 exit 2   bad flag, missing file
    │   ├── ConfigError            exit 2   bad YAML key, type or value
    │   │   └── PluginError        exit 2   unknown strategy / feed / broker / fill model
    │   └── DataError              exit 2   a CSV row that cannot be trusted
    ├── StrategyError              exit 1   the strategy's own code raised
    ├── BrokerError                exit 1   the broker refused or failed
    └── ArtifactError              exit 1   an artifact could not be written (the file is named)
"""

from __future__ import annotations


class AlgoError(Exception):
    """Something stopped the run. Read the message: it names what failed and the fix."""

    exit_code = 1


class UsageError(AlgoError):
    """The command was called wrongly. Fix the flag or path named in the message and rerun."""

    exit_code = 2


class ConfigError(UsageError):
    """The run definition is invalid. Edit the YAML key named in the message and rerun."""


class PluginError(ConfigError):
    """A named strategy, feed, broker or fill model is not registered.

    Run ``algo strategies`` to list what is installed, or use ``package.module:ClassName``.
    """


class DataError(UsageError):
    """A data file cannot be trusted. Repair the file and row named in the message and rerun."""

    def __init__(self, path: object, message: str, row: int | None = None) -> None:
        self.path = str(path)
        self.row = row
        where = f"{self.path}, row {row}" if row is not None else self.path
        super().__init__(f"{where}: {message}")


class StrategyError(AlgoError):
    """The strategy's own code raised. Fix the strategy; rerun with ``--debug`` for the traceback."""


class BrokerError(AlgoError):
    """The broker refused or failed. Check the account, the order and the broker's status."""


class ArtifactError(AlgoError):
    """A run's artifact could not be written. Free disk space or fix the permissions of the file
    named in the message (or choose another ``--output``) and rerun; the folder keeps its older set."""


def not_utf8(path: object) -> str:
    """Where and how a file fails to be UTF-8, for a one-line error: the byte offset, line and fix.

    Only called on the error path: the file is read in binary and decoded again to find the
    first bad byte.

    Args:
        path: The file that raised ``UnicodeDecodeError``.

    Returns:
        ``"is not UTF-8 text: byte 7 (line 1) is 0xff; ..."`` (without the path).
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return (f"is not UTF-8 text: byte {exc.start} (line {line}) is 0x{data[exc.start]:02x}; "
                "save it as UTF-8 (an editor's \"save with encoding\", or `iconv -t utf-8`)")
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    return "is not UTF-8 text; save the file as UTF-8"
