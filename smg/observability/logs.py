"""Logging set-up for ``smg serve``: the level, plain or JSON lines, an optional daily
rotated file in ``--log-dir``."""

from __future__ import annotations

import datetime
import logging
import logging.handlers
import os
from typing import Any

import orjson

__all__ = ["JsonFormatter", "setup_logging"]

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, and the
    exception text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def setup_logging(server: Any) -> None:
    """Configure the root logger from a :class:`~smg.config.ServerConfig` (``log_level``,
    ``log_json``, ``log_dir``)."""
    level = server.log_level.upper().replace("WARN", "WARNING")
    formatter: logging.Formatter = JsonFormatter() if server.log_json else logging.Formatter(PLAIN_FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if server.log_dir:
        os.makedirs(server.log_dir, exist_ok=True)
        handlers.append(logging.handlers.TimedRotatingFileHandler(
            os.path.join(server.log_dir, "smg.log"), when="midnight", backupCount=14, utc=True))
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=handlers, force=True)
