"""``algo strategies``: what is registered, with each entry's parameters."""

from __future__ import annotations

from rich.table import Table

from algocli.cli.console import console
from algocli.cli.main import app
from algocli.registry import registered


def _params(cls: type) -> str:
    model = getattr(cls, "Params", None) or getattr(cls, "Config", None)
    fields = getattr(model, "model_fields", {}) if model is not None else {}
    parts = []
    for name, f in fields.items():
        ann = getattr(f.annotation, "__name__", str(f.annotation))
        default = "required" if f.is_required() else repr(f.default)
        parts.append(f"{name}: {ann} = {default}")
    return "\n".join(parts) or "—"


@app.command("strategies")
def strategies_command() -> None:
    """List registered strategies, data feeds, brokers and fill models with their parameters."""
    for kind, title in (("strategy", "Strategies"), ("feed", "Data feeds"),
                        ("broker", "Brokers"), ("fill model", "Fill models")):
        table = Table(title=title, title_justify="left", show_lines=True)
        table.add_column("name", style="bold cyan")
        table.add_column("class", overflow="fold")
        table.add_column("parameters")
        for name, ep in registered(kind).items():
            try:
                cls = ep.load()
                table.add_row(name, ep.value, _params(cls))
            except Exception as exc:  # one broken plugin must not hide the others
                table.add_row(name, ep.value, f"[red]failed to import: {exc}[/]")
        console.print(table)
