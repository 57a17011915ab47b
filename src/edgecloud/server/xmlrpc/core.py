"""Method registry, sessions, parameters and OpenNebula's return convention.

Every call answers `[success, result_or_error, error_code]` (plus the object id where
OpenNebula gives one), with OpenNebula's codes, so pyone raises its own exceptions:
AUTHENTICATION 0x100, AUTHORIZATION 0x200, NO_EXISTS 0x400, ACTION 0x800,
XML_RPC_API 0x1000, INTERNAL 0x2000, ALLOCATE 0x4000, LOCKED 0x8000. An unknown method or
a body that is not XML-RPC is an XML-RPC fault (as xmlrpc-c answers OpenNebula's).
"""

from __future__ import annotations

import base64
import logging
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from xml.parsers.expat import ExpatError

from defusedxml import DefusedXmlException
from defusedxml.xmlrpc import monkey_patch
from pydantic import BaseModel, ValidationError

from edgecloud.server.auth.access import Principal
from edgecloud.server.errors import (
    ApiError,
    Conflict,
    Exhausted,
    Forbidden,
    HostFailed,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    QuotaExceeded,
)

if TYPE_CHECKING:
    from edgecloud.server.rest.deps import FrontEnd

log = logging.getLogger("edgecloud.xmlrpc")
B = TypeVar("B", bound=BaseModel)
# xmlrpc.client parses with expat as it is: defusedxml's parser refuses entity declarations
# and external references, and bounds gzip bodies (for this whole process).
monkey_patch()

AUTHENTICATION, AUTHORIZATION, NO_EXISTS, ACTION = 0x100, 0x200, 0x400, 0x800
XML_RPC_API, INTERNAL, ALLOCATE, LOCKED = 0x1000, 0x2000, 0x4000, 0x8000
FAULT_PARSE, FAULT_NO_METHOD = -503, -506  # xmlrpc-c's fault codes
MAX_STRING = 1024 * 1024  # characters in one string parameter


class OneError(Exception):
    """A failed call: OpenNebula's message and code (and the object id, where known)."""

    def __init__(self, code: int, message: str, obj_id: int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.obj_id = code, message, obj_id


@dataclass
class Ctx:
    """What a method works with: the front-end, the caller, the method's name."""

    frontend: FrontEnd
    principal: Principal
    method: str


Handler = Callable[..., Any]


@dataclass(frozen=True)
class Method:
    """A registered method: its parameter types (after the session) and how it fails."""

    name: str
    params: tuple[type, ...]
    optional: int  # how many of the last params may be left out
    defaults: tuple[Any, ...]
    kind: str  # "info", "allocate" or "action": decides the code of a refused input
    handler: Handler


METHODS: dict[str, Method] = {}


def method(
    name: str,
    *params: type,
    defaults: tuple[Any, ...] = (),
    kind: str = "info",
) -> Callable[[Handler], Handler]:
    """Register `handler(ctx, *params)` as XML-RPC method `name`.

    `params` are the types after the session string (int, str, bool); the last
    `len(defaults)` of them may be left out and take those values.
    """

    def register(handler: Handler) -> Handler:
        if name in METHODS:
            raise ValueError(f"XML-RPC method {name} registered twice")
        METHODS[name] = Method(name, tuple(params), len(defaults), defaults, kind, handler)
        return handler

    return register


def fault(code: int, message: str) -> bytes:
    """An XML-RPC fault response."""
    return xmlrpc.client.dumps(xmlrpc.client.Fault(code, message), methodresponse=True).encode()


class _Marshaller(xmlrpc.client.Marshaller):
    """Long strings (documents) as CDATA: no escaping here, and a client's parser takes
    them in one piece (an 11 MB pool document decodes ten times faster)."""

    dispatch = dict(xmlrpc.client.Marshaller.dispatch)

    def dump_unicode(self, value: str, write: Callable[[str], Any], escape: Any = None) -> None:
        if len(value) < CDATA_FROM:
            write(f"<value><string>{xmlrpc.client.escape(value)}</string></value>\n")
            return
        write("<value><string><![CDATA[")
        write(value.replace("]]>", "]]]]><![CDATA[>"))
        write("]]></string></value>\n")

    dispatch[str] = dump_unicode  # type: ignore[assignment]  # a subclass method, as intended


CDATA_FROM = 4096  # characters


def answer(value: list[Any]) -> bytes:
    """An XML-RPC response holding one value."""
    body = _Marshaller("utf-8", allow_none=False).dumps((value,))
    return f"<?xml version='1.0'?>\n<methodResponse>\n{body}</methodResponse>\n".encode()


def handle(frontend: FrontEnd, body: bytes) -> bytes:
    """Run one XML-RPC request; always an XML-RPC response (a fault at worst), never raises."""
    try:
        params, name = xmlrpc.client.loads(body, use_builtin_types=True)
    except DefusedXmlException:
        return fault(FAULT_PARSE, "not an XML-RPC call: DTDs and entities are refused")
    except (
        ExpatError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        OverflowError,
    ) as exc:
        return fault(FAULT_PARSE, f"not an XML-RPC call: {type(exc).__name__}: {exc}"[:500])
    except xmlrpc.client.ResponseError as exc:
        return fault(FAULT_PARSE, f"not an XML-RPC call: {exc}"[:500])
    found = METHODS.get(name or "")
    if found is None:
        shown = repr(name)[:100]
        return fault(FAULT_NO_METHOD, f"method {shown} is not defined")
    try:
        return answer(call(frontend, found, params))
    except OneError as exc:
        out = [False, f"[{found.name}] {exc.message}", exc.code]
        if exc.obj_id is not None:
            out.append(exc.obj_id)
        return answer(out)
    except Exception:  # a bug, not the caller's fault: INTERNAL, logged, never a 5xx
        log.exception("XML-RPC %s failed", found.name)
        return answer([False, f"[{found.name}] internal error (see the front-end's log)", INTERNAL])


def call(frontend: FrontEnd, found: Method, params: tuple[Any, ...]) -> list[Any]:
    """Check the session and the parameters, run the handler, wrap its result."""
    if not params or not isinstance(params[0], str):
        raise OneError(AUTHENTICATION, "the first parameter must be the session string")
    principal = authenticate(frontend, params[0])
    args = check_params(found, params[1:])
    try:
        result = found.handler(Ctx(frontend, principal, found.name), *args)
    except ApiError as exc:
        raise translate(exc, found.kind) from None
    except ValidationError as exc:  # a wire body built from the call's values refused them
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "template"
        code = ALLOCATE if found.kind == "allocate" else ACTION
        raise OneError(code, f"{where}: {first['msg']}") from None
    if isinstance(result, tuple):  # (value, object id) for those that say which object
        return [True, result[0], 0, result[1]]
    return [True, result, 0]


def check_params(found: Method, given: tuple[Any, ...]) -> list[Any]:
    """Each parameter of its type (an int where a bool is wanted is fine, as in OpenNebula)."""
    wanted = found.params
    least = len(wanted) - found.optional
    if not least <= len(given) <= len(wanted):
        count = f"{least}" if least == len(wanted) else f"{least} to {len(wanted)}"
        raise OneError(XML_RPC_API, f"takes {count} parameters after the session, got {len(given)}")
    args: list[Any] = []
    for index, (kind, value) in enumerate(zip(wanted, given, strict=False), start=2):
        if kind is bool and isinstance(value, int):
            value = bool(value)
        elif kind is int and isinstance(value, bool):
            value = int(value)
        if not isinstance(value, kind):
            raise OneError(
                XML_RPC_API,
                f"parameter {index} must be {_type_name(kind)}, not {_type_name(type(value))}",
            )
        if isinstance(value, str) and len(value) > MAX_STRING:
            raise OneError(XML_RPC_API, f"parameter {index} is longer than {MAX_STRING} characters")
        if isinstance(value, int) and not -(2**31) <= value < 2**31:
            raise OneError(XML_RPC_API, f"parameter {index} is out of range")
        args.append(value)
    args += list(found.defaults[len(found.defaults) - (len(wanted) - len(args)) :])
    return args


def _type_name(kind: type) -> str:
    return {int: "an integer", str: "a string", bool: "a boolean"}.get(kind, kind.__name__)


def authenticate(frontend: FrontEnd, session: str) -> Principal:
    """`user:password` or `user:token`, checked as the REST API checks HTTP Basic."""
    if ":" not in session:
        raise OneError(AUTHENTICATION, "the session must be 'user:password' or 'user:token'")
    header = "Basic " + base64.b64encode(session.encode("utf-8", "surrogateescape")).decode()
    cached = frontend.authenticator.cache.get(header)
    if cached is not None:
        return cached
    try:
        with frontend.store.read() as db:
            return frontend.authenticator.authenticate(db, header)
    except ApiError as exc:
        raise OneError(
            AUTHENTICATION, f"User couldn't be authenticated, aborting call: {exc.message}"
        ) from None


def translate(exc: ApiError, kind: str) -> OneError:
    """A service's refusal as OpenNebula's error code."""
    if isinstance(exc, NotAuthenticated):
        return OneError(AUTHENTICATION, exc.message)
    if isinstance(exc, Forbidden | QuotaExceeded):
        return OneError(AUTHORIZATION, exc.message)
    if isinstance(exc, NotFound):
        return OneError(NO_EXISTS, exc.message)
    if kind == "allocate" and isinstance(exc, InvalidInput | Conflict | Exhausted):
        return OneError(ALLOCATE, exc.message)
    if isinstance(exc, Conflict) and "locked" in exc.message.lower():
        return OneError(LOCKED, exc.message)
    if isinstance(exc, InvalidInput | Conflict | Exhausted | HostFailed):
        return OneError(ACTION, exc.message)
    return OneError(ACTION, exc.message)


def wire_body(model: type[B], **values: Any) -> B:
    """A service's input body from a call's values; a value it refuses is the services'
    InvalidInput (ACTION, or ALLOCATE for an allocate method) naming the field."""
    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or model.__name__
        raise InvalidInput(where, first["msg"]) from None


def not_found(kind: str, obj_id: int) -> OneError:
    """OpenNebula's NO_EXISTS for an object id."""
    return OneError(NO_EXISTS, f"Error getting {kind} [{obj_id}].", obj_id)
