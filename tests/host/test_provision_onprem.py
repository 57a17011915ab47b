"""The `onprem` provider: machines that exist already (a namespace test host here).

The provision registers the machine at its address with the host key it is given, the
front-end reaches it over SSH and monitors it; `delete` forgets it and leaves the machine
as it was. A wrong host key stops the provision at the monitor step, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

from edgecloud.client import Client
from tests.support.frontend import RunningFrontEnd
from tests.support.nethosts import NetHost

TEMPLATE = """
name: site-${input.name}
provider: onprem
inputs:
  - {name: name, default: shop}
provider_settings:
  configure: false
  root: %(root)s
  host_keys: "%(address)s %(key)s"
cluster: {name: "${provision_id}-onprem"}
hosts:
  addresses: [%(address)s]
  hypervisors: [lxc]
"""


def _template(host: NetHost, key: str) -> str:
    return TEMPLATE % {"root": host.root, "address": host.address, "key": key}


def test_existing_machines_are_registered_and_forgotten(
    admin: Client, frontend: RunningFrontEnd, nethosts: Callable[[int], list[NetHost]]
) -> None:
    (host,) = nethosts(1)
    made = admin.provisions.create(template=_template(host, host.host_key))
    done = admin.provisions.wait(made.id, timeout=120)
    assert done.state_name == "RUNNING", done.last_error
    (provided,) = done.hosts
    assert (provided.name, provided.address, provided.resource_id) == (
        host.address,
        host.address,
        host.address,
    )
    registered = admin.hosts.get(provided.host_id or -1)
    assert registered.state_name == "MONITORED"
    assert registered.cluster_id == done.cluster_id
    log = {s.name: s.log for s in admin.provisions.log(made.id)}
    assert "need no configuration" in log["configure"]
    admin.provisions.delete(made.id)
    gone = admin.provisions.wait(made.id, timeout=60)
    assert gone.state_name == "DONE", gone.last_error
    assert provided.host_id not in [h.id for h in admin.hosts.list()]
    assert host.exec(["true"]).returncode == 0 and host.sshd_pid is not None  # still there


def test_a_wrong_host_key_stops_at_the_monitor_step(
    admin: Client, nethosts: Callable[[int], list[NetHost]]
) -> None:
    (host, other) = nethosts(2)
    made = admin.provisions.create(template=_template(host, other.host_key))
    failed = admin.provisions.wait(made.id, timeout=120)
    assert failed.state_name == "ERROR" and failed.step == "monitor"
    assert "host key" in failed.last_error.lower(), failed.last_error
    admin.provisions.delete(made.id, force=True)
    assert admin.provisions.wait(made.id, timeout=60).state_name == "DONE"
