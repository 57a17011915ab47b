"""Create -> running latency of real guests, next to the same guest started by hand.

    .venv/bin/python bench/deploy.py [--runs 10] [--kinds lxc,microvm,kvm] [--per-call]

One namespace test host (its own sshd, reached over real SSH) and a front-end on SQLite
in this process. For each kind, `--runs` times:

- ours: POST /vms from the tiny template, pinned to the host, until the API says
  ACTIVE/RUNNING (which edgecloud only says once the guest printed its ready marker, and
  for a container once a command ran inside it); then terminate (not timed);
- bare: the same guest started by hand in the host's namespace — `lxc-start` of the same
  rootfs and config, or `qemu-system-x86_64` with the same kernel, initrd and command
  line — until the same ready marker (and, for the container, an exec inside it).

Prints the median of each, and the ratio ours / bare. Not a test: nothing is asserted.
Targets (issue 5): lxc create->running <= 300 ms and <= 1.5x bare; VMs within +10% of
bare QEMU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/xmlrpc.py would hide the standard library's `xmlrpc` from scripts run from here.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "src"))

from tests.support.frontend import serve_frontend  # noqa: E402
from tests.support.nethosts import NetHost, NetHosts  # noqa: E402

from edgecloud.client import Client  # noqa: E402
from edgecloud.drivers.transport.keys import ensure_client_key, public_key_line  # noqa: E402
from edgecloud.images.tiny import Tiny, ensure_tiny  # noqa: E402
from edgecloud.node.guest import GuestDir  # noqa: E402
from edgecloud.node.lxc import _prepare as prepare_container  # noqa: E402
from edgecloud.node.probe import host_tsc_khz  # noqa: E402
from edgecloud.node.qemu_argv import microvm_cmdline  # noqa: E402
from edgecloud.server.seed import register_tiny  # noqa: E402

TEMPLATES = {"lxc": "tiny-container", "microvm": "tiny-microvm", "kvm": "tiny-vm"}
POLL = 0.005


def wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` every few ms until true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(POLL)


def ours(client: Client, template_id: int, host_id: int) -> float:
    """Seconds from POST /vms to the API saying ACTIVE/RUNNING; the VM is then removed."""
    started = time.monotonic()
    vm = client.vms.create(
        template_id=template_id, template={"SCHED_REQUIREMENTS": f"ID={host_id}"}
    )
    state = ""

    def running() -> bool:
        nonlocal state
        got = client.vms.get(vm.id)
        state = f"{got.state_name}/{got.lcm_state_name}"
        if "FAILURE" in state or got.state_name == "POWEROFF":
            raise RuntimeError(f"vm {vm.id}: {state}: {got.error}")
        return state == "ACTIVE/RUNNING"

    wait(running, 180, f"vm {vm.id} running (last {state})")
    took = time.monotonic() - started
    client.vms.action(vm.id, "terminate", hard=True)
    wait(lambda: client.vms.get(vm.id).state_name == "DONE", 120, f"vm {vm.id} done")
    return took


def in_netns(host: NetHost) -> list[str]:
    """Prefix that runs a command in the host's network namespace only, as its sshd does.

    (`ip netns exec` also remounts /sys, which hides the cgroup mounts LXC needs.)
    """
    return ["nsenter", f"--net=/run/netns/{host.netns}", "--"]


def _marker_in(path: Path, marker: str) -> bool:
    try:
        return marker.encode() in path.read_bytes()
    except OSError:
        return False


def bare_qemu(host: NetHost, tiny: Tiny, work: Path, *, microvm: bool) -> float:
    """Seconds from starting QEMU by hand to the ready marker on its serial console."""
    console = work / "console.log"
    console.unlink(missing_ok=True)
    machine = ["-M", "microvm"] if microvm else ["-M", "pc"]
    # The node's microvm command line (earlyprintk, and the TSC rate under TCG: without it
    # a loaded host's microvm can hang calibrating its clock).
    cmdline = microvm_cmdline(tiny.microvm_cmdline, host_tsc_khz()) if microvm else tiny.cmdline
    argv = [
        *in_netns(host),
        "qemu-system-x86_64", "-accel", "tcg", *machine, "-m", "192", "-smp", "1",
        "-nodefaults", "-no-user-config", "-display", "none",
        "-kernel", str(tiny.kernel), "-initrd", str(tiny.initrd), "-append", cmdline,
        "-serial", f"file:{console}",
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait(lambda: _marker_in(console, tiny.marker), 180, "bare qemu marker")
        return time.monotonic() - started
    finally:
        proc.kill()
        proc.wait()


def bare_lxc(host: NetHost, tiny: Tiny, work: Path) -> float:
    """Seconds from a copied rootfs + `lxc-start` to the marker and an exec inside.

    The rootfs copy and config are the node's own (same keys, same id map); the start and
    the readiness check are done by hand.
    """
    start = _subid_start()
    root = work / "bare"
    shutil.rmtree(root, ignore_errors=True)
    guest = GuestDir(root, "one-999999")
    guest.path.mkdir(parents=True)
    lxcpath = str(guest.container.parent)
    ns = in_netns(host)
    spec = {
        "deploy_id": guest.deploy_id,
        "vcpu": 1,
        "memory_mb": 64,
        "rootfs": str(tiny.rootfs),
        "privileged": False,
        "uid_shift": start,
    }
    started = time.monotonic()
    prepare_container(guest, spec)  # the node's own rootfs copy and config
    subprocess.run([*ns, "lxc-start", "-n", guest.deploy_id, "-P", lxcpath, "-d"], check=True)
    try:

        def ready() -> bool:
            if not _marker_in(guest.console, tiny.marker):
                return False
            attach = [*ns, "lxc-attach", "-n", guest.deploy_id, "-P", lxcpath, "--", "/bin/true"]
            return subprocess.run(attach, capture_output=True).returncode == 0

        wait(ready, 60, "bare lxc ready")
        return time.monotonic() - started
    finally:
        subprocess.run(
            [*ns, "lxc-stop", "-k", "-n", guest.deploy_id, "-P", lxcpath], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def _subid_start() -> int:
    for line in Path("/etc/subuid").read_text().splitlines():
        user, start, _ = line.split(":")
        if user == "root":
            return int(start)
    return 100000


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--kinds", default="lxc,microvm,kvm")
    parser.add_argument(
        "--per-call",
        action="store_true",
        help="run each node action as a command of its own, not through the node agent",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/deploy.py needs root (network namespaces, LXC, QEMU)")
    kinds = [k for k in args.kinds.split(",") if k]
    tiny = ensure_tiny()
    with tempfile.TemporaryDirectory(prefix="ec-bench-deploy-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # unprivileged containers' roots pass through it
        home = work / "home"
        key = ensure_client_key(home / "ssh")
        with (
            NetHosts(1, authorized_keys=[public_key_line(key)]) as (host,),
            serve_frontend(
                home,
                monitor_interval=2.0,
                scheduler_interval=0.02,
                lease_seconds=30,
                node_agents=not args.per_call,
            ) as frontend,
        ):
            with frontend.store.write() as session:
                register_tiny(session, tiny)
            with frontend.client() as client:
                row = client.hosts.create(name=host.name, address=host.address, root=str(host.root))
                wait(lambda: client.hosts.get(row.id).state_name == "MONITORED", 60, "host up")
                templates = {t.name: t.id for t in client.templates.list()}
                mode = "one command per action" if args.per_call else "node agent"
                print(f"runs per figure: {args.runs}; host {host.name} over SSH; TCG; {mode}")
                print(f"{'kind':8} {'ours (s)':>10} {'bare (s)':>10} {'ratio':>7}")
                for kind in kinds:
                    ours(client, templates[TEMPLATES[kind]], row.id)  # warm: caches, node code
                    mine = [
                        ours(client, templates[TEMPLATES[kind]], row.id) for _ in range(args.runs)
                    ]
                    if kind == "lxc":
                        bare = [bare_lxc(host, tiny, work) for _ in range(args.runs)]
                    else:
                        bare = [
                            bare_qemu(host, tiny, work, microvm=kind == "microvm")
                            for _ in range(args.runs)
                        ]
                    a, b = statistics.median(mine), statistics.median(bare)
                    print(f"{kind:8} {a:10.3f} {b:10.3f} {a / b:7.2f}x", flush=True)


if __name__ == "__main__":
    main()
