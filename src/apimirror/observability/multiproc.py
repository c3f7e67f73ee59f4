"""prometheus-client multiprocess mode: one wiped directory per service, cleaned per child.

prometheus-client decides on multiprocess mode when it is first imported, so `prepare()` must
run before anything imports it (see docs/CONTRIBUTING-AGENTS.md "Metrics in multiprocess mode").
This module therefore imports prometheus-client only inside functions.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from apimirror.config import get_settings

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(service: str) -> Path:
    """Point prometheus-client at an empty per-service directory and name this process's service.

    The directory is `$APIMIRROR_MULTIPROC_ROOT/<service>` when that root is set, else
    `$PROMETHEUS_MULTIPROC_DIR/<service>` when that is set, else a fresh temporary directory that
    is removed at exit. Files left by a previous run are deleted: their counters belong to
    processes that no longer exist.
    """
    if "prometheus_client" in sys.modules:
        raise RuntimeError("multiproc.prepare() must run before prometheus_client is imported")
    os.environ["APIMIRROR_SERVICE"] = service
    get_settings.cache_clear()
    root = get_settings().multiproc_root or os.environ.get(ENV, "")
    if root:
        path = Path(root) / service
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix=f"apimirror-{service}-metrics-"))
        owner = os.getpid()
        atexit.register(_remove_if_owner, path, owner)
    os.environ[ENV] = str(path)
    return path


def _remove_if_owner(path: Path, owner: int) -> None:
    # Forked children run atexit handlers too; only the process that made the directory removes it.
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


def enabled() -> bool:
    """Say whether this process writes metrics to a multiprocess directory."""
    return bool(os.environ.get(ENV))


def mark_process_dead(pid: int | None = None) -> None:
    """Drop the live-gauge files of a finished process (a recycled child or uvicorn worker)."""
    if not enabled():
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid if pid is not None else os.getpid())  # type: ignore[no-untyped-call]
