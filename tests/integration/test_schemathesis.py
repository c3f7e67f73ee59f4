"""Against a live `apimirror api` process: schemathesis conformance to its own spec, healthcheck."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from pymongo import MongoClient
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.factories import AUTH, TOKEN, location_payload, observation_payload
from tests.support.procs import apimirror, free_port, wait_for

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
MAX_EXAMPLES = 25
SOURCE = "schemathesis"
BROKER_DB = 13
QUEUE = "apimirror"


def _seed(base: str) -> dict[str, str]:
    """Create documents for generated requests to find; return their ids by parameter name."""
    location = httpx.post(f"{base}/api/v1/locations", json=location_payload(), headers=AUTH)
    location_id = location.json()["id"]
    observation = httpx.post(
        f"{base}/api/v1/observations", json=observation_payload(location_id), headers=AUTH
    )
    return {
        "location_id": location_id,
        "observation_id": observation.json()["id"],
        "name": SOURCE,
    }


@pytest.fixture(scope="module")
def live_api(
    mongodb_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    """A real `apimirror api` process on a free port, on a database of its own."""
    broker_url = f"{redis_url.rsplit('/', 1)[0]}/{BROKER_DB}"
    db_name = f"test_st_{uuid.uuid4().hex[:12]}"
    env = {
        "APIMIRROR_ENV": "test",
        "MONGODB_URL": mongodb_url,
        "MONGODB_DB": db_name,
        "REDIS_URL": broker_url,
        "APIMIRROR_REDIS_PREFIX": f"test:{db_name}",
        "APIMIRROR_API_TOKENS": TOKEN,
        # Queued refreshes go to a Redis database no worker reads, for a source nobody serves.
        "APIMIRROR_SOURCE": SOURCE,
    }
    port = free_port()
    log_dir: Path = tmp_path_factory.mktemp("schemathesis")
    proc = apimirror("api", ["api", "--port", str(port)], env=env, log_dir=log_dir).start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{base}/readyz").status_code == 200, timeout=60, what="api")
        yield base, _seed(base)
    finally:
        proc.stop()
        output = proc.output()
        client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url)
        client.drop_database(db_name)
        client.close()
        redis.Redis.from_url(broker_url).delete(QUEUE)
    assert "Traceback" not in output, output[-4000:]


def _strategies(operation: Any, known: dict[str, str]) -> dict[str, Any]:
    """Positive and negative random cases, plus cases whose ids name real documents."""
    strategies = {
        "positive": operation.as_strategy(GenerationMode.POSITIVE),
        "negative": operation.as_strategy(GenerationMode.NEGATIVE),
    }
    names = {p.name for p in operation.path_parameters}
    if names and names <= known.keys():
        real = {name: known[name] for name in names}
        strategies["known ids"] = operation.as_strategy(path_parameters=real)
    if operation.method.upper() == "POST" and operation.path.endswith("/observations"):
        strategies["known location"] = operation.as_strategy().map(
            lambda case: _with_location(case, known["location_id"])
        )
    return strategies


def _with_location(case: Any, location_id: str) -> Any:
    if isinstance(case.body, dict):
        case.body["location_id"] = location_id
    return case


def _operation_failures(base: str, known: dict[str, str]) -> dict[str, str]:
    """Run bounded property-based tests on each operation; return failures by operation."""
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:
        for mode, strategy in _strategies(operation, known).items():

            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
                print_blob=False,
            )
            @given(case=strategy)
            def run(case: Any) -> None:
                case.call_and_validate(base_url=base, headers=AUTH, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                # Operations with no constrained input have no invalid requests to generate.
                if mode != "negative":
                    raise
            except Exception as exc:
                failures[f"{operation.label} ({mode})"] = f"{type(exc).__name__}: {exc}"
    return failures


def test_api_conforms_to_its_own_spec(live_api: tuple[str, dict[str, str]]) -> None:
    """No generated request gets a 5xx, and every response matches the documented schema."""
    failures = _operation_failures(*live_api)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


def test_healthcheck_probes_the_live_api(live_api: tuple[str, dict[str, str]]) -> None:
    """`apimirror healthcheck api` exits 0 against a live API and 1 where nothing listens."""
    from apimirror.healthcheck import check

    base, _ = live_api
    assert check("api", f"{base}/healthz") == 0
    assert check("api", f"http://127.0.0.1:{free_port()}/healthz") == 1
