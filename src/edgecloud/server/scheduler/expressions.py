"""OpenNebula's placement expressions: SCHED_REQUIREMENTS (boolean) and SCHED_RANK (arithmetic).

Requirements (OpenNebula's ``expr_bool.y``, with ``>=``/``<=`` added)::

    or    := and ('|' and)*            '&' binds tighter than '|'
    and   := unary ('&' unary)*
    unary := '!' unary | '(' or ')' | ATTR OP VALUE
    OP    := '=' | '!=' | '>' | '<' | '>=' | '<=' | '@>'

- ``ATTR`` is a case-insensitive name, ``X/Y`` looks ``Y`` up inside the nested ``X``.
- ``VALUE`` is a number, a double-quoted string (``\\"`` and ``\\\\`` escape) or a bare word;
  a bare word that reads as a number is a number.
- With a number, every operator compares numerically; an attribute that does not read as a
  number makes the comparison false. With a string, ``=`` and ``!=`` are a shell wildcard
  match (``fnmatch``, case-sensitive) and ``>``/``<``/``>=``/``<=`` are refused.
- ``@>``: the attribute (a list, or a comma/space separated string) has an item that
  equals the number, or matches the string as a wildcard.
- A missing attribute makes every comparison false, so ``!`` of it is true.
- An empty expression is true for every host.

Rank: ``+ - * /``, unary minus, parentheses over numbers and attribute names (``/``
always divides here, so nested attributes are not reachable); a missing or non-numeric
attribute counts 0, and dividing by zero gives 0. An empty rank is 0 everywhere.

Both compile once to closures, cached by text: 100,000 VMs share a few expressions.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

from edgecloud.server.errors import InvalidInput
from edgecloud.server.scheduler.scanner import (
    Attrs,
    ExpressionError,
    Scanner,
    attribute_getter,
    items_of,
    number_of,
    text_of,
)

__all__ = [
    "ExpressionError",
    "RankExpr",
    "Requirement",
    "check_expressions",
    "parse_rank",
    "parse_requirements",
]

Test = Callable[[Attrs], bool]
Calc = Callable[[Attrs], float]

_COMPARATORS = ("!=", ">=", "<=", "@>", "=", ">", "<")
_ORDERED = {">": float.__gt__, "<": float.__lt__, ">=": float.__ge__, "<=": float.__le__}
_WILDCARD = re.compile(r"[*?\[]")


class Requirement:
    """Hold a compiled SCHED_REQUIREMENTS expression and the attribute names it reads."""

    __slots__ = ("_test", "names", "parts", "text")

    def __init__(
        self,
        text: str,
        test: Test,
        names: frozenset[str],
        parts: tuple[Requirement, ...] | None = None,
    ) -> None:
        self.text = text
        self._test = test
        self.names = names
        # The top-level '&' operands (none when empty), so a scheduler can evaluate the
        # parts that read only static attributes once per host instead of once per VM.
        self.parts = (self,) if parts is None else parts

    def evaluate(self, attrs: Mapping[str, Any]) -> bool:
        """Return whether a host with these attributes satisfies the expression."""
        return self._test(attrs)

    def __repr__(self) -> str:
        return f"Requirement({self.text!r})"


class RankExpr:
    """Hold a compiled SCHED_RANK expression and the attribute names it reads."""

    __slots__ = ("_calc", "names", "text")

    def __init__(self, text: str, calc: Calc, names: frozenset[str]) -> None:
        self.text = text
        self._calc = calc
        self.names = names

    def evaluate(self, attrs: Mapping[str, Any]) -> float:
        """Return the rank of a host with these attributes (higher is better)."""
        return self._calc(attrs)

    def __repr__(self) -> str:
        return f"RankExpr({self.text!r})"


@functools.lru_cache(maxsize=4096)
def parse_requirements(text: str) -> Requirement:
    """Compile a SCHED_REQUIREMENTS expression; raise ExpressionError where it is wrong."""
    scanner = Scanner(text)
    if scanner.at_end():
        return Requirement(text, _always, frozenset(), ())
    alternatives = _RequirementParser(scanner).disjunction()
    scanner.expect_end()
    if len(alternatives) > 1:
        return Requirement(text, _any(alternatives), _names(alternatives))
    parts = tuple(Requirement(text[s:e], t, n) for t, n, s, e in alternatives[0])
    return Requirement(text, _all([p.evaluate for p in parts]), _names(alternatives), parts)


@functools.lru_cache(maxsize=4096)
def parse_rank(text: str) -> RankExpr:
    """Compile a SCHED_RANK expression; raise ExpressionError where it is wrong."""
    scanner = Scanner(text)
    if scanner.at_end():
        return RankExpr(text, _zero, frozenset())
    calc, names = _RankParser(scanner).sum()
    scanner.expect_end()
    return RankExpr(text, calc, names)


def check_expressions(template: Mapping[str, Any]) -> None:
    """Raise InvalidInput naming the column when SCHED_REQUIREMENTS or SCHED_RANK is wrong."""
    for key, parse in (("SCHED_REQUIREMENTS", parse_requirements), ("SCHED_RANK", parse_rank)):
        value = next((v for k, v in template.items() if str(k).upper() == key), None)
        if value is None:
            continue
        field = f"template.{key}"
        if not isinstance(value, str):
            raise InvalidInput(field, "must be a single expression")
        try:
            parse(value)
        except ExpressionError as err:
            raise InvalidInput(field, f"column {err.position}: {err.reason}") from None


# --- requirements -------------------------------------------------------------------------

# A parsed conjunct: its test, the attribute names it reads, and its span in the text.
_Node = tuple[Test, frozenset[str], int, int]


class _RequirementParser:
    """Parse requirements by recursive descent into lists of conjuncts."""

    def __init__(self, scanner: Scanner) -> None:
        self.scanner = scanner

    def disjunction(self) -> list[list[_Node]]:
        """Parse ``and ('|' and)*``; return the alternatives, each a list of conjuncts."""
        alternatives = [self.conjunction()]
        while self.scanner.accept("|"):
            alternatives.append(self.conjunction())
        return alternatives

    def conjunction(self) -> list[_Node]:
        """Parse ``unary ('&' unary)*``."""
        nodes = [self.unary()]
        while self.scanner.accept("&"):
            nodes.append(self.unary())
        return nodes

    def unary(self) -> _Node:
        """Parse a negation, a parenthesised expression or a comparison."""
        scanner = self.scanner
        start = scanner.skip()
        if scanner.accept("!"):
            test, names, _, end = self.unary()
            return (lambda a: not test(a)), names, start, end
        if scanner.accept("("):
            alternatives = self.disjunction()
            scanner.expect(")")
            return _any(alternatives), _names(alternatives), start, scanner.pos
        return self.comparison()

    def comparison(self) -> _Node:
        """Parse ``ATTR OP VALUE`` into a test."""
        scanner = self.scanner
        start = scanner.skip()
        name = scanner.name(nested=True, what="an attribute name, '!' or '('")
        op = scanner.operator(_COMPARATORS)
        if op is None:
            raise scanner.error("expected a comparison operator (=, !=, >, <, >=, <=, @>)")
        value, token = scanner.value(op)
        if isinstance(value, str) and op in _ORDERED:
            at = scanner.pos - len(token) + 1
            raise ExpressionError(f"{op!r} needs a number, got {token!r}", at)
        test = _compare(attribute_getter(name), op, value, token)
        return test, frozenset({name.upper().split("/")[0]}), start, scanner.pos


def _compare(get: Callable[[Attrs], Any], op: str, value: float | str, token: str) -> Test:
    """Build the test of one comparison."""
    if op == "@>":
        return _contains(get, value, token)
    if isinstance(value, float):
        return _numeric(get, op, value)
    match = _matcher(value)
    if op == "=":
        return lambda a: (v := get(a)) is not None and match(text_of(v))
    return lambda a: (v := get(a)) is not None and not match(text_of(v))


def _numeric(get: Callable[[Attrs], Any], op: str, value: float) -> Test:
    """Build a numeric comparison; an attribute that is not a number makes it false."""
    if op == "=":
        return lambda a: number_of(get(a)) == value
    if op == "!=":
        return lambda a: (n := number_of(get(a))) is not None and n != value
    cmp = _ORDERED[op]
    return lambda a: (n := number_of(get(a))) is not None and cmp(n, value)


def _contains(get: Callable[[Attrs], Any], value: float | str, token: str) -> Test:
    """Build ``ATTR @> VALUE``: some item of the attribute's list is the value."""
    if isinstance(value, float):
        number = value
        return lambda a: any(i == token or number_of(i) == number for i in items_of(get(a)))
    match = _matcher(value)
    return lambda a: any(match(i) for i in items_of(get(a)))


def _matcher(pattern: str) -> Callable[[str], bool]:
    """Return a case-sensitive shell wildcard match against the pattern."""
    if not _WILDCARD.search(pattern):
        return pattern.__eq__
    regex = re.compile(fnmatch.translate(pattern), re.DOTALL)
    return lambda s: regex.match(s) is not None


# --- rank ---------------------------------------------------------------------------------

_Term = tuple[Calc, frozenset[str]]


class _RankParser:
    """Parse rank arithmetic by recursive descent into closures."""

    def __init__(self, scanner: Scanner) -> None:
        self.scanner = scanner

    def sum(self) -> _Term:
        """Parse ``product (('+'|'-') product)*``."""
        calc, names = self.product()
        while (op := self.scanner.operator(("+", "-"))) is not None:
            right, more = self.product()
            calc, names = _arith(op, calc, right), names | more
        return calc, names

    def product(self) -> _Term:
        """Parse ``unary (('*'|'/') unary)*``."""
        calc, names = self.unary()
        while (op := self.scanner.operator(("*", "/"))) is not None:
            right, more = self.unary()
            calc, names = _arith(op, calc, right), names | more
        return calc, names

    def unary(self) -> _Term:
        """Parse a negation, a parenthesised sum, a number or an attribute."""
        scanner = self.scanner
        scanner.skip()
        if scanner.accept("-"):
            calc, names = self.unary()
            return (lambda a: -calc(a)), names
        if scanner.accept("("):
            term = self.sum()
            scanner.expect(")")
            return term
        number = scanner.number()
        if number is not None:
            return (lambda a: number), frozenset()
        name = scanner.name(nested=False, what="a number, an attribute name or '('")
        get = attribute_getter(name)
        return (lambda a: number_of(get(a)) or 0.0), frozenset({name.upper()})


def _arith(op: str, left: Calc, right: Calc) -> Calc:
    """Combine two operands; dividing by zero gives 0 as in OpenNebula."""
    if op == "+":
        return lambda a: left(a) + right(a)
    if op == "-":
        return lambda a: left(a) - right(a)
    if op == "*":
        return lambda a: left(a) * right(a)

    def divide(attrs: Attrs) -> float:
        divisor = right(attrs)
        return left(attrs) / divisor if divisor else 0.0

    return divide


# --- combinators --------------------------------------------------------------------------


def _always(attrs: Attrs) -> bool:
    return True


def _zero(attrs: Attrs) -> float:
    return 0.0


def _all(tests: list[Test]) -> Test:
    """Return the conjunction of tests, unrolled for the common short cases."""
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda a: first(a) and second(a)
    frozen = tuple(tests)
    return lambda a: all(t(a) for t in frozen)


def _any(alternatives: list[list[_Node]]) -> Test:
    """Return the disjunction of conjunctions."""
    tests = [_all([node[0] for node in nodes]) for nodes in alternatives]
    if len(tests) == 1:
        return tests[0]
    frozen = tuple(tests)
    return lambda a: any(t(a) for t in frozen)


def _names(alternatives: list[list[_Node]]) -> frozenset[str]:
    """Return every attribute name the alternatives read."""
    return frozenset().union(*(node[1] for nodes in alternatives for node in nodes))
