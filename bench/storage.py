"""Image transfers to hosts: deploy time with a cold or warm replica, and copy throughput.

    .venv/bin/python bench/storage.py [--runs 3] [--size-mb 256]      # as root

Three namespace test hosts (their own sshd, reached over real SSH) in one cluster whose
system datastore names host0 its REPLICA_HOST, and a front-end on SQLite in this process.
Each of `--runs` runs:

1. **deploy with a disk**: a fresh `--size-mb` DATABLOCK of random bytes (a new sha256, so
   nothing has it yet) is uploaded, then a tiny-vm VM with that disk is created on host1
   and timed from POST /vms to ACTIVE/RUNNING, three times:
   (a) cold: the front-end sends the image to the replica, host1 fetches it from there;
   (b) warm replica: after (a) is terminated and host1's cache entry removed, host1 fetches
       it from the replica again;
   (c) warm host: a second VM on host1 with its cache intact.
   Next to each, the PROLOG step's own duration: from the VM's operation steps (whole
   seconds, as the store keeps them), and the driver's `prolog` timed in this process
   (the front-end's driver is this process's), so the TCG boot does not hide the copy;
2. **copy throughput**, one `--size-mb` random file on the front-end to host1: our SFTP
   `put_file` (connection already open, as the driver keeps it), `cp` to a local
   directory (host1's root is one: the local-disk ceiling), the same `cp` followed by an
   fsync of the copy, `rsync` and `scp` over ssh (each opens its connection), and
   host0 -> host1 through the replica path (`image_serve` on host0 + `image_fetch` on
   host1, node actions through the driver; the fetch checks the sha256 and fsyncs).
   Every target is removed first, and `sync` runs (untimed) between copies.

Prints medians, the driver's sent/fetched counters, and a summary table. Not a test:
nothing is asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/xmlrpc.py would hide the standard library's `xmlrpc` from scripts run from here.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "src"))

from tests.support.frontend import serve_frontend  # noqa: E402
from tests.support.guests import add_host  # noqa: E402
from tests.support.nethosts import NetHost, NetHosts  # noqa: E402

from edgecloud.api.infra import Host  # noqa: E402
from edgecloud.client import Client  # noqa: E402
from edgecloud.drivers.base import GuestSpec, HostRef  # noqa: E402
from edgecloud.drivers.hypervisor.disks import Disk  # noqa: E402
from edgecloud.drivers.hypervisor.node import NodeHypervisor, shared  # noqa: E402
from edgecloud.drivers.transport.keys import ensure_client_key, public_key_line  # noqa: E402
from edgecloud.drivers.transport.ssh import SshTransport  # noqa: E402
from edgecloud.images.tiny import ensure_tiny  # noqa: E402
from edgecloud.server.seed import register_tiny  # noqa: E402

POLL = 0.02
BOOT = 600.0  # seconds a deploy may take (a cold one copies the image twice)
MB = 2**20
CASES = {
    "cold": "cold (front-end -> replica -> host1)",
    "replica": "warm replica, host1 cold",
    "host": "host1 warm",
}
TOOLS = {
    "ours": "ours: put_file (SFTP, asyncssh)",
    "cp": "cp, local directory",
    "cp+fsync": "cp + fsync of the copy",
    "rsync": "rsync over ssh",
    "scp": "scp",
    "replica": "host0 -> host1: image_serve + image_fetch",
}


def wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` until true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(POLL)


def random_file(path: Path, size_mb: int) -> str:
    """Write `size_mb` MiB of random bytes; return their sha256 hex."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(size_mb):
            chunk = os.urandom(MB)
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def sync() -> None:
    """Flush dirty pages so one copy's writeback does not run during the next."""
    subprocess.run(["sync"], check=True)


# --- the driver, watched from this process ---------------------------------------------


class Watch:
    """Times the shared driver's `prolog` (by deploy id) and records how each
    `ensure_image` got its image (host name, key, "front-end" | "replica" | "cached")."""

    def __init__(self, driver: NodeHypervisor) -> None:
        self.prolog: dict[str, float] = {}
        self.images: list[tuple[str, str, str, float]] = []
        self._lock = threading.Lock()
        disks = driver.disks
        prolog, ensure = disks.prolog, disks.ensure_image

        def timed_prolog(host: HostRef, spec: GuestSpec, *, replica: HostRef | None = None) -> None:
            started = time.monotonic()
            try:
                prolog(host, spec, replica=replica)
            finally:
                with self._lock:
                    self.prolog[spec.deploy_id or f"one-{spec.vm_id}"] = time.monotonic() - started

        def timed_ensure(
            host: HostRef, disk: Disk, *, replica: HostRef | None = None, unpack: bool = False
        ) -> str:
            started = time.monotonic()
            how = ensure(host, disk, replica=replica, unpack=unpack)
            with self._lock:
                self.images.append((host.name, disk.key, how, time.monotonic() - started))
            return how

        disks.prolog = timed_prolog  # type: ignore[method-assign]
        disks.ensure_image = timed_ensure  # type: ignore[method-assign]


# --- step 2: deploys ---------------------------------------------------------------------


def deploy(
    client: Client,
    template_id: int,
    host_id: int,
    image_id: int | None,
    name: str,
    made: list[int],
) -> tuple[int, float]:
    """Create a VM (with the image as its disk) on the host, its id added to `made` at
    once; return (id, seconds to ACTIVE/RUNNING). The VM is left running."""
    extra: dict[str, Any] = {"SCHED_REQUIREMENTS": f"ID={host_id}"}
    if image_id is not None:
        extra["DISK"] = [{"IMAGE_ID": str(image_id)}]
    started = time.monotonic()
    vm = client.vms.create(name=name, template_id=template_id, template=extra)
    made.append(vm.id)
    state = ""

    def running() -> bool:
        nonlocal state
        got = client.vms.get(vm.id)
        state = f"{got.state_name}/{got.lcm_state_name}"
        if "FAILURE" in state or got.state_name in ("POWEROFF", "DONE"):
            raise RuntimeError(f"vm {vm.id}: {state}: {got.error}")
        return state == "ACTIVE/RUNNING"

    wait(running, BOOT, f"vm {vm.id} running (last {state})")
    return vm.id, time.monotonic() - started


def terminate(client: Client, vm_ids: list[int]) -> None:
    """Terminate the VMs (hard) and wait until they are DONE."""
    for vm_id in vm_ids:
        try:
            client.vms.action(vm_id, "terminate", hard=True)
        except Exception as exc:  # already gone, or failed: say so, go on
            print(f"  (terminate vm {vm_id}: {exc})", flush=True)
    for vm_id in vm_ids:
        wait(_done(client, vm_id), 180, f"vm {vm_id} done")


def _done(client: Client, vm_id: int) -> Callable[[], bool]:
    return lambda: client.vms.get(vm_id).state_name == "DONE"


def prolog_step_seconds(client: Client, vm_id: int) -> float | None:
    """The PROLOG step's ended_at - started_at from the VM's operations (whole seconds)."""
    for listed in client.operations.list(object_type="VM", object_id=vm_id):
        for step in client.operations.get(listed.id).steps:
            if step.name == "prolog" and step.started_at and step.ended_at:
                return float(step.ended_at - step.started_at)
    return None


@contextmanager
def vms(client: Client) -> Iterator[list[int]]:
    """A list to add VM ids to; whatever is in it is terminated on the way out."""
    made: list[int] = []
    try:
        yield made
    finally:
        if made:
            terminate(client, made)


def one_deploy_run(
    client: Client,
    watch: Watch,
    template_id: int,
    target: Host,
    target_net: NetHost,
    replica_net: NetHost,
    work: Path,
    size_mb: int,
    run: int,
) -> dict[str, tuple[float, float | None, float | None]]:
    """Cases a, b, c with a fresh image; return case -> (create->running, prolog step s,
    prolog in the driver s). The image is deleted and the caches emptied afterwards."""
    file = work / f"image-{run}.raw"
    key = random_file(file, size_mb)
    started = time.monotonic()
    image = client.images.create(
        name=f"bench-{run}-{uuid.uuid4().hex[:6]}", kind="DATABLOCK", upload=True
    )
    image = client.images.upload(image.id, file)
    upload = time.monotonic() - started
    file.unlink()
    if image.checksum != f"sha256:{key}":
        raise RuntimeError(f"image {image.id}: checksum {image.checksum}, expected {key}")
    print(
        f"  run {run + 1}: image {image.id} ({size_mb} MiB) uploaded to the front-end in "
        f"{upload:.2f} s ({size_mb / upload:.0f} MB/s over HTTP)",
        flush=True,
    )
    cached = target_net.root / "cache" / "images" / key
    out: dict[str, tuple[float, float | None, float | None]] = {}
    try:
        for case in CASES:
            with vms(client) as made:
                name = f"st-{run}-{case}"
                vm_id, took = deploy(client, template_id, target.id, image.id, name, made)
                deploy_id = client.vms.get(vm_id).deploy_id
                step = prolog_step_seconds(client, vm_id)
                inner = watch.prolog.get(deploy_id, watch.prolog.get(f"one-{vm_id}"))
                hows = [h for (n, k, h, _) in watch.images if k == key and n == target.name]
                out[case] = (took, step, inner)
                print(
                    f"    {CASES[case]:38} create->running {took:7.2f} s, prolog step "
                    f"{_s(step)}, driver prolog {_s(inner)}; host1 image: "
                    f"{hows[-1] if hows else '?'}",
                    flush=True,
                )
            if case == "cold":
                cached.unlink()  # host1 cold again; the replica keeps its copy
    finally:
        for net in (replica_net, target_net):
            (net.root / "cache" / "images" / key).unlink(missing_ok=True)
        try:
            client.images.delete(image.id)
        except Exception as exc:  # a leftover image in a temp home
            print(f"  (delete image {image.id}: {exc})", flush=True)
    return out


def _s(value: float | None) -> str:
    return "   ?   " if value is None else f"{value:5.2f} s"


# --- step 3: copies ----------------------------------------------------------------------

SSH_OPTIONS = [
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
]  # fmt: skip


def timed(action: Callable[[], object]) -> float:
    """Seconds `action` took."""
    started = time.monotonic()
    action()
    return time.monotonic() - started


def run_tool(argv: list[str]) -> None:
    """Run a copy command; fail with its stderr."""
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr.strip()[-500:]}")


def one_copy_run(
    source: Path,
    key: str,
    client_key: Path,
    ours: SshTransport,
    driver: NodeHypervisor,
    refs: tuple[HostRef, HostRef],
    nets: tuple[NetHost, NetHost],
) -> dict[str, float]:
    """Each way of copying `source` once (targets removed first); return tool -> seconds."""
    replica_ref, target_ref = refs
    replica_net, target_net = nets
    drop = target_net.root / "bench-copy"
    drop.mkdir(exist_ok=True)
    target = drop / "copy.bin"
    ssh = ["ssh", "-i", str(client_key), *SSH_OPTIONS]
    remote = f"root@{target_net.address}:{target}"
    size = source.stat().st_size

    def cp_fsync() -> None:
        run_tool(["cp", str(source), str(target)])
        with target.open("rb+") as stream:
            os.fsync(stream.fileno())

    copies: dict[str, Callable[[], object]] = {
        "ours": lambda: ours.put_file(source, str(target), timeout=600),
        "cp": lambda: run_tool(["cp", str(source), str(target)]),
        "cp+fsync": cp_fsync,
        "rsync": lambda: run_tool(["rsync", "-e", " ".join(ssh), str(source), remote]),
        "scp": lambda: run_tool(
            ["scp", "-q", "-i", str(client_key), *SSH_OPTIONS, str(source), remote]
        ),
    }
    took: dict[str, float] = {}
    for tool, copy in copies.items():
        target.unlink(missing_ok=True)
        sync()
        took[tool] = timed(copy)
        got = target.stat().st_size
        if got != size:
            raise RuntimeError(f"{tool}: copied {got} of {size} bytes")
    target.unlink(missing_ok=True)

    # host0 -> host1 as the replica path does it: host0 has it in its cache.
    cache = replica_net.root / "cache" / "images"
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, cache / key)
    part = f"bench.{uuid.uuid4().hex[:12]}"
    sync()

    def through_replica() -> None:
        serving = driver._call(
            replica_ref,
            "image_serve",
            {"key": key, "address": replica_ref.address, "downloads": 1, "timeout": 600},
            timeout=60,
        )
        try:
            driver._call(
                target_ref,
                "image_fetch",
                {"url": serving["url"], "key": key, "part": part},
                timeout=600,
            )
        finally:
            driver._call(replica_ref, "image_serve_stop", {"pid": serving.get("pid")}, timeout=30)

    try:
        took["replica"] = timed(through_replica)
    finally:
        (target_net.root / "cache" / "images" / "incoming" / part).unlink(missing_ok=True)
        (cache / key).unlink(missing_ok=True)
    return took


def ssh_login(client_key: Path, net: NetHost) -> float:
    """Seconds of `ssh HOST true`: what rsync and scp pay for their connection."""
    return timed(
        lambda: run_tool(
            ["ssh", "-i", str(client_key), *SSH_OPTIONS, f"root@{net.address}", "true"]
        )
    )


# --- main --------------------------------------------------------------------------------


def ref_of(host: Host, net: NetHost) -> HostRef:
    """The driver's view of a registered namespace host."""
    return HostRef(
        id=host.id, name=host.name, address=net.address, host_key=net.host_key, root=str(net.root)
    )


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=256)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/storage.py needs root (network namespaces, QEMU)")
    runs, size_mb = args.runs, args.size_mb
    tiny = ensure_tiny()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ec-bench-storage-") as tmp:
        work = Path(tmp)
        home = work / "home"
        key = ensure_client_key(home / "ssh")
        driver = shared(key_dir=home / "ssh")  # the front-end's driver: same key, same object
        watch = Watch(driver)
        with NetHosts(3, authorized_keys=[public_key_line(key)]) as nets:
            try:
                with serve_frontend(
                    home, monitor_interval=2.0, scheduler_interval=0.02, lease_seconds=30
                ) as frontend:
                    with frontend.store.write() as session:
                        register_tiny(session, tiny)
                    with frontend.client() as client:
                        measure(client, driver, watch, key, nets, work, runs, size_mb)
            finally:
                driver.close()
    print(f"total {time.monotonic() - began:.0f} s", flush=True)


def measure(
    client: Client,
    driver: NodeHypervisor,
    watch: Watch,
    client_key: Path,
    nets: list[NetHost],
    work: Path,
    runs: int,
    size_mb: int,
) -> None:
    """Steps 1-4 (see the module's docstring)."""
    cluster = client.clusters.create(name="bench-edge")
    hosts = [add_host(client, net, cluster.id) for net in nets]
    replica, target = hosts[0], hosts[1]
    system = client.datastores.create(
        name="bench-edge-system",
        kind="system",
        cluster_ids=[cluster.id],
        template={"REPLICA_HOST": replica.name},
    )
    templates = {t.name: t.id for t in client.templates.list()}
    template_id = templates["tiny-vm"]
    names = ", ".join(h.name for h in hosts)
    print(
        f"runs: {runs}; image {size_mb} MiB of random bytes; hosts {names} over SSH, "
        f"replica {replica.name}, target {target.name}; tiny-vm under TCG",
        flush=True,
    )

    # Warm-up (untimed): a disk-less VM, then a 1 MiB image through the replica path.
    with vms(client) as made:
        deploy(client, template_id, target.id, None, "warm-0", made)
    small = work / "warm.raw"
    random_file(small, 1)
    warm_image = client.images.create(name="bench-warm", kind="DATABLOCK", upload=True)
    client.images.upload(warm_image.id, small)
    with vms(client) as made:
        deploy(client, template_id, target.id, warm_image.id, "warm-1", made)
    client.images.delete(warm_image.id)

    print("deploy of tiny-vm with the image as its disk, on host1:", flush=True)
    results = [
        one_deploy_run(client, watch, template_id, target, nets[1], nets[0], work, size_mb, run)
        for run in range(runs)
    ]
    keys = {k for (_, k, _, _) in watch.images}
    sent = {f"{k[:8]}..@{h}": n for (k, h), n in driver.disks.sent.items() if k in keys}
    fetched = {f"{k[:8]}..@{h}": n for (k, h), n in driver.disks.fetched.items() if k in keys}
    print(f"  driver counters (incl. the warm-up image): sent {sent}", flush=True)
    print(f"                                             fetched {fetched}", flush=True)

    print(f"copies of one {size_mb} MiB random file to host1:", flush=True)
    source = work / "copy-source.bin"
    source_key = random_file(source, size_mb)
    ours = SshTransport(nets[1].address, client_key=client_key, host_key=None)
    copies: list[dict[str, float]] = []
    try:
        ours.connect()
        for run in range(runs):
            took = one_copy_run(
                source,
                source_key,
                client_key,
                ours,
                driver,
                (ref_of(replica, nets[0]), ref_of(target, nets[1])),
                (nets[0], nets[1]),
            )
            copies.append(took)
            print(
                "  run "
                + str(run + 1)
                + ": "
                + ", ".join(f"{t} {size_mb / s:.0f} MB/s" for t, s in took.items()),
                flush=True,
            )
    finally:
        ours.close()
    login = statistics.median(ssh_login(client_key, nets[1]) for _ in range(5))
    client.datastores.delete(system.id)

    # --- summary -----------------------------------------------------------------------
    print()
    print(f"deploy, tiny-vm + a {size_mb} MiB disk on host1, median of {runs}:")
    print(f"{'case':40} {'create->running':>16} {'PROLOG step':>12} {'driver prolog':>14}")
    for case, label in CASES.items():
        create = statistics.median(r[case][0] for r in results)
        steps = [s for r in results if (s := r[case][1]) is not None]
        inner = [s for r in results if (s := r[case][2]) is not None]
        step = f"{statistics.median(steps):.0f} s" if steps else "?"
        prolog = f"{statistics.median(inner):.2f} s" if inner else "?"
        print(f"{label:40} {create:14.2f} s {step:>12} {prolog:>14}")
    print()
    print(f"copy of one {size_mb} MiB random file to host1, median of {runs}:")
    print(f"{'way':44} {'seconds':>8} {'MB/s':>8}")
    medians = {t: statistics.median(c[t] for c in copies) for t in TOOLS}
    for tool, label in TOOLS.items():
        print(f"{label:44} {medians[tool]:8.2f} {size_mb / medians[tool]:8.0f}")
    print(
        f"ours / rsync (throughput): {medians['rsync'] / medians['ours']:.2f}x; "
        f"ours / scp: {medians['scp'] / medians['ours']:.2f}x; ssh login (rsync and scp "
        f"pay it, ours does not): {login:.2f} s"
    )


if __name__ == "__main__":
    main()
