"""structlog JSON logs: one object per line on stdout, for our events and for stdlib loggers.

uvicorn, Celery and every other library logging through the standard library are rendered by
the same processors, so every line carries `ts`, `level`, `event`, `logger` and `service`.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

from apimirror.config import get_settings

_HANDLER_NAME = "apimirror-json"
# Loggers that libraries configure with handlers of their own; they must reach ours instead.
_LIBRARY_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "celery",
    "celery.task",
    "celery.worker",
    "celery.beat",
    "celery.app.trace",
    "celery.redirected",
    "kombu",
)


def _service_adder(service: str) -> Processor:
    def add_service(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


def _stringify_event(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # stdlib records may carry non-string messages; the contract says `event` is a string.
    event = event_dict.get("event")
    if not isinstance(event, str):
        event_dict["event"] = str(event)
    return event_dict


def _celery_task_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # Celery logs "received"/"succeeded" lines with the task in `extra={"data": {...}}`; lift it
    # into fields so those lines carry task_id and task like our own task logs.
    record = event_dict.get("_record")
    data = getattr(record, "data", None)
    if isinstance(data, dict) and "id" in data and "name" in data:
        event_dict.setdefault("task_id", str(data["id"]))
        event_dict.setdefault("task", str(data["name"]))
    return event_dict


def _constant_event(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # A library's message is formatted with its arguments ("Started server process [42]"), so
    # it would make `event` vary per line. Keep the call site's constant template as `event`
    # and the formatted text as `message`, as the log contract asks.
    record = event_dict.get("_record")
    template = getattr(record, "msg", None)
    if isinstance(template, str) and template != event_dict.get("event"):
        event_dict["message"] = event_dict.get("event")
        event_dict["event"] = template
    return event_dict


def shared_processors(service: str) -> list[Processor]:
    """Return the processors both structlog and stdlib records go through, in order."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        _service_adder(service),
        _celery_task_fields,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.processors.UnicodeDecoder(),
        _stringify_event,
    ]


def json_formatter(service: str) -> structlog.stdlib.ProcessorFormatter:
    """Return the stdlib formatter that renders any record as one JSON line."""
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[_constant_event, *shared_processors(service)],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )


def configure_logging(service: str | None = None, level: str | None = None) -> None:
    """Send every log record of this process to stdout as JSON, tagged with `service`.

    Safe to call more than once (uvicorn workers and Celery children call it again).
    """
    service = service or os.environ.get("APIMIRROR_SERVICE") or "cli"
    level = (level or get_settings().log_level or "INFO").upper()
    structlog.configure(
        processors=[
            *shared_processors(service),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(json_formatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings become JSON lines too, not raw stderr text
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
    # Per-request access lines come from our middleware, with request ids; uvicorn's would repeat.
    logging.getLogger("uvicorn.access").disabled = True


def bind(**values: Any) -> None:
    """Bind key/values into the context every log line of this task or request carries."""
    structlog.contextvars.bind_contextvars(**values)
