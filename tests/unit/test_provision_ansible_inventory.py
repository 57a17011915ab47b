"""The files of a host configuration run, and following ansible-playbook's output."""

from __future__ import annotations

import configparser
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.parsing.yaml.loader import AnsibleLoader  # type: ignore[import-untyped]

from edgecloud.drivers.provision.api import ProvidedHost
from edgecloud.provision import ansible
from edgecloud.provision.ansible import (
    PLAYBOOK,
    ConfigureError,
    configure_hosts,
    playbook_command,
)
from edgecloud.provision.ansible_files import (
    ansible_cfg,
    extra_vars_text,
    inventory,
    inventory_text,
    known_hosts_line,
)
from edgecloud.provision.ansible_output import PlaybookOutput

pytestmark = pytest.mark.unit

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAb4gtbOnce4d2LaSNrJR1A5dV8izEXIxsmdU43qPfDQ"


def host(name: str = "h0", **config: str) -> ProvidedHost:
    return ProvidedHost(name, "198.18.1.10", 22, KEY + " h0@p", "/srv/edge", "ns-0", config)


def ansible_load(text: str) -> object:
    """Parse YAML as Ansible does (`!unsafe` understood)."""
    return AnsibleLoader(text).get_single_data()


def test_inventory_has_each_hosts_connection_root_and_provider_vars() -> None:
    hosts = [
        host("h0", edgecloud_sshd_config="/s/h0/sshd_config", ansible_remote_tmp="/s/h0/t"),
        ProvidedHost("h1", "198.18.1.11", 2222, KEY, "/srv/h1", "ns-1"),
    ]
    data = inventory(hosts)
    assert data["all"]["vars"] == {
        "ansible_user": "root",
        "ansible_connection": "ssh",
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    assert data["all"]["hosts"] == {
        "h0": {
            "ansible_host": "198.18.1.10",
            "ansible_port": 22,
            "edgecloud_root": "/srv/edge",
            "edgecloud_sshd_config": "/s/h0/sshd_config",
            "ansible_remote_tmp": "/s/h0/t",
        },
        "h1": {"ansible_host": "198.18.1.11", "ansible_port": 2222, "edgecloud_root": "/srv/h1"},
    }
    # Written as YAML, the provider's values are data to Ansible (never templated).
    text = inventory_text(hosts)
    assert "edgecloud_root: !unsafe '/srv/edge'" in text
    assert yaml.load(text, Loader=AnsibleLoader) == data  # noqa: S506 (Ansible's own loader)


def test_a_provider_value_with_template_syntax_stays_data() -> None:
    text = inventory_text([host(edgecloud_sshd_config="{{ lookup('pipe', 'id') }}")])
    assert "!unsafe '{{ lookup(''pipe'', ''id'') }}'" in text
    loaded = ansible_load(text)
    assert isinstance(loaded, dict)
    value = loaded["all"]["hosts"]["h0"]["edgecloud_sshd_config"]
    assert value == "{{ lookup('pipe', 'id') }}"


def test_extra_vars_carry_the_key_and_hypervisors_and_the_callers_vars_win() -> None:
    text = extra_vars_text(
        f"  {KEY} front-end \n",
        ["kvm", "lxc"],
        {"edgecloud_extra_packages": ["x"], "edgecloud_hypervisors": ["fake"]},
    )
    assert ansible_load(text) == {
        "edgecloud_authorized_key": f"{KEY} front-end",
        "edgecloud_hypervisors": ["fake"],
        "edgecloud_extra_packages": ["x"],
    }
    assert "!unsafe" in text


@pytest.mark.parametrize(
    ("address", "port", "key", "line"),
    [
        ("198.18.1.10", 22, f"{KEY} comment here", f"198.18.1.10 {KEY}"),
        ("198.18.1.10", 2222, KEY, f"[198.18.1.10]:2222 {KEY}"),
        ("fd00::5", 22, KEY, f"fd00::5 {KEY}"),
        ("fd00::5", 2200, KEY, f"[fd00::5]:2200 {KEY}"),
    ],
)
def test_known_hosts_line_pins_the_key_for_address_and_port(
    address: str, port: int, key: str, line: str
) -> None:
    assert known_hosts_line(address, port, key) == line


def test_known_hosts_line_refuses_what_is_no_key() -> None:
    with pytest.raises(ValueError, match="not an OpenSSH public key line"):
        known_hosts_line("198.18.1.10", 22, "AAAA")


def test_ansible_cfg_keeps_everything_in_the_work_dir(tmp_path: Path) -> None:
    work = tmp_path / "50%"
    text = ansible_cfg(
        work,
        forks=3,
        known_hosts=work / "known_hosts",
        control_dir=work / "cp",
        private_key=Path("/keys/id_ed25519"),
    )
    parser = configparser.ConfigParser()
    parser.read_string(text)
    defaults, ssh = parser["defaults"], parser["ssh_connection"]
    assert defaults["home"] == str(work / "home")
    assert defaults["local_tmp"] == str(work / "tmp")
    assert defaults["log_path"] == str(work / "ansible.log")
    assert defaults["forks"] == "3"
    assert defaults["gathering"] == "explicit"
    assert defaults["host_key_checking"] == "True"
    assert defaults["private_key_file"] == "/keys/id_ed25519"
    assert ssh["pipelining"] == "True"
    assert ssh["control_path_dir"] == str(work / "cp")
    args = shlex.split(ssh["ssh_args"])
    options = [args[i + 1] for i, a in enumerate(args) if a == "-o"]
    assert f"UserKnownHostsFile={work / 'known_hosts'}" in options
    assert "StrictHostKeyChecking=yes" in options
    assert "GlobalKnownHostsFile=/dev/null" in options
    assert "BatchMode=yes" in options
    assert any(o.startswith("ControlPersist=") for o in options)
    assert args[:2] == ["-F", "/dev/null"]  # no ~/.ssh/config of this machine


SAMPLE = """\

PLAY [Configure edge hosts] ****************************************************

TASK [Find which packages are missing] *****************************************
ok: [h1]
ok: [h0]

TASK [Ignored] *****************************************************************
[ERROR]: Task failed: Module failed: non-zero return code
Origin: /p/host.yml:8:7

fatal: [h0]: FAILED! => {"changed": true, "msg": "non-zero return code", "rc": 1}
...ignoring

TASK [Install the missing packages] ********************************************
[ERROR]: Task failed: Module failed: No package matching 'nope' is available
Origin: /p/tasks/packages.yml:20:3

20 - name: Install the missing packages
     ^ column 3

fatal: [h1]: FAILED! => {"changed": false, "msg": "No package matching 'nope' is available"}
fatal: [h0]: FAILED! => {"changed": false, "msg": "No package matching 'nope' is available"}

PLAY RECAP *********************************************************************
h0                         : ok=2    changed=1    unreachable=0    failed=1    ignored=1
h1                         : ok=1    changed=0    unreachable=0    failed=1    ignored=0
"""


def feed(text: str) -> PlaybookOutput:
    output = PlaybookOutput()
    for line in text.splitlines():
        output.feed(line)
    return output


def test_output_failures_keep_ansibles_lines_and_skip_ignored_ones() -> None:
    output = feed(SAMPLE)
    assert [(f.task, f.host) for f in output.failures] == [
        ("Install the missing packages", "h1"),
        ("Install the missing packages", "h0"),
    ]
    h1, h0 = output.failures
    assert h1.lines == (
        "[ERROR]: Task failed: Module failed: No package matching 'nope' is available",
        'fatal: [h1]: FAILED! => {"changed": false, '
        '"msg": "No package matching \'nope\' is available"}',
    )
    assert h0.lines[-1].startswith("fatal: [h0]: FAILED! => ")
    assert output.failed_hosts() == ["h0", "h1"]
    assert output.changed() == {"h0": 1, "h1": 0}
    assert output.recap["h0"]["ignored"] == 1
    report = output.report()
    assert "TASK [Install the missing packages] on h1:" in report
    assert all(line in report for f in output.failures for line in f.lines)
    assert "non-zero return code" not in report


def test_output_loop_failures_and_unreachable_hosts() -> None:
    output = feed(
        "TASK [Set sshd's login settings] ****\n"
        'failed: [h0] (item=PermitRootLogin no) => {"msg": "bad"}\n'
        'fatal: [h1]: UNREACHABLE! => {"changed": false, "msg": "Failed to connect", '
        '"unreachable": true}\n'
    )
    assert [(f.task, f.host) for f in output.failures] == [
        ("Set sshd's login settings", "h0"),
        ("Set sshd's login settings", "h1"),
    ]
    assert output.failed_hosts() == ["h0", "h1"]


def test_output_errors_without_a_host_and_the_tail_otherwise() -> None:
    output = feed("[ERROR]: the playbook: nope.yml could not be found\n")
    assert output.failures == []
    assert output.report() == "[ERROR]: the playbook: nope.yml could not be found"
    quiet = feed("something\nelse\n")
    assert quiet.report() == "last output:\nsomething\nelse"


def test_playbook_command_is_an_argument_list_next_to_this_python() -> None:
    argv = playbook_command()
    assert isinstance(argv, list)
    assert argv[0].endswith("ansible-playbook") or argv[1:3] == ["-m", "ansible.cli.playbook"]


def test_the_playbook_passes_ansibles_syntax_check(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_HOME=str(tmp_path / "home"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    argv = [*playbook_command(), "--syntax-check", "-i", "localhost,", str(PLAYBOOK)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hypervisors": ["xen"]}, "unknown hypervisor"),
        ({"authorized_key": "a\nb"}, "one public key line"),
        ({"hosts": [host(), host()]}, "unique"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {
        "hosts": [host()],
        "private_key": tmp_path / "key",
        "authorized_key": KEY,
        "work_dir": tmp_path / "work",
        "hypervisors": ["kvm"],
        "on_line": print,
        **kwargs,
    }
    with pytest.raises(ConfigureError, match=message):
        configure_hosts(**arguments)  # type: ignore[arg-type]
    assert not (tmp_path / "work").exists()


def test_control_sockets_go_to_a_short_directory_when_the_work_dir_is_too_long(
    tmp_path: Path,
) -> None:
    short, temporary = ansible._control_dir(tmp_path)
    assert (short, temporary) == (tmp_path / "cp", False)
    assert short.is_dir()
    deep = tmp_path / ("d" * 80)
    deep.mkdir()
    other, temporary = ansible._control_dir(deep)
    try:
        assert temporary
        assert other.is_dir()
        assert not other.is_relative_to(deep)
        # ssh binds "<dir>/<10 hex>.<16 random>" first: it must fit in a socket address.
        assert len(f"{other}/{'x' * 10}.{'y' * 16}") < 108
    finally:
        other.rmdir()
