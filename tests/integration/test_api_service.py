"""Sources, health, limits and cross-cutting API behaviour against the real MongoDB and Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from fastapi.testclient import TestClient
from pymongo import MongoClient
from tests.factories import AUTH, location_payload
from tests.integration.test_api_locations import assert_problem
from tests.support.procs import free_port

from apimirror import ratelimit
from apimirror.api.app import create_app
from apimirror.config import Settings, get_settings

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.api_fixtures"]

BROKER_DB = 13  # a Redis database no demo worker consumes, so a queued refresh never runs


def test_healthz_and_readyz_answer_ok(api: TestClient) -> None:
    """`/healthz` is 200 and `/readyz` is 200 with both dependencies reported ok."""
    assert api.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"mongodb": "ok", "redis": "ok"}


def test_readyz_names_redis_when_it_is_down(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Redis unreachable `/readyz` answers a 503 problem naming redis (MongoDB still ok)."""
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    get_settings.cache_clear()
    with TestClient(create_app(get_settings())) as client:
        body = assert_problem(client.get("/readyz"), 503)
    assert body["detail"] == "redis is unavailable"
    assert body["checks"] == {"mongodb": "ok", "redis": "unavailable"}


def test_sources_reports_status_and_budget(
    api: TestClient,
    settings: Settings,
    mongo_client: MongoClient[dict[str, object]],
    redis_client: redis.Redis,
) -> None:
    """`GET /sources` shows stored last success/error/next run and the budget spent per window."""
    now = datetime.now(UTC).replace(microsecond=0)
    mongo_client[settings.mongodb_db].source_status.insert_one(
        {
            "_id": settings.source,
            "last_success_at": now - timedelta(minutes=5),
            "last_error_at": now - timedelta(minutes=20),
            "last_error": "upstream answered 503",
            "next_run_at": now + timedelta(minutes=10),
        }
    )
    assert ratelimit.Budget(redis_client, settings, settings.source).try_spend(7).allowed
    response = api.get("/api/v1/sources")
    assert response.status_code == 200, response.text
    (source,) = response.json()
    assert source["name"] == settings.source
    assert source["last_error"] == "upstream answered 503"
    assert source["next_run_at"].endswith("Z")
    budget = {w["window"]: w for w in source["budget"]}
    assert set(budget) == {"minute", "hour", "day", "month"}
    assert budget["hour"]["used"] == 7
    assert budget["hour"]["remaining"] == settings.limit_hour - 7
    assert source["blocked_until"] is None


@pytest.fixture
def broker(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> Iterator[redis.Redis]:
    """Point the API's task broker at a Redis database no worker reads."""
    url = f"{redis_url.rsplit('/', 1)[0]}/{BROKER_DB}"
    monkeypatch.setenv("REDIS_URL", url)
    get_settings.cache_clear()
    client = redis.Redis.from_url(url)
    yield client
    client.close()


def test_refresh_queues_the_task(broker: redis.Redis) -> None:
    """`POST /sources/{name}/refresh` answers 202 with the id of a task put on the broker."""
    settings = get_settings()
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/api/v1/sources/{settings.source}/refresh", headers=AUTH)
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        assert_problem(client.post("/api/v1/sources/nope/refresh", headers=AUTH), 404)
        assert_problem(client.post(f"/api/v1/sources/{settings.source}/refresh"), 401)
        wrong = {"Authorization": "Bearer wrong"}
        assert_problem(
            client.post(f"/api/v1/sources/{settings.source}/refresh", headers=wrong), 403
        )
    mine = [
        (key, raw)
        for key in broker.keys("*")
        if broker.type(key) == b"list"
        for raw in broker.lrange(key, 0, -1)
        if json.loads(raw)["headers"]["id"] == task_id
    ]
    assert len(mine) == 1
    key, raw = mine[0]
    assert json.loads(raw)["headers"]["task"] == "apimirror.refresh_source"
    broker.lrem(key, 1, raw)


def test_body_over_limit_is_413(api: TestClient) -> None:
    """A body over 1 MiB answers 413, whether declared by Content-Length or streamed in chunks."""
    big = b" " * (1024 * 1024 + 1)
    headers = {**AUTH, "content-type": "application/json"}
    assert_problem(api.post("/api/v1/locations", content=big, headers=headers), 413)

    def chunks() -> Iterator[bytes]:
        for _ in range(3):
            yield b" " * (512 * 1024)

    assert_problem(api.post("/api/v1/locations", content=chunks(), headers=headers), 413)
    # Just under the limit is read and judged on its content instead.
    small = json.dumps(location_payload()).encode()
    assert api.post("/api/v1/locations", content=small, headers=headers).status_code == 201


def test_unknown_route_and_method_are_problems(api: TestClient) -> None:
    """An unknown path answers a 404 problem and a wrong method a 405 problem with Allow."""
    assert_problem(api.get("/api/v1/nothing-here"), 404)
    response = api.put("/api/v1/locations")
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, HEAD, POST"


def test_reads_can_require_auth(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """With APIMIRROR_REQUIRE_AUTH_FOR_READS reads answer 401/403 without a valid token."""
    monkeypatch.setenv("APIMIRROR_REQUIRE_AUTH_FOR_READS", "true")
    get_settings.cache_clear()
    with TestClient(create_app(get_settings())) as client:
        assert_problem(client.get("/api/v1/locations"), 401)
        assert_problem(client.get("/api/v1/locations", headers={"Authorization": "Bearer x"}), 403)
        assert client.get("/api/v1/locations", headers=AUTH).status_code == 200
        assert client.get("/healthz").status_code == 200
        spec = client.get("/openapi.json").json()
    assert spec["paths"]["/api/v1/locations"]["get"]["security"] == [{"bearerToken": []}]


def test_openapi_documents_every_route(api: TestClient) -> None:
    """`/openapi.json` has a summary on every operation and problem+json error bodies."""
    spec = api.get("/openapi.json").json()
    operations = [op for path in spec["paths"].values() for op in path.values()]
    assert len(operations) >= 14
    assert all(op.get("summary") for op in operations)
    for op in operations:
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")):
                assert list(response["content"]) == ["application/problem+json"]
