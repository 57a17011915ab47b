"""Whatever reaches /RPC2 gets an XML-RPC answer: a fault or [false, message, code], never a
5xx, never a hang; and the session string authenticates every call."""

from __future__ import annotations

import xmlrpc.client

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.frontend import RunningFrontEnd

LIMIT = 10.0  # seconds any answer may take


def _post(frontend: RunningFrontEnd, body: bytes) -> httpx.Response:
    return httpx.post(
        f"{frontend.url}/RPC2", content=body, headers={"Content-Type": "text/xml"}, timeout=LIMIT
    )


def _answer(response: httpx.Response) -> tuple[object, ...] | xmlrpc.client.Fault:
    assert response.status_code < 500, response.text[:500]
    if response.status_code != 200:  # the body limit: a 413 naming it
        assert response.status_code == 413, response.text[:500]
        return xmlrpc.client.Fault(413, response.text)
    try:
        params, _ = xmlrpc.client.loads(response.content)
    except xmlrpc.client.Fault as fault:
        return fault
    return params


def _call(frontend: RunningFrontEnd, method: str, *params: object) -> object:
    body = xmlrpc.client.dumps(params, method).encode()
    answer = _answer(_post(frontend, body))
    assert not isinstance(answer, xmlrpc.client.Fault), answer
    assert isinstance(answer, tuple)
    return answer[0]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml at all",
        b"<?xml version='1.0'?><methodCall><methodName>one.vm.info</methodName>",
        b"<methodCall><methodName>one.vm.info</methodName><params><param><value><int>x</int>"
        b"</value></param></params></methodCall>",
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
        b'"&lol;&lol;&lol;&lol;">]><methodCall><methodName>&lol2;</methodName></methodCall>',
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<methodCall><methodName>&e;</methodName></methodCall>",
        b"<methodCall><methodName>" + b"a" * 100_000 + b"</methodName></methodCall>",
        b"\xff\xfe\x00<",
    ],
)
def test_malformed_bodies_are_faults(frontend: RunningFrontEnd, body: bytes) -> None:
    answer = _answer(_post(frontend, body))
    assert isinstance(answer, xmlrpc.client.Fault), answer
    assert "passwd" not in str(answer) and "root:" not in str(answer)


def test_unknown_methods_are_faults(frontend: RunningFrontEnd) -> None:
    body = xmlrpc.client.dumps(("a:b",), "one.nothing.here").encode()
    answer = _answer(_post(frontend, body))
    assert isinstance(answer, xmlrpc.client.Fault) and answer.faultCode == -506


def test_sessions_authenticate(frontend: RunningFrontEnd) -> None:
    good = f"{frontend.admin_user}:{frontend.admin_password}"
    assert _call(frontend, "one.system.version", good)[0] is True  # type: ignore[index]
    for session in ("", "nobody", f"{frontend.admin_user}:wrong", "x:y"):
        answer = _call(frontend, "one.system.version", session)
        assert answer[:1] == [False] and answer[2] == 0x100, answer  # type: ignore[index]
    answer = _call(frontend, "one.system.version", 42)
    assert answer[:1] == [False] and answer[2] == 0x100, answer  # type: ignore[index]


def test_wrong_parameter_types_and_counts_are_api_errors(frontend: RunningFrontEnd) -> None:
    session = f"{frontend.admin_user}:{frontend.admin_password}"
    for params in (("seven",), (1.5,), ([1],), ({"a": 1},), (1, 2, 3, 4, 5, 6)):
        answer = _call(frontend, "one.vm.info", session, *params)
        assert answer[:1] == [False] and answer[2] == 0x1000, (params, answer)  # type: ignore[index]
    # A 64-bit integer (xmlrpc.client will not send one: written by hand).
    huge = xmlrpc.client.dumps((session, 7), "one.vm.info").replace(
        "<int>7</int>", "<i8>1099511627776</i8>"
    )
    (answer,) = _answer(_post(frontend, huge.encode()))  # type: ignore[misc]
    assert answer[:1] == [False] and answer[2] == 0x1000, answer
    answer = _call(frontend, "one.vm.allocate", session, "x" * (2 * 1024 * 1024), False)
    assert answer[:1] == [False], answer  # type: ignore[index]


VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**31), max_value=2**31 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=200).map(lambda s: "".join(c for c in s if c.isprintable())),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
METHODS = st.sampled_from(
    [
        "one.vm.info",
        "one.vm.action",
        "one.vm.allocate",
        "one.vmpool.info",
        "one.host.allocate",
        "one.host.info",
        "one.vn.allocate",
        "one.vn.add_ar",
        "one.image.allocate",
        "one.template.instantiate",
        "one.user.allocate",
        "one.acl.addrule",
        "one.cluster.addhost",
        "one.secgroup.allocate",
        "one.datastore.allocate",
        "one.system.config",
    ]
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(method=METHODS, params=st.lists(VALUES, max_size=6))
def test_any_parameters_get_an_answer(
    frontend: RunningFrontEnd, method: str, params: list[object]
) -> None:
    session = f"{frontend.admin_user}:{frontend.admin_password}"
    body = xmlrpc.client.dumps((session, *params), method, allow_none=True).encode()
    answer = _answer(_post(frontend, body))
    if isinstance(answer, xmlrpc.client.Fault):
        return
    value = answer[0]
    assert isinstance(value, list) and isinstance(value[0], bool), value
    if value[0] is False:
        assert isinstance(value[1], str) and value[2] in {
            0x100,
            0x200,
            0x400,
            0x800,
            0x1000,
            0x4000,
            0x8000,
        }, value
