"""Pool info filters as OpenNebula takes them: who (-4 .. uid), an id range or a page.

    filter_flag  -4: the caller's primary group's objects, -3: the caller's, -2: all,
                 -1: the caller's and their groups', >= 0: that user's
    start_id     >= -1: the range's first id (-1: the smallest); < -1: the offset of a page
    end_id       >= -1: the range's last id (-1: the largest); < -1: minus the page size

Always within what the caller may see (the same condition as the REST lists).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, or_, true

from edgecloud.server.auth.access import KIND_MODEL, Principal
from edgecloud.server.xmlrpc.core import XML_RPC_API, OneError

MAX_PAGE = 100_000
S = TypeVar("S", bound="Select[Any]")


@dataclass(frozen=True)
class PoolFilter:
    """Who, and which ids or which page."""

    flag: int
    start: int
    end: int

    def __post_init__(self) -> None:
        if self.flag < -4:
            raise OneError(XML_RPC_API, f"filter flag {self.flag} is not -4, -3, -2, -1 or a uid")

    @property
    def paged(self) -> bool:
        """Whether start/end are an offset and a page size."""
        return self.end < -1

    def apply(self, stmt: S, kind: str, principal: Principal) -> S:
        """Add the visibility, owner and id conditions, the order and the page."""
        model = KIND_MODEL[kind]
        stmt = stmt.where(principal.visible(kind), self.who(model, principal))
        if self.paged:
            offset = -self.start if self.start < -1 else max(self.start, 0)
            return stmt.order_by(model.id).offset(offset).limit(min(-self.end, MAX_PAGE))
        if self.start >= 0:
            stmt = stmt.where(model.id >= self.start)
        if self.end >= 0:
            stmt = stmt.where(model.id <= self.end)
        return stmt.order_by(model.id)

    def who(self, model: Any, principal: Principal) -> ColumnElement[bool]:
        """The owner condition of the flag."""
        if self.flag == -4:
            return model.group_id == principal.group_id  # type: ignore[no-any-return]
        if self.flag == -3:
            return model.owner_id == principal.user_id  # type: ignore[no-any-return]
        if self.flag == -1:
            return or_(model.owner_id == principal.user_id, model.group_id.in_(principal.group_ids))
        if self.flag >= 0:
            return model.owner_id == self.flag  # type: ignore[no-any-return]
        return and_(true())
