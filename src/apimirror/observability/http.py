"""API observability: a pure ASGI middleware (request ids, RED metrics, access log) and `/metrics`.

Metrics are labelled by the matched route *template*, never the raw path, so ids in paths and
scanners probing random URLs cannot create new series (DESIGN.md "Metrics contract").
"""

from __future__ import annotations

import atexit
import re
import time
import uuid

import structlog
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apimirror.observability import exporter, freshness, multiproc
from apimirror.observability.logging import configure_logging
from apimirror.observability.metrics import (
    HTTP_DURATION,
    HTTP_IN_PROGRESS,
    HTTP_REQUEST_SIZE,
    HTTP_REQUESTS,
    HTTP_RESPONSE_SIZE,
    UNMATCHED_ROUTE,
)

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Scrapes and probes are logged at debug: they would otherwise drown the interesting lines.
_QUIET_ROUTES = frozenset({"/metrics", "/healthz", "/readyz"})


def request_id_from(scope: Scope) -> str:
    """Return the caller's X-Request-ID when it looks sane, else a new random id."""
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            if _SANE_REQUEST_ID.match(candidate):
                return str(candidate)
            break
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """Return the matched route's full path template, or the shared value for unmatched requests."""
    path = _included_route_path(scope)
    if path is None:
        route = scope.get("route")
        relative = getattr(route, "path_format", None) or getattr(route, "path", None)
        if isinstance(relative, str):
            # Inside a mounted sub-app the route's path is relative to the mount; the router
            # has recorded the mount prefix in root_path by the time the response is sent.
            path = str(scope.get("root_path", "")) + relative
    return path if isinstance(path, str) and path.startswith("/") else UNMATCHED_ROUTE


def _included_route_path(scope: Scope) -> str | None:
    # FastAPI >= 0.16x keeps included routers nested: scope["route"] is the leaf route with a
    # path relative to its router, and the full template (prefixes included) is recorded here.
    context = scope.get("fastapi")
    effective = context.get("effective_route_context") if isinstance(context, dict) else None
    path = getattr(effective, "path_format", None)
    return path if isinstance(path, str) else None


class ObservabilityMiddleware:
    """Bind a request id, count and time the request by route template, log one access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection; non-HTTP scopes pass straight through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        sizes = {"request": 0, "response": 0}
        status = {"code": 500}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                sizes["request"] += len(message.get("body", b""))
            return message

        async def tagging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
                headers = [h for h in message.get("headers", []) if h[0] != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                sizes["response"] += len(message.get("body", b""))
            await send(message)

        start = time.perf_counter()
        HTTP_IN_PROGRESS.inc()
        try:
            await self.app(scope, counting_receive, tagging_send)
        finally:
            HTTP_IN_PROGRESS.dec()
            _record(scope, status["code"], time.perf_counter() - start, sizes)


def _record(scope: Scope, status: int, seconds: float, sizes: dict[str, int]) -> None:
    method = scope["method"] if scope["method"] in _METHODS else "OTHER"
    route = route_template(scope)
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)
    HTTP_REQUEST_SIZE.labels(method, route).observe(sizes["request"])
    HTTP_RESPONSE_SIZE.labels(method, route).observe(sizes["response"])
    emit = log.error if status >= 500 else log.info
    if route in _QUIET_ROUTES:
        emit = log.debug  # a 503 from /readyz is an answer, not a server error
    emit(
        "http_request",
        method=method,
        route=route,
        path=scope.get("path", ""),
        status=status,
        duration_ms=round(seconds * 1000, 3),
        request_bytes=sizes["request"],
        response_bytes=sizes["response"],
    )


async def metrics_endpoint(_: Request) -> Response:
    """Serve every process's metrics in the Prometheus text format."""
    body = await run_in_threadpool(generate_latest, exporter.registry())
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI, *, service: str = "api") -> None:
    """Add the observability middleware, `/metrics` and build info to the API app."""
    configure_logging(service)
    exporter.set_build_info()
    freshness.export_config()
    # Wrap the whole stack, outside Starlette's ServerErrorMiddleware, so an unhandled error's
    # 500 (rendered by the app's catch-all handler there) is measured and carries X-Request-ID.
    build_stack = app.build_middleware_stack

    def build_observed_stack() -> ASGIApp:
        return ObservabilityMiddleware(build_stack())

    app.build_middleware_stack = build_observed_stack  # type: ignore[method-assign]
    # An API route (not a bare Starlette one) so the router records it in scope["route"].
    app.add_api_route(
        "/metrics",
        metrics_endpoint,
        methods=["GET"],
        include_in_schema=False,
        response_class=Response,
    )
    if multiproc.enabled():
        # uvicorn offers no hook in the supervisor for a dead worker; each worker cleans up itself.
        atexit.register(multiproc.mark_process_dead)
