"""The error the SDK raises for any non-2xx answer."""

from __future__ import annotations


class EdgecloudError(Exception):
    """The server refused a request; `message` names the field and the reason."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str = "",
        field: str | None = None,
        request_id: str = "",
        fields: list[dict[str, str]] | None = None,
    ) -> None:
        """Keep the parts of the server's error body."""
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.code = code
        self.field = field
        self.request_id = request_id
        self.fields = fields or ([{"field": field, "reason": message}] if field else [])
