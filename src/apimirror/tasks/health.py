"""Health checks for Docker HEALTHCHECK that do not lie.

- worker: this host's worker node answers a ping sent over the broker, which needs the broker
  reachable and the worker's main loop consuming.
- beat: the scheduler touched its heartbeat file recently, which it does on every tick.
"""

from __future__ import annotations

import time

import structlog

log = structlog.get_logger(__name__)

BEAT_MAX_SILENCE_S = 60.0


def check_worker(timeout: float = 5.0) -> int:
    """Return 0 when this host's worker answers a broker ping, else 1."""
    from apimirror.tasks.celery_app import app, worker_name

    name = worker_name()
    try:
        replies = app.control.ping(destination=[name], timeout=timeout)
    except Exception as exc:  # any broker failure means "unhealthy"
        log.warning("worker_health_failed", node=name, error=str(exc))
        return 1
    healthy = any(name in reply for reply in replies or [])
    if not healthy:
        log.warning("worker_health_failed", node=name, error="no ping reply")
    return 0 if healthy else 1


def check_beat(max_silence_s: float = BEAT_MAX_SILENCE_S) -> int:
    """Return 0 when beat ticked within `max_silence_s` seconds, else 1."""
    from apimirror.tasks.schedule import heartbeat_path

    path = heartbeat_path()
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        log.warning("beat_health_failed", error="no heartbeat yet", path=str(path))
        return 1
    if age > max_silence_s:
        log.warning("beat_health_failed", error="heartbeat too old", age_s=round(age, 1))
        return 1
    return 0
