"""One entry point for every process: `apimirror api|worker|beat|upstream-sim|...`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apimirror", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    api = sub.add_parser("api", help="serve the REST API, /healthz, /readyz and /metrics")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")

    worker = sub.add_parser("worker", help="run a Celery worker with its metrics exporter")
    worker.add_argument("--concurrency", type=int, default=2)
    worker.add_argument("--metrics-port", type=int, default=None)

    beat = sub.add_parser("beat", help="run Celery beat (one replica only)")
    beat.add_argument("--metrics-port", type=int, default=None)

    sim = sub.add_parser("upstream-sim", help="serve recorded Open-Meteo payloads offline")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8081)

    sub.add_parser("init-db", help="create MongoDB indexes and exit")
    check = sub.add_parser("healthcheck", help="exit 0 when this process type is healthy")
    check.add_argument("target", choices=["api", "worker", "beat", "upstream-sim"])
    check.add_argument("--url", default=None, help="override the URL probed")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen process; return its exit code."""
    args = _parser().parse_args(argv)
    if args.command == "api":
        from apimirror.api.server import serve as serve_api

        return serve_api(host=args.host, port=args.port, workers=args.workers)
    if args.command == "worker":
        from apimirror.tasks.runner import run_worker

        return run_worker(concurrency=args.concurrency, metrics_port=args.metrics_port)
    if args.command == "beat":
        from apimirror.tasks.runner import run_beat

        return run_beat(metrics_port=args.metrics_port)
    if args.command == "upstream-sim":
        from apimirror.upstream_sim.server import serve as serve_sim

        return serve_sim(host=args.host, port=args.port)
    if args.command == "init-db":
        from apimirror.storage.indexes import init_db_sync

        return init_db_sync()
    from apimirror.healthcheck import check

    return check(target=args.target, url=args.url)


if __name__ == "__main__":
    sys.exit(main())
