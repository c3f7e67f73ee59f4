"""Run the API under uvicorn (`apimirror api --host --port --workers`)."""

from __future__ import annotations

APP_FACTORY = "apimirror.api.app:create_app"


def serve(host: str, port: int, workers: int) -> int:
    """Serve the API until stopped; return the process exit code."""
    # prometheus-client picks its mode on first import, so the app is imported only after this
    # and only by uvicorn, by import string, inside each worker process.
    from apimirror.observability import multiproc

    multiproc.prepare("api")

    import uvicorn

    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,  # logging is configured by the app as structlog JSON
        access_log=False,  # the observability middleware writes one access line per request
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    return 0
