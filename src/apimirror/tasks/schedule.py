"""The beat schedule, by name, and the scheduler that proves beat is alive.

Entries run in UTC. A scheduled refresh expires after one interval, so a backlog of refreshes
nobody could run (workers down, upstream hanging) never piles up in the queue.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

from celery.beat import PersistentScheduler

from apimirror.config import Settings, get_settings

HEARTBEAT_FILE = "beat.heartbeat"
RETENTION_EVERY_S = 3600.0


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Return the named beat entries for these settings."""
    from apimirror.tasks.celery_app import REFRESH_TASK, RETENTION_TASK

    interval = settings.refresh_interval_s
    entries: dict[str, dict[str, Any]] = {
        f"refresh-{name}": {
            "task": REFRESH_TASK,
            "schedule": interval,
            "args": [name],
            "kwargs": {"scheduled": True},
            "options": {"expires": interval},
        }
        for name in source_names(settings)
    }
    entries["retention"] = {
        "task": RETENTION_TASK,
        "schedule": RETENTION_EVERY_S,
        "options": {"expires": RETENTION_EVERY_S},
    }
    return entries


def source_names(settings: Settings) -> list[str]:
    """Return the configured sources (`APIMIRROR_SOURCE` may list several, comma-separated)."""
    return [name.strip() for name in settings.source.split(",") if name.strip()]


def heartbeat_path(settings: Settings | None = None) -> Path:
    """Return the file beat touches on every scheduler tick."""
    from apimirror.tasks.celery_app import state_dir

    return state_dir(settings or get_settings()) / HEARTBEAT_FILE


class HeartbeatScheduler(PersistentScheduler):  # type: ignore[misc]
    """Celery's persistent scheduler, touching a heartbeat file on every tick."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Run one scheduler tick and record that beat is alive."""
        delay = float(super().tick(*args, **kwargs))
        path = heartbeat_path()
        path.touch()
        _refresh_budget_gauges()
        return delay


_last_gauges = 0.0


def _refresh_budget_gauges() -> None:
    # The budget gauges come from Redis; refresh them now and then so they never go stale.
    global _last_gauges
    now = time.monotonic()
    settings = get_settings()
    if now - _last_gauges < settings.metrics_sample_interval_s:
        return
    _last_gauges = now
    import redis

    from apimirror.ratelimit import usage
    from apimirror.tasks.refresh import redis_client

    # The queue sampler logs broker trouble; the gauges keep their last value meanwhile.
    with contextlib.suppress(redis.RedisError):
        for name in source_names(settings):
            usage(redis_client(settings), settings, name)
