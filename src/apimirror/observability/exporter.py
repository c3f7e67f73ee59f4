"""The small `/metrics` HTTP exporter of processes that serve no HTTP themselves (worker, beat)."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from apimirror import __version__
from apimirror.config import get_settings
from apimirror.observability import multiproc
from apimirror.observability.metrics import BUILD_INFO

log = structlog.get_logger(__name__)


def registry() -> CollectorRegistry:
    """Return the registry to expose: every process's files in multiprocess mode, else this one."""
    if not multiproc.enabled():
        return REGISTRY
    collected = CollectorRegistry()
    MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
    return collected


def set_build_info() -> None:
    """Export `apimirror_build_info{version,revision} 1`."""
    BUILD_INFO.labels(__version__, get_settings().revision).set(1)


def start(port: int, host: str | None = None) -> tuple[WSGIServer, threading.Thread]:
    """Serve `/metrics` on `host:port` from a daemon thread and return the server and thread."""
    bind = host if host is not None else get_settings().metrics_host
    set_build_info()
    server, thread = start_http_server(port, addr=bind, registry=registry())
    log.info("metrics_exporter_started", host=bind, port=port)
    return server, thread
