"""Building the documents OpenNebula's XML-RPC API returns, and reading the templates it
takes (OpenNebula's `KEY = "value"` syntax, or the XML pyone sends for nested dicts)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring

from edgecloud.server.errors import InvalidInput
from edgecloud.server.services.template_syntax import (
    TemplateSyntaxError,
    parse_json_template,
    parse_template,
)

Element = ET.Element
_BAD_XML_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def text(value: object) -> str:
    """A value as element text: numbers as numbers, booleans as 0/1, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _BAD_XML_CHARS.sub("", str(value))


def el(tag: str, value: object = None, *children: Element) -> Element:
    """An element with text (or children)."""
    node = ET.Element(tag)
    if children:
        node.extend(children)
    elif value is not None:
        node.text = text(value)
    return node


def fields(parent: Element, pairs: Iterable[tuple[str, object]]) -> Element:
    """Append one text element per (tag, value), in order; return the parent."""
    for tag, value in pairs:
        parent.append(el(tag, value))
    return parent


def template(tag: str, attrs: Mapping[str, Any]) -> Element:
    """A TEMPLATE / USER_TEMPLATE: each attribute an element, a vector attribute (a mapping)
    an element with children, a repeated attribute (a list) repeated elements."""
    node = ET.Element(tag)
    for key, value in attrs.items():
        _attribute(node, str(key), value)
    return node


def _attribute(parent: Element, key: str, value: Any) -> None:
    if not _NAME.match(key):
        return  # not an XML name: OpenNebula's keys always are
    if isinstance(value, list):
        for item in value:
            _attribute(parent, key, item)
    elif isinstance(value, Mapping):
        parent.append(template(key, value))
    else:
        parent.append(el(key, value))


def permissions(perms: int) -> Element:
    """PERMISSIONS from the 9 bits (user, manage, admin for owner, group, other)."""
    node = ET.Element("PERMISSIONS")
    for who, shift in (("OWNER", 6), ("GROUP", 3), ("OTHER", 0)):
        for right, bit in (("U", 4), ("M", 2), ("A", 1)):
            node.append(el(f"{who}_{right}", 1 if perms >> shift & bit else 0))
    return node


def ids(tag: str, values: Iterable[int]) -> Element:
    """<TAG><ID>1</ID><ID>2</ID></TAG>."""
    return el(tag, None, *(el("ID", v) for v in values))


def dumps(node: Element) -> str:
    """The document as text (no XML declaration, as OpenNebula sends)."""
    return ET.tostring(node, encoding="unicode")


def pool(tag: str, items: Iterable[Element]) -> str:
    """A pool document: the root with its items."""
    root = ET.Element(tag)
    root.extend(items)
    return dumps(root)


def parse_one_template(value: str, *, field: str = "template") -> dict[str, Any]:
    """A template as OpenNebula syntax or as XML (<TEMPLATE>...</TEMPLATE>, or any root)."""
    stripped = value.lstrip()
    if not stripped.startswith("<"):
        try:
            return parse_template(value) if value.strip() else {}
        except TemplateSyntaxError as exc:
            raise InvalidInput(field, str(exc)) from None
    try:
        root = safe_fromstring(stripped, forbid_dtd=True)
    except DefusedXmlException:
        raise InvalidInput(field, "XML templates may not declare a DOCTYPE or entities") from None
    except ET.ParseError as exc:
        raise InvalidInput(field, f"not well-formed XML: {exc}") from None
    return _from_xml(root)


def _from_xml(node: Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in node:
        value: Any = _from_xml(child) if len(child) else (child.text or "").strip()
        if child.tag in out:
            previous = out[child.tag]
            out[child.tag] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[child.tag] = value
    return out


def attributes(value: str, *, field: str = "template") -> dict[str, Any]:
    """A template parameter (OpenNebula syntax, or the XML pyone sends for dicts) as our
    normalised attributes; its problems are InvalidInput naming `field`."""
    return parse_json_template(parse_one_template(value, field=field))
