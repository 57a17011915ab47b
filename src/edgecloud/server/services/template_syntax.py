"""Parse and render OpenNebula's template language: ``KEY = value`` and ``KEY = [ K = V, ... ]``.

The grammar follows OpenNebula's template lexer (``src/parsers/template_parser.l``):

- a key is letters, digits, ``_`` and ``-``, case-insensitive (normalised to upper case);
- a value is a bare word, a double-quoted string (``\\"`` and ``\\\\`` are escapes, any
  other backslash is kept as written, and the string may span lines), or a vector of
  single values ``[ K = V, K = V ]``;
- ``#`` starts a comment to the end of the line outside strings.

Values always stay strings here: giving them types is the job of the validation step
(``vm_template``), which knows what each attribute means.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from edgecloud.server.errors import InvalidInput

MULTI_VALUED = frozenset(
    {"DISK", "NIC", "NIC_ALIAS", "PCI", "SCHED_ACTION", "SNAPSHOT", "AR", "RULE", "LEASES"}
)
MAX_TEMPLATE_BYTES = 1024 * 1024
MAX_ATTRIBUTES = 10_000
MAX_KEY_LENGTH = 128

_KEY = re.compile(r"[A-Za-z0-9_-]+")
_BARE = re.compile(r'[^ \t\r\f\v\n"\[\],=#]+')
# Possessive quantifiers keep an unterminated string from backtracking over the whole text.
_QUOTED = re.compile(r'"([^"\\]*+(?:\\.[^"\\]*+)*+)"', re.DOTALL)
_UNESCAPE = re.compile(r'\\(["\\])')
_BLANKS = re.compile(r"[ \t\r\f\v]*")
_SPACE = re.compile(r"(?:[ \t\r\f\v\n]+|#[^\n]*)*")

_REPEATED = "given more than once (names are case-insensitive)"

_Value = str | dict[str, str]


class TemplateSyntaxError(ValueError):
    """Signal that a template text cannot be parsed, and where (1-based line and column)."""

    def __init__(self, line: int, column: int, reason: str) -> None:
        super().__init__(f"line {line}, column {column}: {reason}")
        self.line = line
        self.column = column
        self.reason = reason


class _Scanner:
    """Walk a template text one token at a time, counting the attributes seen."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.count = 0

    def locate(self, pos: int) -> tuple[int, int]:
        line = self.text.count("\n", 0, pos) + 1
        return line, pos - self.text.rfind("\n", 0, pos)

    def fail(self, reason: str, pos: int | None = None) -> TemplateSyntaxError:
        line, column = self.locate(self.pos if pos is None else pos)
        return TemplateSyntaxError(line, column, reason)

    def skip(self, pattern: re.Pattern[str]) -> None:
        match = pattern.match(self.text, self.pos)
        if match is not None:
            self.pos = match.end()

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def key(self, context: str) -> tuple[str, int]:
        start = self.pos
        match = _KEY.match(self.text, start)
        if match is None:
            raise self.fail(f"expected an attribute name{context}")
        if match.end() - start > MAX_KEY_LENGTH:
            raise self.fail(f"attribute name longer than {MAX_KEY_LENGTH} characters")
        self.count += 1
        if self.count > MAX_ATTRIBUTES:
            raise self.fail(f"more than {MAX_ATTRIBUTES} attributes")
        self.pos = match.end()
        return match.group().upper(), start

    def equals(self, key: str) -> None:
        self.skip(_BLANKS)
        if self.peek() != "=":
            raise self.fail(f"expected '=' after '{key}'")
        self.pos += 1
        self.skip(_BLANKS)

    def scalar(self, key: str) -> str:
        if self.peek() == '"':
            return self.quoted()
        match = _BARE.match(self.text, self.pos)
        if match is None:
            raise self.fail(f"expected a value after '{key} ='")
        self.pos = match.end()
        return match.group()

    def quoted(self) -> str:
        match = _QUOTED.match(self.text, self.pos)
        if match is None:
            raise self.fail("unterminated string: no closing '\"'")
        self.pos = match.end()
        return _UNESCAPE.sub(r"\1", match.group(1))

    def vector(self, name: str) -> dict[str, str]:
        line, column = self.locate(self.pos)
        self.pos += 1  # the '['
        pairs: dict[str, str] = {}
        while True:
            self.skip(_SPACE)
            key, at = self.key(f" in vector '{name}'")
            if key in pairs:
                raise self.fail(f"key '{key}' repeated in vector '{name}'", at)
            self.equals(key)
            if self.peek() == "[":
                raise self.fail(f"vectors cannot nest: '{name}' has '{key} = ['")
            pairs[key] = self.scalar(key)
            self.skip(_SPACE)
            if self.peek() == "]":
                self.pos += 1
                return pairs
            if self.peek() != ",":
                opened = f"opened at line {line}, column {column}"
                raise self.fail(f"expected ',' or ']' in vector '{name}' ({opened})")
            self.pos += 1


def parse_template(text: str) -> dict[str, Any]:
    """Parse template text into attributes in order; repeated and MULTI_VALUED keys give lists."""
    _check_text(text)
    scanner = _Scanner(text)
    values: dict[str, list[_Value]] = {}
    while True:
        scanner.skip(_SPACE)
        if scanner.pos >= len(text):
            break
        key, _ = scanner.key("")
        scanner.equals(key)
        value = scanner.vector(key) if scanner.peek() == "[" else scanner.scalar(key)
        values.setdefault(key, []).append(value)
    return {key: _shape(key, items) for key, items in values.items()}


def _check_text(text: str) -> None:
    """Refuse texts too big to parse, or holding NUL characters PostgreSQL cannot store."""
    if len(text) > MAX_TEMPLATE_BYTES or len(_utf8(text)) > MAX_TEMPLATE_BYTES:
        raise TemplateSyntaxError(1, 1, f"template is larger than {MAX_TEMPLATE_BYTES} bytes")
    nul = text.find("\0")
    if nul >= 0:
        raise _Scanner(text).fail("NUL character not allowed", nul)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _shape(key: str, items: list[_Value]) -> _Value | list[_Value]:
    """Return a list for MULTI_VALUED or repeated keys, the single value otherwise."""
    return items if key in MULTI_VALUED or len(items) > 1 else items[0]


def render_template(attrs: Mapping[str, Any]) -> str:
    """Render attributes as template text that parse_template reads back unchanged."""
    lines = []
    for key, value in attrs.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{_render_key(key)} = {_render_value(key, item)}")
    return "".join(f"{line}\n" for line in lines)


def _render_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key) or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"cannot render attribute name {key!r}")
    return key


def _render_value(key: str, value: object) -> str:
    if isinstance(value, Mapping):
        if not value:
            raise ValueError(f"cannot render empty vector {key!r}")
        pairs = ",\n".join(f"  {_render_key(k)} = {_quote(key, v)}" for k, v in value.items())
        return f"[\n{pairs} ]"
    return _quote(key, value)


def _quote(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"cannot render {type(value).__name__} value of {key!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_json_template(data: object) -> dict[str, Any]:
    """Convert a JSON-decoded template object to the shape parse_template returns."""
    if not isinstance(data, Mapping):
        raise InvalidInput("template", f"must be an object of attributes, not {_kind(data)}")
    attrs: dict[str, Any] = {}
    for raw_key, raw_value in data.items():
        key = _json_key(raw_key, "template")
        field = f"template.{key}"
        if key in attrs:
            raise InvalidInput(field, _REPEATED)
        attrs[key] = _json_attribute(key, raw_value, field)
    if _count(attrs) > MAX_ATTRIBUTES:
        raise InvalidInput("template", f"has more than {MAX_ATTRIBUTES} attributes")
    return attrs


def _json_key(raw: object, parent: str) -> str:
    if not isinstance(raw, str):
        raise InvalidInput(parent, "attribute names must be strings")
    field = f"{parent}.{raw[:MAX_KEY_LENGTH]}"
    if len(raw) > MAX_KEY_LENGTH:
        raise InvalidInput(field, f"attribute name longer than {MAX_KEY_LENGTH} characters")
    if not _KEY.fullmatch(raw):
        raise InvalidInput(field, "attribute names are letters, digits, '_' and '-'")
    return raw.upper()


def _json_attribute(key: str, value: object, field: str) -> _Value | list[_Value]:
    if isinstance(value, list):
        if not value:
            raise InvalidInput(field, "must not be an empty list; leave the attribute out")
        return _shape(key, [_json_value(item, f"{field}[{i}]") for i, item in enumerate(value)])
    return _shape(key, [_json_value(value, field)])


def _json_value(value: object, field: str) -> _Value:
    if not isinstance(value, Mapping):
        return _json_scalar(value, field)
    if not value:
        raise InvalidInput(field, "must not be an empty vector")
    vector: dict[str, str] = {}
    for raw_key, raw_value in value.items():
        key = _json_key(raw_key, field)
        if key in vector:
            raise InvalidInput(f"{field}.{key}", _REPEATED)
        vector[key] = _json_scalar(raw_value, f"{field}.{key}")
    return vector


def _json_scalar(value: object, field: str) -> str:
    """Turn a JSON scalar into template text; booleans become OpenNebula's YES and NO."""
    if isinstance(value, bool):
        return "YES" if value else "NO"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(field, "must be a finite number")
        return repr(value)
    if isinstance(value, str):
        if "\0" in value:
            raise InvalidInput(field, "must not contain NUL characters")
        return value
    raise InvalidInput(field, f"must be a string, number or boolean, not {_kind(value)}")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object (vectors cannot nest)"
    return type(value).__name__


def _count(attrs: Mapping[str, Any]) -> int:
    """Count attributes as the text parser does: every top-level value and every vector key."""
    total = 0
    for value in attrs.values():
        for item in value if isinstance(value, list) else [value]:
            total += 1 + (len(item) if isinstance(item, dict) else 0)
    return total
