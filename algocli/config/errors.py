"""Turn pydantic validation errors into one line that names the key and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import date, datetime

from pydantic import BaseModel, ValidationError

from algocli.errors import ConfigError


def key_path(loc: Iterable, prefix: str = "") -> str:
    """Render a pydantic ``loc`` tuple as ``strategies[0].params.slow_period``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` did you mean `x`?`` for the closest choice, or an empty string."""
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean `{match[0]}`?" if match else ""


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names (aliases where set) of the model that owns the last key in ``loc``."""
    current: object = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann = fields[part].annotation
        current = _model_in(ann)
        if current is None:
            return []
    fields = getattr(current, "model_fields", {})
    return [f.alias or name for name, f in fields.items()]


def _model_in(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def describe(err: dict, model: type[BaseModel], prefix: str = "") -> str:
    """One error as ``key: problem; fix``."""
    loc = tuple(err.get("loc", ()))
    where = key_path(loc, prefix) or "(top level)"
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        fields = _fields_at(model, loc)
        hint = suggest(loc[-1], fields) or (f"; valid keys: {', '.join(fields)}" if fields else "; remove it")
        return f"{where}: unknown key{hint}"
    if kind == "missing":
        return f"{where}: required key is missing; add it"
    value = err.get("input")
    msg = err.get("msg", "invalid value")
    if kind in {"enum", "literal_error"}:
        expected = err.get("ctx", {}).get("expected", "")
        choices = [c.strip(" '") for c in expected.replace(" or ", ",").split(",") if c.strip()]
        return f"{where}: {value!r} is not allowed, use one of {expected}{suggest(value, choices)}"
    for prefix_text in ("Value error, ", "Assertion failed, "):  # pydantic's wrapper text
        if msg.startswith(prefix_text):
            msg = msg[len(prefix_text):]
    shown = "" if value is None or isinstance(value, (dict, list)) else _as_written(value)
    shown = f" (got {shown})" if shown and not msg.startswith(shown) else ""  # a message may open with the value
    return f"{where}: {msg[0].lower() + msg[1:] if msg else msg}{shown}"


def _as_written(value: object) -> str:
    """``value`` as the YAML wrote it: a date as ``2018-12-31``, not ``datetime.date(2018, 12, 31)``."""
    return str(value) if isinstance(value, (date, datetime)) else repr(value)


def config_error(exc: ValidationError, model: type[BaseModel], source: str, prefix: str = "") -> ConfigError:
    """A ``ConfigError`` for the first problem, noting how many more there are."""
    # An unknown key first: a misspelt required key is both unknown and missing, and the unknown
    # key's line names the spelling meant.
    errors = sorted(exc.errors(), key=lambda e: e.get("type") != "extra_forbidden")
    line = describe(errors[0], model, prefix)
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return ConfigError(f"{source}: {line}{more}")
