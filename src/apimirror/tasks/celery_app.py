"""The Celery app: Redis broker, UTC, late acks, time limits; configured lazily from settings.

Nothing is read from the environment at import: `app` reads `get_settings()` the first time its
configuration is used. `make_celery(settings)` builds an app for explicit settings (tests, API).
"""

from __future__ import annotations

import hashlib
import socket
import tempfile
from pathlib import Path
from typing import Any

from celery import Celery

from apimirror.config import Settings, get_settings

REFRESH_TASK = "apimirror.refresh_source"
RETENTION_TASK = "apimirror.apply_retention"
QUEUE = "apimirror"
TASK_MODULES = ("apimirror.tasks.refresh", "apimirror.tasks.retention")


def state_dir(settings: Settings) -> Path:
    """Return a directory for beat's schedule file and heartbeat, unique per Redis prefix."""
    tag = hashlib.sha256(settings.redis_prefix.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"apimirror-{tag}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def worker_name() -> str:
    """Return this host's worker node name (what the health check pings)."""
    return f"apimirror@{socket.gethostname()}"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Return the Celery configuration for the given settings."""
    from apimirror.tasks.schedule import beat_schedule

    return {
        "broker_url": settings.redis_url.get_secret_value(),
        # An unacked message (running, or waiting for its retry ETA) is redelivered after this
        # long; it must outlast the hard time limit and the largest retry countdown.
        # The key prefix keeps queues, unacked messages and control broadcasts of deployments
        # (demo, tests) sharing one Redis apart.
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout_s,
            "global_keyprefix": f"{settings.redis_prefix}:celery:",
        },
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_default_queue": QUEUE,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        "timezone": "UTC",
        "enable_utc": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_soft_time_limit": settings.task_soft_time_limit_s,
        "task_time_limit": settings.task_hard_time_limit_s,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "beat_schedule": beat_schedule(settings),
        "beat_max_loop_interval": 5,
        "beat_schedule_filename": str(state_dir(settings) / "celerybeat-schedule"),
        "include": list(TASK_MODULES),
    }


def make_celery(settings: Settings | None = None) -> Celery:
    """Return a Celery app configured from `settings` (or, lazily, from `get_settings()`)."""
    celery = Celery("apimirror", set_as_current=settings is None)
    if settings is None:
        celery.add_defaults(lambda: celery_config(get_settings()))
    else:
        celery.conf.update(celery_config(settings))
    return celery


app = make_celery()
