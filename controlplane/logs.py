"""Process-wide logging set-up: readable text by default, one JSON object a line when
``CONTROLPLANE_LOG_FORMAT=json``. Log records must never carry a secret; the access log
shows paths, never headers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from controlplane.config import LogFormat, Settings

CONTEXT_FIELDS = ("rollout_id", "model", "version", "actor")

_CONTEXT: ContextVar[Mapping[str, object] | None] = ContextVar(
    "controlplane_log_context", default=None
)


@contextmanager
def context(**fields: object) -> Iterator[None]:
    """Every record logged inside (by any logger, in this thread or task) carries these
    fields, unless the call passes its own: the reconciler binds a rollout's id, model and
    version once, and the Kubernetes and Prometheus adapters' lines carry them too."""
    bound = {k: v for k, v in fields.items() if v is not None}
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **bound})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound context onto each record (a handler filter: it sees every record
    the handler emits, from whichever logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for field, value in (_CONTEXT.get() or {}).items():
            if getattr(record, field, None) is None:
                setattr(record, field, value)
        return True


class TextFormatter(logging.Formatter):
    """The readable default: the usual line, then the rollout context in brackets."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        bound = [
            f"{field}={value}"
            for field in CONTEXT_FIELDS
            if (value := getattr(record, field, None)) is not None
        ]
        return f"{line} [{' '.join(bound)}]" if bound else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                payload[field] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonFormatter() if settings.log_format is LogFormat.JSON else TextFormatter()
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # one line per tick ("Running job ...") would drown what the rollouts say
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
    # nor one line per Prometheus query or webhook POST: their outcomes are logged by us
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
