"""Validate documents of the XML-RPC API against OpenNebula's XSDs (reference data beside
the repository: ../shared/reference/opennebula-xsd, or $EDGECLOUD_ONE_XSD).

OpenNebula sends its documents without a namespace; the schemas declare
`http://opennebula.org/XMLSchema` (elementFormDefault qualified), so a document is put in
that namespace before it is validated, as OpenNebula's own schema checks do.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from lxml import etree

NAMESPACE = "http://opennebula.org/XMLSchema"
ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = (
    os.environ.get("EDGECLOUD_ONE_XSD", ""),
    str(ROOT.parent / "shared" / "reference" / "opennebula-xsd"),
    "/work/shared/reference/opennebula-xsd",
)


class InvalidDocument(AssertionError):
    """A document the XSDs refuse: the schema's messages, with the document."""


@functools.cache
def xsd_dir() -> Path:
    """Where the XSDs are (an error naming the places looked at when they are not)."""
    for candidate in CANDIDATES:
        if candidate and (Path(candidate) / "index.xsd").is_file():
            return Path(candidate)
    raise FileNotFoundError(f"OpenNebula's XSDs not found in {[c for c in CANDIDATES if c]}")


@functools.cache
def _schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(xsd_dir() / name)))


def schema_for(root: str) -> etree.XMLSchema:
    """The schema of a root element (VM_POOL from infoextended has its own file)."""
    return _schema("index.xsd")


def validate(document: str, *, extended: bool = False) -> etree._Element:
    """Check one document; return its root (without namespace) for further asserts."""
    parsed = etree.fromstring(document.encode())
    qualified = _qualified(parsed)
    schema = _schema("vm_pool_extended.xsd") if extended else schema_for(parsed.tag)
    if not schema.validate(qualified):
        errors = "\n".join(f"  line {e.line}: {e.message}" for e in schema.error_log)
        raise InvalidDocument(
            f"<{parsed.tag}> does not match the XSD:\n{errors}\n{document[:3000]}"
        )
    return parsed


def _qualified(node: etree._Element) -> etree._Element:
    """A copy of the tree with every element in OpenNebula's namespace."""
    copy = etree.fromstring(etree.tostring(node))
    for element in copy.iter():
        if isinstance(element.tag, str) and not element.tag.startswith("{"):
            element.tag = f"{{{NAMESPACE}}}{element.tag}"
    return copy
