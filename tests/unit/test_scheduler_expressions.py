"""Unit tests for SCHED_REQUIREMENTS and SCHED_RANK: grammar, evaluation, errors."""

from __future__ import annotations

from typing import Any

import pytest

from edgecloud.server.errors import InvalidInput
from edgecloud.server.scheduler.expressions import (
    ExpressionError,
    check_expressions,
    parse_rank,
    parse_requirements,
)

pytestmark = pytest.mark.unit

HOST: dict[str, Any] = {
    "ID": 7,
    "NAME": "host-01.edge",
    "HYPERVISOR": "kvm",
    "FREE_CPU": 400,
    "FREE_MEMORY": "2048",
    "RATIO": "0.5",
    "LABELS": "ssd,fast gpu",
    "PCI": ["10de:1db6", "8086:1572"],
    "PORTS": [22, 80],
    "VERSION": "5",
    "WORD": "five",
    "QUOTE": 'say "hi"',
    "Lower": "yes",
    "CAPACITY": {"FREE_CPU": "200", "CORES": [{"ID": "3"}]},
}


def holds(text: str, attrs: dict[str, Any] | None = None) -> bool:
    return parse_requirements(text).evaluate(HOST if attrs is None else attrs)


def error_of(text: str, *, rank: bool = False) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        (parse_rank if rank else parse_requirements)(text)
    return caught.value


# --- comparisons --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FREE_CPU = 400", True),
        ("FREE_CPU = 401", False),
        ("FREE_CPU != 401", True),
        ("FREE_CPU != 400", False),
        ("FREE_CPU > 399", True),
        ("FREE_CPU > 400", False),
        ("FREE_CPU < 401", True),
        ("FREE_CPU < 400", False),
        ("FREE_CPU >= 400", True),
        ("FREE_CPU >= 401", False),
        ("FREE_CPU <= 400", True),
        ("FREE_CPU <= 399", False),
        ("FREE_MEMORY > 2047.5", True),
        ("RATIO = 0.5", True),
        ("RATIO < .6", True),
        ("FREE_CPU > -1", True),
        ("FREE_CPU>399", True),
    ],
)
def test_requirement_numeric_operators_compare_numbers(text: str, expected: bool) -> None:
    assert holds(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HYPERVISOR = kvm", True),
        ('HYPERVISOR = "kvm"', True),
        ("HYPERVISOR = KVM", False),  # case-sensitive
        ("HYPERVISOR != lxc", True),
        ("HYPERVISOR != kvm", False),
        ("NAME = host-01.edge", True),
        ("NAME = host-*", True),
        ('NAME = "*.edge"', True),
        ("NAME = host-0?.edge", True),
        ("NAME = host-0[12].edge", True),
        ("NAME = host-0[23].edge", False),
        ("NAME != host-*", False),
        ("NAME != web-*", True),
        (r'QUOTE = "say \"hi\""', True),
        ('NAME = "host 01"', False),
    ],
)
def test_requirement_string_equality_is_a_wildcard_match(text: str, expected: bool) -> None:
    assert holds(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("LABELS @> ssd", True),
        ("LABELS @> gpu", True),  # spaces separate too
        ("LABELS @> hdd", False),
        ("LABELS @> fa*", True),
        ('PCI @> "10de:*"', True),
        ('PCI @> "1002:*"', False),
        ("PORTS @> 80", True),
        ("PORTS @> 443", False),
        ("VERSION @> 5", True),
        ("MISSING @> x", False),
    ],
)
def test_requirement_contains_looks_for_an_item(text: str, expected: bool) -> None:
    assert holds(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("VERSION = 5", True),
        ("VERSION = 5.0", True),
        ('VERSION = "5"', True),
        ('VERSION = "5.0"', False),  # a quoted value is a string
        ("WORD = 5", False),  # not a number: false
        ("WORD != 5", False),  # ... for every operator
        ("WORD > 1", False),
        ("ID = 7", True),
        ('ID = "7"', True),
        ("ID = 7*", True),
    ],
)
def test_requirement_numbers_and_strings_compare_as_written(text: str, expected: bool) -> None:
    assert holds(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MISSING = 1", False),
        ("MISSING != 1", False),
        ("MISSING > 0", False),
        ("MISSING = x", False),
        ("MISSING != x", False),
        ("!MISSING = 1", True),
        ("!(MISSING != x)", True),
    ],
)
def test_requirement_missing_attribute_makes_comparison_false(text: str, expected: bool) -> None:
    assert holds(text) is expected


def test_requirement_attribute_names_are_case_insensitive() -> None:
    assert holds("free_cpu = 400")
    assert holds("LOWER = yes")
    assert holds("Hypervisor = kvm")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CAPACITY/FREE_CPU = 200", True),
        ("capacity/free_cpu > 200", False),
        ("CAPACITY/CORES/ID = 3", True),
        ("CAPACITY/MISSING = 1", False),
        ("NAME/X = 1", False),
    ],
)
def test_requirement_nested_attributes_are_looked_up(text: str, expected: bool) -> None:
    assert holds(text) is expected


# --- logic --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HYPERVISOR = kvm & FREE_CPU > 100", True),
        ("HYPERVISOR = kvm & FREE_CPU > 1000", False),
        ("HYPERVISOR = lxc | FREE_CPU > 100", True),
        ("HYPERVISOR = lxc | FREE_CPU > 1000", False),
        ("!HYPERVISOR = lxc", True),
        ("!!HYPERVISOR = lxc", False),
        ("! (HYPERVISOR = lxc | FREE_CPU > 100)", False),
        # '&' binds tighter than '|': this is kvm | (lxc & lxc)
        ("HYPERVISOR = kvm | HYPERVISOR = lxc & NAME = lxc", True),
        ("(HYPERVISOR = kvm | HYPERVISOR = lxc) & NAME = lxc", False),
        ("NAME = lxc & HYPERVISOR = lxc | HYPERVISOR = kvm", True),
        ("((FREE_CPU > 1))", True),
        ("!HYPERVISOR = lxc & FREE_CPU > 1000", False),  # '!' binds to one comparison
    ],
)
def test_requirement_logic_and_precedence(text: str, expected: bool) -> None:
    assert holds(text) is expected


def test_requirement_empty_expression_holds_for_every_host() -> None:
    assert holds("")
    assert holds("   ", {})
    assert parse_requirements("").parts == ()


def test_requirement_reports_names_and_top_level_parts() -> None:
    requirement = parse_requirements("A = 1 & (b = 2 | C/D = 3) & !E > 0")
    assert requirement.names == frozenset({"A", "B", "C", "E"})
    assert [p.text for p in requirement.parts] == ["A = 1", "(b = 2 | C/D = 3)", "!E > 0"]
    assert parse_requirements("A = 1 | B = 2").parts == (parse_requirements("A = 1 | B = 2"),)


def test_requirement_is_compiled_once_per_text() -> None:
    assert parse_requirements("FREE_CPU > 5") is parse_requirements("FREE_CPU > 5")


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("FREE_CPU >", 11, "expected a value after '>'"),
        ("FREE_CPU > 1 &", 15, "expected an attribute name"),
        ("(FREE_CPU > 1", 14, "expected ')'"),
        ("FREE_CPU > 1)", 13, "unexpected ')'"),
        ("NAME > abc", 8, "'>' needs a number, got 'abc'"),
        ('NAME <= "5"', 9, "'<=' needs a number"),
        ("NAME ~ x", 6, "expected a comparison operator"),
        ("NAME", 5, "expected a comparison operator"),
        ('NAME = "x', 8, "unterminated string"),
        ("5 = NAME", 1, "expected an attribute name"),
        ("A = 1 B = 2", 7, "unexpected 'B'"),
        ("A = 1 && B = 2", 8, "expected an attribute name"),
        ("A = )", 5, "expected a value after '='"),
        ("!", 2, "expected an attribute name"),
    ],
)
def test_requirement_errors_name_the_column(text: str, position: int, reason: str) -> None:
    error = error_of(text)
    assert error.position == position
    assert reason in error.reason
    assert str(error).startswith(f"column {position}: ")
    assert isinstance(error, ValueError)


# --- rank ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FREE_CPU", 400.0),
        ("free_cpu / 4", 100.0),
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("10 - 4 - 3", 3.0),
        ("64 / 4 / 2", 8.0),
        ("-FREE_CPU", -400.0),
        ("- -2", 2.0),
        ("2 * -3", -6.0),
        ("FREE_MEMORY - FREE_CPU * 2", 1248.0),
        ("RATIO * 10", 5.0),
        ("MISSING + 1", 1.0),
        ("WORD + 1", 1.0),
        ("FREE_CPU / 0", 0.0),
        ("FREE_CPU / MISSING", 0.0),
        ("1.5 * 2", 3.0),
        ("", 0.0),
    ],
)
def test_rank_evaluates_arithmetic(text: str, expected: float) -> None:
    assert parse_rank(text).evaluate(HOST) == pytest.approx(expected)


def test_rank_reports_names() -> None:
    assert parse_rank("free_cpu / MAX_CPU - 3").names == frozenset({"FREE_CPU", "MAX_CPU"})


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("1 +", 4, "expected a number, an attribute name or '('"),
        ("(FREE_CPU", 10, "expected ')'"),
        ("FREE_CPU MAX_CPU", 10, "unexpected 'MAX_CPU'"),
        ("* 2", 1, "expected a number"),
        ("A = 1", 3, "unexpected '='"),
        ("CAPACITY/FREE_CPU/", 19, "expected a number"),
    ],
)
def test_rank_errors_name_the_column(text: str, position: int, reason: str) -> None:
    error = error_of(text, rank=True)
    assert (error.position, reason in error.reason) == (position, True)


# --- submit-time check --------------------------------------------------------------------


def test_check_expressions_accepts_valid_and_missing_expressions() -> None:
    check_expressions({})
    check_expressions({"SCHED_REQUIREMENTS": "FREE_CPU > 60", "SCHED_RANK": "FREE_CPU"})
    check_expressions({"sched_requirements": ""})


@pytest.mark.parametrize(
    ("template", "field", "reason"),
    [
        ({"SCHED_REQUIREMENTS": "FREE_CPU >"}, "template.SCHED_REQUIREMENTS", "column 11: "),
        ({"sched_requirements": "(A = 1"}, "template.SCHED_REQUIREMENTS", "column 7: "),
        ({"SCHED_RANK": "FREE_CPU +"}, "template.SCHED_RANK", "column 11: "),
        ({"SCHED_RANK": ["A"]}, "template.SCHED_RANK", "must be a single expression"),
    ],
)
def test_check_expressions_refuses_with_field_and_column(
    template: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_expressions(template)
    assert caught.value.field == field
    assert caught.value.reason.startswith(reason)
