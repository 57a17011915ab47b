"""Provision templates: parsing, inputs, ${...} substitution, validation, `provision validate`."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgecloud.cli import context
from edgecloud.provision import ProvisionTemplate, TemplateError, example, load_template
from tests.unit.test_cli_context import run

pytestmark = pytest.mark.unit


def template(**changes: Any) -> dict[str, Any]:
    """Return a small valid template as data; `changes` replace (None: drop) top-level keys."""
    data: dict[str, Any] = {
        "name": "edge",
        "provider": "local",
        "cluster": {"name": "site"},
        "hosts": {"count": 2, "hypervisors": ["kvm"]},
        "datastores": [{"name": "img", "kind": "image"}, {"name": "sys", "kind": "system"}],
        "networks": [
            {"name": "priv", "driver": "evpn", "address_range": {"ip": "10.0.0.1", "size": 10}}
        ],
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


class Dumper(yaml.SafeDumper):
    """Write shared values out in full, without anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        """Never use an alias."""
        return True


def dump(data: dict[str, Any]) -> str:
    """Return data as YAML text."""
    return yaml.dump(data, Dumper=Dumper, sort_keys=False)


def load(data: dict[str, Any], **kwargs: Any) -> ProvisionTemplate:
    """Load a template given as data."""
    return load_template(dump(data), **kwargs)


def problems(text_or_data: str | dict[str, Any], **kwargs: Any) -> list[str]:
    """Return the 'path: reason' lines of an invalid template."""
    text = text_or_data if isinstance(text_or_data, str) else dump(text_or_data)
    with pytest.raises(TemplateError) as caught:
        load_template(text, **kwargs)
    return [str(problem) for problem in caught.value.problems]


def test_the_shipped_example_validates_to_three_hosts_named_from_the_pattern() -> None:
    shipped = resources.files("edgecloud.provision") / "examples" / "local-edge.yaml"
    assert shipped.is_file()
    provision = load_template(example("local-edge"), provision_id=7)
    assert (provision.name, provision.provider) == ("edge-lab", "local")
    assert provision.cluster.name == "7-cluster"
    assert [h.name for h in provision.hosts] == ["7-host-0", "7-host-1", "7-host-2"]
    assert all(h.address is None and h.hypervisors == ["kvm", "lxc"] for h in provision.hosts)
    kinds = [(d.kind, d.replica_host) for d in provision.datastores]
    assert kinds == [("image", None), ("system", 0)]
    nets = [(n.driver, n.public, n.address_range.ip) for n in provision.networks]
    assert nets == [("evpn", False, "10.0.0.10"), ("bridge", True, "172.16.0.10")]


def test_provision_id_stays_a_placeholder_until_known() -> None:
    provision = load_template(example())
    assert provision.hosts[0].name == "${provision_id}-host-0"


def test_inputs_take_their_defaults_unless_given() -> None:
    provision = load_template(example(), {"site": "north", "hosts": "5"}, provision_id="p1")
    assert provision.name == "edge-north"
    assert [h.index for h in provision.hosts] == [0, 1, 2, 3, 4]
    assert provision.hosts[4].name == "p1-host-4"


def test_substitution_reaches_every_string_and_keeps_whole_values_typed() -> None:
    inputs = [
        {"name": "n", "type": "number", "default": 2},
        {"name": "pub", "type": "boolean", "default": "no"},
        {"name": "zone", "type": "list", "options": ["a", "b"], "default": "a"},
        {"name": "net", "type": "text", "default": "10.1.0.0"},
    ]
    data = template(
        inputs=inputs,
        provider_settings={"zone": "eu-${input.zone}", "spares": "${input.n}"},
        cluster={"name": "c-${provision_id}", "reserved_memory_mb": "${input.n}"},
        hosts={"count": "${input.n}", "hypervisors": ["lxc"], "name": "h${index}-${input.zone}"},
        networks=[
            {
                "name": "pub-${input.pub}",
                "driver": "bridge",
                "public": "${input.pub}",
                "address_range": {"ip": "${input.net}", "size": "${input.n}"},
            }
        ],
        images=[{"name": "alpine", "url": "https://example.com/${input.zone}.qcow2"}],
        vm_templates=[
            {"name": "t", "template": {"CPU": "${input.n}", "NIC": [{"N": "${input.zone}"}]}}
        ],
    )
    provision = load(data, inputs={"zone": "b", "pub": "yes"}, provision_id=4)
    assert provision.provider_settings == {"zone": "eu-b", "spares": 2}
    assert provision.cluster.name == "c-4"
    assert provision.cluster.reserved_memory_mb == 2
    assert [h.name for h in provision.hosts] == ["h0-b", "h1-b"]
    net = provision.networks[0]
    assert (net.name, net.public, net.address_range.ip, net.address_range.size) == (
        "pub-true", True, "10.1.0.0", 2,
    )  # fmt: skip
    assert provision.images[0].url == "https://example.com/b.qcow2"
    assert provision.vm_templates[0].template == {"CPU": 2, "NIC": [{"N": "b"}]}


def test_onprem_hosts_are_their_addresses() -> None:
    hosts = {"addresses": ["192.168.1.5", "edge-b.lan"], "hypervisors": ["kvm", "fake"]}
    provision = load(template(provider="onprem", hosts=hosts))
    assert [(h.name, h.address) for h in provision.hosts] == [
        ("192.168.1.5", "192.168.1.5"),
        ("edge-b.lan", "edge-b.lan"),
    ]


def test_an_error_carries_its_path_and_reason() -> None:
    with pytest.raises(TemplateError) as caught:
        load(template(cluster={"name": "c", "cpu": 1}))
    assert (caught.value.path, caught.value.reason) == ("cluster.cpu", "unknown key")
    assert str(caught.value) == "cluster.cpu: unknown key"


NET = {"name": "n2", "driver": "bridge", "address_range": {"ip": "10.0.1.1", "size": 5}}
NEEDS_SITE = [{"name": "site"}]


@pytest.mark.parametrize(
    ("data", "given", "expected"),
    [
        pytest.param(template(colour="red"), None, "colour: unknown key", id="unknown-key"),
        pytest.param(
            template(networks=[NET, {**NET, "name": "n3", "vlan": 5}]),
            None,
            "networks[1].vlan: unknown key",
            id="unknown-nested-key",
        ),
        pytest.param(
            template(inputs=NEEDS_SITE, name="e-${input.site}"),
            None,
            "inputs.site: no value given and no default",
            id="missing-input",
        ),
        pytest.param(
            template(inputs=[{"name": "hosts", "type": "number"}]),
            {"hosts": "three"},
            "inputs.hosts: 'three' is not a number",
            id="not-a-number",
        ),
        pytest.param(
            template(inputs=[{"name": "on", "type": "boolean", "default": "perhaps"}]),
            None,
            "inputs.on: default 'perhaps' is not true or false",
            id="not-a-boolean",
        ),
        pytest.param(
            template(inputs=[{"name": "size", "type": "list", "options": ["s", "m"]}]),
            {"size": "xl"},
            "inputs.size: 'xl' is not one of s, m",
            id="not-an-option",
        ),
        pytest.param(
            template(inputs=[{"name": "size", "type": "list"}]),
            None,
            "inputs[0].options: a list input needs options",
            id="list-without-options",
        ),
        pytest.param(template(), {"nope": "1"}, "inputs.nope: the template has no such input"),
        pytest.param(
            template(networks=[{**NET, "driver": "vlan"}]),
            None,
            "networks[0].driver: must be 'bridge', 'vxlan' or 'evpn'",
            id="bad-driver",
        ),
        pytest.param(
            template(datastores=[{"name": "d", "kind": "block"}]),
            None,
            "datastores[0].kind: must be 'image', 'system' or 'file'",
            id="bad-kind",
        ),
        pytest.param(
            template(hosts={"count": 0, "hypervisors": ["kvm"]}),
            None,
            "hosts.count: must be at least 1",
            id="count-zero",
        ),
        pytest.param(
            template(hosts={"count": "65", "hypervisors": ["kvm"]}),
            None,
            "hosts.count: must be at most 64",
            id="count-too-big",
        ),
        pytest.param(
            template(hosts={"count": 2, "addresses": ["10.0.0.1"], "hypervisors": ["kvm"]}),
            None,
            "hosts: give count or addresses, not both",
            id="count-and-addresses",
        ),
        pytest.param(
            template(hosts={"hypervisors": ["kvm"]}),
            None,
            "hosts: give count (how many hosts) or addresses (onprem)",
            id="no-count-nor-addresses",
        ),
        pytest.param(
            template(hosts={"count": 2, "hypervisors": ["kvm", "xen"]}),
            None,
            "hosts.hypervisors[1]: must be 'kvm', 'lxc', 'microvm' or 'fake'",
            id="bad-hypervisor",
        ),
        pytest.param(
            template(hosts={"count": 2, "hypervisors": ["kvm"], "name": "same"}),
            None,
            "hosts.name: must contain ${index}: there are several hosts",
            id="pattern-without-index",
        ),
        pytest.param(
            template(provider="onprem"),
            None,
            "hosts.count: onprem hosts already exist: list them in addresses",
            id="onprem-count",
        ),
        pytest.param(
            template(datastores=[{"name": "sys", "kind": "system", "replica_host": 2}]),
            None,
            "datastores[0].replica_host: no host 2: hosts are 0 to 1",
            id="replica-out-of-range",
        ),
        pytest.param(
            template(datastores=[{"name": "img", "kind": "image", "replica_host": 0}]),
            None,
            "datastores[0].replica_host: only a system datastore has a replica host",
            id="replica-on-image-datastore",
        ),
        pytest.param(
            template(datastores=[{"name": "d", "kind": "image"}, {"name": "d", "kind": "system"}]),
            None,
            "datastores[1].name: name used twice: d",
            id="duplicate-datastore",
        ),
        pytest.param(
            template(networks=[NET, NET]),
            None,
            "networks[1].name: name used twice: n2",
            id="duplicate-network",
        ),
        pytest.param(
            template(networks=[{**NET, "address_range": {"ip": "10.0.0.256", "size": 1}}]),
            None,
            "networks[0].address_range.ip: not an IPv4 address",
            id="bad-ip",
        ),
        pytest.param(
            template(networks=[{**NET, "address_range": {"ip": "10.0.0.1", "size": 0}}]),
            None,
            "networks[0].address_range.size: must be at least 1",
            id="empty-range",
        ),
        pytest.param(
            template(networks=[{**NET, "address_range": {"ip": "255.255.255.250", "size": 9}}]),
            None,
            "networks[0].address_range.size: the range runs past 255.255.255.255",
            id="range-past-the-end",
        ),
        pytest.param(
            template(cluster={"name": "${region}-c"}),
            None,
            "cluster.name: unknown reference ${region}",
            id="unknown-reference",
        ),
        pytest.param(
            template(networks=[{**NET, "name": "n-${input.zone}"}]),
            None,
            "networks[0].name: ${input.zone}: no input named 'zone' under inputs",
            id="undeclared-input",
        ),
        pytest.param(
            template(cluster={"name": "c-${index}"}),
            None,
            "cluster.name: ${index} is only known in hosts.name",
            id="index-outside-host-names",
        ),
        pytest.param(
            template(cluster={"name": "c-${provision_id"}),
            None,
            "cluster.name: '${' without its closing '}'",
            id="unclosed-reference",
        ),
        pytest.param(
            template(images=[{"name": "i", "url": "https://x/i.img"}], datastores=[]),
            None,
            "images: images need an image datastore under datastores",
            id="image-without-datastore",
        ),
        pytest.param(
            template(provider_settings={"tags": ["a"]}),
            None,
            "provider_settings.tags: must be text, a number or true/false",
            id="nested-setting",
        ),
        pytest.param(template(provider=None), None, "provider: required", id="no-provider"),
    ],
)
def test_each_problem_is_reported_with_its_path(
    data: dict[str, Any], given: dict[str, str] | None, expected: str
) -> None:
    assert expected in problems(data, inputs=given)


def test_several_problems_are_reported_at_once() -> None:
    data = template(
        provider="gcp",
        hosts={"count": 100, "hypervisors": ["kvm"]},
        networks=[{**NET, "driver": "ovs"}],
        extra=1,
    )
    found = problems(data)
    assert found == [
        "provider: must be 'local', 'onprem' or 'aws'",
        "hosts.count: must be at most 64",
        "networks[0].driver: must be 'bridge', 'vxlan' or 'evpn'",
        "extra: unknown key",
    ]


def test_an_unresolved_input_is_reported_once_not_again_where_used() -> None:
    data = template(inputs=[{"name": "n", "type": "number"}])
    data["hosts"]["count"] = "${input.n}"
    assert problems(data, inputs={"n": "many"}) == ["inputs.n: 'many' is not a number"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: edge\nprovider: local\n  cluster: x\n", "line 3, column 10: YAML: mapping values"),
        ("name: [edge\n", "line 2, column 1: YAML: "),
        ("name: a\nname: b\n", "line 2, column 1: YAML: key 'name' is repeated"),
        ("- a\n- b\n", "the template is not a mapping"),
        ("", "the template is empty"),
    ],
)
def test_yaml_problems_report_the_line(text: str, expected: str) -> None:
    [found] = problems(text)
    assert found.startswith(expected)


def test_anchors_and_merge_keys_work_but_an_alias_bomb_is_refused() -> None:
    text = """\
name: edge
provider: local
cluster: {name: site}
hosts: {count: 2, hypervisors: [kvm]}
networks:
  - &net {name: a, driver: vxlan, address_range: {ip: 10.9.0.1, size: 4}}
  - {<<: *net, name: b}
"""
    networks = load_template(text).networks
    assert [(n.name, n.driver, n.address_range.ip) for n in networks] == [
        ("a", "vxlan", "10.9.0.1"),
        ("b", "vxlan", "10.9.0.1"),
    ]
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    assert problems(bomb) == ["the template is too large once its aliases (*name) are expanded"]


def test_a_yaml_syntax_error_has_no_path_but_a_line_and_column() -> None:
    with pytest.raises(TemplateError) as caught:
        load_template("name: edge\nprovider: local\n  cluster: x\n")
    problem = caught.value.problems[0]
    assert (problem.path, problem.line, problem.column) == ("", 3, 10)


def test_password_values_are_never_echoed() -> None:
    secret = "hunter2-secret"
    data = template(
        inputs=[
            {"name": "token", "type": "password"},
            {"name": "old", "type": "password", "default": "dflt-secret"},
        ],
        provider_settings={"token": "${input.token}"},
        datastores=[
            {"name": "${input.token}", "kind": "image"},
            {"name": "${input.token}", "kind": "system"},
            {"name": "x-${input.old}", "kind": "system"},
            {"name": "x-${input.old}", "kind": "file"},
        ],
    )
    found = "\n".join(problems(data, inputs={"token": secret}))
    assert "name used twice" in found
    assert secret not in found
    assert "dflt-secret" not in found
    data["hosts"]["count"] = "${input.token}"
    found = "\n".join(problems(data, inputs={"token": secret}))
    assert "hosts.count: must be a whole number" in found
    assert secret not in found


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make building a client fail: `provision validate` must never need one."""

    def no_client(url: str, **kwargs: Any) -> Any:
        raise AssertionError("provision validate built a client")

    monkeypatch.setattr(context, "client_factory", no_client)
    for name in ("EDGECLOUD_AUTH", "EDGECLOUD_TOKEN", "EDGECLOUD_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EDGECLOUD_HOME", "/nonexistent")


def write(tmp_path: Path, data: dict[str, Any] | str) -> str:
    """Write a template file and return its path."""
    path = tmp_path / "provision.yaml"
    path.write_text(data if isinstance(data, str) else dump(data))
    return str(path)


@pytest.mark.usefixtures("offline")
def test_cli_has_the_provision_noun() -> None:
    result = run("provision", "--help")
    assert result.exit_code == 0
    assert "Edge clusters from a template: on-prem, AWS, or simulated locally." in result.stdout
    assert "validate" in result.stdout


@pytest.mark.usefixtures("offline")
def test_cli_validate_prints_the_summary(tmp_path: Path) -> None:
    path = write(tmp_path, example())
    result = run("provision", "validate", path, "--input", "hosts=4", "-i", "site=x")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "provision  edge-x" in out
    assert "provider   local" in out
    assert "${provision_id}-cluster" in out
    assert "${provision_id}-host-3" in out
    assert "kvm,lxc" in out
    assert "10.0.0.10 - 10.0.0.109 (100)" in out
    assert "${provision_id}-system" in out


@pytest.mark.usefixtures("offline")
def test_cli_validate_json_prints_the_resolved_template(tmp_path: Path) -> None:
    result = run("-o", "json", "provision", "validate", write(tmp_path, example()))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [h["index"] for h in data["hosts"]] == [0, 1, 2]
    assert data["datastores"][1]["replica_host"] == 0


@pytest.mark.usefixtures("offline")
def test_cli_validate_prints_one_problem_per_line_and_exits_1(tmp_path: Path) -> None:
    data = template(colour="red", networks=[{**NET, "driver": "ovs"}])
    result = run("provision", "validate", write(tmp_path, data))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "networks[0].driver: must be 'bridge', 'vxlan' or 'evpn'",
        "colour: unknown key",
    ]
    assert "2 problems" in result.stderr


@pytest.mark.usefixtures("offline")
def test_cli_validate_reports_yaml_syntax_with_the_line(tmp_path: Path) -> None:
    result = run("provision", "validate", write(tmp_path, "name: a\nprovider: [local\n"))
    assert result.exit_code == 1
    assert result.stdout.startswith("line 3, column 1: YAML: ")


@pytest.mark.usefixtures("offline")
def test_cli_validate_hides_a_bad_password_input(tmp_path: Path) -> None:
    data = template(inputs=[{"name": "pw", "type": "password"}], cluster={"name": "${input.pw}"})
    data["hosts"]["count"] = "${input.pw}"
    result = run("provision", "validate", write(tmp_path, data), "--input", "pw=s3cr3t-pw")
    assert result.exit_code == 1
    assert "hosts.count: must be a whole number" in result.stdout
    assert "s3cr3t-pw" not in result.output


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize("option", ["hosts", "=3"])
def test_cli_validate_refuses_an_input_without_key_and_value(tmp_path: Path, option: str) -> None:
    result = run("provision", "validate", write(tmp_path, example()), "--input", option)
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output


@pytest.mark.usefixtures("offline")
def test_cli_validate_needs_an_existing_file(tmp_path: Path) -> None:
    result = run("provision", "validate", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2


def test_characters_yaml_refuses_are_a_problem_not_a_crash() -> None:
    with pytest.raises(TemplateError) as refused:
        load_template("name: \x00\x85")
    assert "YAML" in refused.value.problems[0].reason
