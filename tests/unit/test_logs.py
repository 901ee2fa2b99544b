"""Structured logs: one JSON object a line, with the rollout's context when there is one."""

from __future__ import annotations

import json
import logging
import threading

from controlplane import logs
from controlplane.logs import ContextFilter, JsonFormatter, TextFormatter


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


def _capture(formatter: logging.Formatter) -> tuple[logging.Logger, list[str]]:
    lines: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = ListHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"test.logs.{id(lines)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, lines


def test_a_bound_context_reaches_every_logger_and_unbinds_after() -> None:
    logger, lines = _capture(JsonFormatter())
    with logs.context(rollout_id=3, model="chat", version="v2"):
        logger.info("kube: applied")
        with logs.context(version="v3", actor=None):  # nested: overrides, None is no field
            logger.info("inner")
        logger.info("explicit", extra={"rollout_id": 9})  # the call's own fields win
    logger.info("after")
    first, inner, explicit, after = (json.loads(line) for line in lines)
    assert (first["rollout_id"], first["model"], first["version"]) == (3, "chat", "v2")
    assert inner["version"] == "v3"
    assert "actor" not in inner
    assert explicit["rollout_id"] == 9
    assert "rollout_id" not in after


def test_a_bound_context_stays_in_its_thread() -> None:
    logger, lines = _capture(JsonFormatter())

    def other() -> None:
        logger.info("elsewhere")

    with logs.context(rollout_id=5):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert "rollout_id" not in json.loads(lines[0])


def test_text_lines_end_with_the_context_in_brackets() -> None:
    logger, lines = _capture(TextFormatter())
    with logs.context(rollout_id=3, model="chat", version="v2"):
        logger.warning("cannot observe the cluster")
    logger.info("plain")
    assert lines[0].endswith("cannot observe the cluster [rollout_id=3 model=chat version=v2]")
    assert lines[1].endswith("plain")
