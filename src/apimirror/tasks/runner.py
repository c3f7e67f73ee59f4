"""Start a Celery worker or beat with its metrics exporter (`apimirror worker|beat`).

prometheus-client picks multiprocess mode when first imported, so each entry point calls
`multiproc.prepare()` before importing the Celery app or any metric.
"""

from __future__ import annotations

from typing import Any


def _startup(service: str, metrics_port: int | None) -> tuple[Any, Any]:
    from apimirror.observability import multiproc

    multiproc.prepare(service)
    import structlog
    from pymongo.errors import PyMongoError

    from apimirror.config import get_settings
    from apimirror.observability import exporter
    from apimirror.observability.celery import connect_signals
    from apimirror.observability.freshness import restore_last_success
    from apimirror.observability.logging import configure_logging
    from apimirror.storage.client import close_sync_client, get_sync_db
    from apimirror.storage.indexes import ensure_indexes_sync
    from apimirror.tasks.celery_app import app

    configure_logging(service=service)
    log = structlog.get_logger(__name__)
    settings = get_settings()
    connect_signals(app)
    try:
        db = get_sync_db(settings)
        ensure_indexes_sync(db)  # the upserts rely on the unique natural-key index
        restore_last_success(db=db)
    except PyMongoError as exc:
        log.warning("startup_db_unavailable", service=service, error=str(exc))
    finally:
        close_sync_client()  # never carry a MongoClient across fork
    default_port = (
        settings.worker_metrics_port if service == "worker" else settings.beat_metrics_port
    )
    exporter.start(metrics_port if metrics_port is not None else default_port)
    return app, settings


def run_worker(concurrency: int, metrics_port: int | None) -> int:
    """Run a prefork Celery worker consuming the refresh queue; return its exit code."""
    app, settings = _startup("worker", metrics_port)
    from apimirror.tasks.celery_app import QUEUE, worker_name

    argv = [
        "worker",
        f"--concurrency={concurrency}",
        "--pool=prefork",
        f"--hostname={worker_name()}",
        f"--queues={QUEUE}",
        f"--loglevel={settings.log_level}",
        "--without-gossip",
        "--without-mingle",
    ]
    try:
        app.worker_main(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


def run_beat(metrics_port: int | None) -> int:
    """Run Celery beat (exactly one per deployment); return its exit code."""
    app, settings = _startup("beat", metrics_port)
    from apimirror.tasks.celery_app import state_dir
    from apimirror.tasks.schedule import HeartbeatScheduler

    beat = app.Beat(
        scheduler=HeartbeatScheduler,
        schedule=str(state_dir(settings) / "celerybeat-schedule"),
        max_interval=5,
        loglevel=settings.log_level,
        quiet=True,  # the start-up banner is plain text; the logs contract allows only JSON
    )
    try:
        beat.run()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0
