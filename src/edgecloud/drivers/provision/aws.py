"""The `aws` provider: a provision's hosts are EC2 instances, made with boto3.

For provision P, `create_hosts` makes (or finds, so a retried call resumes)::

    VPC (vpc_cidr) ─ subnet (subnet_cidr) ─ route table 0.0.0.0/0 → internet gateway
    security group: tcp 22 from ssh_cidr; tcp 179, udp 4789, udp 8472 from vpc_cidr
    key pair edgecloud-P (the front-end's public key)
    one instance per host (Name = host name, edgecloud-index = its index), and with
    public_ips one Elastic IP per host (same tags): the address the front-end uses

each tagged edgecloud-provision = P at creation. The instances' user data lets root in
with the front-end's key. AWS's tags are the source of truth: `resources` and `delete_all`
find what belongs to P by its tag. The one local record is how to reach the cloud (region,
endpoint and credentials: the other calls of the protocol get no settings)::

    <state_dir>/P/aws.json   0600, written once the cloud has accepted the credentials

With a `stand_in` provider (tests and demos: moto's instances are not machines), the
instances are made all the same, then the stand-in makes the hosts the front-end reaches:
their address, port, host key and root are the stand-in's, their resource id AWS's.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecloud.drivers import registry
from edgecloud.drivers.base import DriverError
from edgecloud.drivers.provision import system
from edgecloud.drivers.provision.api import (
    ProvidedHost,
    Provider,
    ProviderResource,
    ProvisionHost,
)
from edgecloud.drivers.provision.aws_cloud import (
    addresses,
    delete_everything,
    instance_id,
    instances,
    list_resources,
    name_of,
    release,
    state_of,
    terminate,
    wait_state,
)
from edgecloud.drivers.provision.aws_config import (
    AwsSettings,
    Cipher,
    aws_errors,
    connect,
    parse_settings,
    read_record,
    write_record,
)
from edgecloud.drivers.provision.aws_network import (
    INDEX_TAG,
    Network,
    ensure_network,
    tag_spec,
    tagged,
    tags_of,
)
from edgecloud.drivers.provision.layout import check_id, make_dir

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_ec2.type_defs import AddressTypeDef, InstanceTypeDef

__all__ = ["AwsProvider"]

HOST_ROOT = "/var/lib/edgecloud"
SSH_PORT = 22


def user_data(authorized_key: str) -> str:
    """The instances' first-boot script: root logs in with the front-end's key only.

    It replaces root's authorized_keys (cloud images put a "log in as ubuntu" key there)
    and allows root login by key where sshd_config forbids it.
    """
    return f"""#!/bin/sh
# edgecloud: let the front-end in as root, by key (written by the aws provider)
umask 077
mkdir -p /root/.ssh
printf '%s\\n' {shlex.quote(authorized_key)} > /root/.ssh/authorized_keys
chmod 700 /root/.ssh
chmod 600 /root/.ssh/authorized_keys
if grep -qs '^Include /etc/ssh/sshd_config.d/' /etc/ssh/sshd_config; then
  echo 'PermitRootLogin prohibit-password' > /etc/ssh/sshd_config.d/00-edgecloud.conf
else
  sed -i 's/^#*PermitRootLogin.*/PermitRootLogin prohibit-password/' /etc/ssh/sshd_config
fi
systemctl reload ssh 2>/dev/null || systemctl reload sshd 2>/dev/null || \\
  service ssh reload 2>/dev/null || true
"""


class AwsProvider:
    """A `Provider` whose hosts are EC2 instances (any EC2-compatible endpoint).

    Calls on one state directory are serialised by a lock file in it; every call is
    idempotent, and AWS's errors come back as `DriverError` carrying the cloud's code and
    message: "aws: <Operation>: <Code>: <Message>".
    """

    running_timeout = 600.0  # seconds for instances to run, or to be terminated
    dependency_timeout = 300.0  # seconds to retry a delete AWS refuses as DependencyViolation

    def __init__(
        self,
        state_dir: Path | str,
        stand_in: Provider | None = None,
        *,
        cipher: Cipher | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.stand_in = stand_in
        self.cipher = cipher
        other = getattr(stand_in, "state_dir", None)
        if other is not None and Path(other).absolute() == self.state_dir:
            raise DriverError("aws provider: the stand-in needs a state directory of its own")
        self._clients: dict[AwsSettings, EC2Client] = {}

    def __repr__(self) -> str:
        return f"AwsProvider({self.state_dir}, stand_in={self.stand_in!r})"

    # --- the Provider protocol -----------------------------------------------------

    def create_hosts(
        self,
        provision_id: str,
        hosts: Sequence[ProvisionHost],
        settings: Mapping[str, Any],
        authorized_key: str,
    ) -> list[ProvidedHost]:
        """Make the network, the instances and their addresses (or find them made)."""
        check_id(provision_id)
        wanted = _check_hosts(hosts)
        key = authorized_key.strip()
        if not key or "\n" in key or len(key.split()) < 2:
            raise DriverError("authorized_key must be one public key line")
        parsed = parse_settings(settings)
        directory = self.state_dir / provision_id
        with self._locked(), aws_errors():
            recorded = read_record(directory, self.cipher)
            if recorded is not None and (recorded.region, recorded.endpoint_url) != (
                parsed.region,
                parsed.endpoint_url,
            ):
                raise DriverError(
                    f"aws: provision {provision_id} is in region {recorded.region} at "
                    f"{recorded.endpoint_url or 'AWS'}: its region and endpoint cannot change"
                )
            ec2 = self._client(parsed)
            # The first call proves the credentials before anything is made or recorded.
            ec2.describe_vpcs(Filters=tagged(provision_id))
            if recorded != parsed:
                write_record(directory, parsed, self.cipher)
            network = ensure_network(ec2, provision_id, parsed, key)
            made = self._ensure_instances(ec2, provision_id, parsed, network, wanted, key)
            if parsed.public_ips:
                public = self._ensure_addresses(ec2, provision_id, wanted, made)
            else:
                public = {name: i.get("PrivateIpAddress", "") for name, i in made.items()}
        if self.stand_in is None:
            return [
                ProvidedHost(name, public[name], SSH_PORT, "", HOST_ROOT, instance_id(made[name]))
                for _, name in wanted
            ]
        stand_ins = {h.name: h for h in self.stand_in.create_hosts(provision_id, hosts, {}, key)}
        return [
            ProvidedHost(
                name,
                stand_ins[name].address,
                stand_ins[name].port,
                stand_ins[name].host_key,
                stand_ins[name].root,
                instance_id(made[name]),
                config=stand_ins[name].config,
            )
            for _, name in wanted
        ]

    def delete_hosts(self, provision_id: str, names: Sequence[str]) -> None:
        """Release these hosts' Elastic IPs and terminate their instances (and wait)."""
        check_id(provision_id)
        gone = {str(name) for name in names}
        with self._locked():
            ec2 = self._recorded_client(provision_id)
            if ec2 is not None and gone:
                with aws_errors():
                    ids = [
                        instance_id(i) for i in instances(ec2, provision_id) if name_of(i) in gone
                    ]
                    theirs = [
                        a
                        for a in addresses(ec2, provision_id)
                        if name_of(a) in gone or a.get("InstanceId") in ids
                    ]
                    release(ec2, theirs)
                    terminate(ec2, ids, self.running_timeout)
        if self.stand_in is not None:
            self.stand_in.delete_hosts(provision_id, names)

    def resources(self, provision_id: str) -> list[ProviderResource]:
        """What AWS has under the provision's tag (and what the stand-in holds)."""
        check_id(provision_id)
        found: list[ProviderResource] = []
        ec2 = self._recorded_client(provision_id)
        if ec2 is not None:
            with aws_errors():
                found = list_resources(ec2, provision_id)
        if self.stand_in is not None:
            found += self.stand_in.resources(provision_id)
        return found

    def delete_all(self, provision_id: str) -> list[str]:
        """Remove everything AWS has under the provision's tag, then the record (and what
        the stand-in has). A provision whose create never reached AWS has nothing there."""
        check_id(provision_id)
        done: list[str] = []
        try:
            with self._locked():
                ec2 = self._recorded_client(provision_id)
                if ec2 is not None:
                    with aws_errors():
                        done += delete_everything(
                            ec2, provision_id, self.running_timeout, self.dependency_timeout
                        )
                directory = self.state_dir / provision_id
                if directory.exists():
                    shutil.rmtree(directory)
                    done.append(f"state {directory}")
        finally:
            if self.stand_in is not None:
                done += self.stand_in.delete_all(provision_id)
        return done

    # --- instances and addresses -------------------------------------------------------

    def _ensure_instances(
        self,
        ec2: EC2Client,
        provision_id: str,
        settings: AwsSettings,
        network: Network,
        wanted: list[tuple[int, str]],
        authorized_key: str,
    ) -> dict[str, InstanceTypeDef]:
        """Run the hosts' instances that are not there; wait until all run; by name."""
        by_name: dict[str, InstanceTypeDef] = {}
        extra: list[str] = []
        for found in instances(ec2, provision_id):
            if state_of(found) == "shutting-down":
                continue
            if name_of(found) in by_name:  # two of a host (made by hand?): keep one
                extra.append(instance_id(found))
            else:
                by_name[name_of(found)] = found
        terminate(ec2, extra, 0)
        indexes = {tags_of(i).get(INDEX_TAG): name for name, i in by_name.items()}
        for index, name in wanted:
            if name in by_name and tags_of(by_name[name]).get(INDEX_TAG) != str(index):
                other = tags_of(by_name[name]).get(INDEX_TAG)
                raise DriverError(f"aws: host {name} of provision {provision_id} has index {other}")
            if indexes.get(str(index), name) != name:
                raise DriverError(
                    f"aws: index {index} of provision {provision_id} is {indexes[str(index)]}"
                )
        ids: dict[str, str] = {}
        for index, name in wanted:
            if name not in by_name:
                ids[name] = self._run(
                    ec2, provision_id, settings, network, index, name, authorized_key
                )
                continue
            ids[name] = instance_id(by_name[name])
            state = state_of(by_name[name])
            if state == "stopping":
                wait_state(ec2, [ids[name]], "stopped", self.running_timeout)
            if state in ("stopping", "stopped"):
                ec2.start_instances(InstanceIds=[ids[name]])
        running = wait_state(ec2, list(ids.values()), "running", self.running_timeout)
        return {name: running[ids[name]] for _, name in wanted}

    def _run(
        self,
        ec2: EC2Client,
        provision_id: str,
        settings: AwsSettings,
        network: Network,
        index: int,
        name: str,
        authorized_key: str,
    ) -> str:
        """Run host `name`'s instance; return its id."""
        placement: dict[str, Any] = {}
        if settings.availability_zone:
            placement["Placement"] = {"AvailabilityZone": settings.availability_zone}
        made = ec2.run_instances(
            ImageId=settings.ami,
            InstanceType=settings.instance_type,  # type: ignore[arg-type]  # any, metal too
            MinCount=1,
            MaxCount=1,
            KeyName=network.key_name,
            SubnetId=network.subnet_id,
            SecurityGroupIds=[network.security_group_id],
            UserData=user_data(authorized_key),
            # The same token on botocore's retries: one instance even if a reply was lost.
            ClientToken=uuid.uuid4().hex,
            TagSpecifications=[
                *tag_spec("instance", provision_id, name, index),
                *tag_spec("volume", provision_id, name, index),
            ],
            **placement,
        )
        return instance_id(made["Instances"][0])

    def _ensure_addresses(
        self,
        ec2: EC2Client,
        provision_id: str,
        wanted: list[tuple[int, str]],
        made: Mapping[str, InstanceTypeDef],
    ) -> dict[str, str]:
        """Give each host an Elastic IP (its own, found by its Name tag); return them."""
        by_name: dict[str, AddressTypeDef] = {}
        for address in addresses(ec2, provision_id):
            by_name.setdefault(name_of(address), address)
        public: dict[str, str] = {}
        for index, name in wanted:
            found = by_name.get(name)
            if found is None:
                new = ec2.allocate_address(
                    Domain="vpc",
                    TagSpecifications=tag_spec("elastic-ip", provision_id, name, index),
                )
                allocation, public[name], current = new["AllocationId"], new["PublicIp"], None
            else:
                allocation, public[name] = found["AllocationId"], found["PublicIp"]
                current = found.get("InstanceId")
            target = instance_id(made[name])
            if current != target:
                ec2.associate_address(
                    AllocationId=allocation, InstanceId=target, AllowReassociation=True
                )
        return public

    # --- clients and locks -----------------------------------------------------------

    def _client(self, settings: AwsSettings) -> EC2Client:
        if settings not in self._clients:
            self._clients[settings] = connect(settings)
        return self._clients[settings]

    def _recorded_client(self, provision_id: str) -> EC2Client | None:
        """A client for where the provision's resources are (None: it never reached AWS)."""
        recorded = read_record(self.state_dir / provision_id, self.cipher)
        return None if recorded is None else self._client(recorded)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        make_dir(self.state_dir)
        with system.locked(self.state_dir / ".aws.lock"):
            yield


def _check_hosts(hosts: Sequence[ProvisionHost]) -> list[tuple[int, str]]:
    wanted = [(int(h.index), str(h.name)) for h in hosts]
    for index, name in wanted:
        if not name or len(name) > 255 or not name.isprintable():
            raise DriverError(f"host name {name!r}: 1 to 255 printable characters")
        if index < 0:
            raise DriverError(f"host {name}: index {index} is negative")
    if len({i for i, _ in wanted}) != len(wanted) or len({n for _, n in wanted}) != len(wanted):
        raise DriverError("host indexes and names must be unique")
    return wanted


registry.register("provision", "aws", AwsProvider)
