"""Read a provision template: parse the YAML, resolve inputs and ${...} references, validate."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any

import yaml
from pydantic import Field, TypeAdapter, ValidationError

from edgecloud.provision.errors import (
    Loc,
    Problem,
    TemplateError,
    path_text,
    pydantic_problems,
    scrub,
)
from edgecloud.provision.models import (
    MAX_ITEMS,
    Document,
    HostSpec,
    HostsSection,
    InputSpec,
    ProvisionTemplate,
    Scalar,
)

REFERENCE = re.compile(r"\$\{([^{}]*)\}")
HOST_NAME: Loc = ("hosts", "name")
INDEX = "${index}"
MAX_TEXT = 1024 * 1024
MAX_NODES = 100_000
MAX_DEPTH = 64
TRUE = frozenset({"true", "yes", "on", "1"})
FALSE = frozenset({"false", "no", "off", "0"})
INPUTS = TypeAdapter(Annotated[list[InputSpec], Field(max_length=MAX_ITEMS)])


def load_template(
    text: str,
    inputs: Mapping[str, str] | None = None,
    provision_id: int | str = "${provision_id}",
    *,
    host_count: int | None = None,
) -> ProvisionTemplate:
    """Parse, resolve and validate a template; raise TemplateError with every problem found.

    `inputs` override the template's defaults. `${provision_id}` is replaced by
    `provision_id` (by default it stays as written: the id is known only once created).
    `host_count` replaces `hosts.count` (a scaled provision); it is refused for a template
    that lists its hosts by address.
    """
    data = parse_yaml(text)
    values, pending, secrets, problems = _resolve_inputs(data.pop("inputs", None), inputs or {})
    env = _References(values, pending, str(provision_id))
    data = env.substitute(data, (), problems)
    try:
        doc = Document.model_validate(data)
    except ValidationError as exc:  # not again where a reference was left unresolved
        found = pydantic_problems(exc.errors())
        problems += [problem for problem in found if problem.path not in env.unresolved]
        raise TemplateError(scrub(problems, secrets)) from None
    if host_count is not None:
        if doc.hosts.addresses:
            problems.append(Problem("hosts.count", "the hosts are given by address, not a count"))
        else:
            doc = doc.model_copy(
                update={"hosts": doc.hosts.model_copy(update={"count": host_count})}
            )
    if not env.unresolved:
        problems += check_document(doc)
    if problems:
        raise TemplateError(scrub(problems, secrets))
    return ProvisionTemplate(
        name=doc.name,
        provider=doc.provider,
        provider_settings=doc.provider_settings,
        cluster=doc.cluster,
        hosts=host_specs(doc.hosts, str(provision_id)),
        datastores=doc.datastores,
        networks=doc.networks,
        images=doc.images,
        vm_templates=doc.vm_templates,
    )


def password_inputs(text: str) -> set[str]:
    """Return the names of the template's inputs of type password (kept encrypted)."""
    raw = parse_yaml(text).get("inputs")
    if not isinstance(raw, list):
        return set()
    return {
        str(item.get("name"))
        for item in raw
        if isinstance(item, dict) and item.get("type") == "password"
    }


def example(name: str = "local-edge") -> str:
    """Return the text of an example template shipped with edgecloud."""
    return (resources.files("edgecloud.provision") / "examples" / f"{name}.yaml").read_text()


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses a key written twice (aliases are bounded in substitution)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        """Refuse a key written twice in one mapping."""
        seen: set[str] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key.value!r} is repeated", key.start_mark
                    )
                seen.add(key.value)
        return super().construct_mapping(node, deep)


def parse_yaml(text: str) -> dict[str, Any]:
    """Parse the YAML text of a template into a mapping."""
    if len(text) > MAX_TEXT:
        raise TemplateError([Problem("", f"the template is longer than {MAX_TEXT} characters")])
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the reader refuses some characters here already
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "not valid YAML"
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise TemplateError([Problem("", f"YAML: {reason}", line, column)]) from None
    except yaml.YAMLError as exc:
        raise TemplateError([Problem("", f"YAML: {exc}")]) from None
    except RecursionError:
        raise TemplateError([Problem("", "YAML: nested too deeply")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict):
        what = "empty" if data is None else "not a mapping (name: ..., provider: ..., ...)"
        raise TemplateError([Problem("", f"the template is {what}")])
    return data


def _resolve_inputs(
    raw: object, given: Mapping[str, str]
) -> tuple[dict[str, Scalar], set[str], set[str], list[Problem]]:
    """Return each input's typed value, the inputs left without one, the passwords, problems."""
    try:
        specs = INPUTS.validate_python([] if raw is None else raw)
    except ValidationError as exc:  # the section itself is malformed: nothing to resolve with
        raise TemplateError(pydantic_problems(exc.errors(), ("inputs",))) from None
    problems = _check_inputs(specs)
    declared = {spec.name for spec in specs}
    problems += [
        Problem(f"inputs.{name}", "the template has no such input")
        for name in given
        if name not in declared
    ]
    values: dict[str, Scalar] = {}
    pending: set[str] = set()
    secrets = {given[s.name] for s in specs if s.type == "password" and s.name in given}
    secrets |= {_text(s.default) for s in specs if s.type == "password" and s.default is not None}
    for spec in specs:
        value = given.get(spec.name, spec.default)
        reason = "no value given and no default" if value is None else None
        if value is not None:
            try:
                values[spec.name] = _typed(spec, value)
            except ValueError as exc:
                default = "default " if spec.name not in given else ""
                reason = f"{default}{_text(value)!r} is {exc}"
        if reason is not None:
            pending.add(spec.name)
            problems.append(Problem(f"inputs.{spec.name}", reason))
    return values, pending, {secret for secret in secrets if secret}, problems


def _check_inputs(specs: Sequence[InputSpec]) -> list[Problem]:
    problems = []
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.name in seen:
            problems.append(Problem(f"inputs[{i}].name", f"input {spec.name} is declared twice"))
        seen.add(spec.name)
        if spec.type == "list" and spec.options is None:
            problems.append(Problem(f"inputs[{i}].options", "a list input needs options"))
        if spec.type != "list" and spec.options is not None:
            problems.append(Problem(f"inputs[{i}].options", "only a list input has options"))
    return problems


def _typed(spec: InputSpec, value: Scalar) -> Scalar:
    """Return an input's value as its type says; raise ValueError saying what it is not."""
    if spec.type in ("text", "password"):
        return _text(value)
    if spec.type == "number":
        return _number(value)
    if spec.type == "boolean":
        return _boolean(value)
    for option in spec.options or []:
        if _text(option) == _text(value):
            return option
    choices = ", ".join(_text(option) for option in spec.options or [])
    raise ValueError(f"not one of {choices}")


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value: Scalar) -> int | float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    text = _text(value).strip()
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    if re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text):
        return float(text)
    raise ValueError("not a number")


def _boolean(value: Scalar) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).strip().lower()
    if text in TRUE | FALSE:
        return text in TRUE
    raise ValueError("not true or false")


@dataclass
class _References:
    """What each ${...} stands for: inputs, the provision's id, and a host's index."""

    values: Mapping[str, Scalar]
    pending: set[str]  # declared inputs without a value: already reported
    provision_id: str
    unresolved: set[str] = field(default_factory=set)  # paths whose references failed
    budget: int = MAX_NODES  # values left to visit: aliases (*name) must not multiply them

    def substitute(self, data: Any, loc: Loc, problems: list[Problem]) -> Any:
        """Return a copy of data with the references in every string replaced."""
        self.budget -= 1
        if self.budget < 0:
            reason = "the template is too large once its aliases (*name) are expanded"
            raise TemplateError([Problem("", reason)])
        if len(loc) > MAX_DEPTH:
            raise TemplateError([Problem("", f"the template is nested deeper than {MAX_DEPTH}")])
        if isinstance(data, dict):
            return {k: self.substitute(v, (*loc, k), problems) for k, v in data.items()}
        if isinstance(data, list):
            return [self.substitute(v, (*loc, i), problems) for i, v in enumerate(data)]
        if isinstance(data, str) and "${" in data:
            try:
                return self._expand(data, loc)
            except ValueError as exc:
                problems.append(Problem(path_text(loc), str(exc)))
                self.unresolved.add(path_text(loc))
        return data

    def _expand(self, text: str, loc: Loc) -> Scalar:
        if "${" in REFERENCE.sub("", text):
            raise ValueError("'${' without its closing '}'")
        whole = REFERENCE.fullmatch(text)
        if whole:  # the whole string: a number or boolean input keeps its type
            return self._value(whole.group(1).strip(), loc)
        return REFERENCE.sub(lambda m: _text(self._value(m.group(1).strip(), loc)), text)

    def _value(self, ref: str, loc: Loc) -> Scalar:
        if ref == "provision_id":
            return self.provision_id
        if ref == "index":
            if loc == HOST_NAME:
                return INDEX  # expanded per host
            raise ValueError("${index} is only known in hosts.name")
        kind, dot, name = ref.partition(".")
        if kind == "input" and dot:
            if name in self.values:
                return self.values[name]
            if name in self.pending:
                self.unresolved.add(path_text(loc))
                return f"${{{ref}}}"
            raise ValueError(f"${{{ref}}}: no input named {name!r} under inputs")
        raise ValueError(f"unknown reference ${{{ref}}}")


def host_specs(hosts: HostsSection, provision_id: str) -> list[HostSpec]:
    """Return one spec per host; names come from the pattern, else the address or an index."""
    addresses: list[str | None] = [*hosts.addresses] if hosts.addresses else []
    if hosts.count is not None and not addresses:
        addresses = [None] * hosts.count
    specs = []
    for index, address in enumerate(addresses):
        if hosts.name is not None:
            name = hosts.name.replace(INDEX, str(index))
        else:
            name = address or f"{provision_id}-host-{index}"
        specs.append(
            HostSpec(index=index, name=name, address=address, hypervisors=hosts.hypervisors)
        )
    return specs


def check_document(doc: Document) -> list[Problem]:
    """Return the problems pydantic cannot see: across fields and sections."""
    problems = _check_hosts(doc)
    hosts = 0 if problems else len(doc.hosts.addresses or []) or doc.hosts.count or 0
    for section in ("datastores", "networks", "images", "vm_templates"):
        names = [item.name for item in getattr(doc, section)]
        problems += _repeated(names, section + "[{i}].name", "name used twice:")
    for i, store in enumerate(doc.datastores):
        where = f"datastores[{i}].replica_host"
        if store.replica_host is None:
            continue
        if store.kind != "system":
            problems.append(Problem(where, "only a system datastore has a replica host"))
        elif hosts and store.replica_host >= hosts:
            span = f"0 to {hosts - 1}" if hosts > 1 else "only 0"
            problems.append(Problem(where, f"no host {store.replica_host}: hosts are {span}"))
    for i, net in enumerate(doc.networks):
        if int(ipaddress.IPv4Address(net.address_range.ip)) + net.address_range.size > 2**32:
            where = f"networks[{i}].address_range.size"
            problems.append(Problem(where, "the range runs past 255.255.255.255"))
    return problems + _check_images(doc)


def _check_hosts(doc: Document) -> list[Problem]:
    hosts = doc.hosts
    if hosts.count is not None and hosts.addresses is not None:
        return [Problem("hosts", "give count or addresses, not both")]
    if hosts.count is None and hosts.addresses is None:
        return [Problem("hosts", "give count (how many hosts) or addresses (onprem)")]
    if doc.provider == "onprem" and hosts.count is not None:
        return [Problem("hosts.count", "onprem hosts already exist: list them in addresses")]
    if doc.provider != "onprem" and hosts.addresses is not None:
        return [Problem("hosts.addresses", f"{doc.provider} hosts are created: give a count")]
    problems = _repeated(hosts.addresses or [], "hosts.addresses[{i}]", "listed twice:")
    problems += _repeated(hosts.hypervisors, "hosts.hypervisors[{i}]", "listed twice:")
    several = len(hosts.addresses or []) > 1 or (hosts.count or 0) > 1
    if several and hosts.name is not None and INDEX not in hosts.name:
        problems.append(Problem("hosts.name", "must contain ${index}: there are several hosts"))
    return problems


def _check_images(doc: Document) -> list[Problem]:
    image_stores = {store.name for store in doc.datastores if store.kind == "image"}
    problems = []
    for i, image in enumerate(doc.images):
        if image.datastore is not None and image.datastore not in image_stores:
            reason = f"no image datastore named {image.datastore!r} under datastores"
            problems.append(Problem(f"images[{i}].datastore", reason))
    if doc.images and not image_stores:
        problems.append(Problem("images", "images need an image datastore under datastores"))
    return problems


def _repeated(values: Iterable[str], path: str, reason: str) -> list[Problem]:
    """Return a problem for each value seen before; `path` has {i} for its index."""
    seen: set[str] = set()
    problems = []
    for i, value in enumerate(values):
        if value in seen:
            problems.append(Problem(path.format(i=i), f"{reason} {value}"))
        seen.add(value)
    return problems
