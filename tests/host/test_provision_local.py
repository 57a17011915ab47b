"""The `local` provider: hosts as network namespaces with their own sshd, reached over SSH."""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgecloud.drivers import registry
from edgecloud.drivers.base import DriverError
from edgecloud.drivers.provision.api import ProvidedHost, Provider
from edgecloud.drivers.provision.layout import TAG, bridge_name
from edgecloud.drivers.provision.local import LocalProvider
from edgecloud.drivers.transport import SshTransport, public_key_line
from edgecloud.provision import HostSpec

pytestmark = pytest.mark.host

_sequence = itertools.count()


def specs(count: int) -> list[HostSpec]:
    return [
        HostSpec(index=i, name=f"host{i}", address=None, hypervisors=["lxc"]) for i in range(count)
    ]


@pytest.fixture
def provider(tmp_path: Path) -> LocalProvider:
    return LocalProvider(tmp_path / "state")


@pytest.fixture
def provision_id(provider: LocalProvider) -> Iterator[str]:
    """A fresh provision id; whatever the test leaves under it is removed afterwards."""
    pid = f"t{os.getpid()}-{next(_sequence)}"
    try:
        yield pid
    finally:
        provider.delete_all(pid)


def leftovers(provider: LocalProvider, provision_id: str) -> list[str]:
    """What the machine still has of the provision: namespaces, links, processes, state."""
    found: list[str] = []
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        if line.startswith(f"ecp-{provision_id}-"):
            found.append(f"netns {line.split()[0]}")
    links = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True)
    for link in json.loads(links.stdout):
        if link["ifname"] == bridge_name(provision_id) or link.get("ifalias") == TAG + provision_id:
            found.append(f"link {link['ifname']}")
    needle = str(provider.state_dir / provision_id).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.append(f"process {entry.name}")
            except OSError:
                continue
    if (provider.state_dir / provision_id).exists():
        found.append("state directory")
    return found


def ssh(host: ProvidedHost, client_key: Path) -> SshTransport:
    return SshTransport(host.address, port=host.port, client_key=client_key, host_key=host.host_key)


def run(transport: SshTransport, argv: list[str]) -> str:
    result = transport.run(argv, timeout=20)
    assert result.exit_status == 0, result.stderr
    return result.stdout


def check_host(host: ProvidedHost, client_key: Path) -> None:
    """The host answers over SSH with its pinned key, from its own namespace, no way out."""
    t = ssh(host, client_key)
    try:
        assert run(t, ["hostname", "-I"]).split() == [host.address]
        links = json.loads(run(t, ["ip", "-j", "-4", "addr"]))
        found = {link["ifname"]: [a["local"] for a in link["addr_info"]] for link in links}
        assert found == {"lo": ["127.0.0.1"], "eth0": [host.address]}
        routes = json.loads(run(t, ["ip", "-j", "-4", "route", "show", "table", "all"]))
        assert [r for r in routes if r.get("dst") == "default"] == []
        netns = run(t, ["ip", "netns", "identify"]).strip()
        assert netns == host.resource_id
    finally:
        t.close()


def kinds(provider: LocalProvider, provision_id: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for resource in provider.resources(provision_id):
        # sshd's per-connection processes come and go: only its listeners are counted.
        if resource.kind != "process" or resource.detail.startswith("listener of "):
            found.setdefault(resource.kind, []).append(resource.resource_id)
    return found


def test_two_hosts_reachable_idempotent_and_removed(
    provider: LocalProvider, provision_id: str, client_key: Path
) -> None:
    key = public_key_line(client_key)
    made = provider.create_hosts(provision_id, specs(2), {}, key)

    assert [h.name for h in made] == ["host0", "host1"]
    assert [h.resource_id for h in made] == [f"ecp-{provision_id}-0", f"ecp-{provision_id}-1"]
    network = ipaddress.IPv4Network(f"{made[0].address}/24", strict=False)
    assert network.subnet_of(ipaddress.IPv4Network("198.18.0.0/15"))
    assert [h.address for h in made] == [str(network[10]), str(network[11])]
    assert all(h.port == 22 and h.host_key.startswith("ssh-ed25519 ") for h in made)
    assert made[0].host_key != made[1].host_key
    for host in made:
        root = Path(host.root)
        assert root == provider.state_dir / provision_id / host.name / "root"
        for directory in (root, root.parent, root.parent.parent, provider.state_dir):
            assert directory.stat().st_mode & 0o777 == 0o755, directory
        check_host(host, client_key)

    # The hosts reach each other over the bridge.
    t = ssh(made[0], client_key)
    try:
        probe = f"exec 3<>/dev/tcp/{made[1].address}/22 && head -c 4 <&3"
        assert run(t, ["bash", "-c", probe]) == "SSH-"
        if shutil.which("ping"):
            run(t, ["ping", "-c1", "-W1", made[1].address])
    finally:
        t.close()

    # What the provider holds, and a second create that changes nothing.
    before = kinds(provider, provision_id)
    assert before["netns"] == [h.resource_id for h in made]
    assert before["bridge"] == [bridge_name(provision_id)]
    assert len(before["veth"]) == 2
    assert len(before["process"]) == 2
    assert before["state"] == [str(provider.state_dir / provision_id)]
    assert provider.create_hosts(provision_id, specs(2), {}, key) == made
    assert kinds(provider, provision_id) == before

    # Deleting one host leaves the other working.
    provider.delete_hosts(provision_id, ["host0"])
    after = kinds(provider, provision_id)
    assert after["netns"] == [made[1].resource_id]
    assert after["bridge"] == [bridge_name(provision_id)]
    assert len(after["veth"]) == 1
    assert len(after["process"]) == 1
    assert not (provider.state_dir / provision_id / "host0").exists()
    check_host(made[1], client_key)

    removed = provider.delete_all(provision_id)
    assert f"netns {made[1].resource_id}" in removed
    assert f"bridge {bridge_name(provision_id)}" in removed
    assert leftovers(provider, provision_id) == []
    assert provider.resources(provision_id) == []
    assert provider.delete_all(provision_id) == []


def test_a_dead_sshd_is_restarted_with_the_same_key(
    provider: LocalProvider, provision_id: str, client_key: Path
) -> None:
    key = public_key_line(client_key)
    [host] = provider.create_hosts(provision_id, specs(1), {}, key)
    [pid] = kinds(provider, provision_id)["process"]
    os.kill(int(pid), signal.SIGKILL)

    assert provider.create_hosts(provision_id, specs(1), {}, key) == [host]
    [new_pid] = kinds(provider, provision_id)["process"]
    assert new_pid != pid
    check_host(host, client_key)


def test_deleting_the_last_host_removes_the_bridge_and_state(
    provider: LocalProvider, provision_id: str, client_key: Path
) -> None:
    provider.create_hosts(provision_id, specs(1), {}, public_key_line(client_key))
    provider.delete_hosts(provision_id, ["host0", "never-made"])
    assert leftovers(provider, provision_id) == []
    assert provider.resources(provision_id) == []


def test_delete_all_cleans_up_without_the_state_directory(
    provider: LocalProvider, provision_id: str, client_key: Path
) -> None:
    made = provider.create_hosts(provision_id, specs(2), {}, public_key_line(client_key))
    shutil.rmtree(provider.state_dir / provision_id)  # as if the create died midway
    processes = [r for r in provider.resources(provision_id) if r.kind == "process"]
    assert len(processes) >= 2

    removed = provider.delete_all(provision_id)
    assert {f"netns {h.resource_id}" for h in made} <= set(removed)
    assert f"bridge {bridge_name(provision_id)}" in removed
    assert len([r for r in removed if r.startswith("process ")]) >= 2
    assert leftovers(provider, provision_id) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: p.create_hosts("Bad_Id", specs(1), {}, "ssh-ed25519 AAAA"), "provision id"),
        (lambda p: p.create_hosts("x" * 17, specs(1), {}, "ssh-ed25519 AAAA"), "provision id"),
        (lambda p: p.delete_all("../etc"), "provision id"),
        (lambda p: p.create_hosts("p1", specs(1), {"region": "x"}, "k"), "unknown setting"),
        (lambda p: p.create_hosts("p1", specs(1), {"network": "10.0.0.0/24"}, "k"), "/24"),
        (lambda p: p.create_hosts("p1", specs(1), {}, "a\nb"), "one public key line"),
        (lambda p: p.delete_hosts("p1", ["../x"]), "host name"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_made(
    provider: LocalProvider, call: Callable[[LocalProvider], object], message: str
) -> None:
    with pytest.raises(DriverError, match=message):
        call(provider)
    assert not (provider.state_dir / "p1").exists()


def test_registered_as_the_local_provision_driver(tmp_path: Path) -> None:
    made = registry.create("provision", "local", state_dir=tmp_path)
    assert isinstance(made, LocalProvider)
    assert isinstance(made, Provider)
    assert "local" in registry.available("provision")
