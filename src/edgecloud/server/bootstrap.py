"""First start: the admin user, built-in groups, default cluster, datastores and ACLs."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgecloud.server.auth.passwords import hash_password, random_password
from edgecloud.server.db.models import (
    Cluster,
    ClusterDatastore,
    Datastore,
    Group,
    SecurityGroup,
    User,
    UserGroup,
)
from edgecloud.server.services.acls import GROUP_ACLS, add_rule

ADMIN_NAME = "admin"
OPEN_RULES = [
    {"protocol": "ALL", "direction": "outbound"},
    {"protocol": "ALL", "direction": "inbound"},
]


def bootstrap(session: Session, auth_file: Path) -> str | None:
    """Create the built-in objects once; return the new admin password, or None if done."""
    if session.scalar(select(User.id).where(User.id == 0)) is not None:
        return None
    session.add_all([Group(id=0, name="oneadmin"), Group(name="users")])
    session.flush()
    password = random_password()
    session.add(User(id=0, name=ADMIN_NAME, password_hash=hash_password(password), group_id=0))
    session.flush()
    session.add(UserGroup(user_id=0, group_id=0))
    owned = {"owner_id": 0, "group_id": 0}
    session.add(Cluster(id=0, name="default", perms=0o644, **owned))
    session.add(SecurityGroup(id=0, name="default", rules=OPEN_RULES, perms=0o644, **owned))
    session.flush()
    system = Datastore(id=0, name="system", kind="system", perms=0o644, **owned)
    session.add(system)
    session.flush()
    images = Datastore(name="default", kind="image", transfer="ssh", perms=0o644, **owned)
    files = Datastore(name="files", kind="file", transfer="ssh", perms=0o644, **owned)
    session.add_all([images, files])
    session.flush()
    for ds in (system, images, files):
        session.add(ClusterDatastore(cluster_id=0, datastore_id=ds.id))
    for rule in GROUP_ACLS:
        add_rule(session, rule.format(gid=1))
    session.flush()
    write_auth_file(auth_file, ADMIN_NAME, password)
    return password


def write_auth_file(path: Path, user: str, password: str) -> None:
    """Write OpenNebula's one_auth format ('user:password'), readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{user}:{password}\n")
    path.chmod(0o600)
