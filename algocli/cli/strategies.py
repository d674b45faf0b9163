"""``algo strategies``: what is registered, with each entry's parameters as a YAML writer needs them.

Each parameter is one line ``name: type = default`` (``(required)`` or ``(optional)`` when it
has no default), followed by what the plugin says of it and which values it takes::

    fast_period: int = 10
      bars in the fast average
      at least 1
    mode: text = quote
      one of ticker, quote, full

Descriptions come from ``Field(description=...)``, else from the ``Attributes:`` (model) or
``Args:`` (constructor) section of the Google-style docstring. A field declared with
``Field(json_schema_extra={"internal": True})`` is filled by algo itself and is not listed.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import types
import typing
from datetime import date
from pathlib import PurePath
from typing import TYPE_CHECKING

from algocli.cli.console import console
from algocli.cli.main import app

if TYPE_CHECKING:
    from rich.console import RenderableType

KINDS = (("strategy", "Strategies"), ("feed", "Data feeds"), ("broker", "Brokers"),
         ("fill model", "Fill models"), ("cost model", "Cost models"))

# Type names as a run definition's reader knows them, not Python's.
_TYPE_NAMES = {str: "text", int: "int", float: "float", bool: "true/false", date: "YYYY-MM-DD",
               dict: "mapping", list: "list"}
_BOUNDS = (("ge", "at least"), ("gt", "more than"), ("le", "at most"), ("lt", "less than"),
           ("min_length", "at least {} long"), ("max_length", "at most {} long"), ("multiple_of", "a multiple of"))


def parameter_lines(cls: type) -> list[str]:
    """The parameters of a plugin: from its ``Params`` or ``Config`` model, else its constructor.

    Args:
        cls: A loaded plugin class.

    Returns:
        Lines of text, first line of each parameter ``name: type = default``; ``[]`` for none.
    """
    model = getattr(cls, "Params", None) or getattr(cls, "Config", None)
    if model is None:
        return _constructor_lines(cls)
    docs = _docstring_section(model.__doc__, "Attributes")
    lines = []
    for name, f in model.model_fields.items():
        if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("internal"):
            continue
        default = _REQUIRED if f.is_required() else f.get_default(call_default_factory=True)
        lines += _parameter(name, f.annotation, default, f.description or docs.get(name), _bounds(f.metadata))
    return lines


def _constructor_lines(cls: type) -> list[str]:
    docs = _docstring_section(cls.__init__.__doc__, "Args")
    lines = []
    for p in inspect.signature(cls).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = _REQUIRED if p.default is p.empty else p.default
        lines += _parameter(p.name, p.annotation, default, docs.get(p.name), [])
    return lines


_REQUIRED = object()


def _parameter(name: str, annotation: object, default: object, description: str | None,
               rules: list[str]) -> list[str]:
    """``name: type = default``, then the description and the allowed values, each indented two spaces."""
    choices = _choices(annotation)
    kind = _type_name(annotation)
    if default is _REQUIRED:
        head = f"{name}: {kind} (required)"
    elif default is None:
        head = f"{name}: {kind} (optional)"
    else:
        head = f"{name}: {kind} = {_value(default)}"
    lines = [head]
    if description:
        lines.append(f"  {description}")
    if choices:
        lines.append("  one of " + ", ".join(_value(c) for c in choices))
    if rules:
        lines.append("  " + ", ".join(rules))
    return lines


def _choices(annotation: object) -> list[object]:
    """The values a ``Literal`` or an ``Enum`` allows (also inside ``X | None``)."""
    for arg in _without_none(annotation):
        if typing.get_origin(arg) is typing.Literal:
            return list(typing.get_args(arg))
        if isinstance(arg, type) and issubclass(arg, enum.Enum):
            return [m.value for m in arg]
    return []


def _without_none(annotation: object) -> list[object]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _type_name(annotation: object) -> str:
    """``int``, ``text``, ``path``, ``list of text``: what a YAML value of this type looks like."""
    if annotation is inspect.Parameter.empty or annotation is typing.Any:
        return "any"
    if isinstance(annotation, str):  # an unevaluated annotation (``from __future__ import annotations``)
        return annotation.replace(" | None", "").replace("None | ", "").replace("str", "text")
    args = _without_none(annotation)
    if len(args) > 1:
        return " or ".join(_type_name(a) for a in args)
    annotation = args[0]
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        values = typing.get_args(annotation)
        return _TYPE_NAMES.get(type(values[0]), type(values[0]).__name__) if values else "any"
    if origin in (list, tuple, set, frozenset):
        inner = typing.get_args(annotation)
        return f"list of {_type_name(inner[0])}" if inner else "list"
    if origin is dict:
        key, value = (typing.get_args(annotation) + (typing.Any, typing.Any))[:2]
        return f"mapping of {_type_name(key)} to {_type_name(value)}"
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return "text"
        if issubclass(annotation, PurePath):
            return "path"
        if annotation.__name__ in ("SecretStr", "SecretBytes"):
            return "secret"
        return _TYPE_NAMES.get(annotation, annotation.__name__)
    return str(annotation).replace("typing.", "")


def _value(value: object) -> str:
    """A default as it would be written in the YAML; a secret's is never shown."""
    if type(value).__name__ in ("SecretStr", "SecretBytes"):
        return "(hidden)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return _value(value.value)
    if isinstance(value, (PurePath, date)):
        return str(value)
    if isinstance(value, str):
        return value if value and value.strip() == value else json.dumps(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return repr(value)


def _bounds(metadata: list[object]) -> list[str]:
    """``at least 1``, ``less than 0.1``: pydantic's ``ge``/``lt``-style constraints in words."""
    rules = []
    for item in metadata:
        for attr, words in _BOUNDS:
            bound = getattr(item, attr, None)
            if bound is not None:
                rules.append(words.format(bound) if "{}" in words else f"{words} {_value(bound)}")
    return rules


def _docstring_section(doc: str | None, title: str) -> dict[str, str]:
    """``{name: text}`` from the ``Attributes:`` or ``Args:`` section of a Google-style docstring."""
    lines = inspect.cleandoc(doc or "").splitlines()
    try:
        body = lines[lines.index(f"{title}:") + 1:]
    except ValueError:
        return {}
    indent = next((len(line) - len(line.lstrip()) for line in body if line.strip()), 0)
    found: dict[str, str] = {}
    name = None
    for line in body:
        depth = len(line) - len(line.lstrip())
        if line.strip() and depth < indent:  # the next section
            break
        entry = re.match(r"(\w+)(?: \([^)]*\))?: (.*)", line.strip()) if depth == indent else None
        if entry:
            name = entry.group(1)
            found[name] = entry.group(2).strip()
        elif name and line.strip():
            found[name] += " " + line.strip()
    return {key: text.replace("``", "") for key, text in found.items()}


def _cell(lines: list[str]) -> RenderableType:
    """The parameter lines with each detail line indented under its parameter, also when it wraps."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    if not lines:
        return "—"
    return Group(*(Padding(Text(line[2:], style="dim"), (0, 0, 0, 2)) if line.startswith("  ") else Text(line)
                   for line in lines))


@app.command("strategies")
def strategies_command() -> None:
    """List registered strategies, data feeds, brokers, fill models and cost models with their parameters."""
    from rich.markup import escape
    from rich.table import Table

    from algocli.registry import lacks, registered

    for kind, title in KINDS:
        table = Table(title=title, title_justify="left", show_lines=True)
        table.add_column("name", style="bold cyan")
        table.add_column("class", overflow="fold")
        table.add_column("parameters")
        for name, ep in registered(kind).items():
            try:
                cls = ep.load()
                problem = lacks(kind, cls)
                cell = f"[red]not usable: it {escape(problem)}[/]" if problem else _cell(parameter_lines(cls))
                table.add_row(name, ep.value, cell)
            except Exception as exc:  # one broken plugin must not hide the others
                table.add_row(name, ep.value, f"[red]failed to import: {escape(str(exc))}[/]")
        console.print(table)
