"""Bad input: every refusal is a 4xx whose message names the field, and nothing changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from edgecloud.client import Client
from tests.support.frontend import RunningFrontEnd

Unique = Callable[[str], str]


@pytest.fixture(scope="module")
def raw(frontend: RunningFrontEnd, admin: Client) -> httpx.Client:
    """Return a plain httpx client with the admin's token, for hand-made bodies."""
    headers = {"Authorization": admin.http.headers["Authorization"]}
    return httpx.Client(base_url=frontend.url + "/api/v1", headers=headers)


def _refused(
    response: httpx.Response, status: int, field: str, *, in_message: bool = True
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["field"] == field, body
    if in_message:
        assert field.split(".")[0].split("[")[0] in body["message"], body
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_unknown_field_is_named(raw: httpx.Client) -> None:
    _refused(raw.post("/hosts", json={"name": "h", "colour": "red"}), 422, "colour")


def test_wrong_type_is_named(raw: httpx.Client) -> None:
    _refused(raw.post("/hosts", json={"name": "h", "total_cpu": "lots"}), 422, "total_cpu")
    _refused(
        raw.post("/vnets", json={"name": "n", "address_ranges": [{"size": "x"}]}),
        422,
        "address_ranges[0].size",
    )


def test_missing_required_field_is_named(raw: httpx.Client) -> None:
    _refused(raw.post("/clusters", json={}), 422, "name")


def test_out_of_range_numbers_are_refused(raw: httpx.Client) -> None:
    _refused(
        raw.post("/hosts", json={"name": "h", "total_memory_mb": 2**70}), 422, "total_memory_mb"
    )
    _refused(raw.get("/vms/99999999999"), 422, "obj_id")
    _refused(raw.get("/vms", params={"limit": 0}), 422, "limit")


def test_missing_ids_are_404_naming_the_object(raw: httpx.Client) -> None:
    body = _refused(raw.get("/vms/424242"), 404, "id", in_message=False)
    assert body["message"] == "vm 424242 does not exist"
    _refused(
        raw.post("/hosts", json={"name": "h-missing-cluster", "cluster_id": 4242}),
        422,
        "cluster_id",
    )


def test_duplicate_names_are_409(raw: httpx.Client, unique: Unique) -> None:
    name = unique("dup")
    assert raw.post("/clusters", json={"name": name}).status_code == 201
    _refused(raw.post("/clusters", json={"name": name}), 409, "name")


def test_bad_template_reports_line_and_column(raw: httpx.Client) -> None:
    text = 'NAME = "x"\nCPU = 1\nDISK = [ IMAGE_ID = 3,, SIZE = 1 ]\n'
    body = _refused(raw.post("/templates", json={"template": text}), 422, "template")
    assert "line 3, column" in body["message"]


def test_bad_template_values_name_the_attribute(raw: httpx.Client) -> None:
    body = _refused(raw.post("/vms", json={"template": "CPU = -1"}), 422, "template.CPU")
    assert "template.CPU" in body["message"]
    _refused(raw.post("/vms", json={"template": {"HYPERVISOR": "xen"}}), 422, "template.HYPERVISOR")
    _refused(
        raw.post("/vms", json={"template": {"DISK": [{"SIZE": "big", "TYPE": "fs"}]}}),
        422,
        "template.DISK[0].SIZE",
    )


def test_oversized_body_is_413(raw: httpx.Client) -> None:
    huge = {"name": "big", "template": {"X": "y" * (5 * 1024 * 1024)}}
    _refused(raw.post("/clusters", json=huge), 413, "body")


def test_malformed_json_is_422(raw: httpx.Client) -> None:
    response = raw.post(
        "/clusters", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid"


def test_nul_characters_are_refused(raw: httpx.Client) -> None:
    assert raw.post("/clusters", json={"name": "a\x00b"}).status_code == 422
    assert (
        raw.post("/clusters", json={"name": "ok-nul", "template": {"K": "a\x00b"}}).status_code
        == 422
    )


def test_unauthenticated_requests_are_401_everywhere(frontend: RunningFrontEnd) -> None:
    with httpx.Client(base_url=frontend.url) as anon:
        for path in ("/api/v1/vms", "/api/v1/version", "/openapi.json", "/docs"):
            response = anon.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith("Basic")


def test_failed_create_leaves_nothing_behind(
    raw: httpx.Client, admin: Client, unique: Unique
) -> None:
    before = len(admin.vms.list(include_done=True))
    vnet = admin.vnets.create(
        name=unique("full"), address_ranges=[{"ip": "198.18.20.1", "size": 1}]
    )
    admin.vnets.take_lease(vnet.id)
    response = raw.post("/vms", json={"template": {"CPU": 1, "NIC": [{"NETWORK_ID": vnet.id}]}})
    assert response.status_code == 409
    assert len(admin.vms.list(include_done=True)) == before
