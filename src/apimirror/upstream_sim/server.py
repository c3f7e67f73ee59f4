"""Run the upstream simulator under uvicorn (one process: its counters live in memory)."""

from __future__ import annotations

import structlog
import uvicorn

from apimirror.observability.logging import configure_logging
from apimirror.upstream_sim.app import create_app
from apimirror.upstream_sim.faults import FaultSettings

log = structlog.get_logger(__name__)


def serve(host: str, port: int) -> int:
    """Serve the simulator on host:port until interrupted; return an exit code."""
    configure_logging(service="upstream-sim")
    faults = FaultSettings()
    log.info("upstream_sim_starting", host=host, port=port, **faults.model_dump())
    config = uvicorn.Config(
        create_app(faults), host=host, port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    server.run()
    return 0
