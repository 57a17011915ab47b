"""`python3 node.pyz <action>`: one JSON request on stdin, one JSON answer on stdout.

Whatever happens, stdout carries exactly one JSON object and the exit status says whether
it is an answer (0) or an error (1); a traceback never reaches stdout.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from edgecloud.node import PROTOCOL_VERSION
from edgecloud.node.guest import GuestDir, console_tail, guest_ids, guest_lock, read_spec
from edgecloud.node.protocol import (
    KINDS,
    NodeError,
    bad,
    deploy_id,
    flag,
    integer,
    kind,
    number,
    obj,
    root,
)

DEFAULT_SHUTDOWN_TIMEOUT = 20.0
Request = dict[str, Any]


def version() -> str:
    """Return this code's version: the build's content hash when run from a zipapp."""
    try:
        built = importlib.import_module("edgecloud.node._version")  # written by build.py
    except ImportError:
        return f"dev-{PROTOCOL_VERSION}"
    return str(built.VERSION)


def _lxc() -> ModuleType:
    """Import the LXC actions on first use: an action pays only for what it runs."""
    return importlib.import_module("edgecloud.node.lxc")


def _qemu() -> ModuleType:
    """Import the QEMU actions (and asyncio, qemu.qmp) on first use."""
    return importlib.import_module("edgecloud.node.qemu")


def _stored_kind(request: Request) -> str:
    """Return the kind a guest was deployed as.

    spec.json says; else the request's "kind" (optional for every action but deploy);
    else "lxc" when ROOT/lxc/<id> exists, "kvm" otherwise.
    """
    guest = GuestDir(root(request), deploy_id(request))
    stored = (read_spec(guest) or {}).get("kind")
    if stored in KINDS:
        return str(stored)
    if request.get("kind") is not None:
        return kind(request)
    return "lxc" if guest.container.is_dir() else "kvm"


def _deploy(request: Request) -> dict[str, Any]:
    spec = obj(request, "spec")
    if kind(request) == "lxc":
        return _lxc().deploy(root(request), spec)  # type: ignore[no-any-return]
    return _qemu().deploy(root(request), kind(request), spec)  # type: ignore[no-any-return]


def _is_lxc(request: Request) -> bool:
    return _stored_kind(request) == "lxc"


def _shutdown(request: Request) -> dict[str, Any]:
    args = (root(request), deploy_id(request), flag(request, "hard"))
    timeout = number(request, "timeout", DEFAULT_SHUTDOWN_TIMEOUT)
    module = _lxc() if _is_lxc(request) else _qemu()
    return module.shutdown(*args, timeout)  # type: ignore[no-any-return]


def _reboot(request: Request) -> dict[str, Any]:
    args = (root(request), deploy_id(request), flag(request, "hard"))
    module = _lxc() if _is_lxc(request) else _qemu()
    return module.reboot(*args)  # type: ignore[no-any-return]


def _by_kind(name: str) -> Callable[[Request], dict[str, Any]]:
    """Return a handler running the `name` action of the guest's kind's module."""

    def handler(request: Request) -> dict[str, Any]:
        module = _lxc() if _is_lxc(request) else _qemu()
        return getattr(module, name)(root(request), deploy_id(request))  # type: ignore[no-any-return]

    return handler


def _cleanup(request: Request) -> dict[str, Any]:
    """Remove the guest (and any files a move left in staging); with "keep_disks" its disk
    files stay (a failed resume)."""
    module = _lxc() if _is_lxc(request) else _qemu()
    keep = flag(request, "keep_disks")
    _migrate().discard(root(request), deploy_id(request))
    return module.cleanup(root(request), deploy_id(request), keep)  # type: ignore[no-any-return]


def _migrate() -> ModuleType:
    return importlib.import_module("edgecloud.node.migrate")


def _moving(name: str) -> Callable[[Request], dict[str, Any]]:
    """Return a handler running `name` of edgecloud.node.migrate."""
    return lambda request: getattr(_migrate(), name)(request)


def _live(name: str) -> Callable[[Request], dict[str, Any]]:
    """Return a handler running `name` of edgecloud.node.live."""
    return lambda request: getattr(importlib.import_module("edgecloud.node.live"), name)(request)


def _poll_one(base: Path, guest_kind: str, deploy: str) -> dict[str, Any]:
    if guest_kind == "lxc":
        return _lxc().poll(base, deploy)  # type: ignore[no-any-return]
    return _qemu().poll(base, guest_kind, deploy)  # type: ignore[no-any-return]


def _poll(request: Request) -> dict[str, Any]:
    return _poll_one(root(request), _stored_kind(request), deploy_id(request))


def _poll_all(request: Request) -> dict[str, Any]:
    base = root(request)
    if (base / "cache" / "incoming-guests").is_dir():
        _migrate().sweep(base)
    guests = []
    for deploy in guest_ids(base):
        guest_kind = _stored_kind({"root": str(base), "deploy_id": deploy})
        guests.append(_poll_one(base, guest_kind, deploy))
    return {"guests": guests}


def _console_log(request: Request) -> dict[str, Any]:
    guest = GuestDir(root(request), deploy_id(request))
    if not guest.exists():
        raise NodeError("missing", f"{guest.deploy_id} is not on this host")
    tail = integer(request, "tail_bytes", 65536, minimum=0)
    return {"text": console_tail(guest.console, tail)}


def _net_update_sg(request: Request) -> dict[str, Any]:
    """Rewrite a guest's security group chains (edgecloud.node.net.host.update_sg)."""
    nics = request.get("nics")
    if not isinstance(nics, list):
        raise bad("'nics' must be a list")
    net = importlib.import_module("edgecloud.node.net.host")
    net.update_sg(root(request), nics, deploy_id(request))
    return {}


def _hotplug() -> ModuleType:
    return importlib.import_module("edgecloud.node.hotplug")


def _nic_attach(request: Request) -> dict[str, Any]:
    """Plug a NIC into a running guest (edgecloud.node.hotplug)."""
    network = request.get("network") or {}
    if not isinstance(network, dict):
        raise bad("'network' must be an object")
    nic = obj(request, "nic")
    return _hotplug().attach(root(request), deploy_id(request), nic, network)  # type: ignore[no-any-return]


def _nic_detach(request: Request) -> dict[str, Any]:
    """Unplug a NIC from a running guest (edgecloud.node.hotplug)."""
    nic_id = integer(request, "nic_id")
    return _hotplug().detach(root(request), deploy_id(request), nic_id)  # type: ignore[no-any-return]


def _imagexfer() -> ModuleType:
    """Import the host-to-host image copy actions (and http.server) on first use."""
    return importlib.import_module("edgecloud.node.imagexfer")


def _disks_hotplug() -> ModuleType:
    """Import disk_attach, disk_detach and disk_resize on first use."""
    return importlib.import_module("edgecloud.node.disks_hotplug")


ACTIONS: dict[str, Callable[[Request], dict[str, Any]]] = {
    "version": lambda request: {"version": version()},
    "probe": lambda request: importlib.import_module("edgecloud.node.probe").probe(
        root(request), version()
    ),
    "deploy": _deploy,
    "shutdown": _shutdown,
    "reboot": _reboot,
    "save": _by_kind("save"),
    "restore": _by_kind("restore"),
    "cleanup": _cleanup,
    "guest_files": _moving("guest_files"),
    "guest_receive": _moving("guest_receive"),
    "guest_adopt": _moving("guest_adopt"),
    "guest_discard": _moving("guest_discard"),
    "migrate_incoming": _live("migrate_incoming"),
    "migrate_send": _live("migrate_send"),
    "migrate_finish": _live("migrate_finish"),
    "guest_layout": _live("guest_layout"),
    "poll": _poll,
    "poll_all": _poll_all,
    "console_log": _console_log,
    "net_update_sg": _net_update_sg,
    "nic_attach": _nic_attach,
    "nic_detach": _nic_detach,
    "image_serve": lambda request: _imagexfer().image_serve(request),
    "image_fetch": lambda request: _imagexfer().image_fetch(request),
    "image_serve_stop": lambda request: _imagexfer().image_serve_stop(request),
    "image_status": lambda request: importlib.import_module("edgecloud.node.imagecache").status(
        request
    ),
    "image_commit": lambda request: importlib.import_module("edgecloud.node.imagecache").commit(
        request
    ),
    "image_list": lambda request: importlib.import_module("edgecloud.node.imagecache").listing(
        request
    ),
    "image_evict": lambda request: importlib.import_module("edgecloud.node.imagecache").evict(
        request
    ),
    "image_drop_part": lambda request: importlib.import_module(
        "edgecloud.node.imagecache"
    ).drop_part(request),
    "disks_prolog": lambda request: importlib.import_module("edgecloud.node.disks").prolog(request),
    "disks_info": lambda request: importlib.import_module("edgecloud.node.disks").disks_info(
        request
    ),
    "disk_export": lambda request: importlib.import_module("edgecloud.node.disks").export(request),
    "disk_snapshot": lambda request: importlib.import_module(
        "edgecloud.node.disks_snapshot"
    ).snapshot(request),
    "disk_attach": lambda request: _disks_hotplug().attach(request),
    "disk_detach": lambda request: _disks_hotplug().detach(request),
    "disk_resize": lambda request: _disks_hotplug().resize(request),
}


# One at a time per guest: a deploy retried while the first still boots waits for it.
CHANGES_A_GUEST = {
    "deploy",
    "shutdown",
    "reboot",
    "save",
    "restore",
    "cleanup",
    "nic_attach",
    "nic_detach",
    "disks_prolog",
    "disk_snapshot",
    "disk_export",
    "disk_attach",
    "disk_detach",
    "disk_resize",
    "guest_files",
    "guest_receive",
    "guest_adopt",
    "guest_discard",
    "migrate_incoming",
    "migrate_send",
    "migrate_finish",
}


def handle(action: str, raw: str) -> dict[str, Any]:
    """Run one action on one raw request; return the answer object (never raises)."""
    try:
        if action not in ACTIONS:
            raise bad(f"unknown action {action[:40]!r}")
        try:
            request = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise bad(f"the request is not JSON: {exc}") from exc
        if not isinstance(request, dict):
            raise bad("the request must be a JSON object")
        if action != "version":
            root(request)  # every other action needs ROOT
        if action not in CHANGES_A_GUEST:
            return {"ok": True, "result": ACTIONS[action](request)}
        target = obj(request, "spec") if action == "deploy" else request
        with guest_lock(root(request), deploy_id(target)):
            return {"ok": True, "result": ACTIONS[action](request)}
    except NodeError as exc:
        return {"ok": False, "kind": exc.kind, "error": exc.message}
    except Exception as exc:  # the protocol's "failed" answer
        return {"ok": False, "kind": "failed", "error": f"{type(exc).__name__}: {exc}"}


def main(argv: list[str] | None = None, stdin: TextIO | None = None) -> int:
    """Read the request, run the action, print the answer; return the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["serve"]:
        return int(importlib.import_module("edgecloud.node.serve").serve())
    if args[:1] == ["image_server"]:  # started by image_serve, detached
        return int(_imagexfer().server_main(args[1:]))
    if len(args) != 1:
        answer: dict[str, Any] = {
            "ok": False,
            "kind": "bad_request",
            "error": "usage: node.pyz <action>  (one JSON request on stdin)",
        }
    else:
        raw = "" if args[0] == "version" else (stdin or sys.stdin).read()
        with contextlib.redirect_stdout(sys.stderr):  # stray prints must not reach stdout
            answer = handle(args[0], raw)
    sys.stdout.write(json.dumps(answer, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0 if answer["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
