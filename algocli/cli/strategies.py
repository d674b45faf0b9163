"""``algo strategies``: what is registered, with each entry's parameters."""

from __future__ import annotations

import inspect

from rich.table import Table

from algocli.cli.console import console
from algocli.cli.main import app
from algocli.registry import lacks, registered

KINDS = (("strategy", "Strategies"), ("feed", "Data feeds"), ("broker", "Brokers"),
         ("fill model", "Fill models"), ("cost model", "Cost models"))


def _params(cls: type) -> str:
    """``name: type = default`` lines from the plugin's Params or Config model, else its constructor."""
    model = getattr(cls, "Params", None) or getattr(cls, "Config", None)
    if model is None:
        return _constructor(cls)
    parts = []
    for name, f in model.model_fields.items():
        ann = getattr(f.annotation, "__name__", str(f.annotation))
        default = "required" if f.is_required() else repr(f.default)
        parts.append(f"{name}: {ann} = {default}")
    return "\n".join(parts) or "—"


def _constructor(cls: type) -> str:
    parts = []
    for p in inspect.signature(cls).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        default = "required" if p.default is p.empty else repr(p.default)
        parts.append(f"{p.name}: {ann or 'Any'} = {default}")
    return "\n".join(parts) or "—"


@app.command("strategies")
def strategies_command() -> None:
    """List registered strategies, data feeds, brokers, fill models and cost models with their parameters."""
    for kind, title in KINDS:
        table = Table(title=title, title_justify="left", show_lines=True)
        table.add_column("name", style="bold cyan")
        table.add_column("class", overflow="fold")
        table.add_column("parameters")
        for name, ep in registered(kind).items():
            try:
                cls = ep.load()
                problem = lacks(kind, cls)
                table.add_row(name, ep.value, f"[red]not usable: it {problem}[/]" if problem else _params(cls))
            except Exception as exc:  # one broken plugin must not hide the others
                table.add_row(name, ep.value, f"[red]failed to import: {exc}[/]")
        console.print(table)
