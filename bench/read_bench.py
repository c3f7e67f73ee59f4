"""Read benchmark: wrk, in its own process, against a live `apimirror api` on loopback.

The API runs as a real child process on the real MongoDB-compatible server (MONGODB_URL, default
the harness's FerretDB) with a database of its own, seeded directly through pymongo. wrk drives
four read paths: GET one location, one keyset list page, a location's `/current`, and the first
page of one location's observations.
A baseline for later targets, not a pass/fail test. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.procs import apimirror, free_port, wait_for  # noqa: E402

from apimirror.storage.latest import advance_many_sync  # noqa: E402

TARGETS = ("healthz", "get-one", "list-page", "current", "obs-page")


@dataclass
class Result:
    """One wrk run's figures."""

    target: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def ensure_wrk() -> str:
    """Return the wrk binary, installing it with apt-get when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("wrk not found; installing it with apt-get", file=sys.stderr)
    subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=False)
    found = shutil.which("wrk")
    if not found:
        subprocess.run([*sudo, "apt-get", "update"], check=True)
        subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=True)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("could not install wrk; install it and re-run")
    return found


def seed(db: Any, *, locations: int, per_location: int) -> list[str]:
    """Insert locations with hourly observations; return the location ids."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    location_docs = [
        {
            "_id": ObjectId(),
            "name": f"Bench {i}",
            "latitude": round(-60 + (i // 300) * 0.1, 1),
            "longitude": round(-150 + (i % 300) * 0.1, 1),
            "tags": ["bench"],
            "active": True,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(locations)
    ]
    db.locations.insert_many(location_docs)
    observations = [
        {
            "location_id": loc["_id"],
            "source": "openmeteo",
            "observed_at": now - timedelta(hours=h),
            "fetched_at": now,
            "updated_at": now,
            "values": {"temperature_2m": 10.0 + h / 10, "wind_speed_10m": 3.0},
            "units": {"temperature_2m": "°C", "wind_speed_10m": "km/h"},
        }
        for loc in location_docs
        for h in range(per_location)
    ]
    for start in range(0, len(observations), 5000):
        db.observations.insert_many(observations[start : start + 5000])
    # What the worker's upsert leaves behind too: a copy of each location's latest observation.
    newest = {o["location_id"]: o for o in observations if o["observed_at"] == now}
    advance_many_sync(db=db, docs=newest)
    return [str(loc["_id"]) for loc in location_docs]


def lua_script(paths: list[str], directory: Path) -> Path:
    """Write a wrk script that requests a random path from `paths` each time."""
    table = ",\n".join(f'  "{p}"' for p in paths)
    script = directory / "paths.lua"
    script.write_text(
        f"paths = {{\n{table}\n}}\n"
        "math.randomseed(os.time())\n"
        "request = function()\n"
        "  return wrk.format('GET', paths[math.random(#paths)])\n"
        "end\n",
        encoding="utf-8",
    )
    return script


def target_paths(target: str, ids: list[str]) -> list[str]:
    """Return the request paths one target cycles through."""
    base = "/api/v1/locations"
    if target == "healthz":
        return ["/healthz"]  # no database: the ceiling the framework and middleware allow
    if target == "get-one":
        return [f"{base}/{i}" for i in ids]
    if target == "current":
        return [f"{base}/{i}/current" for i in ids]
    if target == "obs-page":
        return [f"/api/v1/observations?location_id={i}&limit=50" for i in ids]
    cursors = sorted(ids)[: max(len(ids) - 50, 1)]
    return [f"{base}?limit=50&after={c}" for c in cursors]


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(target: str, output: str) -> Result:
    """Extract req/s, p50, p99, totals and errors from `wrk --latency` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors:.*", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(0)))
    return Result(target, rps, p50, p99, total, errors)


def run_wrk(wrk: str, url: str, script: Path, args: argparse.Namespace) -> str:
    """Run wrk once and return its output."""
    argv = [
        wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
        "--timeout", "10s", "--latency", "-s", str(script), url,
    ]  # fmt: skip
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def start_api(args: argparse.Namespace, env: dict[str, str], log_dir: Path) -> Any:
    """Start `apimirror api` on a free port and wait until it is ready."""
    port = free_port()
    proc = apimirror(
        "api",
        ["api", "--port", str(port), "--workers", str(args.api_workers)],
        env=env,
        log_dir=log_dir,
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200, timeout=60, what="the API")
    return proc, url


def report(results: list[Result], args: argparse.Namespace) -> None:
    """Print the figures as a Markdown table, ready for bench/README.md."""
    print(
        f"\n{datetime.now(UTC):%Y-%m-%d} | {platform.platform()} | {os.cpu_count()} CPUs | "
        f"Python {platform.python_version()} | api workers={args.api_workers} | "
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s | "
        f"{args.locations} locations x {args.observations} observations\n"
    )
    print("| target | req/s | p50 ms | p99 ms | requests | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.target} | {r.requests_per_s:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
            f"| {r.requests} | {r.errors} |"
        )


def main() -> int:
    """Seed, start the API, run wrk per target, print the results, clean up."""
    args = parse_args()
    wrk = ensure_wrk()
    mongodb_url = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
    db_name = f"bench_{uuid.uuid4().hex[:10]}"
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url, tz_aware=True)
    work = Path(tempfile.mkdtemp(prefix="apimirror-bench-"))
    env = {
        "MONGODB_URL": mongodb_url,
        "MONGODB_DB": db_name,
        "APIMIRROR_REDIS_PREFIX": f"bench:{db_name}",
        "APIMIRROR_API_TOKENS": secrets.token_urlsafe(16),
    }
    proc = None
    try:
        ids = seed(client[db_name], locations=args.locations, per_location=args.observations)
        proc, url = start_api(args, env, work)
        results = []
        for target in TARGETS:
            paths = target_paths(target, random.sample(ids, len(ids)))
            script = lua_script(paths, work)
            run_wrk(wrk, url, script, argparse.Namespace(**{**vars(args), "duration": 2}))
            results.append(parse_wrk(target, run_wrk(wrk, url, script, args)))
            time.sleep(1)
        report(results, args)
    finally:
        if proc is not None:
            proc.stop()
        client.drop_database(db_name)
        client.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per target")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=16, help="wrk open connections")
    parser.add_argument("--api-workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--locations", type=int, default=200)
    parser.add_argument("--observations", type=int, default=24, help="per location")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
