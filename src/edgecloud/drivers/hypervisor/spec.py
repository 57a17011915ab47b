"""From a VM's template (OpenNebula attributes) to the spec the node's deploy action takes."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from edgecloud.drivers.base import DriverError, GuestSpec
from edgecloud.drivers.hypervisor.context import context_files, context_iso

DEFAULT_BOOT_TIMEOUT = 120
# Disks of these image kinds are booted from, not attached.
_BOOT_FILES = frozenset({"KERNEL", "RAMDISK", "CONTEXT"})


def _one(value: Any) -> Mapping[str, Any]:
    """Return a vector attribute (a template may give one as a list of one)."""
    if isinstance(value, list):
        return value[0] if value and isinstance(value[0], Mapping) else {}
    return value if isinstance(value, Mapping) else {}


def _many(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    return [value] if isinstance(value, Mapping) else []


def _yes(value: Any) -> bool:
    return str(value).strip().lower() in ("yes", "true", "1", "on")


def _number(template: Mapping[str, Any], key: str, default: float) -> float:
    raw = template.get(key, default)
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise DriverError(f"template {key} is not a number: {raw!r}") from None


def _json_list(disk: Mapping[str, Any], key: str) -> list[str]:
    """Return a list of strings kept as JSON text (or as a list) in a disk attribute."""
    raw = disk.get(key)
    if raw is None or raw == "":
        return []
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise DriverError(f"disk {key} is not JSON: {str(raw)[:80]!r}") from None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DriverError(f"disk {key} is not a list of strings: {str(raw)[:80]!r}")
    return value


def app_fields(disk: Mapping[str, Any]) -> dict[str, Any]:
    """Return what runs in an application image's rootfs: init (argv), env and workdir.

    An image imported with `edgecloud image import-oci` carries OCI_ENTRYPOINT, OCI_CMD,
    OCI_ENV (JSON lists) and OCI_WORKDIR; the command is the entrypoint then the cmd.
    """
    out: dict[str, Any] = {}
    argv = _json_list(disk, "OCI_ENTRYPOINT") + _json_list(disk, "OCI_CMD")
    if argv:
        out["init"] = argv
    env = _json_list(disk, "OCI_ENV")
    if env:
        out["env"] = env
    if disk.get("OCI_WORKDIR"):
        out["workdir"] = str(disk["OCI_WORKDIR"])
    return out


def _network_fields(spec: GuestSpec, kind: str) -> dict[str, Any]:
    """Return the spec's NICs, the host's underlay and the context (CD-ROM or files)."""
    nics = list(spec.network.get("nics", ()))
    out: dict[str, Any] = {}
    if nics:
        out["nics"] = nics
        out["network"] = dict(spec.network.get("host", {}))
    files = context_files(spec.template, nics, name=spec.name, vm_id=spec.vm_id)
    if files:
        if kind == "lxc":
            out["context"] = {"files": files}
        else:
            out["context"] = {"iso": base64.b64encode(context_iso(files)).decode()}
    return out


def node_spec(spec: GuestSpec, kind: str) -> dict[str, Any]:
    """Return the node's deploy spec for a guest of `kind` (kvm, lxc or microvm)."""
    t = spec.template
    os_ = _one(t.get("OS"))
    disks = [d for d in _many(t.get("DISK")) if str(d.get("TYPE", "OS")).upper() not in _BOOT_FILES]
    out: dict[str, Any] = {
        "deploy_id": spec.deploy_id or f"one-{spec.vm_id}",
        "vm_id": spec.vm_id,
        "name": spec.name,
        "vcpu": max(1, int(_number(t, "VCPU", 1))),
        "memory_mb": int(_number(t, "MEMORY", 128)),
        "boot_timeout": _number(t, "BOOT_TIMEOUT", DEFAULT_BOOT_TIMEOUT),
        "vnc": str(_one(t.get("GRAPHICS")).get("TYPE", "")).upper() == "VNC",
    }
    if t.get("READY_MARKER"):
        out["ready_marker"] = str(t["READY_MARKER"])
    out.update(_network_fields(spec, kind))
    if kind == "lxc":
        sources = [d for d in disks if d.get("SOURCE")]
        if not sources:
            raise DriverError("an lxc container needs a DISK with a rootfs image")
        out["rootfs"] = str(sources[0]["SOURCE"])
        out.update(app_fields(sources[0]))
        # OpenNebula's attribute: containers are unprivileged unless it says "no".
        out["privileged"] = not _yes(t.get("LXC_UNPRIVILEGED", "yes"))
        return out
    # A directory image (FORMAT dir) is a rootfs, booted in the initramfs (see node.appfs).
    trees = [d for d in disks if d.get("SOURCE") and str(d.get("FORMAT", "")).lower() == "dir"]
    if len(trees) > 1:
        raise DriverError(f"a {kind} guest boots one rootfs directory, not {len(trees)}")
    if trees:
        out["rootfs"] = str(trees[0]["SOURCE"])
        out.update(app_fields(trees[0]))
        disks = [d for d in disks if d is not trees[0]]
    if os_.get("KERNEL"):
        out["kernel"] = str(os_["KERNEL"])
        if os_.get("INITRD"):
            out["initrd"] = str(os_["INITRD"])
        out["cmdline"] = str(os_.get("KERNEL_CMD", ""))
    out["disks"] = [
        {
            "path": str(d["SOURCE"]),
            "format": str(d.get("FORMAT", d.get("DRIVER", "raw"))).lower(),
            "readonly": _yes(d.get("READONLY", "no")),
            **({"disk_id": int(d["DISK_ID"])} if str(d.get("DISK_ID", "")).isdigit() else {}),
        }
        for d in disks
        if d.get("SOURCE")
    ]
    if "kernel" not in out and not out["disks"]:
        raise DriverError(f"a {kind} guest needs OS KERNEL or a DISK to boot from")
    if kind == "microvm" and "kernel" not in out:
        raise DriverError("a microvm guest boots a kernel: set OS KERNEL_DS (or KERNEL)")
    if "rootfs" in out and "initrd" not in out:
        raise DriverError("a guest with a rootfs directory boots OS KERNEL_DS and INITRD_DS")
    return out
