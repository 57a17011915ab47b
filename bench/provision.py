"""Provisioning: from `provision create` to RUNNING, for the `local` and `aws` providers.

    .venv/bin/python bench/provision.py [--runs 3] [--hosts 3]      # as root

A front-end on SQLite in this process (`provision_stand_in`: moto's instances are stood in
by namespace hosts), a moto_server on loopback. Each run, for each provider:

1. **create -> RUNNING** through the REST API: the shipped example (`local-edge`, or
   `aws-edge` against moto) with `--hosts` hosts; the time of each step (hosts, configure,
   register, monitor) as the poller saw it change;
2. **delete -> DONE**, with nothing left at the provider;
3. **baseline**, the floor of the same work without the front-end: the provider's own
   `create_hosts` (namespaces + sshd, or the AWS calls + stand-ins) then one bare
   `ansible-playbook` run of the host playbook on those hosts (the same runner), and the
   provider's `delete_all`.

Prints medians and the ratio create / baseline. Targets (issue 8): local < 60 s,
aws (moto) < 30 s. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import re
import statistics
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

from tests.support.frontend import serve_frontend  # noqa: E402
from tests.support.moto import MotoServer  # noqa: E402

from edgecloud.client import Client  # noqa: E402
from edgecloud.drivers import registry  # noqa: E402
from edgecloud.drivers.transport.keys import ensure_client_key, public_key_line  # noqa: E402
from edgecloud.provision import load_template  # noqa: E402
from edgecloud.provision.ansible import configure_hosts  # noqa: E402
from edgecloud.provision.template import example  # noqa: E402
from edgecloud.server import secrets  # noqa: E402

STEPS = ("hosts", "configure", "register", "monitor")


def inputs_of(kind: str, hosts: int, moto: MotoServer) -> dict[str, str]:
    """The example's inputs for a run."""
    if kind == "local":
        return {"hosts": str(hosts), "site": "bench"}
    return {
        "hosts": str(hosts),
        "region": moto.region,
        "access_key_id": moto.access_key_id,
        "secret_access_key": moto.secret_access_key,
        "ami": moto.ami,
        "instance_type": "t3.medium",
        "endpoint_url": moto.endpoint_url,
    }


def through_frontend(admin: Client, kind: str, inputs: dict[str, str]) -> dict[str, float]:
    """Create and delete one provision; return the seconds of each part."""
    started = time.monotonic()
    made = admin.provisions.create(example=f"{kind}-edge", inputs=inputs)
    done = admin.provisions.wait(made.id, timeout=600)
    created = time.monotonic() - started
    if done.state_name != "RUNNING":
        print(f"  {kind}: {done.state_name}: {done.last_error}")
    figures = {"create": created}
    for step in admin.provisions.log(made.id):  # each step's last line: "<name> done in X s"
        took = re.search(rf"{step.name} done in ([0-9.]+) s", step.log)
        if took is not None:
            figures[step.name] = float(took.group(1))
    began = time.monotonic()
    admin.provisions.delete(made.id, force=True)
    gone = admin.provisions.wait(made.id, timeout=600)
    figures["delete"] = time.monotonic() - began
    if gone.state_name != "DONE":
        print(f"  {kind}: delete: {gone.state_name}: {gone.last_error}")
    return figures


def baseline(home: Path, kind: str, inputs: dict[str, str], tag: str) -> dict[str, float]:
    """The provider and one playbook run, called directly."""
    template = load_template(example(f"{kind}-edge"), inputs, tag)
    key = ensure_client_key(home / "ssh")
    base = home / "baseline"
    options: dict[str, Any] = {"state_dir": base / kind}
    if kind == "aws":
        options["stand_in"] = registry.create("provision", "local", state_dir=base / "stand-in")
        options["cipher"] = secrets.cipher(home)
    provider = registry.create("provision", kind, **options)
    started = time.monotonic()
    hosts = provider.create_hosts(
        tag, template.hosts, template.provider_settings, public_key_line(key)
    )
    made = time.monotonic() - started
    configure_hosts(
        hosts,
        private_key=key,
        authorized_key=public_key_line(key),
        work_dir=base / "ansible" / tag,
        hypervisors=["kvm", "lxc"],
        on_line=lambda _: None,
    )
    configured = time.monotonic() - started - made
    began = time.monotonic()
    provider.delete_all(tag)
    return {
        "provider": made,
        "playbook": configured,
        "floor": made + configured,
        "delete": time.monotonic() - began,
    }


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-provision-") as tmp, MotoServer() as moto:
        home = Path(tmp)
        with serve_frontend(home, provision_stand_in=True) as frontend, frontend.client() as admin:
            for run in range(args.runs):
                for kind in ("local", "aws"):
                    inputs = inputs_of(kind, args.hosts, moto)
                    figures = through_frontend(admin, kind, inputs)
                    figures.update(
                        {
                            f"base {k}": v
                            for k, v in baseline(home, kind, inputs, f"pb{run}{kind[0]}").items()
                        }
                    )
                    results.setdefault(kind, []).append(figures)
                    print(
                        f"run {run + 1} {kind}: "
                        + ", ".join(f"{k} {v:.2f} s" for k, v in figures.items())
                    )
    print(f"\n{args.hosts} hosts, median of {args.runs} run(s):\n")
    print(
        "| provider | create -> RUNNING | hosts | configure | register | monitor "
        "| delete | floor (provider + playbook) | ratio | target |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for kind, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        target = 60 if kind == "local" else 30
        print(
            f"| {kind} | {med['create']:.1f} s | {med['hosts']:.1f} | {med['configure']:.1f} "
            f"| {med['register']:.1f} | {med['monitor']:.1f} | {med['delete']:.1f} s "
            f"| {med['base floor']:.1f} s ({med['base provider']:.1f} + "
            f"{med['base playbook']:.1f}) | {med['create'] / med['base floor']:.2f}x "
            f"| < {target} s: {'met' if med['create'] < target else 'MISSED'} |"
        )


if __name__ == "__main__":
    main()
