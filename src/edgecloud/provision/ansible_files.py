"""The files of one `ansible-playbook` run: inventory, extra variables, known_hosts, config.

Pure functions of their arguments (no I/O), so they are tested on their own; `ansible`
writes what they return into the run's work directory.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from edgecloud.drivers.provision.api import ProvidedHost

__all__ = [
    "HYPERVISORS",
    "PYTHON",
    "SSH_PORT",
    "ansible_cfg",
    "extra_vars_text",
    "inventory",
    "inventory_text",
    "known_hosts_line",
    "ssh_args",
]

# The hypervisors the playbook knows (it maps them to packages).
HYPERVISORS = ("kvm", "microvm", "lxc", "fake")
# The hosts' Python for the modules (set, so Ansible does not probe for one each run).
PYTHON = "/usr/bin/python3"
SSH_PORT = 22
CONTROL_PERSIST = "60s"  # ssh keeps one connection a host for the whole run
CONNECT_TIMEOUT = 10


class Unsafe(str):
    """A string Ansible takes as data: written `!unsafe`, it is never templated."""

    __slots__ = ()


class _Dumper(yaml.SafeDumper):
    """YAML for Ansible: `Unsafe` strings tagged `!unsafe`."""


def _represent_unsafe(dumper: yaml.SafeDumper, data: Unsafe) -> yaml.ScalarNode:
    return dumper.represent_scalar("!unsafe", str(data), style="'")


_Dumper.add_representer(Unsafe, _represent_unsafe)


def unsafe(value: Any) -> Any:
    """`value` with every string in it (mapping keys aside) made `Unsafe`."""
    if isinstance(value, str):
        return Unsafe(value)
    if isinstance(value, Mapping):
        return {str(k): unsafe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [unsafe(v) for v in value]
    return value


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, default_flow_style=False, sort_keys=True, width=1000)


def inventory(hosts: Sequence[ProvidedHost]) -> dict[str, Any]:
    """The inventory: every host in `all`, with its address, port, root and `config`.

    The provider's `config` comes last, so it may also set Ansible's own variables (e.g.
    `ansible_remote_tmp`, `ansible_python_interpreter`).
    """
    entries: dict[str, Any] = {}
    for host in hosts:
        entries[host.name] = {
            "ansible_host": host.address,
            "ansible_port": host.port,
            "edgecloud_root": unsafe(host.root),
            **unsafe(dict(host.config)),
        }
    return {
        "all": {
            "hosts": entries,
            "vars": {
                "ansible_user": "root",
                "ansible_connection": "ssh",
                "ansible_python_interpreter": PYTHON,
            },
        }
    }


def inventory_text(hosts: Sequence[ProvidedHost]) -> str:
    """The inventory as YAML (the provider's values tagged `!unsafe`)."""
    return _dump(inventory(hosts))


def extra_vars_text(
    authorized_key: str, hypervisors: Sequence[str], extra: Mapping[str, Any] | None
) -> str:
    """The playbook's extra variables as YAML (`extra` overrides the others)."""
    data: dict[str, Any] = {
        "edgecloud_authorized_key": authorized_key.strip(),
        "edgecloud_hypervisors": list(hypervisors),
        **dict(extra or {}),
    }
    return _dump(unsafe(data))


def known_hosts_line(address: str, port: int, host_key: str) -> str:
    """The known_hosts line pinning `host_key` ("type base64 [comment]") for address:port."""
    fields = host_key.split()
    if len(fields) < 2:
        raise ValueError(f"host key of {address}: not an OpenSSH public key line: {host_key!r}")
    target = address if port == SSH_PORT else f"[{address}]:{port}"
    return f"{target} {fields[0]} {fields[1]}"


def ssh_args(known_hosts: Path) -> list[str]:
    """ssh's options: the pinned keys only, no user or machine ssh config, one connection."""
    return [
        "-F",
        "/dev/null",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={CONNECT_TIMEOUT}",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ControlMaster=auto",
        "-o",
        f"ControlPersist={CONTROL_PERSIST}",
    ]


def _ini(value: object) -> str:
    """A value for Ansible's ini file (its parser interpolates `%`)."""
    return str(value).replace("%", "%%")


def ansible_cfg(
    work_dir: Path, *, forks: int, known_hosts: Path, control_dir: Path, private_key: Path
) -> str:
    """ansible.cfg: everything Ansible keeps on this machine is under `work_dir`."""
    defaults = {
        "home": work_dir / "home",
        "local_tmp": work_dir / "tmp",
        "log_path": work_dir / "ansible.log",
        "forks": max(1, forks),
        "gathering": "explicit",
        "host_key_checking": "True",
        "private_key_file": private_key,
        "remote_user": "root",
        "interpreter_python": PYTHON,
        "retry_files_enabled": "False",
        "stdout_callback": "default",
        "nocows": "True",
        "timeout": CONNECT_TIMEOUT,
    }
    ssh = {
        "pipelining": "True",
        "ssh_args": shlex.join(ssh_args(known_hosts)),
        "control_path_dir": control_dir,
        "reconnection_retries": 0,
    }
    lines = ["[defaults]"]
    lines += [f"{key} = {_ini(value)}" for key, value in defaults.items()]
    lines += ["", "[ssh_connection]"]
    lines += [f"{key} = {_ini(value)}" for key, value in ssh.items()]
    return "\n".join(lines) + "\n"
