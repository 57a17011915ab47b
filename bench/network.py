"""Host network figures: the node's pre/post cost, FRR start, EVPN convergence, guest RTT.

    .venv/bin/python bench/network.py [--nics 20] [--pings 20]

Two namespace test hosts on one switch (tests/support/nethosts.py), the node zipapp run
inside their namespaces, guests simulated as namespaces with a veth (tests/support/netsim.py).
For vxlan (flood) and evpn:

- pre + post for one vnet and N NICs on one host: N guests of one NIC each (pre, plug,
  post per guest, every NIC with two security group rules), and one guest with N NICs;
  the time inside the functions (the Python start of each call, ~40 ms, is printed apart);
- evpn: FRR's start (zebra + bgpd, the first evpn pre minus a later one), and the time from
  the second host's pre to both hosts showing every type-2 and type-3 route;
- ping RTT (median of --pings) between two guests on different hosts, next to the same
  between the bare host namespaces.

Not a test: nothing is asserted; everything it made is removed at the end.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/xmlrpc.py would hide the standard library's `xmlrpc` from scripts run from here.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "src"))

from tests.support.nethosts import NetHosts  # noqa: E402
from tests.support.netsim import (  # noqa: E402
    NetNode,
    SimGuest,
    cleanup,
    median,
    rtts,
    sweep_guests,
)

from edgecloud.drivers.transport.keys import ensure_client_key, public_key_line  # noqa: E402
from edgecloud.node.build import build_zipapp  # noqa: E402

RULES = [
    {"direction": "inbound", "protocol": "TCP", "ports": [[22, 22]], "cidrs": None},
    {"direction": "inbound", "protocol": "ICMP", "icmp_type": 8, "cidrs": None},
]


def vnet(driver: str, number: int) -> dict[str, Any]:
    return {
        "id": number,
        "name": f"net{number}",
        "driver": driver,
        "bridge": f"ecbr{number}",
        "phydev": "",
        "vlan_id": 10_000 + number,
        "vxlan_mode": "flood",
        "public": False,
        "masquerade": False,
    }


def nic(nic_id: int, ip: str, net: dict[str, Any]) -> dict[str, Any]:
    third, last = (int(part) for part in ip.split(".")[2:])
    return {
        "nic_id": nic_id,
        "mac": f"02:00:c0:{third:02x}:{nic_id:02x}:{last:02x}",
        "ip": ip,
        "prefix": 24,
        "vnet": net,
        "rules": RULES,
    }


def network(node: NetNode, nodes: list[NetNode]) -> dict[str, Any]:
    return {
        "address": node.host.address,
        "peers": [n.host.address for n in nodes],
        "asn": 65000,
        "route_reflector": nodes[0].host.address,
        "frr_name": node.frr_name,
    }


class Bench:
    def __init__(self, nodes: list[NetNode]) -> None:
        self.nodes = nodes
        self.guests: list[SimGuest] = []
        self.records: list[tuple[NetNode, str, list[dict[str, Any]]]] = []

    def guest(self, node: NetNode, vm_id: int, nics: list[dict[str, Any]]) -> dict[str, float]:
        """pre, simulated NICs, plug each, post; return the seconds of each step."""
        net = network(node, self.nodes)
        deploy = f"one-{vm_id}"
        wall = time.perf_counter()
        pre = node.call("pre", nics=nics, host_net=net, guest=deploy)
        self.records.append((node, deploy, nics))
        plug = 0.0
        for item in nics:
            g = SimGuest(node, item, vm_id)
            self.guests.append(g)
            g.create()
            plug += node.call("plug", nic=item, ifname=g.tap)
        post = node.call("post", nics=nics, host_net=net, guest=deploy)
        return {"pre": pre, "plug": plug, "post": post, "wall": time.perf_counter() - wall}

    def clean(self) -> float:
        total = 0.0
        for g in self.guests:
            g.delete()
        for node, deploy, nics in self.records:
            total += node.call("clean", nics=nics, host_net=network(node, self.nodes), guest=deploy)
        self.guests.clear()
        self.records.clear()
        return total


def routes_everywhere(nodes: list[NetNode], macs: list[str]) -> bool:
    for node in nodes:
        text = node.vtysh("show bgp l2vpn evpn route")
        if not all(f"[3]:[0]:[32]:[{n.host.address}]" in text for n in nodes):
            return False
        if not all(f"[2]:[0]:[48]:[{m}]" in text for m in macs):
            return False
    return True


def run(driver: str, number: int, bench: Bench, count: int, pings: int) -> None:
    a, b = bench.nodes
    net = vnet(driver, number)
    print(f"\n== {driver} (vnet ecbr{number}, VNI {10_000 + number})")
    first = bench.guest(a, 1, [nic(0, "192.0.2.1", net)])
    steps = [bench.guest(a, 100 + i, [nic(0, f"192.0.2.{10 + i}", net)]) for i in range(count)]
    pre = sum(s["pre"] for s in steps)
    post = sum(s["post"] for s in steps)
    plug = sum(s["plug"] for s in steps)
    wall = sum(s["wall"] for s in steps)
    print(
        f"{count} guests x 1 NIC on one host: pre {pre * 1000:.0f} ms + post {post * 1000:.0f} ms"
    )
    print(
        f"  = {(pre + post) * 1000:.0f} ms in the functions ({(pre + post) / count * 1000:.1f} ms"
        f" a guest; plug {plug / count * 1000:.1f} ms a NIC); wall with process starts"
        f" and veths {wall:.2f} s"
    )
    if driver == "evpn":
        later = median([s["pre"] for s in steps])
        print(
            f"FRR start (first evpn pre {first['pre'] * 1000:.0f} ms - a later pre"
            f" {later * 1000:.0f} ms): {(first['pre'] - later) * 1000:.0f} ms"
        )
    many = [nic(i, f"192.0.3.{10 + i}", net) for i in range(count)]
    one = bench.guest(a, 300, many)
    print(
        f"1 guest x {count} NICs: pre {one['pre'] * 1000:.0f} ms + post"
        f" {one['post'] * 1000:.0f} ms; plug {one['plug'] / count * 1000:.1f} ms a NIC"
    )

    started = time.perf_counter()
    remote = bench.guest(b, 2, [nic(0, "192.0.2.2", net)])
    if driver == "evpn":
        macs = [nic(0, "192.0.2.1", net)["mac"], nic(0, "192.0.2.2", net)["mac"]]
        while not routes_everywhere(bench.nodes, macs):
            if time.perf_counter() - started > 120:
                print("EVPN routes did not appear in 120 s")
                break
            time.sleep(0.05)
        else:
            print(
                f"EVPN routes on both hosts {time.perf_counter() - started:.2f} s after the"
                f" second host's pre began (its pre+post {remote['wall']:.2f} s of that)"
            )
    guest_a = next(g for g in bench.guests if g.deploy_id == "one-1")
    guest_a.ping_until("192.0.2.2", timeout=60)
    guests = rtts(["ip", "netns", "exec", guest_a.netns], "192.0.2.2", pings)
    bare = rtts(["nsenter", f"--net=/run/netns/{a.host.netns}"], b.host.address, pings)
    print(
        f"ping RTT median of {pings}: guests {median(guests):.3f} ms,"
        f" bare hosts {median(bare):.3f} ms"
    )
    print(f"clean of all {count + 3} guests: {bench.clean() * 1000:.0f} ms in the functions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nics", type=int, default=20)
    parser.add_argument("--pings", type=int, default=20)
    args = parser.parse_args()
    sweep_guests()
    work = Path(tempfile.mkdtemp(prefix="ecnetbench-"))
    try:
        pyz = work / "node.pyz"
        build_zipapp(pyz)
        key = ensure_client_key(work / "key")
        with NetHosts(2, authorized_keys=[public_key_line(key)]) as hosts:
            tag = hosts[0].netns.removeprefix("ech").rsplit("-", 1)[0].replace("-", "x")
            nodes = [NetNode(h, pyz, f"ecb{tag}-{i}") for i, h in enumerate(hosts)]
            bench = Bench(nodes)
            try:
                start = python_start(nodes[0])
                print(f"python start + import of one node call: ~{start * 1000:.0f} ms")
                run("vxlan", 1, bench, args.nics, args.pings)
                run("evpn", 2, bench, args.nics, args.pings)
            finally:
                cleanup(nodes, bench.guests)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def python_start(node: NetNode) -> float:
    started = time.perf_counter()
    node.sh(
        [
            "/usr/bin/python3",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import edgecloud.node.net.host",
            str(node.pyz),
        ]
    )
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
