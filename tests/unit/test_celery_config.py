"""The real Celery configuration keeps redelivery, time limits and retries consistent."""

from __future__ import annotations

from typing import Any

import pytest

from apimirror.config import Settings
from apimirror.tasks.celery_app import REFRESH_TASK, make_celery
from apimirror.tasks.schedule import beat_schedule


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"APIMIRROR_TASK_SOFT_LIMIT": 600, "APIMIRROR_TASK_HARD_LIMIT": 7200},
        {"APIMIRROR_RETRY_MAX_COUNTDOWN": 86400, "APIMIRROR_RETRY_JITTER": 30},
    ],
)
def test_visibility_timeout_outlasts_hard_limit_and_retry_countdown(
    overrides: dict[str, Any],
) -> None:
    """The broker's visibility_timeout exceeds the hard limit and the largest retry countdown."""
    settings = Settings(**overrides)
    conf = make_celery(settings).conf
    visibility = conf.broker_transport_options["visibility_timeout"]
    largest_countdown = settings.retry_max_countdown_s + settings.retry_jitter_s
    assert visibility > conf.task_time_limit
    assert visibility > largest_countdown
    assert conf.task_time_limit > conf.task_soft_time_limit


def test_delivery_and_time_settings() -> None:
    """Tasks ack late, are rejected on worker loss, prefetch one, and beat runs in UTC."""
    conf = make_celery(Settings()).conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.timezone == "UTC"
    assert conf.enable_utc is True
    assert conf.broker_url == Settings().redis_url.get_secret_value()


def test_refresh_task_is_registered_with_late_ack() -> None:
    """The refresh task is registered under its public name and acks late."""
    import apimirror.tasks.refresh  # noqa: F401 - registers the task
    from apimirror.tasks.celery_app import app

    task = app.tasks[REFRESH_TASK]
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True


def test_named_schedule_uses_the_refresh_interval_and_expires() -> None:
    """The beat schedule has a named refresh entry every interval that expires after one."""
    settings = Settings(APIMIRROR_REFRESH_INTERVAL=42)
    entry = beat_schedule(settings)["refresh-openmeteo"]
    assert entry["task"] == REFRESH_TASK
    assert entry["schedule"] == 42
    assert entry["args"] == ["openmeteo"]
    assert entry["options"]["expires"] == 42
    assert "retention" in beat_schedule(settings)


def test_default_refresh_interval_is_15_minutes() -> None:
    """Without configuration, refreshes run every 900 seconds."""
    assert beat_schedule(Settings())["refresh-openmeteo"]["schedule"] == 900


def test_importing_the_app_reads_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the lazily configured app does not read settings until its config is used."""
    from apimirror.config import get_settings

    calls: list[int] = []
    real = get_settings

    def spy() -> Settings:
        calls.append(1)
        return real()

    monkeypatch.setattr("apimirror.tasks.celery_app.get_settings", spy)
    from apimirror.tasks.celery_app import make_celery as fresh

    celery = fresh()
    assert calls == []
    assert celery.conf.task_acks_late is True
    assert calls == [1]


def test_beat_health_needs_a_recent_heartbeat(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The beat health check fails without a heartbeat or with an old one, and passes when fresh."""
    import os
    import time

    from apimirror.config import get_settings
    from apimirror.tasks.health import check_beat
    from apimirror.tasks.schedule import heartbeat_path

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    get_settings.cache_clear()
    path = heartbeat_path()
    assert str(path).startswith(str(tmp_path))
    assert check_beat() == 1
    path.touch()
    assert check_beat() == 0
    old = time.time() - 600
    os.utime(path, (old, old))
    assert check_beat() == 1
    get_settings.cache_clear()
