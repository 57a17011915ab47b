"""All tables, imported in one place so the metadata is complete."""

from edgecloud.server.db.base import Base, Owned, now
from edgecloud.server.db.identity import AclRuleRow, Group, Quota, Token, User, UserGroup
from edgecloud.server.db.infra import Cluster, ClusterDatastore, ClusterVnet, Datastore, Host
from edgecloud.server.db.network import AddressRange, Lease, SecurityGroup, Vnet
from edgecloud.server.db.provision import Provision, ProvisionStep
from edgecloud.server.db.workload import (
    HostSample,
    Image,
    Operation,
    OperationStep,
    Vm,
    VmHistory,
    VmSample,
    VmTemplate,
)

__all__ = [
    "AclRuleRow",
    "AddressRange",
    "Base",
    "Cluster",
    "ClusterDatastore",
    "ClusterVnet",
    "Datastore",
    "Group",
    "Host",
    "HostSample",
    "Image",
    "Lease",
    "Operation",
    "OperationStep",
    "Owned",
    "Provision",
    "ProvisionStep",
    "Quota",
    "SecurityGroup",
    "Token",
    "User",
    "UserGroup",
    "Vm",
    "VmHistory",
    "VmSample",
    "VmTemplate",
    "Vnet",
    "now",
]


def _never_reuse_ids() -> None:
    # OpenNebula never hands out an id twice; SQLite needs AUTOINCREMENT for that.
    for table in Base.metadata.tables.values():
        pk = list(table.primary_key.columns)
        if len(pk) == 1 and pk[0].autoincrement is True:
            table.dialect_options["sqlite"]["autoincrement"] = True


_never_reuse_ids()
