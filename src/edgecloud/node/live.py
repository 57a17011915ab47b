"""Live migration of a QEMU guest between hosts (QMP `migrate` over TCP, with its disks).

The target first has the guest's disks made from its own image cache (overlays on the
same images: disks_prolog), then `migrate_incoming` starts QEMU there waiting on a TCP
port of the target's address, its NICs plugged. `migrate_send` on the source streams
memory and disk blocks (QEMU's block migration: only what the overlays hold when every
disk is an overlay, all blocks otherwise) and, once QEMU says completed, stops the
source. `migrate_finish` waits for the guest to run on the target. A failure on either
side leaves the source running; the front-end then cleans the target up.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

from qemu.qmp import QMPClient

from edgecloud.node import appfs, attach, proc, qmp
from edgecloud.node.guest import GuestDir, parse_spec, read_spec, write_spec
from edgecloud.node.probe import kvm_usable
from edgecloud.node.protocol import NodeError, bad, deploy_id, flag, kind, number, obj, root, text
from edgecloud.node.qemu import _needle, _quit, _running_pid, _start, _wait_restored, _with_network

MIGRATE_BANDWIDTH = 1 << 30  # bytes/s: QEMU's default of 32 MiB/s makes a move crawl


def _free_port(address: str) -> int:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def migrate_incoming(request: dict[str, Any]) -> dict[str, Any]:
    """Start the guest's QEMU waiting for its state on a TCP port of `address`."""
    base = root(request)
    spec = parse_spec(obj(request, "spec"), kind(request))
    if spec["deploy_id"] != deploy_id(request):
        raise bad("'deploy_id' and the spec's deploy_id differ")
    address = text(request, "address")
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address)
    except OSError:
        raise bad("'address' must be an IP address of this host") from None
    guest = GuestDir(base, spec["deploy_id"])
    if _running_pid(guest) is not None:
        raise NodeError("failed", f"{guest.deploy_id} already runs on this host")
    spec["accel"] = "kvm" if kvm_usable(base) else "tcg"
    if spec["rootfs"]:
        spec = appfs.with_app(guest.path, spec)
    write_spec(guest, spec)
    spec = _with_network(spec)
    attach.up(base, spec, guest.path)
    for attempt in range(3):  # the port may be taken between the probe and QEMU's bind
        try:
            port = _free_port(address)
        except OSError as exc:
            raise NodeError("failed", f"cannot listen on {address}: {exc}") from exc
        uri = f"tcp:[{address}]:{port}" if ":" in address else f"tcp:{address}:{port}"
        try:
            pid = _start(guest, spec, ["-incoming", uri])
        except NodeError:
            if attempt == 2:
                raise
            continue
        return {"uri": uri, "pid": pid}
    raise NodeError("failed", "no port to listen on")  # not reached


async def _send(client: QMPClient, uri: str, incremental: bool, deadline: float) -> None:
    await client.execute("migrate-set-parameters", {"max-bandwidth": MIGRATE_BANDWIDTH})
    await client.execute("migrate", {"uri": uri, "blk": True, "inc": incremental})
    while True:
        found = await client.execute("query-migrate")
        state = found.get("status") if isinstance(found, dict) else None
        if state == "completed":
            break
        if state in ("failed", "cancelled", None):
            detail = found.get("error-desc", "") if isinstance(found, dict) else ""
            raise NodeError("failed", f"live migration {state}: {detail}".strip())
        if time.monotonic() > deadline:
            with contextlib.suppress(Exception):
                await client.execute("migrate_cancel")
            raise NodeError("failed", "live migration did not complete in time")
        await asyncio.sleep(0.1)


def guest_layout(request: dict[str, Any]) -> dict[str, Any]:
    """Return where hot-plugs put the guest's disks and NICs (PCI slots from spec.json): the
    target of a live migration must build the same machine."""
    guest = GuestDir(root(request), deploy_id(request))
    spec = read_spec(guest) or {}
    disks = [
        {"disk_id": d["disk_id"], "pci_slot": d["pci_slot"]}
        for d in spec.get("disks") or []
        if isinstance(d, dict) and d.get("pci_slot") is not None and d.get("disk_id") is not None
    ]
    nics = [
        {"nic_id": n["nic_id"], "pci_slot": n["pci_slot"]}
        for n in spec.get("nics") or []
        if isinstance(n, dict) and n.get("pci_slot") is not None and n.get("nic_id") is not None
    ]
    return {"disks": disks, "nics": nics}


def migrate_send(request: dict[str, Any]) -> dict[str, Any]:
    """Stream the running guest to `uri`; stop it here once the target has it all."""
    base = root(request)
    guest = GuestDir(base, deploy_id(request))
    pid = _running_pid(guest)
    if pid is None:
        raise NodeError("failed", f"{guest.deploy_id} is not running here")
    uri = text(request, "uri")
    if not uri.startswith("tcp:"):
        raise bad("'uri' must be tcp:ADDRESS:PORT")
    timeout = number(request, "timeout", 600.0, minimum=1.0)
    incremental = flag(request, "incremental", True)
    deadline = time.monotonic() + timeout

    try:
        qmp.session(guest.path, lambda c: _send(c, uri, incremental, deadline), timeout + 10.0)
    except NodeError:
        with contextlib.suppress(NodeError):
            qmp.execute(guest.path, "migrate_cancel")
        if qmp.run_status(guest.path) in ("paused", "postmigrate"):
            with contextlib.suppress(NodeError):
                qmp.execute(guest.path, "cont")  # keep the guest running here
        raise
    _quit(guest, pid)
    return {}


def migrate_finish(request: dict[str, Any]) -> dict[str, Any]:
    """Wait for the migrated guest to run here; plug the rest of its network."""
    base = root(request)
    guest = GuestDir(base, deploy_id(request))
    pid = _running_pid(guest)
    if pid is None:
        raise NodeError("failed", f"{guest.deploy_id} has no incoming QEMU here")
    deadline = time.monotonic() + number(request, "timeout", 60.0, minimum=1.0)
    if not _wait_restored(guest, pid, deadline):
        if not proc.alive(pid, _needle(guest)):
            raise NodeError("failed", "the incoming QEMU exited")
        raise NodeError("failed", "the migrated guest did not start running")
    spec = read_spec(guest)
    if spec is not None:
        attach.post(base, _with_network(spec))
    return {"state": "running"}
