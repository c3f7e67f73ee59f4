"""The log contract: one JSON object per line with ts, level, event, logger and service."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from apimirror.observability.logging import configure_logging

CONTRACT = {"ts", "level", "event", "logger", "service"}


@pytest.fixture(autouse=True)
def _clean_context() -> Iterator[None]:
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()
    logging.getLogger("uvicorn.access").disabled = False


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_structlog_events_render_as_one_json_object_per_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A structlog event becomes one JSON line carrying every contract field and its values."""
    configure_logging("worker")
    structlog.get_logger("apimirror.test").info("refresh_finished", source="openmeteo", n=3)
    [line] = _lines(capsys)
    assert line.keys() >= CONTRACT
    assert line["event"] == "refresh_finished"
    assert line["level"] == "info"
    assert line["service"] == "worker"
    assert line["logger"] == "apimirror.test"
    assert line["source"] == "openmeteo"
    assert line["ts"].endswith("Z")


def test_stdlib_library_logs_use_the_same_renderer(capsys: pytest.CaptureFixture[str]) -> None:
    """Library records share the JSON shape; `event` is the constant template, `message` the text."""
    configure_logging("api")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    logging.getLogger("celery.worker").warning("connection lost")
    first, second = _lines(capsys)
    assert first.keys() >= CONTRACT
    assert second.keys() >= CONTRACT
    assert first["event"] == "Started server process [%d]"
    assert first["message"] == "Started server process [42]"
    assert second["event"] == "connection lost"
    assert first["logger"] == "uvicorn.error"
    assert second["level"] == "warning"


def test_bound_context_is_merged_into_every_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Values bound in contextvars (request_id, task_id) appear on structlog and stdlib lines."""
    configure_logging("api")
    structlog.contextvars.bind_contextvars(request_id="req-0001-abcd")
    structlog.get_logger("apimirror.test").info("something")
    logging.getLogger("uvicorn.error").info("library line")
    assert [line["request_id"] for line in _lines(capsys)] == ["req-0001-abcd"] * 2


def test_celery_task_lines_carry_task_id_and_task(capsys: pytest.CaptureFixture[str]) -> None:
    """Celery's own task lines (context in `extra["data"]`) carry task_id and task fields."""
    configure_logging("worker")
    context = {"id": "abc-123", "name": "apimirror.refresh_source"}
    logging.getLogger("celery.worker.strategy").info(
        "Task %(name)s[%(id)s] received", context, extra={"data": context}
    )
    [line] = _lines(capsys)
    assert line["task_id"] == "abc-123"
    assert line["task"] == "apimirror.refresh_source"
    assert line["event"] == "Task %(name)s[%(id)s] received"
    assert line["message"] == "Task apimirror.refresh_source[abc-123] received"


def test_exceptions_are_rendered_inside_the_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    """An exception's traceback stays inside its JSON line instead of spilling raw text."""
    configure_logging("api")
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("apimirror.test").exception("handler_failed")
    [line] = _lines(capsys)
    assert line["level"] == "error"
    assert "ValueError: boom" in line["exception"]


def test_configuring_twice_keeps_a_single_handler(capsys: pytest.CaptureFixture[str]) -> None:
    """Calling configure_logging again (uvicorn workers, Celery children) never duplicates lines."""
    configure_logging("api")
    configure_logging("api")
    structlog.get_logger("apimirror.test").info("once")
    assert len(_lines(capsys)) == 1
