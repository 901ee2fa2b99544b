"""Process-wide logging set-up: readable text by default, one JSON object a line when
``CONTROLPLANE_LOG_FORMAT=json``. Log records must never carry a secret; the access log
shows paths, never headers."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from controlplane.config import LogFormat, Settings

CONTEXT_FIELDS = ("rollout_id", "model", "version", "actor")


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
    if settings.log_format is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # one line per tick ("Running job ...") would drown what the rollouts say
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
