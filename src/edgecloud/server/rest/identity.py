"""REST routes of login, users, groups, ACL rules, quotas and the version."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Header, Response
from sqlalchemy.orm import Session

from edgecloud import __version__
from edgecloud.api import identity as wire
from edgecloud.api.common import LoginRequest, LoginResponse, Version
from edgecloud.server.auth.authn import issue_token, revoke_token
from edgecloud.server.db.models import User
from edgecloud.server.errors import Forbidden, NotAuthenticated
from edgecloud.server.rest.crud import ERRORS, IdPath, crud_router
from edgecloud.server.rest.deps import FrontEnd, FrontEndDep, PrincipalDep
from edgecloud.server.services import acls, quotas, users

USERS, GROUPS = users.Users(), users.Groups()


def routers() -> list[APIRouter]:
    """Return the routers of this module."""
    auth = APIRouter(tags=["auth"], responses=ERRORS)
    user_router = crud_router(
        USERS,
        path="/users",
        create=wire.UserCreate,
        update=wire.UserUpdate,
        after_write=_forget_principals,
    )
    group_router = crud_router(
        GROUPS,
        path="/groups",
        create=wire.GroupCreate,
        update=wire.GroupUpdate,
        after_write=_forget_principals,
    )
    acl_router = APIRouter(prefix="/acls", tags=["acls"], responses=ERRORS)

    @auth.post("/login", response_model=LoginResponse, summary="Get a bearer token")
    def login(
        frontend: FrontEndDep, principal: PrincipalDep, body: LoginRequest | None = None
    ) -> LoginResponse:
        body = body or LoginRequest()
        ttl = body.ttl_seconds or frontend.settings.token_ttl_seconds
        with frontend.store.write() as session:
            user = session.get(User, principal.user_id)
            if user is None:
                raise NotAuthenticated("user vanished")
            token, expires = issue_token(session, user, ttl_seconds=ttl, name=body.name)
        return LoginResponse(token=token, expires_at=expires, user_id=user.id, user_name=user.name)

    @auth.post("/logout", status_code=204, summary="Revoke the bearer token used")
    def logout(
        frontend: FrontEndDep,
        principal: PrincipalDep,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() == "bearer":
            with identity_write(frontend) as session:
                revoke_token(session, token.strip())
        return Response(status_code=204)

    @auth.get("/version", response_model=Version, summary="Front-end version")
    def version(frontend: FrontEndDep, principal: PrincipalDep) -> Version:
        return Version(version=__version__, store=frontend.store.dialect)

    @auth.get("/me", response_model=wire.User, summary="The authenticated user")
    def me(frontend: FrontEndDep, principal: PrincipalDep) -> wire.User:
        with frontend.store.read() as session:
            return USERS.get(session, principal, principal.user_id)

    # --- users (CRUD routes from crud_router, plus these) ---------------------------
    @user_router.post("/{obj_id}/password", status_code=204, summary="Set a new password")
    def set_password(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: wire.PasswordChange
    ) -> Response:
        with identity_write(frontend) as session:
            users.set_password(session, principal, obj_id, body)
        return Response(status_code=204)

    @user_router.post("/{obj_id}/groups", response_model=wire.User, summary="Add to a group")
    def add_group(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: wire.GroupMembership
    ) -> wire.User:
        with identity_write(frontend) as session:
            return users.add_membership(session, principal, obj_id, body.group_id)

    @user_router.delete(
        "/{obj_id}/groups/{group_id}", response_model=wire.User, summary="Remove from a group"
    )
    def remove_group(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, group_id: IdPath
    ) -> wire.User:
        with identity_write(frontend) as session:
            return users.remove_membership(session, principal, obj_id, group_id)

    @user_router.get("/{obj_id}/quota", response_model=wire.Quota, summary="Show a user's quota")
    def user_quota(frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath) -> wire.Quota:
        with frontend.store.read() as session:
            USERS.get(session, principal, obj_id)
            return quotas.show(session, "user", obj_id)

    @user_router.put("/{obj_id}/quota", response_model=wire.Quota, summary="Set a user's quota")
    def set_user_quota(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: wire.QuotaLimits
    ) -> wire.Quota:
        _admin(principal.is_admin)
        with frontend.store.write() as session:
            return quotas.set_limits(session, "user", obj_id, body)

    # --- groups ------------------------------------------------------------------
    @group_router.get("/{obj_id}/quota", response_model=wire.Quota, summary="Show a group's quota")
    def group_quota(frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath) -> wire.Quota:
        with frontend.store.read() as session:
            GROUPS.get(session, principal, obj_id)
            return quotas.show(session, "group", obj_id)

    @group_router.put("/{obj_id}/quota", response_model=wire.Quota, summary="Set a group's quota")
    def set_group_quota(
        frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath, body: wire.QuotaLimits
    ) -> wire.Quota:
        _admin(principal.is_admin)
        with frontend.store.write() as session:
            return quotas.set_limits(session, "group", obj_id, body)

    # --- ACL rules -----------------------------------------------------------------
    @acl_router.get("", response_model=list[wire.Acl], summary="List ACL rules")
    def list_acls(frontend: FrontEndDep, principal: PrincipalDep) -> list[wire.Acl]:
        with frontend.store.read() as session:
            return acls.list_all(session, principal)

    @acl_router.post("", response_model=wire.Acl, status_code=201, summary="Add an ACL rule")
    def create_acl(
        frontend: FrontEndDep, principal: PrincipalDep, body: wire.AclCreate
    ) -> wire.Acl:
        with identity_write(frontend) as session:
            return acls.create(session, principal, body)

    @acl_router.get("/{obj_id}", response_model=wire.Acl, summary="Show an ACL rule")
    def get_acl(frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath) -> wire.Acl:
        with frontend.store.read() as session:
            return acls.get(session, principal, obj_id)

    @acl_router.delete("/{obj_id}", status_code=204, summary="Remove an ACL rule")
    def delete_acl(frontend: FrontEndDep, principal: PrincipalDep, obj_id: IdPath) -> Response:
        with identity_write(frontend) as session:
            acls.delete(session, principal, obj_id)
        return Response(status_code=204)

    return [auth, user_router, group_router, acl_router]


def _forget_principals(frontend: FrontEnd) -> None:
    frontend.authenticator.cache.clear()


@contextmanager
def identity_write(frontend: FrontEnd) -> Iterator[Session]:
    """Open a write unit of work that changes who may do what; forget cached principals."""
    with frontend.store.write() as session:
        yield session
    frontend.authenticator.cache.clear()


def _admin(is_admin: bool) -> None:
    if not is_admin:
        raise Forbidden("only admins can set quotas")
