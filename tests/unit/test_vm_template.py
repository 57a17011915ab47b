"""Unit tests for VM template validation and the capacity shape read from it."""

from __future__ import annotations

from typing import Any

import pytest

from edgecloud.server.errors import InvalidInput
from edgecloud.server.services.template_syntax import parse_template
from edgecloud.server.services.vm_template import (
    MAX_MEMORY_MB,
    VmShape,
    validate_vm_template,
    vm_shape,
)

pytestmark = pytest.mark.unit


def refused(attrs: dict[str, Any], **kwargs: bool) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        validate_vm_template(attrs, **kwargs)
    return caught.value


def valid(attrs: dict[str, Any]) -> dict[str, Any]:
    return validate_vm_template(attrs, defaults=False)


# --- defaults and pass-through --------------------------------------------------------


def test_validate_vm_template_fills_defaults() -> None:
    assert validate_vm_template({}) == {
        "CPU": "1",
        "VCPU": "1",
        "MEMORY": "128",
        "HYPERVISOR": "kvm",
    }


def test_validate_vm_template_leaves_missing_attributes_without_defaults() -> None:
    assert validate_vm_template({}, defaults=False) == {}


def test_validate_vm_template_defaults_vcpu_to_cpu_rounded_up() -> None:
    assert validate_vm_template({"CPU": "2.5"})["VCPU"] == "3"
    assert validate_vm_template({"CPU": "0.5"})["VCPU"] == "1"
    assert validate_vm_template({"CPU": "4"})["VCPU"] == "4"


def test_validate_vm_template_keeps_given_vcpu() -> None:
    assert validate_vm_template({"CPU": "0.5", "VCPU": "4"})["VCPU"] == "4"


def test_validate_vm_template_keeps_user_attributes_unchanged() -> None:
    attrs = {"LABELS": "a,b", "MY": ["1", {"K": "v"}], "FAKE_FAIL": "deploy"}
    assert valid(attrs) == attrs


def test_validate_vm_template_returns_a_copy() -> None:
    attrs: dict[str, Any] = {"DISK": [{"IMAGE_ID": "03"}], "CONTEXT": {"A": "1"}}
    result = validate_vm_template(attrs)
    result["CONTEXT"]["B"] = "2"
    assert attrs == {"DISK": [{"IMAGE_ID": "03"}], "CONTEXT": {"A": "1"}}
    assert result["DISK"] == [{"IMAGE_ID": "3"}]


def test_validate_vm_template_accepts_the_parsed_example() -> None:
    text = """
    NAME = "web"
    CPU = 0.5
    MEMORY = 2G
    DISK = [ IMAGE_ID = 3, SIZE = 1024 ]
    DISK = [ TYPE = swap, SIZE = 512 ]
    NIC = [ NETWORK_ID = 0, IP = 10.0.0.5, MAC = "02-00-0A-00-00-05" ]
    CONTEXT = [ NETWORK = YES ]
    SCHED_REQUIREMENTS = "FREE_CPU > 60"
    """
    result = validate_vm_template(parse_template(text))
    assert result["MEMORY"] == "2048"
    assert result["VCPU"] == "1"
    assert result["NIC"] == [{"NETWORK_ID": "0", "IP": "10.0.0.5", "MAC": "02:00:0a:00:00:05"}]


def test_validate_vm_template_is_idempotent() -> None:
    attrs = {"CPU": "0.0000001", "MEMORY": "1g", "HYPERVISOR": "LXC", "NIC": [{"NETWORK": "n"}]}
    once = validate_vm_template(attrs)
    assert validate_vm_template(once) == once


# --- NAME -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["w", "web server", "n" * 128, "café-1"])
def test_validate_vm_template_accepts_names(name: str) -> None:
    assert valid({"NAME": name})["NAME"] == name


@pytest.mark.parametrize("name", ["", "n" * 129, "a\nb", "tab\there", "bell\x07", "c1\x85"])
def test_validate_vm_template_refuses_bad_names(name: str) -> None:
    assert refused({"NAME": name}).field == "template.NAME"


def test_validate_vm_template_refuses_repeated_name() -> None:
    error = refused({"NAME": ["a", "b"]})
    assert (error.field, error.reason) == ("template.NAME", "must be given once, not 2 times")


def test_validate_vm_template_refuses_vector_name() -> None:
    assert refused({"NAME": {"A": "1"}}).reason == "must be a single value, not a vector"


# --- CPU, VCPU, MEMORY, HYPERVISOR ----------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [("0.5", "0.5"), ("1", "1"), ("2.50", "2.5"), (".25", "0.25"), ("1024", "1024"), ("3.", "3")],
)
def test_validate_vm_template_normalises_cpu(given: str, stored: str) -> None:
    assert valid({"CPU": given})["CPU"] == stored


@pytest.mark.parametrize(
    "cpu", ["0", "0.0", "-1", "1024.5", "2000", "abc", "1e2", "nan", "", "1,5"]
)
def test_validate_vm_template_refuses_bad_cpu(cpu: str) -> None:
    assert refused({"CPU": cpu}).field == "template.CPU"


@pytest.mark.parametrize("vcpu", ["1", "8", "1024"])
def test_validate_vm_template_accepts_vcpu(vcpu: str) -> None:
    assert valid({"VCPU": vcpu})["VCPU"] == vcpu


@pytest.mark.parametrize("vcpu", ["0", "1025", "1.5", "-2", "two", "9" * 5000])
def test_validate_vm_template_refuses_bad_vcpu(vcpu: str) -> None:
    assert refused({"VCPU": vcpu}).field == "template.VCPU"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("1024", "1024"),
        ("512M", "512"),
        ("2G", "2048"),
        ("2g", "2048"),
        (" 4 G ", "4096"),
        ("16384G", str(MAX_MEMORY_MB)),
        ("0128", "128"),
    ],
)
def test_validate_vm_template_normalises_memory(given: str, stored: str) -> None:
    assert valid({"MEMORY": given})["MEMORY"] == stored


@pytest.mark.parametrize(
    "memory", ["0", "0G", "16385G", str(MAX_MEMORY_MB + 1), "1.5G", "2T", "G", "lots", "9" * 30]
)
def test_validate_vm_template_refuses_bad_memory(memory: str) -> None:
    assert refused({"MEMORY": memory}).field == "template.MEMORY"


@pytest.mark.parametrize(
    ("given", "stored"), [("kvm", "kvm"), ("LXC", "lxc"), ("MicroVM", "microvm")]
)
def test_validate_vm_template_normalises_hypervisor(given: str, stored: str) -> None:
    assert valid({"HYPERVISOR": given})["HYPERVISOR"] == stored


@pytest.mark.parametrize("hypervisor", ["fake", "xen", "vcenter", ""])
def test_validate_vm_template_refuses_other_hypervisors(hypervisor: str) -> None:
    assert refused({"HYPERVISOR": hypervisor}).field == "template.HYPERVISOR"


# --- DISK -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("disk", "stored"),
    [
        ({"IMAGE_ID": "3"}, {"IMAGE_ID": "3"}),
        ({"IMAGE_ID": "0", "SIZE": "2048", "TARGET": "vda"}, None),
        ({"IMAGE": "ubuntu", "IMAGE_UNAME": "oneadmin"}, None),
        ({"IMAGE_ID": "1", "TYPE": "CDROM"}, None),
        ({"TYPE": "fs", "SIZE": "1024", "FORMAT": "raw"}, None),
        ({"TYPE": "SWAP", "SIZE": "512"}, {"TYPE": "swap", "SIZE": "512"}),
    ],
)
def test_validate_vm_template_accepts_disks(
    disk: dict[str, str], stored: dict[str, str] | None
) -> None:
    assert valid({"DISK": [disk]})["DISK"] == [stored or disk]


def test_validate_vm_template_wraps_a_single_disk_vector_in_a_list() -> None:
    assert valid({"DISK": {"IMAGE_ID": "1"}})["DISK"] == [{"IMAGE_ID": "1"}]


@pytest.mark.parametrize(
    ("disk", "field"),
    [
        ({"SIZE": "10"}, "template.DISK[1]"),
        ({"IMAGE_ID": "1", "IMAGE": "x"}, "template.DISK[1]"),
        ({"IMAGE_ID": "-1"}, "template.DISK[1].IMAGE_ID"),
        ({"IMAGE_ID": "abc"}, "template.DISK[1].IMAGE_ID"),
        ({"IMAGE": ""}, "template.DISK[1].IMAGE"),
        ({"TYPE": "block", "SIZE": "10"}, "template.DISK[1].TYPE"),
        ({"TYPE": "fs"}, "template.DISK[1].SIZE"),
        ({"TYPE": "fs", "SIZE": "0"}, "template.DISK[1].SIZE"),
        ({"IMAGE_ID": "1", "SIZE": "1G"}, "template.DISK[1].SIZE"),
    ],
)
def test_validate_vm_template_refuses_bad_disks(disk: dict[str, str], field: str) -> None:
    assert refused({"DISK": [{"IMAGE_ID": "0"}, disk]}).field == field


def test_validate_vm_template_refuses_disk_that_is_not_a_vector() -> None:
    assert refused({"DISK": ["3"]}).field == "template.DISK[0]"
    assert refused({"DISK": "3"}).field == "template.DISK"


# --- NIC ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nic", "stored"),
    [
        ({"NETWORK_ID": "0"}, {"NETWORK_ID": "0"}),
        ({"NETWORK": "public", "NETWORK_UNAME": "oneadmin", "MODEL": "virtio"}, None),
        ({"NETWORK_ID": "1", "IP": "192.168.1.10"}, None),
        (
            {"NETWORK_ID": "1", "MAC": "02:00:C0:A8:01:0A"},
            {"NETWORK_ID": "1", "MAC": "02:00:c0:a8:01:0a"},
        ),
        (
            {"NETWORK_ID": "1", "MAC": "02-00-c0-a8-01-0a"},
            {"NETWORK_ID": "1", "MAC": "02:00:c0:a8:01:0a"},
        ),
        (
            {"NETWORK_ID": "1", "SECURITY_GROUPS": "1, 2,2,0"},
            {"NETWORK_ID": "1", "SECURITY_GROUPS": "1,2,0"},
        ),
    ],
)
def test_validate_vm_template_accepts_nics(
    nic: dict[str, str], stored: dict[str, str] | None
) -> None:
    assert valid({"NIC": [nic]})["NIC"] == [stored or nic]


@pytest.mark.parametrize(
    ("nic", "field"),
    [
        ({"IP": "10.0.0.1"}, "template.NIC[0]"),
        ({"NETWORK_ID": "1", "NETWORK": "x"}, "template.NIC[0]"),
        ({"NETWORK_ID": "x"}, "template.NIC[0].NETWORK_ID"),
        ({"NETWORK": "bad\x00name"}, "template.NIC[0].NETWORK"),
        ({"NETWORK_ID": "1", "IP": "10.0.0.256"}, "template.NIC[0].IP"),
        ({"NETWORK_ID": "1", "IP": "fe80::1"}, "template.NIC[0].IP"),
        ({"NETWORK_ID": "1", "IP": "010.0.0.1"}, "template.NIC[0].IP"),
        ({"NETWORK_ID": "1", "MAC": "02:00:00:00:00"}, "template.NIC[0].MAC"),
        ({"NETWORK_ID": "1", "MAC": "02:00-00:00:00:01"}, "template.NIC[0].MAC"),
        ({"NETWORK_ID": "1", "MAC": "zz:00:00:00:00:01"}, "template.NIC[0].MAC"),
        ({"NETWORK_ID": "1", "SECURITY_GROUPS": "1,x"}, "template.NIC[0].SECURITY_GROUPS"),
        ({"NETWORK_ID": "1", "SECURITY_GROUPS": ""}, "template.NIC[0].SECURITY_GROUPS"),
        ({"NETWORK_ID": "1", "SECURITY_GROUPS": "1,,2"}, "template.NIC[0].SECURITY_GROUPS"),
    ],
)
def test_validate_vm_template_refuses_bad_nics(nic: dict[str, str], field: str) -> None:
    assert refused({"NIC": [nic]}).field == field


# --- vectors and expressions ----------------------------------------------------------


@pytest.mark.parametrize("key", ["CONTEXT", "OS", "GRAPHICS"])
def test_validate_vm_template_keeps_vector_attributes(key: str) -> None:
    assert valid({key: {"A": "1", "B": "$NAME"}})[key] == {"A": "1", "B": "$NAME"}


@pytest.mark.parametrize("key", ["CONTEXT", "OS", "GRAPHICS"])
def test_validate_vm_template_refuses_vector_attributes_given_as_values(key: str) -> None:
    assert refused({key: "yes"}).field == f"template.{key}"
    assert refused({key: [{"A": "1"}, {"B": "2"}]}).field == f"template.{key}"


@pytest.mark.parametrize("key", ["SCHED_REQUIREMENTS", "SCHED_RANK"])
def test_validate_vm_template_keeps_scheduler_expressions(key: str) -> None:
    assert valid({key: "FREE_CPU > 60"})[key] == "FREE_CPU > 60"


@pytest.mark.parametrize("key", ["SCHED_REQUIREMENTS", "SCHED_RANK"])
def test_validate_vm_template_refuses_scheduler_expressions_as_vectors(key: str) -> None:
    assert refused({key: {"A": "1"}}).field == f"template.{key}"


def test_validate_vm_template_reports_the_first_problem() -> None:
    assert refused({"MEMORY": "x", "CPU": "0", "NIC": ["1"]}).field == "template.CPU"


# --- vm_shape -------------------------------------------------------------------------


def test_vm_shape_reads_a_validated_template() -> None:
    attrs = validate_vm_template(
        {
            "CPU": "0.5",
            "MEMORY": "1G",
            "HYPERVISOR": "lxc",
            "DISK": [
                {"IMAGE_ID": "1"},
                {"IMAGE_ID": "2", "SIZE": "2048"},
                {"TYPE": "swap", "SIZE": "512"},
            ],
        }
    )
    assert vm_shape(attrs) == VmShape(
        cpu=0.5, vcpu=1, memory_mb=1024, hypervisor="lxc", disk_mb=2560
    )


def test_vm_shape_uses_defaults_for_missing_attributes() -> None:
    assert vm_shape({}) == VmShape(cpu=1.0, vcpu=1, memory_mb=128, hypervisor="kvm", disk_mb=0)
    assert vm_shape({"CPU": "2.5"}).vcpu == 3


def test_vm_shape_is_frozen() -> None:
    shape = vm_shape({})
    with pytest.raises(AttributeError):
        shape.cpu = 2.0  # type: ignore[misc]
