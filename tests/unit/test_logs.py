"""Structured logs: one JSON object a line, with the rollout's context when there is one."""

from __future__ import annotations

import json
import logging

from controlplane.logs import JsonFormatter


def test_json_lines_carry_rollout_context() -> None:
    record = logging.LogRecord(
        "controlplane.rollout",
        logging.INFO,
        __file__,
        1,
        "rollout %s: %s",
        (7, "weight 10% in force"),
        None,
    )
    record.rollout_id, record.model, record.version = 7, "chat", "v2"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "rollout 7: weight 10% in force"
    assert (line["rollout_id"], line["model"], line["version"]) == (7, "chat", "v2")
    assert line["level"] == "info"
    assert line["ts"].endswith("+00:00")


def test_lines_without_context_have_no_empty_fields() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello", (), None)
    line = json.loads(JsonFormatter().format(record))
    assert "rollout_id" not in line
    assert line["level"] == "warning"
