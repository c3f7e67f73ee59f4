"""Retention: observations older than `APIMIRROR_RETENTION_DAYS` are deleted (no TTL indexes)."""

from __future__ import annotations

from typing import Any

import structlog

from apimirror.config import get_settings
from apimirror.storage.client import get_sync_db
from apimirror.storage.ingest import delete_older_than
from apimirror.tasks.celery_app import RETENTION_TASK, app

log = structlog.get_logger(__name__)


@app.task(name=RETENTION_TASK, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
def apply_retention() -> dict[str, Any]:
    """Delete observations older than the retention period; FerretDB has no TTL indexes."""
    settings = get_settings()
    deleted = delete_older_than(db=get_sync_db(settings), days=settings.retention_days)
    log.info("retention_applied", deleted=deleted, retention_days=settings.retention_days)
    return {"outcome": "success", "deleted": deleted}
