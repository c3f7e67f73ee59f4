"""Celery observability: task metrics and log context recorded once, centrally, from signals.

Tasks never time or count themselves. `connect_signals(app)` wires:
- `setup_logging` -> our JSON logging (Celery then leaves the root logger alone);
- `task_prerun`/`task_postrun` -> `apimirror_task_runs_total{task,outcome}`, the duration
  histogram, and `task_id`/`task` bound into every log line of the run; `task_failure` only
  for runs whose child died before postrun (hard time limit);
- `worker_process_init`/`worker_process_shutdown` -> per-child reset (and the last-success
  gauge restored from MongoDB), and multiprocess clean-up;
- `after_task_publish` (in beat) -> `apimirror_beat_last_publish_timestamp_seconds`;
- `beat_init` -> a sampler thread for queue lengths and freshness gauges.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import redis
import structlog
from celery import signals

from apimirror.config import Settings, get_settings
from apimirror.observability import exporter, freshness, multiproc
from apimirror.observability.logging import configure_logging
from apimirror.observability.metrics import (
    BEAT_LAST_PUBLISH,
    QUEUE_LENGTH,
    TASK_DURATION,
    TASK_RUNS,
    UPSTREAM_THROTTLED,
)

log = structlog.get_logger(__name__)

OUTCOMES = ("success", "failure", "retry", "skipped")
# kombu's Redis transport keeps one list per priority step: "<queue>" and "<queue>\x06\x16<n>".
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
_started: dict[str, float] = {}
_sampler: dict[str, threading.Event] = {}


def outcome_of(state: str | None, retval: Any) -> str:
    """Map a finished run's Celery state and return value to an `outcome` label value.

    A task reports "skipped" (e.g. another run held the refresh lock) by returning a mapping
    with `skipped: True` or `outcome: "skipped"`, or by raising `celery.exceptions.Ignore`.
    """
    if state == "SUCCESS":
        if isinstance(retval, Mapping) and (
            retval.get("skipped") is True or retval.get("outcome") == "skipped"
        ):
            return "skipped"
        return "success"
    if state == "RETRY":
        return "retry"
    if state in ("IGNORED", "REJECTED"):
        return "skipped"
    return "failure"


def _task_name(sender: Any, task: Any = None) -> str:
    return str(getattr(task or sender, "name", None) or "unknown")


def _on_prerun(sender: Any = None, task_id: str | None = None, task: Any = None, **_: Any) -> None:
    name = _task_name(sender, task)
    _started[str(task_id)] = time.perf_counter()
    structlog.contextvars.bind_contextvars(task_id=str(task_id), task=name)


def _on_postrun(
    sender: Any = None,
    task_id: str | None = None,
    task: Any = None,
    retval: Any = None,
    state: str | None = None,
    **_: Any,
) -> None:
    name = _task_name(sender, task)
    started = _started.pop(str(task_id), None)
    outcome = outcome_of(state, retval)
    TASK_RUNS.labels(name, outcome).inc()
    if started is not None:
        TASK_DURATION.labels(name).observe(time.perf_counter() - started)
    structlog.contextvars.unbind_contextvars("task_id", "task")


def _on_failure(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
    # In the process that ran the task, postrun counts the failure. This catches the ones the
    # pool's parent reports for a child that never got to postrun (hard time limit, a lost
    # worker whose message is not requeued).
    if str(task_id) not in _started:
        TASK_RUNS.labels(_task_name(sender), "failure").inc()


def _on_child_init(**_: Any) -> None:
    # A forked child inherits the parent's half-finished bookkeeping; start clean.
    _started.clear()
    structlog.contextvars.clear_contextvars()
    freshness.export_config()
    from celery import current_app

    init_series(list(current_app.tasks.keys()), freshness.source_names(get_settings()))
    threading.Thread(target=_restore_in_child, name="apimirror-restore", daemon=True).start()


def _restore_in_child(attempts: int = 5, pause_s: float = 2.0) -> None:
    # Each child restores the last success from MongoDB, off the start-up path (Celery kills a
    # child whose init takes too long) and retrying while MongoDB is briefly unreachable.
    from pymongo.errors import PyMongoError

    from apimirror.storage.client import get_sync_db

    for attempt in range(1, attempts + 1):
        try:
            freshness.restore_last_success(db=get_sync_db(get_settings()))
            return
        except PyMongoError as exc:
            log.warning("restore_last_success_failed", attempt=attempt, error=str(exc))
            time.sleep(pause_s)


def init_series(task_names: list[str], sources: list[str]) -> None:
    """Create every known series at 0, so the first failure shows up in `increase()`."""
    for name in task_names:
        if name.startswith("celery."):
            continue
        for outcome in OUTCOMES:
            TASK_RUNS.labels(name, outcome)
    for source in sources:
        for reason in ("budget", "429"):
            UPSTREAM_THROTTLED.labels(source, reason)


def _on_child_shutdown(pid: int | None = None, **_: Any) -> None:
    multiproc.mark_process_dead(pid or os.getpid())


def _on_published(sender: Any = None, **_: Any) -> None:
    if os.environ.get("APIMIRROR_SERVICE") == "beat":
        BEAT_LAST_PUBLISH.set(time.time())


def _on_setup_logging(**_: Any) -> None:
    configure_logging()


def _on_worker_init(instance: Any = None, **_: Any) -> None:
    # Celery prints a plain-text banner on start; the logs contract allows only JSON lines.
    if instance is not None:
        instance.quiet = True


def _on_worker_ready(**_: Any) -> None:
    exporter.set_build_info()
    freshness.export_config()


def queue_names(app: Any) -> list[str]:
    """Return the broker queues this app consumes from."""
    names = {str(app.conf.task_default_queue or "celery")}
    for queue in app.conf.task_queues or ():
        names.add(str(getattr(queue, "name", queue)))
    return sorted(names)


def sample_queues(app: Any, client: redis.Redis) -> dict[str, int]:
    """Set `apimirror_queue_length{queue}` from Redis LLEN on each queue's lists; return them."""
    options = app.conf.broker_transport_options or {}
    prefix = str(options.get("global_keyprefix", ""))
    lengths: dict[str, int] = {}
    for queue in queue_names(app):
        total = sum(int(client.llen(f"{prefix}{queue}{suffix}")) for suffix in _PRIORITY_SUFFIXES)
        QUEUE_LENGTH.labels(queue).set(total)
        lengths[queue] = total
    return lengths


def sample_once(app: Any, client: redis.Redis, settings: Settings) -> None:
    """Take one sample of queue lengths and freshness; failures are logged, never raised."""
    from pymongo.errors import PyMongoError

    from apimirror.storage.client import get_sync_db

    try:
        sample_queues(app, client)
    except redis.RedisError as exc:
        log.warning("queue_sample_failed", error=str(exc))
    try:
        freshness.sample(db=get_sync_db(settings), settings=settings)
    except PyMongoError as exc:
        log.warning("freshness_sample_failed", error=str(exc))


def start_sampler(app: Any, settings: Settings | None = None) -> threading.Event:
    """Sample queues and freshness now and then every interval from a daemon thread.

    Returns the event that stops the thread when set.
    """
    settings = settings or get_settings()
    url = app.conf.broker_url or settings.redis_url.get_secret_value()
    client = redis.Redis.from_url(url, socket_timeout=5)
    stop = threading.Event()

    def loop() -> None:
        while True:
            sample_once(app, client, settings)
            if stop.wait(settings.metrics_sample_interval_s):
                return

    threading.Thread(target=loop, name="apimirror-sampler", daemon=True).start()
    return stop


def _on_beat_init(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is not None and "beat" not in _sampler:
        exporter.set_build_info()
        _sampler["beat"] = start_sampler(app)


def connect_signals(app: Any = None) -> None:
    """Connect every observability signal handler (idempotent); pass the Celery app if you can.

    With the app, Celery is also told to keep its hands off the root logger and stdout, so its
    own log lines reach our JSON renderer unchanged.
    """
    if app is not None:
        app.conf.worker_hijack_root_logger = False
        app.conf.worker_redirect_stdouts = False
    hooks = {
        signals.setup_logging: _on_setup_logging,
        signals.celeryd_init: _on_worker_init,
        signals.task_prerun: _on_prerun,
        signals.task_postrun: _on_postrun,
        signals.task_failure: _on_failure,
        signals.worker_process_init: _on_child_init,
        signals.worker_process_shutdown: _on_child_shutdown,
        signals.worker_ready: _on_worker_ready,
        signals.after_task_publish: _on_published,
        signals.beat_init: _on_beat_init,
        signals.beat_embedded_init: _on_beat_init,
    }
    for signal, handler in hooks.items():
        signal.connect(handler, weak=False, dispatch_uid=f"apimirror.{handler.__name__}")
