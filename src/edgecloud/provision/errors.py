"""What is wrong with a provision template: problems with YAML paths and plain reasons."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic_core import ErrorDetails

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a template: where (a path like `networks[1].driver`) and why."""

    path: str
    reason: str
    line: int | None = None  # YAML syntax errors: where in the text (from 1)
    column: int | None = None

    def __str__(self) -> str:
        where = self.path or (f"line {self.line}, column {self.column}" if self.line else "")
        return f"{where}: {self.reason}" if where else self.reason


class TemplateError(Exception):
    """A provision template is invalid; `problems` holds every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))

    @property
    def path(self) -> str:
        """Return the path of the first problem."""
        return self.problems[0].path

    @property
    def reason(self) -> str:
        """Return the reason of the first problem."""
        return self.problems[0].reason


def pydantic_problems(errors: Iterable[ErrorDetails], prefix: Loc = ()) -> list[Problem]:
    """Turn pydantic's errors into problems with template paths and plain reasons."""
    return [Problem(path_text((*prefix, *error["loc"])), _reason(error)) for error in errors]


PLAIN = {
    "extra_forbidden": "unknown key",
    "missing": "required",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "string_pattern_mismatch": "must not contain control characters",
}


def _reason(error: ErrorDetails) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "literal_error":
        return f"must be {ctx['expected']}"
    if kind == "value_error":
        return str(ctx["error"])
    if kind in ("greater_than_equal", "less_than_equal"):
        word, bound = ("least", ctx["ge"]) if "ge" in ctx else ("most", ctx["le"])
        return f"must be at {word} {bound}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    if kind in ("too_short", "too_long"):
        short = kind == "too_short"
        word, bound = ("least", ctx["min_length"]) if short else ("most", ctx["max_length"])
        return f"must have at {word} {bound} item{'s' if bound != 1 else ''}"
    return PLAIN.get(kind, error["msg"])


def path_text(loc: Loc) -> str:
    """Format a location as a YAML path: `networks[1].driver`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != "[key]":
            text += f".{part}" if text else part
    return text


def scrub(problems: Iterable[Problem], secrets: Iterable[str]) -> list[Problem]:
    """Hide password values wherever they would show in a reason."""
    cleaned = []
    for problem in problems:
        reason = problem.reason
        for secret in sorted(secrets, key=len, reverse=True):
            reason = reason.replace(secret, "***")
        cleaned.append(Problem(problem.path, reason, problem.line, problem.column))
    return cleaned
