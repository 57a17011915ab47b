"""Structured logs carry the request id; JSON lines parse."""

from __future__ import annotations

import json
import logging

import pytest

from edgecloud.server import logs

pytestmark = pytest.mark.unit


def test_json_log_line_has_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("json", "INFO")
    token = logs.request_id.set("rid-42")
    try:
        logging.getLogger("edgecloud.access").info(
            "GET /x 200", extra={"status": 200, "path": "/x"}
        )
    finally:
        logs.request_id.reset(token)
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["request_id"] == "rid-42" and line["status"] == 200 and line["msg"] == "GET /x 200"


def test_text_log_line_has_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("text", "INFO")
    logging.getLogger("edgecloud.server").info("hello")
    assert "[-] hello" in capsys.readouterr().err
