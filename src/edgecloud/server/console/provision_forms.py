"""The create form of provisions: a shipped example or a pasted template, then its inputs.

Two steps: "Check" posts the template to the API's validate route and re-renders the form
with one field per input the template declares (or the API's errors, each at the field its
YAML path names); "Create" posts the template and the inputs to the API. The API has the
last word on everything, the inputs to ask for too: the console never reads the template.
They come in the `validate` answer (`inputs_declared`); before sending the values typed, or
when the API refuses the template (its inputs without values are errors too), they come
from `POST /provisions/inputs`, which reads only the template's `inputs` section.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from edgecloud.api.provision import ProvisionInputInfo
from edgecloud.server.console.api import ApiError
from edgecloud.server.console.common import ViewerDep
from edgecloud.server.console.render import page
from edgecloud.server.console.session import Viewer, checked_form

INPUT_PATH = re.compile(r"(?:template\.)?inputs\.([A-Za-z_][A-Za-z0-9_\-]{0,63})")
INPUT_TYPES = {"text": "text", "number": "number", "password": "password"}


@lru_cache(maxsize=1)
def shipped_examples() -> tuple[tuple[str, str], ...]:
    """The templates shipped with edgecloud: (name, what it is: its first comment)."""
    folder = resources.files("edgecloud.provision") / "examples"
    found = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".yaml"):
            continue
        comment = []
        for line in entry.read_text().splitlines():
            if not line.startswith("#") or line.strip() == "#":
                break
            comment.append(line.lstrip("#").strip())
        about = re.split(r"[:.](?:\s|$)", " ".join(comment), maxsplit=1)[0]
        found.append((entry.name[: -len(".yaml")], about))
    return tuple(sorted(found))


@lru_cache(maxsize=16)
def example_text(name: str) -> str:
    """The text of a shipped example ("" for a name that is not one)."""
    if name not in dict(shipped_examples()):
        return ""
    return (resources.files("edgecloud.provision") / "examples" / f"{name}.yaml").read_text()


async def declared_inputs(who: Viewer, source: dict[str, str]) -> list[ProvisionInputInfo]:
    """The inputs the API says the template declares (none when it cannot read them: the
    validate or create call that follows says why)."""
    if not source:
        return []
    try:
        found = await who.api.post("/provisions/inputs", source)
    except ApiError as exc:
        if exc.status != 422:
            raise
        return []
    return _infos(found)


def _infos(data: list[dict[str, Any]]) -> list[ProvisionInputInfo]:
    return [ProvisionInputInfo.model_validate(item) for item in data]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def given_inputs(form: dict[str, str], specs: list[ProvisionInputInfo]) -> dict[str, str]:
    """The input values the form gives (none before the inputs were shown)."""
    if form.get("stage") != "inputs":
        return {}
    given: dict[str, str] = {}
    for spec in specs:
        key = f"input.{spec.name}"
        if spec.type == "boolean":
            given[spec.name] = "true" if form.get(key) else "false"
            continue
        value = form.get(key)
        if value is None or (value == "" and (not spec.has_default or spec.type == "password")):
            continue  # left empty: the default, or the API says it is missing
        given[spec.name] = value
    return given


def input_fields(
    form: dict[str, str], specs: list[ProvisionInputInfo], errors: dict[str, str]
) -> list[dict[str, Any]]:
    """One form field per declared input: its HTML type, value, hint and error."""
    shown = form.get("stage") == "inputs"
    fields = []
    for spec in specs:
        key, fid = f"input.{spec.name}", f"input-{spec.name}"
        default = _text(spec.default)
        value = form.get(key, default) if shown else default
        described = [f"{fid}-hint"] if spec.description else []
        described += [f"{fid}-error"] if spec.name in errors else []
        fields.append(
            {
                "name": spec.name,
                "key": key,
                "id": fid,
                "type": spec.type,
                "html_type": INPUT_TYPES.get(spec.type, "text"),
                "description": spec.description,
                "options": [_text(o) for o in spec.options or []],
                "value": "" if spec.type == "password" else value,
                "checked": bool(form.get(key)) if shown else default == "true",
                "required": not spec.has_default and spec.type != "boolean",
                "has_default": spec.has_default,
                "error": errors.get(spec.name, ""),
                "described": " ".join(described),
            }
        )
    return fields


def split_errors(
    exc: ApiError, specs: list[ProvisionInputInfo], *, first_check: bool
) -> tuple[dict[str, str], str, list[dict[str, str]], str]:
    """The API's errors by where they show: inputs, the example, the template, the top.

    At the first check no value was sent: an input without a default is only to fill in.
    """
    names = {spec.name for spec in specs}
    to_fill = {spec.name for spec in specs if not spec.has_default} if first_check else set()
    by_input: dict[str, str] = {}
    example_error, top = "", ""
    template_errors: list[dict[str, str]] = []
    for item in exc.fields:
        path, reason = str(item.get("field", "")), str(item.get("reason", ""))
        named = INPUT_PATH.fullmatch(path)
        if named and named.group(1) in names:
            if named.group(1) not in to_fill:
                by_input.setdefault(named.group(1), reason)
        elif path == "example":
            example_error = example_error or reason
        elif path == "template" or path.startswith(("template.", "inputs")):
            where = path.removeprefix("template").removeprefix(".")
            template_errors.append({"path": where, "reason": reason})
        elif not top:
            top = f"{path}: {reason}" if path else reason
    if not exc.fields:
        top = exc.message
    return by_input, example_error, template_errors, top


def routes(router: APIRouter) -> None:
    """Add the create form."""

    @router.get("/provisions/new")
    async def new_provision(
        who: ViewerDep,
        example: Annotated[str, Query(max_length=64)] = "",
        copy: Annotated[str, Query(max_length=64)] = "",
    ) -> Response:
        form = {"example": example if example_text(example) else "", "template": example_text(copy)}
        return _form(who, form, [])

    @router.post("/provisions/new")
    async def create_provision(request: Request, who: ViewerDep) -> Response:
        form = await checked_form(request, who)
        example, text = form.get("example", "").strip(), form.get("template", "")
        source: dict[str, str] = {}
        if text.strip():
            source["template"] = text
        if example:
            source["example"] = example
        typed = form.get("stage") == "inputs"  # the inputs were shown: send what they hold
        specs = await declared_inputs(who, source) if typed else None
        body: dict[str, Any] = {**source, "inputs": given_inputs(form, specs or [])}
        creating = form.get("action") == "create" and typed
        try:
            if creating:
                made = await who.api.post("/provisions", body)
                return RedirectResponse(f"/provisions/{made['id']}?done=created", status_code=303)
            answer = await who.api.post("/provisions/validate", body)
        except ApiError as exc:
            if specs is None:
                specs = await declared_inputs(who, source)
            first = not typed
            found = split_errors(exc, specs, first_check=first)
            by_input, example_error, template_errors, top = found
            if first and not (example_error or template_errors or top or by_input):
                return _form(who, form, specs, stage="inputs")  # only inputs to fill in
            return _form(
                who,
                form,
                specs,
                stage="inputs" if specs or form.get("stage") else "",
                status=exc.status,
                error=top,
                example_error=example_error,
                template_errors=template_errors,
                input_errors=by_input,
            )
        declared = _infos(answer["inputs_declared"])
        return _form(who, form, declared, stage="inputs", resolved=answer["template"])


def _form(
    who: Viewer,
    form: dict[str, str],
    specs: list[ProvisionInputInfo],
    *,
    stage: str = "",
    status: int = 200,
    error: str = "",
    example_error: str = "",
    template_errors: list[dict[str, str]] | None = None,
    input_errors: dict[str, str] | None = None,
    resolved: dict[str, Any] | None = None,
) -> Response:
    example = form.get("example", "")
    template_errors = template_errors or []
    described = ["template-hint"] + [f"template-error-{i}" for i in range(len(template_errors))]
    return page(
        who,
        "provision_new.html",
        status=status,
        title="New provision",
        examples=shipped_examples(),
        example=example,
        example_text=example_text(example),
        template_text=form.get("template", ""),
        stage=stage,
        inputs=input_fields(form, specs, input_errors or {}),
        error=error,
        example_error=example_error,
        template_errors=template_errors,
        template_described=" ".join(described),
        resolved=resolved,
    )
