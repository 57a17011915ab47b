"""The SDK's provisions: create from a template, operations, the step log, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from edgecloud.api import provision
from edgecloud.client.resources import Resource

SETTLED = ("RUNNING", "ERROR", "DONE")


class Provisions(Resource[provision.Provision]):
    """Provisions: whole edge clusters made on a provider from a template."""

    def create(  # type: ignore[override]
        self,
        *,
        template: str | Path | None = None,
        example: str | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> provision.Provision:
        """Create a provision from a template's text (or file) or a shipped example."""
        return self._one(
            self.client.request("POST", self.path, json=_body(template, example, inputs))
        )

    def validate(
        self,
        *,
        template: str | Path | None = None,
        example: str | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Resolve a template with its inputs on the front-end; nothing is created."""
        body = _body(template, example, inputs)
        answer = self.client.request("POST", f"{self.path}/validate", json=body)
        return dict(answer["template"])

    def declared_inputs(
        self, *, template: str | Path | None = None, example: str | None = None
    ) -> list[provision.ProvisionInputInfo]:
        """The inputs a template declares (name, type, default, options), before any value."""
        body = _body(template, example, None)
        body.pop("inputs")
        data = self.client.request("POST", f"{self.path}/inputs", json=body)
        return [provision.ProvisionInputInfo.model_validate(x) for x in data]

    def log(self, obj_id: int) -> list[provision.ProvisionStepLog]:
        """Every step run of the provision with its log, oldest first."""
        data = self.client.request("GET", f"{self.path}/{obj_id}/log")
        return [provision.ProvisionStepLog.model_validate(x) for x in data]

    def scale(self, obj_id: int, hosts: int) -> provision.Provision:
        """Add or remove hosts."""
        return self._post(obj_id, "scale", {"hosts": hosts})

    def configure(self, obj_id: int) -> provision.Provision:
        """Run the hosts' configuration again."""
        return self._post(obj_id, "configure")

    def retry(self, obj_id: int) -> provision.Provision:
        """Resume a failed operation at the step that failed."""
        return self._post(obj_id, "retry")

    def delete(self, obj_id: int, *, force: bool = False) -> provision.Provision:  # type: ignore[override]
        """Delete the provision (202: it goes DELETING, then DONE)."""
        params = {"force": "true"} if force else None
        return self._one(self.client.request("DELETE", f"{self.path}/{obj_id}", params=params))

    def wait(
        self,
        obj_id: int,
        states: Collection[str] = SETTLED,
        *,
        timeout: float = 600.0,
        on_change: Callable[[provision.Provision], None] | None = None,
    ) -> provision.Provision:
        """Poll until the provision is in one of `states`; return it."""
        deadline = time.monotonic() + timeout
        last: tuple[str, str] | None = None
        while True:
            found = self.get(obj_id)
            if on_change is not None and (found.state_name, found.step) != last:
                on_change(found)
                last = (found.state_name, found.step)
            if found.state_name in states:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"provision {obj_id} is {found.state_name} ({found.step}) after {timeout:.0f} s"
                )
            time.sleep(0.25)

    def _post(self, obj_id: int, action: str, body: Any = None) -> provision.Provision:
        return self._one(self.client.request("POST", f"{self.path}/{obj_id}/{action}", json=body))


def _body(
    template: str | Path | None, example: str | None, inputs: dict[str, Any] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": {k: str(v) for k, v in (inputs or {}).items()}}
    if isinstance(template, Path):
        template = template.read_text()
    if template is not None:
        body["template"] = template
    if example is not None:
        body["example"] = example
    return body
