"""The search space of a sweep: parameter specs from the command line and safe constraints.

A parameter is ``name=start:stop:step`` (both ends included; ``start:stop`` steps whole
numbers by one), ``name=a,b,c`` (a list of choices) or ``name=value``. Constraints are expressions over parameter names
(``fast_period < slow_period``) parsed with :mod:`ast` and evaluated by a small
interpreter that knows names, numbers, strings, comparisons, arithmetic and
``and``/``or``/``not``: no call, attribute, subscript or lambda ever runs.
"""

from __future__ import annotations

import ast
import itertools
import math
import operator
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Iterator

from algocli.config.errors import suggest
from algocli.errors import UsageError

# ``<param>`` or ``<strategy id>.<param>``; an id may hold letters, digits, ``_ . -`` (``config.run``'s pattern)
_NAME = re.compile(r"^([A-Za-z0-9_.-]+\.)?[A-Za-z_][A-Za-z0-9_]*$")
#: Largest grid enumerated; a larger one is a typo more often than a plan (use --method random).
MAX_GRID = 5_000_000


@dataclass(frozen=True)
class Param:
    """One searched parameter.

    Attributes:
        name: The strategy parameter, optionally ``<strategy id>.<name>``.
        values: Every value it takes, in the given order.
        kind: ``range`` (``start:stop:step``) or ``choice`` (a list); Bayesian search treats
            a range as ordered and a choice as categorical.
    """

    name: str
    values: tuple
    kind: str


def parse_param(text: str) -> Param:
    """Parse ``name=start:stop:step``, ``name=start:stop`` (whole numbers, step 1), ``name=a,b,c`` or ``name=value``.

    Integers stay integers; a range with a fractional part is stepped exactly (decimal
    arithmetic, so ``0.1:0.3:0.1`` gives three values).

    Raises:
        UsageError: The text is not one of these forms, or the range is empty.
    """
    name, sep, spec = text.partition("=")
    name = name.strip()
    fix = "write --param name=5:50:5 (start:stop:step) or --param name=5,8,13"
    if not sep or not _NAME.match(name) or not spec.strip():
        raise UsageError(f"--param {text!r}: expected name=value; {fix}")
    spec = spec.strip()
    if ":" in spec:
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise UsageError(f"--param {text!r}: a range is start:stop:step (or start:stop for whole numbers); {fix}")
        try:
            start, stop, *step = (Decimal(p.strip()) for p in parts)
        except InvalidOperation:
            start = None
        if start is None or not all(d.is_finite() for d in (start, stop, *step)):  # nan, inf: no grid
            raise UsageError(f"--param {text!r}: start, stop and step must be finite numbers; {fix}")
        if not step and not (start == start.to_integral_value() and stop == stop.to_integral_value()):
            raise UsageError(f"--param {text!r}: a range of fractional values needs its step; "
                             f"write --param {name}={parts[0].strip()}:{parts[1].strip()}:0.1 (start:stop:step)")
        step = step[0] if step else Decimal(1)  # whole numbers step by one, as range() and slices do
        if step <= 0 or stop < start:
            raise UsageError(f"--param {text!r}: needs start <= stop and a positive step; {fix}")
        count = int((stop - start) / step) + 1
        if count > MAX_GRID:
            raise UsageError(f"--param {text!r}: {count} values; use a larger step")
        values = tuple(_number(start + k * step) for k in range(count))
        return Param(name, values, "range")
    typo = _RANGE_TYPO.match(spec)
    if typo:
        raise UsageError(f"--param {text!r}: not a range; write a range as start:stop[:step] or a list as "
                         f"a,b,c, e.g. --param {name}={typo['start']}:{typo['stop']}{':0.1' if '.' in spec else ''}")
    items = [v.strip() for v in spec.split(",")]
    if "" in items:
        raise UsageError(f"--param {text!r}: an empty value in the list; list each value once between commas, "
                         "e.g. --param name=5,8,13")
    values = tuple(_choice(v, text) for v in items)
    if len(set(values)) != len(values):
        raise UsageError(f"--param {text!r}: a value is listed twice; list each once")
    return Param(name, values, "choice")


#: ``5-20`` or ``5..20``: a range written as other tools write it, which would pass for one text value
_RANGE_TYPO = re.compile(r"^(?P<start>[-+]?\d+(?:\.\d+)?)\s*(?:-|\.\.)\s*(?P<stop>[-+]?\d+(?:\.\d+)?)$")


def _choice(item: str, text: str) -> int | float | bool | str:
    value = _scalar(item)
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"--param {text!r}: {item} is not a finite number; list finite values, "
                         "e.g. --param name=5,8,13")
    return value


def _number(d: Decimal) -> int | float:
    return int(d) if d.is_finite() and d == d.to_integral_value() else float(d)


def _scalar(text: str) -> int | float | bool | str:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return _number(Decimal(text))
    except InvalidOperation:
        return text


# --------------------------------------------------------------------------- constraints

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
            ast.Eq: operator.eq, ast.NotEq: operator.ne}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}


#: What is left of ``<strategy id>.<param>`` once the known ones are placeholders: a misspelt one
_QUALIFIED = re.compile(r"(?<![\w.-])[A-Za-z_][\w-]*(?:\.[\w-]+)*\.[A-Za-z_]\w*")


class Constraint:
    """A boolean expression over parameters, checked before any trial runs.

    Args:
        text: e.g. ``fast_period < slow_period and slow_period - fast_period >= 10``.
        names: The parameters the expression may name.

    Raises:
        UsageError: The text is not an expression, uses anything but names, numbers,
            strings, comparisons, arithmetic and ``and``/``or``/``not``, or names an
            unknown parameter.
    """

    def __init__(self, text: str, names: list[str]) -> None:
        self.text = text
        # ``sma-hdfcbank.quantity`` is no Python name: each qualified parameter stands in the
        # expression as a placeholder, the longest first so that no name eats part of another
        self._alias: dict[str, str] = {}
        expr = text.strip()
        for k, name in enumerate(sorted((n for n in names if not n.isidentifier()), key=len, reverse=True)):
            token = f"_param_{k}_"
            expr, found = re.subn(rf"(?<![\w.-]){re.escape(name)}(?!\w)", token, expr)
            if found:
                self._alias[token] = name
        unknown = _QUALIFIED.search(expr)
        if unknown:
            raise UsageError(f"--constraint {text!r}: {unknown[0]!r} is not a --param{suggest(unknown[0], names)} "
                             f"(the params: {', '.join(names)})")
        try:
            tree = ast.parse(expr, mode="eval")
        except SyntaxError:
            raise UsageError(f"--constraint {text!r}: not an expression; write e.g. "
                             "\"fast_period < slow_period\"") from None
        for node in ast.walk(tree):
            _check_node(node, text, names, self._alias)
        self._body = tree.body
        self._names = [self._alias.get(n.id, n.id) for n in ast.walk(tree) if isinstance(n, ast.Name)]

    def __call__(self, params: dict) -> bool:
        """Whether ``params`` pass.

        Raises:
            UsageError: The expression is undefined at ``params`` (a division by zero, a comparison
                of a number with a text). A point the constraint cannot judge is not dropped
                silently: the grid it leaves would not be the one the trader meant.
        """
        scope = {**params, **{token: params[name] for token, name in self._alias.items()}}
        try:
            return bool(_evaluate(self._body, scope))
        except ZeroDivisionError as exc:
            divisor = self._shown(ast.unparse(exc.args[0])) if exc.args and isinstance(exc.args[0], ast.AST) else ""
            guard = (f"; guard it: \"{divisor} != 0 and ...\"" if divisor else
                     "; rewrite it so that every point of the grid gives true or false")
            raise UsageError(f"--constraint {self.text!r}: divides by zero at {self._point(params)}{guard}") from None
        except (ArithmeticError, TypeError) as exc:
            raise UsageError(f"--constraint {self.text!r}: undefined at {self._point(params)} ({exc}); rewrite it "
                             "so that every point of the grid gives true or false") from None

    def _shown(self, expr: str) -> str:
        for token, name in self._alias.items():
            expr = expr.replace(token, name)
        return expr

    def _point(self, params: dict) -> str:
        used = [n for n in dict.fromkeys(self._names) if n in params]
        return ", ".join(f"{n}={params[n]}" for n in used)


_ALLOWED = (ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Name, ast.Load, ast.Constant,
            ast.And, ast.Or, *_BINARY, *_COMPARE, *_UNARY)


def _check_node(node: ast.AST, text: str, names: list[str], placeholders: dict[str, str]) -> None:
    if not isinstance(node, _ALLOWED):
        raise UsageError(f"--constraint {text!r}: {type(node).__name__} is not allowed; use parameter names, "
                         "numbers, comparisons, + - * / // % **, and, or, not")
    if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str, bool)):
        raise UsageError(f"--constraint {text!r}: {node.value!r} is not a number or a string")
    if isinstance(node, ast.Name) and node.id not in names and node.id not in placeholders \
            and node.id not in ("True", "False"):
        several = [n for n in names if n.rpartition(".")[2] == node.id]
        if len(several) > 1:
            raise UsageError(f"--constraint {text!r}: {node.id!r} is a parameter of several strategies; "
                             f"name one: {' or '.join(several)}")
        raise UsageError(f"--constraint {text!r}: {node.id!r} is not a --param{suggest(node.id, names)} "
                         f"(the params: {', '.join(names)})")


def _evaluate(node: ast.AST, params: dict):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return params[node.id]
    if isinstance(node, ast.BoolOp):
        values = (_evaluate(v, params) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, params))
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, params), _evaluate(node.right, params)
        if not all(isinstance(v, (int, float)) for v in (left, right)):
            raise UsageError("--constraint: arithmetic works on numbers only")  # no "a" * 10**9
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise UsageError("--constraint: an exponent above 64 is refused")
        try:
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            if isinstance(node.op, ast.Pow):
                raise
            raise ZeroDivisionError(node.right) from None  # the divisor, for the message's guard
    left = _evaluate(node.left, params)  # ast.Compare, chained: a < b < c
    for op, comparator in zip(node.ops, node.comparators):
        right = _evaluate(comparator, params)
        if not _COMPARE[type(op)](left, right):
            return False
        left = right
    return True


# --------------------------------------------------------------------------- the space


@dataclass
class Space:
    """The parameters and constraints of one sweep."""

    params: list[Param]
    constraints: list[Constraint]

    @classmethod
    def parse(cls, params: list[str], constraints: list[str] = ()) -> Space:
        """Build a space from ``--param`` and ``--constraint`` texts.

        Raises:
            UsageError: No parameter, a parameter given twice, or a bad spec or constraint.
        """
        if not params:
            raise UsageError("give at least one --param, e.g. --param fast_period=5:50:5")
        parsed = [parse_param(p) for p in params]
        names = [p.name for p in parsed]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise UsageError(f"--param {dup} is given twice; give each parameter once")
        bare = [n.rsplit(".", 1)[-1] for n in names]
        # a bare name too, where only one strategy has it (``fast_period`` for ``sma.fast_period``)
        usable = list(dict.fromkeys(names + [b for b in bare if bare.count(b) == 1]))
        return cls(parsed, [Constraint(c, usable) for c in constraints])

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def size(self) -> int:
        """Points in the full grid, before constraints."""
        n = 1
        for p in self.params:
            n *= len(p.values)
        return n

    def admits(self, point: dict) -> bool:
        """Whether ``point`` passes every constraint."""
        if not self.constraints:
            return True
        scope = {**point, **{name.rsplit(".", 1)[-1]: v for name, v in point.items()}}
        return all(c(scope) for c in self.constraints)

    def grid(self) -> Iterator[dict]:
        """Every admissible point, in the order of the Cartesian product (last param fastest).

        Raises:
            UsageError: The grid has more than ``MAX_GRID`` points.
        """
        if self.size > MAX_GRID:
            raise UsageError(f"the grid has {self.size:,} points (more than {MAX_GRID:,}); use larger steps or "
                             "--method random --trials N")
        for values in itertools.product(*(p.values for p in self.params)):
            point = dict(zip(self.names, values))
            if self.admits(point):
                yield point
