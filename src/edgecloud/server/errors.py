"""Errors the services raise; the REST and XML-RPC adapters map them onto their wire forms."""

from __future__ import annotations


class ApiError(Exception):
    """Base of every error a client can cause; never a 5xx."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(ApiError):
    """A field of the request has a value the service refuses."""

    status = 422
    code = "invalid"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", field=field)
        self.reason = reason


class InvalidFields(InvalidInput):
    """Several fields refused at once (a provision template): each with its reason."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        first, reason = fields[0]
        super().__init__(first, reason)
        self.message = "; ".join(f"{f}: {r}" for f, r in fields[:5])
        self.fields = [{"field": f, "reason": r} for f, r in fields]


class NotAuthenticated(ApiError):
    """No credentials, or wrong ones."""

    status = 401
    code = "not_authenticated"


class Forbidden(ApiError):
    """The caller is known but may not do this."""

    status = 403
    code = "forbidden"


class NotFound(ApiError):
    """The object does not exist, or the caller may not see it."""

    status = 404
    code = "not_found"


class Conflict(ApiError):
    """The request clashes with the current state: duplicate name, stale version, in use."""

    status = 409
    code = "conflict"


class QuotaExceeded(ApiError):
    """Granting the request would go over a user's or group's quota."""

    status = 403
    code = "quota_exceeded"


class Exhausted(ApiError):
    """A pool (address range, capacity) has nothing left to give."""

    status = 409
    code = "exhausted"


class HostFailed(ApiError):
    """A host could not do what was asked (unreachable, or its driver refused)."""

    status = 409
    code = "host_failed"
