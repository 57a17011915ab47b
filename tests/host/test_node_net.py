"""The host network code on two namespace hosts, with simulated guests (tests/support/netsim).

Each test builds its own two hosts on one switch, runs pre -> plug -> post for its guests
inside the hosts' namespaces (from the node zipapp), checks traffic between the guests,
then cleans up and checks that nothing of ours is left: no bridge, VXLAN device, tap or
veth; no ``edgecloud`` nftables table; no FRR process, config or socket directory; no
registry. Guests, FRR daemons and namespaces go in finalizers even when a test fails.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgecloud.node.build import build_zipapp
from tests.support.nethosts import NetHost
from tests.support.netsim import RUN_FRR, NetNode, SimGuest, cleanup, sweep_guests

ASN = 65000
OURS = re.compile(r"^(ecbr\d+|vxlan\d+|ec\d+n\d+|opbr\d+)$")


def _missing() -> str | None:
    for tool in ("busybox", "nft", "nsenter", "bridge"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


@functools.cache
def _vlan_works() -> bool:
    """Probe once whether this kernel has 802.1Q devices."""
    netns = "ecvlanprobe"
    subprocess.run(["ip", "netns", "add", netns], capture_output=True)
    try:
        subprocess.run(
            ["ip", "-n", netns, "link", "add", "p0", "type", "veth", "peer", "name", "p1"],
            capture_output=True,
        )
        vlan = ["ip", "-n", netns, "link", "add", "link", "p0", "name", "p0.5", "type", "vlan"]
        return subprocess.run([*vlan, "id", "5"], capture_output=True).returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The node zipapp (with edgecloud.node.net inside)."""
    path = tmp_path_factory.mktemp("node") / "node.pyz"
    build_zipapp(path)
    return path


class Lab:
    """Two hosts' node code, and the guests started on them."""

    def __init__(self, hosts: list[NetHost], pyz: Path, tag: str) -> None:
        self.nodes = [NetNode(h, pyz, f"ect{tag}-{i}") for i, h in enumerate(hosts)]
        self.guests: list[SimGuest] = []
        self.networks: dict[str, dict[str, Any]] = {}

    def network(self, node: NetNode, reflector: int | None = 0) -> dict[str, Any]:
        """Return a host's host_net (peers: every other host; the reflector host 0)."""
        return {
            "address": node.host.address,
            "peers": [n.host.address for n in self.nodes],
            "asn": ASN,
            "route_reflector": None if reflector is None else self.nodes[reflector].host.address,
            "frr_name": node.frr_name,
        }

    def start(self, node: NetNode, vm_id: int, nic: dict[str, Any]) -> SimGuest:
        """pre, a simulated guest, plug, post: a guest with one NIC running on `node`."""
        network = self.network(node)
        guest = SimGuest(node, nic, vm_id)
        self.guests.append(guest)
        self.networks[guest.deploy_id] = network
        node.call("pre", nics=[nic], host_net=network, guest=guest.deploy_id)
        guest.create()
        node.call("plug", nic=nic, ifname=guest.tap)
        node.call("post", nics=[nic], host_net=network, guest=guest.deploy_id)
        return guest

    def stop(self, guest: SimGuest) -> None:
        """The guest goes (its namespace and veth), then clean."""
        guest.delete()
        network = self.networks[guest.deploy_id]
        guest.node.call("clean", nics=[guest.nic], host_net=network, guest=guest.deploy_id)

    def stop_all(self) -> None:
        """Stop every guest still running."""
        for guest in self.guests:
            if guest.created:
                self.stop(guest)


@pytest.fixture
def lab(nethosts: Callable[[int], list[NetHost]], pyz: Path) -> Iterator[Lab]:
    """Two fresh hosts; guests and FRR are removed afterwards whatever happened."""
    sweep_guests()
    hosts = nethosts(2)
    made = Lab(hosts, pyz, hosts[0].netns.removeprefix("ech").rsplit("-", 1)[0].replace("-", "x"))
    try:
        yield made
    finally:
        cleanup(made.nodes, made.guests)


def vnet(driver: str, number: int, **fields: Any) -> dict[str, Any]:
    """Return a vnet (bridge ecbr<number>, VNI 10000+number for vxlan/evpn)."""
    base: dict[str, Any] = {
        "id": number,
        "name": f"net{number}",
        "driver": driver,
        "bridge": f"ecbr{number}",
        "phydev": "",
        "vlan_id": 10_000 + number if driver in ("vxlan", "evpn") else None,
        "mtu": None,
        "vxlan_mode": "flood",
        "group": None,
        "public": False,
        "masquerade": False,
    }
    return {**base, **fields}


def nic(
    ip: str, net: dict[str, Any], rules: list[dict[str, Any]] | None = None, **fields: Any
) -> dict[str, Any]:
    """Return NIC 0 with this address on this vnet."""
    last = int(ipaddress.ip_address(ip)) & 0xFF
    base: dict[str, Any] = {
        "nic_id": 0,
        "mac": f"02:00:c0:00:02:{last:02x}",
        "ip": ip,
        "prefix": 24,
        "gateway": None,
        "vnet": net,
        "rules": rules or [],
        "security_groups": [100] if rules else [],
    }
    return {**base, **fields}


SSH_ONLY = [{"direction": "inbound", "protocol": "TCP", "ports": [[22, 22]], "cidrs": None}]
PING_TOO = [*SSH_ONLY, {"direction": "inbound", "protocol": "ICMP", "icmp_type": 8, "cidrs": None}]


def assert_clean(node: NetNode, frr_pids: dict[str, int] | None = None) -> None:
    """Nothing of ours is left on the host."""
    ours = [name for name in node.links() if OURS.match(name)]
    assert ours == [], f"{node.host.name} still has {ours}"
    tables = node.nft_tables()
    assert "inet edgecloud" not in tables and "bridge edgecloud" not in tables, tables
    assert not (node.root / "frr").exists()
    assert not (RUN_FRR / node.frr_name).exists()
    assert node.frr_pids() == {}
    assert node.frr_alive(frr_pids or {}) == []
    assert not (node.root / "net" / "registry.json").exists()


def test_vxlan_flood_guests_ping_across_hosts(lab: Lab) -> None:
    a, b = lab.nodes
    net = vnet("vxlan", 1, mtu=1450)
    ga = lab.start(a, 1, nic("192.0.2.10", net))
    gb = lab.start(b, 2, nic("192.0.2.11", net))
    ga.ping_until("192.0.2.11")
    assert gb.ping("192.0.2.10")
    flood = a.sh(["bridge", "-j", "fdb", "show", "dev", "vxlan10001"]).stdout
    assert f'"dst":"{b.host.address}"' in flood and a.host.address not in flood
    vxlan = a.links()["vxlan10001"]
    assert vxlan["master"] == "ecbr1" and vxlan["mtu"] == 1450
    assert vxlan["linkinfo"]["info_data"]["learning"] is True
    # pre again is harmless (idempotent), and the flood list stays one entry per peer.
    a.call("pre", nics=[ga.nic], host_net=lab.networks[ga.deploy_id], guest=ga.deploy_id)
    assert (
        a.sh(["bridge", "fdb", "show", "dev", "vxlan10001"]).stdout.count("00:00:00:00:00:00") == 1
    )
    lab.stop_all()
    assert_clean(a)
    assert_clean(b)


def test_vxlan_multicast_guests_ping_across_hosts(lab: Lab) -> None:
    a, b = lab.nodes
    net = vnet("vxlan", 10, vxlan_mode="multicast", group="239.0.0.10")
    ga = lab.start(a, 1, nic("192.0.2.60", net))
    lab.start(b, 2, nic("192.0.2.61", net))
    ga.ping_until("192.0.2.61")
    vxlan = a.links()["vxlan10010"]["linkinfo"]["info_data"]
    assert vxlan["group"] == "239.0.0.10" and vxlan["link"] == "eth0"  # the uplink
    fdb = a.sh(["bridge", "fdb", "show", "dev", "vxlan10010"]).stdout
    assert f"00:00:00:00:00:00 dst {b.host.address}" not in fdb  # no static flood list
    lab.stop_all()
    assert_clean(a)
    assert_clean(b)


def _evpn_routes(node: NetNode, hosts: list[str], macs: list[str]) -> bool:
    text = node.vtysh("show bgp l2vpn evpn route")
    type3 = all(f"[3]:[0]:[32]:[{h}]" in text for h in hosts)
    type2 = all(f"[2]:[0]:[48]:[{m}]" in text for m in macs)
    return type3 and type2


def test_evpn_with_frr_on_both_hosts(lab: Lab) -> None:
    a, b = lab.nodes
    net = vnet("evpn", 2)
    ga = lab.start(a, 1, nic("192.0.2.20", net))
    gb = lab.start(b, 2, nic("192.0.2.21", net))
    pids = {**a.frr_pids(), **b.frr_pids()}
    assert len(pids) == 4, pids  # zebra and bgpd on each host
    vxlan = a.links()["vxlan10002"]["linkinfo"]["info_data"]
    assert vxlan["learning"] is False and "group" not in vxlan
    hosts = [a.host.address, b.host.address]
    macs = [ga.nic["mac"], gb.nic["mac"]]
    deadline = time.monotonic() + 60
    while not (_evpn_routes(a, hosts, macs) and _evpn_routes(b, hosts, macs)):
        assert time.monotonic() < deadline, a.vtysh("show bgp l2vpn evpn route")
        time.sleep(0.2)
    ga.ping_until("192.0.2.21")
    # zebra installed what BGP carried: the remote MAC and the flood entry for the peer.
    fdb = a.sh(["bridge", "fdb", "show", "dev", "vxlan10002"]).stdout
    assert gb.nic["mac"] in fdb and f"dst {b.host.address}" in fdb
    summary = b.vtysh("show bgp l2vpn evpn summary")
    assert a.host.address in summary
    # A new peer in the cluster: bgpd restarts with it, zebra stays; traffic comes back.
    zebra, bgpd = (str(a.root / "frr" / a.frr_name / f"{d}.pid") for d in ("zebra", "bgpd"))
    network = lab.network(a)
    newcomer = str(ipaddress.ip_interface(f"{a.host.address}/24").network[99])
    network["peers"] = [*network["peers"], newcomer]
    third = nic("192.0.2.22", net, mac="02:00:c0:00:02:fe")
    a.call("pre", nics=[third], host_net=network, guest="one-3")
    a.call("post", nics=[third], host_net=network, guest="one-3")
    now = a.frr_pids()
    assert now[zebra] == pids[zebra] and now[bgpd] != pids[bgpd]
    assert newcomer in (a.root / "frr" / a.frr_name / "bgpd.conf").read_text()
    ga.ping_until("192.0.2.21", timeout=60)
    lab.stop(ga)
    assert a.frr_pids()[zebra] == pids[zebra]  # guest one-3 still uses the evpn vnet
    a.call("clean", nics=[third], host_net=network, guest="one-3")
    pids.update(now)
    lab.stop_all()
    assert_clean(a, pids)
    assert_clean(b, pids)


def test_security_group_blocks_ping_until_updated(lab: Lab) -> None:
    a, b = lab.nodes
    net = vnet("vxlan", 3)
    ga = lab.start(a, 1, nic("192.0.2.30", net))
    gb = lab.start(b, 2, nic("192.0.2.31", net, rules=SSH_ONLY))
    # Stateful: B may ping out, and the answers come back in.
    gb.ping_until("192.0.2.30")
    assert not ga.ping("192.0.2.31", count=2, wait=1)
    index = gb.eth0_index()
    answer = b.action("net_update_sg", deploy_id=gb.deploy_id, nics=[{**gb.nic, "rules": PING_TOO}])
    assert answer == {"ok": True, "result": {}}, answer
    assert ga.ping("192.0.2.31", count=2, wait=1)
    assert gb.eth0_index() == index  # the guest's NIC was not touched
    chain = b.sh(["nft", "list", "chain", "inet", "edgecloud", "ec2n0-in"]).stdout
    assert "icmp type echo-request accept" in chain
    # And back: without the ICMP rule a new ping is refused again.
    answer = b.action("net_update_sg", deploy_id=gb.deploy_id, nics=[gb.nic])
    assert answer["ok"], answer
    assert not ga.ping("192.0.2.31", count=2, wait=1)
    # A filtered guest that changes its MAC is cut off (its frames, ARP included, drop).
    for guest in (ga, gb):
        guest.exec(["ip", "neigh", "flush", "all"])
    gb.ping_until("192.0.2.30")
    gb.exec(["ip", "link", "set", "eth0", "address", "02:00:c0:00:02:99"])
    for guest in (ga, gb):
        guest.exec(["ip", "neigh", "flush", "all"])
    assert not gb.ping("192.0.2.30", count=2, wait=1)
    bad = b.action("net_update_sg", deploy_id="one-99", nics=[gb.nic])
    assert bad["kind"] == "missing", bad
    lab.stop_all()
    assert_clean(a)
    assert_clean(b)


def test_masquerade_and_public_addresses(lab: Lab) -> None:
    a, b = lab.nodes
    assert a.sysctl("net/ipv4/ip_forward") == "0"
    masq = vnet("vxlan", 4, masquerade=True)
    gm = lab.start(a, 1, nic("192.0.2.40", masq, gateway="192.0.2.1"))
    assert a.sysctl("net/ipv4/ip_forward") == "1"
    # B has no route back to 192.0.2.0/24: an answer means A masqueraded the guest.
    assert "unreachable" in b.sh(["ip", "route", "get", "192.0.2.40"]).stderr
    gm.ping_until(b.host.address)
    other = lab.start(b, 3, nic("192.0.2.41", masq, gateway="192.0.2.1"))
    other.ping_until(a.host.address)  # B masquerades its own guest
    gm.ping_until("192.0.2.41")  # one L2 network over VXLAN all the same
    rules = a.sh(["nft", "list", "chain", "inet", "edgecloud", "postrouting"]).stdout
    assert "192.0.2.0/24" in rules and "masquerade" in rules
    # Every host's bridge is the gateway; ARP for it stays on each host: B's bridge never
    # hears A's guest ask for it (it would answer, and note the asker).
    gm.exec(["ip", "neigh", "flush", "all"])
    gm.ping_until(b.host.address)
    assert "192.0.2.40" not in b.sh(["ip", "neigh", "show", "dev", "ecbr4"]).stdout
    for guest, node in ((gm, a), (other, b)):
        neighbours = guest.exec(["ip", "neigh", "show", "192.0.2.1"]).stdout
        assert node.links()["ecbr4"]["address"] in neighbours, neighbours
    lab.stop(other)

    public_ip = str(ipaddress.ip_interface(f"{a.host.address}/24").network[200])
    pub = vnet("bridge", 5, public=True)
    gp = lab.start(a, 2, nic(public_ip, pub, rules=SSH_ONLY))
    assert a.sysctl("net/ipv4/conf/eth0/proxy_arp") == "1"
    assert f"{public_ip} dev ecbr5" in a.sh(["ip", "route"]).stdout
    gp.ping_until(b.host.address)  # proxy ARP both ways, routed by A; answers established
    ping_from_b = ["busybox", "ping", "-c", "2", "-W", "1", public_ip]
    assert b.sh(ping_from_b).returncode != 0  # routed to the guest, filtered: no ICMP rule
    answer = a.action("net_update_sg", deploy_id=gp.deploy_id, nics=[{**gp.nic, "rules": PING_TOO}])
    assert answer["ok"], answer
    assert b.sh(ping_from_b).returncode == 0

    lab.stop(gp)
    assert a.sysctl("net/ipv4/conf/eth0/proxy_arp") == "0"
    assert public_ip not in a.sh(["ip", "route"]).stdout
    assert a.sysctl("net/ipv4/ip_forward") == "1"  # the masquerade guest still needs it
    lab.stop(gm)
    assert a.sysctl("net/ipv4/ip_forward") == "0"
    assert_clean(a)
    assert_clean(b)


def test_teardown_keeps_what_it_did_not_make(lab: Lab) -> None:
    a, _ = lab.nodes
    network = lab.network(a)
    # A failed pre leaves nothing behind: the bridge it made is removed again.
    broken = nic("192.0.2.50", vnet("bridge", 6, phydev="nosuch0"))
    error = a.fails("pre", nics=[broken], host_net=network, guest="one-50")
    assert "nosuch0 does not exist" in error
    assert "ecbr6" not in a.links()
    # Values that could inject are refused before anything runs.
    evil = nic("192.0.2.51", vnet("bridge", 7, bridge="br0;reboot"))
    assert "interface name" in a.fails("pre", nics=[evil], host_net=network, guest="one-51")
    # An operator's bridge is used but never removed; our VXLAN device on it is.
    assert a.sh(["ip", "link", "add", "opbr0", "type", "bridge"]).returncode == 0
    try:
        shared = vnet("vxlan", 8, bridge="opbr0")
        g1 = lab.start(a, 1, nic("192.0.2.52", shared))
        g2 = lab.start(a, 2, nic("192.0.2.53", shared))
        g1.ping_until("192.0.2.53")
        lab.stop(g1)
        assert {"opbr0", "vxlan10008", "ec2n0"} <= set(a.links())  # g2 still uses them
        lab.stop(g2)
        links = a.links()
        assert "opbr0" in links and "vxlan10008" not in links
    finally:
        a.sh(["ip", "link", "del", "opbr0"])
    # clean of a guest the registry never saw is harmless.
    a.call("clean", nics=[broken], host_net=network, guest="one-50")
    assert_clean(a)


@pytest.mark.skipif(not _vlan_works(), reason="this kernel has no 802.1Q (vlan) devices")
def test_vlan_guests_ping_across_hosts(lab: Lab) -> None:
    a, b = lab.nodes
    net = vnet("vlan", 9, phydev="eth0", vlan_id=109)
    ga = lab.start(a, 1, nic("192.0.2.90", net))
    lab.start(b, 2, nic("192.0.2.91", net))
    ga.ping_until("192.0.2.91")
    assert "eth0.109" in a.links()
    lab.stop_all()
    assert_clean(a)
    assert_clean(b)


GOLDEN = Path(__file__).parent.parent / "unit" / "golden" / "net"


def test_golden_rulesets_and_configs_load(tmp_path: Path) -> None:
    """What the golden tests pin is what nft and bgpd accept (checked, never loaded)."""
    for name in ("nft_rules", "nft_masquerade"):
        check = ["unshare", "-n", "nft", "-c", "-f", str(GOLDEN / f"{name}.txt")]
        done = subprocess.run(check, capture_output=True, text=True)
        assert done.returncode == 0, (name, done.stderr)
    if not Path("/usr/lib/frr/bgpd").exists():
        return
    tmp_path.chmod(0o755)
    pathspace = f"ecchk{os.getpid()}"
    try:
        for name in ("frr_bgpd_reflector", "frr_bgpd_client"):
            conf = tmp_path / f"{name}.conf"
            shutil.copy(GOLDEN / f"{name}.txt", conf)
            shutil.chown(conf, "frr", "frr")
            dry = ["unshare", "-n", "/usr/lib/frr/bgpd", "-C", "-N", pathspace, "-f", str(conf)]
            done = subprocess.run(dry, capture_output=True, text=True)
            assert done.returncode == 0 and "error" not in done.stdout.lower(), done
    finally:
        shutil.rmtree(RUN_FRR / pathspace, ignore_errors=True)
