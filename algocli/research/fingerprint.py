"""What a trial's figures depend on besides the run definition, the data and the package: the
strategies' source code and a ``broker.charges`` CSV table.

A trial key (``trials._Sweep``) that left these out would hand back a journal's old figures
after the user edited the strategy or the charges table and ran the same sweep again. Each
strategy class is read from the file it is defined in; when that module belongs to a package,
from every module file of that package's folder too (its helpers), since a strategy package
may keep its logic beside the class. Imports from elsewhere are not followed: a change there
needs a fresh ``--out``.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from pathlib import Path


def inputs_fingerprint(config, source: str) -> dict[str, str]:
    """SHA-256s of each strategy's source files and of a charges table file, by name.

    Args:
        config: The run definition (``RunConfig``) a sweep runs.
        source: The YAML path (a relative charges table is read beside it).

    Returns:
        ``{"strategy <class>": sha, ..., "charges": sha}``; no ``charges`` entry for a shipped
        table (``dhan``...: the package version covers it) or a flat commission.
    """
    from algocli.registry import resolve

    out = {}
    for i, entry in enumerate(config.strategies):
        cls = resolve("strategy", entry.class_, where=f"{source}: strategies[{i}].class")
        files = strategy_files(cls)
        out[f"strategy {cls.__module__}:{cls.__qualname__}"] = _files_sha(files, files[0].parent if files else None)
    table = _charges_file(config, source)
    if table is not None:
        out["charges"] = _files_sha([table], table.parent)
    return out


def strategy_files(cls: type) -> list[Path]:
    """The file ``cls`` is defined in, then, when its module is in a package, the package folder's
    other module files (``*.py``, subpackages included), sorted; empty when Python knows no file."""
    module = sys.modules.get(cls.__module__)
    try:
        own = inspect.getsourcefile(cls)
    except (TypeError, OSError):  # a class made at run time: no file of its own
        own = None
    own = own or getattr(module, "__file__", None)  # bytecode only: the module's file is the next best thing
    if own is None:
        return []
    own = Path(own)
    package = getattr(getattr(module, "__spec__", None), "parent", "")
    if not package:
        return [own]
    return [own, *sorted(set(own.parent.rglob("*.py")) - {own})]


def _charges_file(config, source: str) -> Path | None:
    """The CSV charges table ``broker.charges`` names, or None (none, or a shipped one)."""
    from algocli.broker.costs import SHIPPED_CHARGES
    from algocli.config.run import parse_plugin_config
    from algocli.registry import resolve

    broker = resolve("broker", config.broker.name, where=f"{source}: broker.name")
    cfg = parse_plugin_config(broker.Config, config.broker.plugin_params, source, "broker")
    if not getattr(cfg, "charges", None):
        return None
    table = cfg.charges_table(Path(source).parent)
    return None if table in SHIPPED_CHARGES else Path(table)


def _files_sha(paths: list[Path], root: Path | None) -> str:
    """One SHA-256 over each file's path under ``root`` and its bytes (names relative to ``root``,
    so a project moved to another folder keeps its keys; a file that cannot be read counts as
    such: loading the run definition refused it already where it matters)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError:
            digest.update(b"missing")
    return digest.hexdigest()
