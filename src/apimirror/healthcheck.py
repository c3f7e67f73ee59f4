"""`apimirror healthcheck TARGET`: exit 0 when that process type is healthy (Docker HEALTHCHECK)."""

from __future__ import annotations

import urllib.error
import urllib.request

DEFAULT_URLS = {
    "api": "http://127.0.0.1:8000/healthz",
    "upstream-sim": "http://127.0.0.1:8081/healthz",
}
TIMEOUT_S = 3.0


def _http_ok(url: str) -> bool:
    if not url.startswith(("http://", "https://")):
        return False
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310 - scheme checked
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def check(target: str, url: str | None) -> int:
    """Probe one process type; return 0 when healthy and 1 otherwise."""
    if target in DEFAULT_URLS:
        return 0 if _http_ok(url or DEFAULT_URLS[target]) else 1
    if target == "worker":
        from apimirror.tasks.health import check_worker

        return int(check_worker())
    if target == "beat":
        from apimirror.tasks.health import check_beat

        return int(check_beat())
    return 2
