"""Parameter specs and the constraint parser: values as written, and no code ever runs."""

from __future__ import annotations

import re

import pytest

from algocli.errors import UsageError
from algocli.research.space import Constraint, Space, parse_param


def test_range_includes_both_ends_and_keeps_integers():
    p = parse_param("fast_period=5:50:5")
    assert p.values == (5, 10, 15, 20, 25, 30, 35, 40, 45, 50)
    assert all(type(v) is int for v in p.values) and p.kind == "range"


def test_fractional_range_is_stepped_exactly():
    assert parse_param("x=0.1:0.3:0.1").values == (0.1, 0.2, 0.3)


def test_a_range_of_whole_numbers_without_a_step_steps_by_one_and_a_fractional_one_asks_for_its_step():
    p = parse_param("fast_period=5:10")
    assert p.values == tuple(range(5, 11)) and all(type(v) is int for v in p.values) and p.kind == "range"
    with pytest.raises(UsageError, match=r"'x=0.5:2': a range of fractional values needs its step; "
                                         r"write --param x=0.5:2:0.1"):
        parse_param("x=0.5:2")


def test_choices_keep_their_order_and_types():
    p = parse_param("fast_period=13,5,8")
    assert p.values == (13, 5, 8) and p.kind == "choice"
    assert parse_param("mode=fast,slow").values == ("fast", "slow")


@pytest.mark.parametrize("text", ["fast_period", "=1:2:1", "x=5:1:1", "x=1:5:0", "x=1:2:3:4", "x=a:b:c", "x=1,1",
                                  "1x=3"])
def test_bad_specs_are_usage_errors(text):
    with pytest.raises(UsageError, match="--param"):
        parse_param(text)


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')",
    "fast_period.__class__",
    "fast_period[0]",
    "(lambda: 1)()",
    "[x for x in ()]",
    "open('/etc/passwd')",
    "fast_period if slow_period else 1",
    "f'{fast_period}'",
    "import os",
    "fast_period := 3",
])
def test_constraint_refuses_code(text):
    with pytest.raises(UsageError, match="--constraint"):
        Constraint(text, ["fast_period", "slow_period"])


def test_constraint_refuses_unknown_names():
    with pytest.raises(UsageError, match="'slow' is not a --param"):
        Constraint("fast_period < slow", ["fast_period", "slow_period"])


def test_constraint_arithmetic_logic_and_chains():
    c = Constraint("fast_period * 2 <= slow_period and not (slow_period - fast_period > 100) or fast_period == 1",
                   ["fast_period", "slow_period"])
    assert c({"fast_period": 10, "slow_period": 20})
    assert not c({"fast_period": 10, "slow_period": 19})
    assert not c({"fast_period": 10, "slow_period": 200})
    assert c({"fast_period": 1, "slow_period": 1000})
    assert Constraint("1 < a < 3", ["a"])({"a": 2}) and not Constraint("1 < a < 3", ["a"])({"a": 3})


def test_constraint_refuses_huge_work():
    with pytest.raises(UsageError, match="exponent"):
        Constraint("a ** 1000 > 1", ["a"])({"a": 2})
    with pytest.raises(UsageError, match="numbers only"):
        Constraint("'x' * a == 'x'", ["a"])({"a": 10 ** 9})


def test_grid_is_filtered_in_product_order():
    space = Space.parse(["a=1:3:1", "b=1,2,3"], ["a < b"])
    assert list(space.grid()) == [{"a": 1, "b": 2}, {"a": 1, "b": 3}, {"a": 2, "b": 3}]
    assert space.size == 9


def test_qualified_names_can_be_constrained_by_their_bare_name():
    space = Space.parse(["sma.fast_period=1:3:1", "sma.slow_period=2:3:1"], ["fast_period < slow_period"])
    assert len(list(space.grid())) == 3


def test_a_strategy_id_with_hyphens_and_dots_qualifies_a_param_and_constraints_name_it():
    """Run definitions name strategies ``sma-hdfcbank`` (configs/multi.yaml) and ids may hold dots."""
    space = Space.parse(["sma-hdfcbank.quantity=10,20", "rsi.v2.period=10,14", "period=1"],
                        ["sma-hdfcbank.quantity * 2 > rsi.v2.period + 12 and period == 1"])
    assert [p.name for p in space.params] == ["sma-hdfcbank.quantity", "rsi.v2.period", "period"]
    assert list(space.grid()) == [{"sma-hdfcbank.quantity": 20, "rsi.v2.period": 10, "period": 1},
                                  {"sma-hdfcbank.quantity": 20, "rsi.v2.period": 14, "period": 1}]
    # a qualified name that ends another one is not taken for part of it
    space = Space.parse(["a.x=1,2", "aa.x=1,2"], ["aa.x > a.x"])
    assert list(space.grid()) == [{"a.x": 1, "aa.x": 2}]
    with pytest.raises(UsageError, match=r"'foo' is not a --param \(the params: sma-hdfcbank.quantity, quantity\)$"):
        Space.parse(["sma-hdfcbank.quantity=10,20"], ["sma-hdfcbank.quantity > foo"])
    with pytest.raises(UsageError, match=r"'sma-hdfcbank.qty' is not a --param; did you mean `sma-hdfcbank.quantity`"):
        Space.parse(["sma-hdfcbank.quantity=10,20"], ["sma-hdfcbank.qty > 5"])


def test_a_bare_name_two_strategies_share_asks_which_one():
    with pytest.raises(UsageError, match="'quantity' is a parameter of several strategies; name one: "
                                         "sma-hdfcbank.quantity or rsi-infosys.quantity"):
        Space.parse(["sma-hdfcbank.quantity=10,20", "rsi-infosys.quantity=10,20"], ["quantity > 10"])


def test_a_param_given_twice_is_refused():
    with pytest.raises(UsageError, match="twice"):
        Space.parse(["a=1:2:1", "a=3"])


def test_a_constraint_undefined_at_a_point_names_the_point_and_the_guard():
    space = Space.parse(["fast_period=5:20:5", "slow_period=30"], ["slow_period / (fast_period - 5) > 1"])
    with pytest.raises(UsageError, match=r"^--constraint 'slow_period / \(fast_period - 5\) > 1': divides by zero "
                                         r"at slow_period=30, fast_period=5; guard it: \"fast_period - 5 != 0 and"):
        list(space.grid())
    guarded = Space.parse(["fast_period=5:20:5", "slow_period=30"],
                          ["fast_period - 5 != 0 and slow_period / (fast_period - 5) > 1"])
    assert [p["fast_period"] for p in guarded.grid()] == [10, 15, 20]
    mixed = Space.parse(["mode=fast,slow"], ["mode < 3"])
    with pytest.raises(UsageError, match=r"^--constraint 'mode < 3': undefined at mode=fast \('<' not supported"):
        list(mixed.grid())


@pytest.mark.parametrize("text, message", [
    ("fast_period=5:inf:5", "start, stop and step must be finite numbers"),
    ("fast_period=nan:20", "start, stop and step must be finite numbers"),
    ("fast_period=5,inf", "inf is not a finite number"),
    ("fast_period=5-20", "not a range; write a range as start:stop[:step] or a list as a,b,c, e.g. "
                         "--param fast_period=5:20"),
    ("x=0.5..2", "not a range; write a range as start:stop[:step] or a list as a,b,c, e.g. --param x=0.5:2:0.1"),
    ("fast_period=5,,10", "an empty value in the list"),
    ("fast_period=5,", "an empty value in the list"),
])
def test_malformed_specs_say_what_to_write(text, message):
    with pytest.raises(UsageError) as err:
        parse_param(text)
    assert str(err.value).startswith(f"--param {text!r}: {message}")
    suggested = re.search(r"e\.g\. --param (\S+)$", str(err.value))
    if suggested:  # the fix offered parses
        parse_param(suggested.group(1))


def test_a_dated_text_value_is_still_one_choice():
    assert parse_param("day=2024-01-01").values == ("2024-01-01",)
