"""Tokens and attribute values of the placement expressions (see ``expressions``).

The scanner is pulled by the parsers instead of tokenising ahead, because a token depends
on where it stands: after ``=`` in a requirement, ``host-1*`` is one bare word, while in
a rank ``-`` and ``*`` are operators.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Attrs = Mapping[str, Any]

_SPACE = re.compile(r"\s*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_SIGNED_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_WORD = re.compile(r'[^\s&|()!<>="]+')
_QUOTED = re.compile(r'"([^"\\]*+(?:\\.[^"\\]*+)*+)"', re.DOTALL)
_UNESCAPE = re.compile(r'\\(["\\])')
_SNIPPET = re.compile(r"\w+|\S")
_ITEM_SEPARATORS = re.compile(r"[,\s]+")


class ExpressionError(ValueError):
    """Signal that an expression cannot be parsed, and where (1-based column)."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(f"column {position}: {reason}")
        self.reason = reason
        self.position = position


class Scanner:
    """Walk an expression text; each method reads one kind of token at the position."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self) -> int:
        """Skip blanks; return the new position."""
        match = _SPACE.match(self.text, self.pos)
        self.pos = match.end() if match else self.pos
        return self.pos

    def at_end(self) -> bool:
        """Return whether only blanks are left."""
        return self.skip() == len(self.text)

    def accept(self, symbol: str) -> bool:
        """Consume the symbol if it comes next."""
        if self.text.startswith(symbol, self.skip()):
            self.pos += len(symbol)
            return True
        return False

    def operator(self, symbols: Iterable[str]) -> str | None:
        """Consume and return the first of the symbols that comes next, if any."""
        for symbol in symbols:
            if self.accept(symbol):
                return symbol
        return None

    def expect(self, symbol: str) -> None:
        """Consume the symbol or raise."""
        if not self.accept(symbol):
            raise self.error(f"expected {symbol!r}, {self.got()}")

    def expect_end(self) -> None:
        """Raise unless only blanks are left."""
        if not self.at_end():
            raise self.error(f"unexpected {self.snippet()!r}")

    def name(self, *, nested: bool, what: str) -> str:
        """Consume an attribute name (``X/Y`` too when nested); else say ``what`` was due."""
        match = (_PATH if nested else _NAME).match(self.text, self.skip())
        if match is None:
            raise self.error(f"expected {what}, {self.got()}")
        self.pos = match.end()
        return match.group()

    def number(self) -> float | None:
        """Consume an unsigned number if one comes next."""
        match = _NUMBER.match(self.text, self.skip())
        if match is None:
            return None
        self.pos = match.end()
        return float(match.group())

    def value(self, after: str) -> tuple[float | str, str]:
        """Consume the value of a comparison: a number, a quoted string or a bare word."""
        start = self.skip()
        if self.text.startswith('"', start):
            match = _QUOTED.match(self.text, start)
            if match is None:
                raise self.error("unterminated string")
            self.pos = match.end()
            return _UNESCAPE.sub(r"\1", match.group(1)), match.group()
        match = _WORD.match(self.text, start)
        if match is None:
            raise self.error(f"expected a value after {after!r}, {self.got()}")
        self.pos = match.end()
        token = match.group()
        return (float(token), token) if _SIGNED_NUMBER.fullmatch(token) else (token, token)

    def got(self) -> str:
        """Describe what stands at the position, for error messages."""
        if self.pos >= len(self.text):
            return "got the end of the expression"
        return f"got {self.snippet()!r}"

    def snippet(self) -> str:
        """Return the word or character at the position."""
        match = _SNIPPET.match(self.text, self.pos)
        return match.group() if match else self.text[self.pos : self.pos + 1]

    def error(self, reason: str) -> ExpressionError:
        """Return an error at the position."""
        return ExpressionError(reason, self.pos + 1)


def attribute_getter(path: str) -> Callable[[Attrs], Any]:
    """Return a function reading an attribute (``X/Y``: nested) by case-insensitive name.

    It returns None when the attribute is missing. The exact upper-case key is tried
    first, which is what host views hold, so the case-insensitive scan is the rare path.
    """
    keys = tuple(path.upper().split("/"))
    if len(keys) == 1:
        key = keys[0]
        return lambda attrs: v if (v := attrs.get(key)) is not None else _folded(attrs, key)

    def get_nested(attrs: Attrs) -> Any:
        value: Any = attrs
        for key in keys:
            value = _child(value, key)
            if value is None:
                return None
        return value

    return get_nested


def _child(value: Any, key: str) -> Any:
    """Return a key of a mapping, or of the first mapping in a list that has it."""
    if isinstance(value, Mapping):
        found = value.get(key)
        return found if found is not None else _folded(value, key)
    if isinstance(value, list | tuple):
        for item in value:
            found = _child(item, key) if isinstance(item, Mapping) else None
            if found is not None:
                return found
    return None


def _folded(attrs: Attrs, key: str) -> Any:
    """Look a key up ignoring case."""
    for name, value in attrs.items():
        if isinstance(name, str) and name.upper() == key:
            return value
    return None


def number_of(value: Any) -> float | None:
    """Return the value as a number (the first item of a list), or None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, list | tuple) and value:
        return number_of(value[0])
    return None


def text_of(value: Any) -> str:
    """Return the value as text (the first item of a list); whole floats lose their ``.0``."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return text_of(value[0]) if value else ""
    return str(value)


def items_of(value: Any) -> list[str]:
    """Return the items of a list attribute: a list, or a comma/space separated string."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [text_of(item) for item in value]
    if isinstance(value, str):
        return [item for item in _ITEM_SEPARATORS.split(value) if item]
    return [text_of(value)]
