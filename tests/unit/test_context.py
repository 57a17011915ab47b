"""Context: OpenNebula context.sh variables and a NoCloud ISO from a VM's template and NICs."""

from __future__ import annotations

import base64
import io
import json
import subprocess

import pycdlib
import pytest

from edgecloud.drivers.base import DriverError
from edgecloud.drivers.hypervisor.context import (
    context_files,
    context_iso,
    context_sh,
    context_vars,
)

pytestmark = pytest.mark.unit

NICS = [
    {
        "nic_id": 0,
        "mac": "02:00:c6:12:0a:0a",
        "ip": "198.18.10.10",
        "prefix": 24,
        "gateway": "198.18.10.1",
        "dns": "198.18.10.1",
    },
    {"nic_id": 1, "mac": "02:00:c6:12:0b:0a", "ip": "198.18.11.10", "prefix": 16},
]
TEMPLATE = {
    "CONTEXT": {
        "NETWORK": "YES",
        "SET_HOSTNAME": "$NAME",
        "SSH_PUBLIC_KEY": "ssh-ed25519 AAAAC3Nza test@example",
        "START_SCRIPT": "echo 'it''s me' > /tmp/started",
    }
}


def test_network_and_hostname_variables() -> None:
    found = context_vars(TEMPLATE, NICS, name="web-1", vm_id=7)
    assert found["SET_HOSTNAME"] == "web-1"
    assert found["ETH0_IP"] == "198.18.10.10"
    assert found["ETH0_MASK"] == "255.255.255.0"
    assert found["ETH0_GATEWAY"] == "198.18.10.1"
    assert found["ETH0_DNS"] == "198.18.10.1"
    assert found["ETH1_MASK"] == "255.255.0.0"
    assert "ETH1_GATEWAY" not in found
    assert found["ETH1_MAC"] == "02:00:c6:12:0b:0a"


def test_no_context_no_files() -> None:
    assert context_vars({}, NICS, name="x") == {}
    assert context_files({"MEMORY": "64"}, NICS, name="x", vm_id=1) == {}


def test_without_network_yes_no_addresses() -> None:
    found = context_vars({"CONTEXT": {"SET_HOSTNAME": "a"}}, NICS, name="x")
    assert found == {"SET_HOSTNAME": "a"}


def test_context_sh_quotes_so_the_shell_expands_nothing() -> None:
    script = context_sh({"START_SCRIPT": "echo $(id) 'q' `x`", "A": "1"})
    out = subprocess.run(
        ["sh", "-c", script + 'printf %s "$START_SCRIPT"'], capture_output=True, text=True
    )
    assert out.stdout == "echo $(id) 'q' `x`"


def test_bad_names_and_base64_are_refused() -> None:
    with pytest.raises(DriverError, match="shell variable"):
        context_vars({"CONTEXT": {"A;B": "1"}}, [], name="x")
    with pytest.raises(DriverError, match="base64"):
        context_vars({"CONTEXT": {"START_SCRIPT_BASE64": "%%%"}}, [], name="x")
    encoded = base64.b64encode(b"echo hi").decode()
    assert context_vars({"CONTEXT": {"START_SCRIPT_BASE64": encoded}}, [], name="x")


def test_iso_has_the_cidata_label_and_every_file() -> None:
    files = context_files(TEMPLATE, NICS, name="web-1", vm_id=7)
    assert set(files) == {"context.sh", "meta-data", "user-data", "network-config"}
    assert json.loads(files["meta-data"])["local-hostname"] == "web-1"
    network = json.loads(files["network-config"])
    assert network["ethernets"]["eth0"]["addresses"] == ["198.18.10.10/24"]
    assert files["user-data"].startswith("#cloud-config\n")
    image = context_iso(files)
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "CIDATA"
        for name, text in files.items():
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            assert out.getvalue().decode() == text
    finally:
        iso.close()
