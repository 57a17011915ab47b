"""Golden tests of the host network plans: device commands per driver, nftables rulesets,
FRR configs; and the checks that keep request values out of commands and configs.

The expected texts live in tests/unit/golden/net/<case>.txt. After an intended change,
regenerate them with ``EDGECLOUD_UPDATE_GOLDEN=1 pytest tests/unit/test_node_net_golden.py``
and read the diff.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

from edgecloud.node import __main__ as node_main
from edgecloud.node.build import _content
from edgecloud.node.net import frr, model, nft, plan
from edgecloud.node.protocol import NodeError

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden" / "net"
UPDATE = os.environ.get("EDGECLOUD_UPDATE_GOLDEN") == "1"

HOST = {
    "address": "198.18.0.10",
    "peers": ["198.18.0.11", "198.18.0.12", "198.18.0.10"],
    "asn": 65010,
    "route_reflector": "198.18.0.10",
    "frr_name": "ec-1a2b3c4d",
}


def golden(name: str, text: str) -> None:
    """Compare `text` with tests/unit/golden/net/<name>.txt (or write it when updating)."""
    path = GOLDEN / f"{name}.txt"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with EDGECLOUD_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs (EDGECLOUD_UPDATE_GOLDEN=1 rewrites it)"


def vnet(driver: str, **fields: Any) -> dict[str, Any]:
    """Return a vnet object of the data contract."""
    base: dict[str, Any] = {
        "id": 3,
        "name": "private",
        "driver": driver,
        "bridge": "ecbr3",
        "phydev": "",
        "vlan_id": None,
        "mtu": None,
        "vxlan_mode": "flood",
        "group": None,
        "public": False,
        "masquerade": False,
    }
    return {**base, **fields}


def nic(
    nic_id: int = 0, *, rules: list[dict[str, Any]] | None = None, **fields: Any
) -> dict[str, Any]:
    """Return a NIC object of the data contract."""
    base: dict[str, Any] = {
        "nic_id": nic_id,
        "mac": f"02:00:c6:12:0a:{10 + nic_id:02x}",
        "ip": f"198.18.10.{10 + nic_id}",
        "prefix": 24,
        "gateway": "198.18.10.1",
        "dns": None,
        "ip6": None,
        "prefix6": None,
        "model": "virtio",
        "vnet": vnet("bridge"),
        "rules": rules or [],
        "security_groups": [0] if rules else [],
    }
    return {**base, **fields}


def describe(raw_vnet: dict[str, Any], host: dict[str, Any] | None = None, **kw: Any) -> str:
    return plan.describe(model.vnet(raw_vnet), model.host_net(host or HOST), **kw)


DEVICE_CASES = {
    "bridge": vnet("bridge"),
    "bridge_phydev": vnet("bridge", phydev="eth1", mtu=9000),
    "vlan": vnet("vlan", phydev="eth0", vlan_id=100),
    "vlan_long_phydev": vnet("vlan", phydev="enp129s0f1np1", vlan_id=4094, mtu=1500),
    "vxlan_flood": vnet("vxlan", vlan_id=10003, mtu=1450),
    "vxlan_flood_phydev": vnet("vxlan", vlan_id=10003, phydev="eth0"),
    "vxlan_multicast": vnet("vxlan", vlan_id=77, vxlan_mode="multicast", group="239.0.0.3"),
    "evpn": vnet("evpn", vlan_id=10004, bridge="ecbr4", mtu=1450),
}


@pytest.mark.parametrize("case", sorted(DEVICE_CASES))
def test_device_plans(case: str) -> None:
    golden(f"devices_{case}", describe(DEVICE_CASES[case], uplink="eth0"))


def test_vlan_device_names_fit() -> None:
    short = model.vnet(vnet("vlan", phydev="eth0", vlan_id=100))
    long = model.vnet(vnet("vlan", phydev="enp129s0f1np1", vlan_id=4094))
    assert short.vlan_dev == "eth0.100"
    assert len(long.vlan_dev) <= 15 and long.vlan_dev.startswith("ec4094v")
    assert model.vnet(vnet("vxlan", vlan_id=16_777_215)).vxlan_dev == "vxlan16777215"


def test_multicast_vxlan_without_phydev_hangs_off_the_uplink() -> None:
    v = model.vnet(vnet("vxlan", vlan_id=77, vxlan_mode="multicast", group="239.0.0.3"))
    create = plan.devices(v, model.host_net(HOST), uplink="eth7")[1].create[0]
    assert create[-4:] == ("dev", "eth7", "group", "239.0.0.3")


def test_flood_list_sync_adds_and_drops() -> None:
    v = model.vnet(vnet("vxlan", vlan_id=5))
    assert plan.flood_sync(v, ["198.18.0.11", "198.18.0.99"], ["198.18.0.11", "198.18.0.12"]) == [
        ("bridge", "fdb", "append", plan.ZERO_MAC, "dev", "vxlan5", "dst", "198.18.0.12"),
        ("bridge", "fdb", "del", plan.ZERO_MAC, "dev", "vxlan5", "dst", "198.18.0.99"),
    ]
    assert plan.flood_sync(v, ["198.18.0.11"], ["198.18.0.11"]) == []


def test_plug_and_routes() -> None:
    n = model.nic(nic(vnet=vnet("bridge", mtu=1400, public=True)), "one-5")
    assert n.tap == "ec5n0"
    assert plan.plug(n.vnet, "ec5n0") == [
        ("ip", "link", "set", "dev", "ec5n0", "master", "ecbr3"),
        ("ip", "link", "set", "dev", "ec5n0", "mtu", "1400"),
        ("ip", "link", "set", "dev", "ec5n0", "up"),
    ]
    assert plan.public_route(n) == (
        *("ip", "-4", "route", "replace", "198.18.10.10/32", "dev", "ecbr3"),
    )
    assert plan.public_route(n, "del") == (
        "ip",
        "-4",
        "route",
        "del",
        "198.18.10.10/32",
        "dev",
        "ecbr3",
    )
    masq = model.nic(nic(vnet=vnet("vxlan", vlan_id=9, masquerade=True)), "one-5")
    assert plan.gateway_address(masq) == "198.18.10.1/24"
    assert plan.sysctls(True, True, ["eth0", "ecbr3"]) == {
        "net/ipv4/ip_forward": "1",
        "net/ipv4/conf/ecbr3/proxy_arp": "1",
        "net/ipv4/neigh/ecbr3/proxy_delay": "0",
        "net/ipv4/conf/eth0/proxy_arp": "1",
        "net/ipv4/neigh/eth0/proxy_delay": "0",
    }
    assert plan.sysctls(False, True, ["eth0"]) == {"net/ipv4/ip_forward": "1"}


RULES: list[dict[str, Any]] = [
    {"direction": "inbound", "protocol": "TCP", "ports": [[22, 22], [80, 90]], "cidrs": None},
    {
        "direction": "inbound",
        "protocol": "UDP",
        "ports": [[53, 53]],
        "cidrs": ["198.18.10.0/24", "2001:db8::/64", "192.0.2.7/32"],
    },
    {"direction": "inbound", "protocol": "ICMP", "icmp_type": 8, "cidrs": None},
    {"direction": "inbound", "protocol": "ICMPv6", "cidrs": ["2001:db8::/64", "198.18.0.0/15"]},
    {"direction": "inbound", "protocol": "IPSEC", "cidrs": ["192.0.2.0/24"]},
    {"direction": "inbound", "protocol": "ALL", "cidrs": []},
    {"direction": "outbound", "protocol": "TCP", "ports": [[443, 443]], "cidrs": ["192.0.2.0/24"]},
    {"direction": "outbound", "protocol": "ALL", "cidrs": ["198.18.10.0/24"]},
]


def test_ruleset_every_protocol() -> None:
    filtered = model.nic(nic(0, rules=RULES), "one-7")
    inbound_only = model.nic(
        nic(1, rules=[RULES[2]], vnet=vnet("vxlan", vlan_id=9, bridge="ecbr9", public=True)),
        "one-7",
    )
    open_nic = model.nic(nic(2), "one-7")  # no rules: not filtered
    golden("nft_rules", nft.ruleset([inbound_only, filtered, open_nic]))


def test_ruleset_masquerade_and_spoofing() -> None:
    v = vnet("evpn", vlan_id=10004, bridge="ecbr4", masquerade=True, filter_ip_spoofing=True)
    n = model.nic(nic(0, rules=[RULES[0]], vnet=v), "one-12")
    text = nft.ruleset(
        [n], masquerade=[("eth0", "198.18.10.0/24")], local_gateways=[("vxlan10004", "198.18.10.1")]
    )
    golden("nft_masquerade", text)


def test_ruleset_empty_deletes_both_tables() -> None:
    assert nft.ruleset([model.nic(nic(0), "one-1")]) == (
        "table inet edgecloud\ndelete table inet edgecloud\n"
        "table bridge edgecloud\ndelete table bridge edgecloud\n"
    )


def test_frr_configs() -> None:
    reflector = model.host_net(HOST)
    client = model.host_net(
        {**HOST, "address": "198.18.0.11", "peers": ["198.18.0.10", "198.18.0.12"]}
    )
    mesh = model.host_net({**HOST, "route_reflector": None})
    assert frr.neighbors(reflector) == (["198.18.0.11", "198.18.0.12"], True)
    assert frr.neighbors(client) == (["198.18.0.10"], False)
    assert frr.neighbors(mesh) == (["198.18.0.11", "198.18.0.12"], False)
    golden("frr_bgpd_reflector", frr.render_bgpd(reflector, "ec-1a2b3c4d"))
    golden("frr_bgpd_client", frr.render_bgpd(client, "ec-1a2b3c4d"))
    golden("frr_zebra", frr.render_zebra("ec-1a2b3c4d"))


def test_frr_paths_and_argv(tmp_path: Path) -> None:
    f = frr.Frr(tmp_path, "ec-1a2b3c4d")
    assert f.run_dir == Path("/var/run/frr/ec-1a2b3c4d")
    assert f.argv("bgpd") == [
        "/usr/lib/frr/bgpd",
        *("-d", "-N", "ec-1a2b3c4d", "-P", "0"),
        *("-f", f"{tmp_path}/frr/ec-1a2b3c4d/bgpd.conf"),
        *("-i", f"{tmp_path}/frr/ec-1a2b3c4d/bgpd.pid"),
        *("--log", f"file:{tmp_path}/frr/ec-1a2b3c4d/bgpd.log"),
    ]


def test_frr_needs_an_ipv4_underlay() -> None:
    with pytest.raises(NodeError) as caught:
        frr.render_bgpd(model.host_net({**HOST, "address": "2001:db8::1"}), "x")
    assert caught.value.kind == "bad_request"


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    raw = nic(0, rules=copy.deepcopy(RULES))
    target: Any = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return raw


BAD_NICS: dict[str, tuple[list[Any], Any]] = {
    "bridge with a space": (["vnet", "bridge"], "br0 rm"),
    "bridge with a semicolon": (["vnet", "bridge"], "br0;reboot"),
    "bridge too long": (["vnet", "bridge"], "abcdefghijklmnop"),
    "bridge starting with a dash": (["vnet", "bridge"], "-br"),
    "phydev with a slash": (["vnet", "phydev"], "eth0/x"),
    "driver unknown": (["vnet", "driver"], "ovs"),
    "vxlan group not multicast": (
        ["vnet"],
        vnet("vxlan", vlan_id=3, vxlan_mode="multicast", group="198.18.0.1"),
    ),
    "vni too big": (["vnet"], vnet("vxlan", vlan_id=16_777_216)),
    "vlan without phydev": (["vnet"], vnet("vlan", vlan_id=5)),
    "vlan id 0": (["vnet"], vnet("vlan", vlan_id=0, phydev="eth0")),
    "mtu a string": (["vnet", "mtu"], "1500; drop"),
    "mac not a mac": (["mac"], "02:00:c6:12:00:0a accept"),
    "ip not an ip": (["ip"], "198.18.10.1 accept"),
    "gateway not an ip": (["gateway"], "x"),
    "cidr with words": (["rules", 0, "cidrs"], ["198.18.0.0/24 } accept; {"]),
    "port zero": (["rules", 0, "ports"], [[0, 22]]),
    "port backwards": (["rules", 0, "ports"], [[90, 80]]),
    "port a string": (["rules", 0, "ports"], [["22", "22"]]),
    "icmp type too big": (["rules", 2, "icmp_type"], 256),
    "icmp type a word": (["rules", 2, "icmp_type"], "echo-request accept"),
    "protocol unknown": (["rules", 0, "protocol"], "SCTP"),
    "direction unknown": (["rules", 0, "direction"], "sideways"),
    "rules not a list": (["rules"], "all"),
    "public not a bool": (["vnet", "public"], "yes"),
}


@pytest.mark.parametrize("case", sorted(BAD_NICS))
def test_bad_values_are_refused(case: str) -> None:
    path, value = BAD_NICS[case]
    with pytest.raises(NodeError) as caught:
        model.nics([_with(path, value)], "one-1")
    assert caught.value.kind == "bad_request"


@pytest.mark.parametrize(
    "host",
    [
        {"address": "198.18.0.10; x"},
        {"address": "198.18.0.10", "peers": ["198.18.0.11", "evil"]},
        {"address": "198.18.0.10", "frr_name": "../etc"},
        {"address": "198.18.0.10", "frr_name": "a b"},
        {"address": "198.18.0.10", "asn": "65000"},
        {"address": "198.18.0.10", "route_reflector": "rr.example"},
        {"address": "198.18.0.10", "uplink": "eth0 up"},
    ],
)
def test_bad_host_nets_are_refused(host: dict[str, Any]) -> None:
    with pytest.raises(NodeError) as caught:
        model.host_net(host)
    assert caught.value.kind == "bad_request"


def test_guest_and_nic_ids() -> None:
    with pytest.raises(NodeError):
        model.guest_id("one-5/../x")
    with pytest.raises(NodeError):
        model.nics([nic(0), nic(0)], "one-5")  # the same NIC id twice
    with pytest.raises(NodeError):  # a tap name over 15 characters
        model.nics([nic(0)], "one-1234567890123")
    other_settings = nic(1, vnet=vnet("bridge", mtu=1400))
    with pytest.raises(NodeError):  # one bridge, two settings
        model.nics([nic(0), other_settings], "one-5")


def test_host_net_drops_itself_from_its_peers() -> None:
    host = model.host_net(HOST)
    assert host.peers == ("198.18.0.11", "198.18.0.12")
    assert model.host_net({}).address is None
    assert model.host_net(None).asn == model.DEFAULT_ASN


def test_net_update_sg_action(tmp_path: Path) -> None:
    bad = node_main.handle("net_update_sg", f'{{"root": "{tmp_path}", "deploy_id": "one-1"}}')
    assert bad["kind"] == "bad_request", bad
    request = f'{{"root": "{tmp_path}", "deploy_id": "one-1", "nics": []}}'
    missing = node_main.handle("net_update_sg", request)
    assert missing["kind"] == "missing", missing
    assert not (tmp_path / "net" / "registry.json").exists()


def test_the_zipapp_ships_the_network_package() -> None:
    names = set(_content())
    for module in ("__init__", "host", "plan", "nft", "frr", "model", "cmd", "registry"):
        assert f"edgecloud/node/net/{module}.py" in names


def test_ruleset_refuses_one_mac_on_two_filtered_nics() -> None:
    first = model.nic(nic(0, rules=[RULES[0]]), "one-1")
    second = model.nic(nic(0, rules=[RULES[0]]), "one-2")  # the same MAC
    with pytest.raises(NodeError) as caught:
        nft.ruleset([first, second])
    assert caught.value.kind == "bad_request" and "ec1n0 and ec2n0" in caught.value.message


def test_setup_already_done_is_skipped() -> None:
    links: dict[str, dict[str, Any]] = {
        "ecbr3": {
            "flags": ["BROADCAST", "UP"],
            "mtu": 1450,
            "linkinfo": {
                "info_kind": "bridge",
                "info_data": {"nf_call_iptables": 1, "nf_call_ip6tables": 0},
            },
        },
        "vxlan3": {
            "flags": ["BROADCAST"],
            "mtu": 1450,
            "master": "ecbr3",
            "linkinfo": {"info_kind": "vxlan", "info_slave_data": {"learning": False}},
        },
    }
    v = model.vnet(vnet("evpn", vlan_id=3, mtu=1450))
    bridge, vxlan = plan.devices(v, model.host_net(HOST))
    todo = [argv for d in (bridge, vxlan) for argv in d.setup if not plan.done_already(argv, links)]
    assert todo == [
        ("ip", "link", "set", "dev", "ecbr3", "type", "bridge", *("nf_call_iptables", "1"),
         *("nf_call_ip6tables", "1")),
        ("ip", "link", "set", "dev", "vxlan3", "up"),
    ]  # fmt: skip
    assert not plan.done_already(("ip", "link", "set", "dev", "missing0", "up"), links)
    assert not plan.done_already(("ip", "route", "replace", "x"), links)
