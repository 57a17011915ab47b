"""Security groups and NAT in nftables: one ruleset for the whole host, replaced at once.

Two tables, both named ``edgecloud``; each is deleted and written again in one ``nft -f``
transaction, so a change is atomic and nothing of an earlier version lingers.

``inet edgecloud`` — stateful filtering of the guests' traffic (bridged or routed). The
bridges have ``nf_call_iptables``/``nf_call_ip6tables`` on (br_netfilter), so bridged
packets pass the inet hooks with conntrack. There the input and output device of a
bridged packet is the bridge, not the port; a NIC is therefore recognised by its MAC:

- ``forward``: ``ether daddr vmap { <mac> : jump <tap>-in, ... }`` (bridged traffic to
  a guest); for public and masquerade vnets also ``oifname . ip daddr vmap { "<bridge>" .
  <ip> : jump <tap>-in, ... }`` (traffic the host routes to a guest).
- ``prerouting``: ``iifname . ether saddr vmap { "<bridge>" . <mac> : jump <tap>-out,
  ... }`` (everything a guest sends, bridged or routed).
- ``<tap>-in``: established/related accepted, IPv6 neighbour discovery accepted, the
  inbound rules, then drop (default deny).
- ``<tap>-out``: established/related accepted, the outbound rules, then drop — or accept
  when the NIC has no outbound rule at all (outbound is open by default).
- ``postrouting`` (nat): ``oifname <uplink> ip saddr <subnet> masquerade`` per
  masquerade vnet.

``bridge edgecloud`` — stateless checks by port (the tap itself), which make the MACs
above trustworthy: a filtered NIC may only send frames with its own source MAC (and, when
its vnet sets ``filter_ip_spoofing``, its own IPv4 source address and ARP sender). For a
masquerade vnet over VXLAN, ARP for its gateway address stays on the host (every host's
bridge carries that address).

A NIC with no rules ("rules": []) is not filtered at all.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence

from edgecloud.node.net import cmd
from edgecloud.node.net.model import Nic, Rule
from edgecloud.node.protocol import NodeError, bad

TABLE = "edgecloud"
ND_IN = "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept"


def _set(items: Iterable[str]) -> str:
    return "{ " + ", ".join(items) + " }"


def _ports(ports: tuple[tuple[int, int], ...]) -> str:
    return _set(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ports)


def _match(r: Rule) -> tuple[str, str | None]:
    """Return (protocol match, the one address family it implies or None)."""
    if r.protocol in ("TCP", "UDP"):
        proto = r.protocol.lower()
        return (f"{proto} dport {_ports(r.ports)}" if r.ports else f"meta l4proto {proto}"), None
    if r.protocol == "ICMP":
        return (f"icmp type {r.icmp_type}" if r.icmp_type is not None else "meta l4proto icmp"), "4"
    if r.protocol == "ICMPV6":
        if r.icmp_type is not None:
            return f"icmpv6 type {r.icmp_type}", "6"
        return "meta l4proto ipv6-icmp", "6"
    if r.protocol == "IPSEC":
        return "meta l4proto { esp, ah }", None
    return "", None


def rule_lines(r: Rule) -> list[str]:
    """Return the nft rules of one security group rule (one per address family)."""
    proto, only = _match(r)
    if r.cidrs is None:
        return [f"{proto} accept".strip()]
    side = "saddr" if r.direction == "inbound" else "daddr"
    out = []
    for family, key in (("4", "ip"), ("6", "ip6")):
        nets = [c for c in r.cidrs if (":" in c) == (family == "6")]
        if nets and only in (None, family):
            out.append(f"{key} {side} {_set(nets)} {proto} accept".replace("  ", " ").strip())
    return out  # no address in the group yet: the rule matches nothing


def _chains(n: Nic) -> list[str]:
    inbound = [line for r in n.rules if r.direction == "inbound" for line in rule_lines(r)]
    outbound = [line for r in n.rules if r.direction == "outbound" for line in rule_lines(r)]
    has_outbound = any(r.direction == "outbound" for r in n.rules)
    established = "ct state established,related accept"
    return [
        *_chain(f"{n.tap}-in", [established, ND_IN, *inbound, "drop"]),
        *_chain(f"{n.tap}-out", [established, *outbound, "drop" if has_outbound else "accept"]),
    ]


def _chain(name: str, body: Sequence[str], hook: str | None = None) -> list[str]:
    lines = [f"\tchain {name} {{"]
    if hook:
        lines.append(f"\t\t{hook}")
    lines += [f"\t\t{line}" for line in body]
    return [*lines, "\t}"]


def _replace(family: str, body: list[str]) -> list[str]:
    """Return the lines that delete a table (creating it first, so the delete never fails)
    and, when `body` has chains, write it again."""
    lines = [f"table {family} {TABLE}", f"delete table {family} {TABLE}"]
    if body:
        lines += [f"table {family} {TABLE} {{", *body, "}"]
    return lines


def _vmap(key: str, items: list[str]) -> list[str]:
    """Return a verdict map rule, one element a line ([] without elements)."""
    if not items:
        return []
    return [f"{key} vmap {{", *(f"\t{item}," for item in items), "}"]


def _unique(keys: list[tuple[str, str]], what: str) -> None:
    """Refuse two filtered NICs with one MAC (or routed address): one vmap key each."""
    seen: dict[str, str] = {}
    for key, tap in keys:
        if key in seen:
            raise bad(f"{seen[key]} and {tap} have the same {what} ({key})")
        seen[key] = tap


def _routed(n: Nic) -> bool:
    return (n.vnet.public or n.vnet.masquerade) and n.ip is not None


def ruleset(
    nics: Sequence[Nic],
    masquerade: Iterable[tuple[str, str]] = (),
    local_gateways: Iterable[tuple[str, str]] = (),
) -> str:
    """Return the nft transaction that makes both tables what these NICs need.

    `nics`: every NIC of every guest on the host (those without rules are skipped);
    `masquerade`: (uplink, subnet) pairs; `local_gateways`: (vxlan device, gateway address)
    pairs whose ARP must not cross the VXLAN.
    """
    filtered = sorted((n for n in nics if n.rules), key=lambda n: (n.tap, n.mac))
    to_mac: list[str] = []
    to_ip4: list[str] = []
    to_ip6: list[str] = []
    from_mac: list[str] = []
    chains: list[str] = []
    spoof: list[str] = []
    for n in filtered:
        to_mac.append(f"{n.mac} : jump {n.tap}-in")
        if _routed(n):
            (to_ip6 if ":" in str(n.ip) else to_ip4).append(
                f'"{n.vnet.bridge}" . {n.ip} : jump {n.tap}-in'
            )
        from_mac.append(f'"{n.vnet.bridge}" . {n.mac} : jump {n.tap}-out')
        chains += _chains(n)
        spoof.append(f'iifname "{n.tap}" ether saddr != {n.mac} drop')
        if n.vnet.filter_ip_spoofing and n.ip is not None and ":" not in n.ip:
            spoof.append(f'iifname "{n.tap}" ip saddr != {n.ip} drop')
            spoof.append(f'iifname "{n.tap}" arp saddr ip != {n.ip} drop')
    _unique([(n.mac, n.tap) for n in filtered], "MAC")
    _unique([(f"{n.vnet.bridge} {n.ip}", n.tap) for n in filtered if _routed(n)], "address")
    forward = _vmap("ether daddr", to_mac)
    forward += _vmap("oifname . ip daddr", to_ip4) + _vmap("oifname . ip6 daddr", to_ip6)
    prerouting = _vmap("iifname . ether saddr", from_mac)
    nat = [
        f'oifname "{uplink}" ip saddr {subnet} masquerade'
        for uplink, subnet in sorted(set(masquerade))
    ]
    isolated = sorted(set(local_gateways))
    spoof += [f'iifname "{dev}" arp daddr ip {gw} drop' for dev, gw in isolated]
    bridge_forward = [f'oifname "{dev}" arp daddr ip {gw} drop' for dev, gw in isolated]

    inet: list[str] = []
    if filtered:
        inet += _chain(
            "forward", forward, "type filter hook forward priority filter; policy accept;"
        )
        inet += _chain(
            "prerouting", prerouting, "type filter hook prerouting priority filter; policy accept;"
        )
        inet += chains
    if nat:
        inet += _chain(
            "postrouting", nat, "type nat hook postrouting priority srcnat; policy accept;"
        )
    bridge: list[str] = []
    if spoof:
        bridge += _chain(
            "prerouting", spoof, "type filter hook prerouting priority filter; policy accept;"
        )
    if bridge_forward:
        bridge += _chain(
            "forward", bridge_forward, "type filter hook forward priority filter; policy accept;"
        )
    return "\n".join([*_replace("inet", inet), *_replace("bridge", bridge)]) + "\n"


def apply(text: str) -> None:
    """Load a ruleset transaction (all of it or nothing)."""
    if shutil.which("nft") is None:
        raise NodeError("failed", "nftables (nft) is not installed on this host")
    cmd.run(("nft", "-f", "-"), stdin=text)


def tables() -> set[str]:
    """Return the families that have an edgecloud table now."""
    listed = cmd.json_of(("nft", "-j", "list", "tables"))
    found = set()
    for item in listed.get("nftables", []) if isinstance(listed, dict) else []:
        table = item.get("table") if isinstance(item, dict) else None
        if isinstance(table, dict) and table.get("name") == TABLE:
            found.add(str(table.get("family")))
    return found
