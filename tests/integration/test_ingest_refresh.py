"""The refresh task against the real simulator process, FerretDB and Redis (run in-process)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
from celery.exceptions import Retry
from pymongo.synchronous.database import Database
from tests.support.procs import Proc, apimirror, free_port, wait_for

from apimirror.config import Settings, get_settings
from apimirror.sources import get_source
from apimirror.storage.client import close_sync_client, get_sync_db
from apimirror.storage.indexes import ensure_indexes_sync
from apimirror.tasks import refresh

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real upstream simulator process on a free port."""
    port = free_port()
    proc: Proc = apimirror(
        "upstream-sim",
        ["upstream-sim", "--port", str(port)],
        env={},
        log_dir=tmp_path_factory.mktemp("sim"),
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{url}/healthz").status_code == 200, timeout=30, what="sim")
    yield url
    proc.stop()


class StubTask:
    """Stands in for the bound Celery task: records the retry it is asked for."""

    def __init__(self) -> None:
        self.retries: list[dict[str, Any]] = []

    def retry(self, **options: Any) -> Exception:
        self.retries.append(options)
        return Retry("deferred", when=options["countdown"])


@pytest.fixture
def tuned(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, sim_url: str, settings: Settings
) -> Iterator[Settings]:
    """Settings pointing at the simulator; tests add their own overrides with monkeypatch."""
    monkeypatch.setenv("APIMIRROR_UPSTREAM_BASE_URL", sim_url)
    httpx.post(f"{sim_url}/admin/reset")
    httpx.post(f"{sim_url}/admin/faults", json={"rate_limit": False, "outage": False})
    get_settings.cache_clear()
    yield get_settings()
    close_sync_client()


@pytest.fixture
def db(tuned: Settings) -> Database[dict[str, Any]]:
    """The test database with indexes and three active locations."""
    database = get_sync_db(tuned)
    ensure_indexes_sync(database)
    now = datetime.now(UTC)
    for lat in (10.0, 20.0, 30.0):
        database.locations.insert_one(
            {
                "name": str(lat),
                "latitude": lat,
                "longitude": 5.0,
                "tags": [],
                "active": True,
                "created_at": now,
                "updated_at": now,
            }
        )
    return database


def _run(
    settings: Settings, task: Any = None, remaining: list[str] | None = None
) -> dict[str, Any]:
    client = refresh.redis_client(settings)
    source = get_source("openmeteo", settings)
    return refresh._run(task or StubTask(), settings, source, client, remaining, 0.0, 0)


def test_refresh_stores_one_observation_per_location(
    tuned: Settings, db: Database[dict[str, Any]]
) -> None:
    """A refresh stores every active location's current observation and records success."""
    result = _run(tuned)
    assert result["batches_ok"] == 1
    assert db.observations.count_documents({"source": "openmeteo"}) == 3
    status = db.source_status.find_one({"_id": "openmeteo"})
    assert status is not None
    assert status["last_success_at"] is not None
    again = _run(tuned)
    assert again["outcome"] == "success"
    assert db.observations.count_documents({}) == 3


def test_spent_budget_defers_the_rest_with_a_retry(
    tuned: Settings, db: Database[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, sim_url: str
) -> None:
    """When the budget runs out mid-run, the rest is retried later and never sent now."""
    settings = tuned.model_copy(update={"limit_minute": 1, "upstream_batch_size": 1})
    task = StubTask()
    with pytest.raises(Retry):
        _run(settings, task)
    [retry] = task.retries
    assert len(retry["kwargs"]["remaining"]) == 2
    assert retry["countdown"] > 0
    assert retry["expires"] is None
    assert httpx.get(f"{sim_url}/admin/stats").json()["total"] == 1
    assert db.observations.count_documents({}) == 1


def test_429_blocks_the_budget_and_retries(
    tuned: Settings, db: Database[dict[str, Any]], sim_url: str
) -> None:
    """A 429 from the simulator blocks every worker's budget and asks for a retry."""
    httpx.post(f"{sim_url}/admin/faults", json={"rate_limit": True, "limit_minute": 0})
    task = StubTask()
    with pytest.raises(Retry):
        _run(tuned, task)
    from apimirror.ratelimit import Budget

    assert Budget(refresh.redis_client(tuned), tuned, "openmeteo").blocked_until() is not None
    assert len(task.retries[0]["kwargs"]["remaining"]) == 3


def test_outage_records_an_error_and_fails(
    tuned: Settings, db: Database[dict[str, Any]], sim_url: str
) -> None:
    """When every batch fails, the error is stored and the run fails."""
    httpx.post(f"{sim_url}/admin/faults", json={"outage": True})
    with pytest.raises(refresh.RefreshFailedError):
        _run(tuned)
    status = db.source_status.find_one({"_id": "openmeteo"})
    assert status is not None
    assert "503" in status["last_error"]


def test_overlapping_run_is_skipped(
    tuned: Settings, db: Database[dict[str, Any]], redis_client: redis.Redis
) -> None:
    """While another run holds the source's lock, a refresh skips itself."""
    redis_client.set(f"{tuned.redis_prefix}:lock:refresh:openmeteo", "other", ex=30)
    assert refresh.refresh_source.run("openmeteo")["outcome"] == "skipped"
    assert db.observations.count_documents({}) == 0


def test_second_scheduled_run_in_one_interval_is_skipped(
    tuned: Settings, db: Database[dict[str, Any]]
) -> None:
    """Two beats sending the same scheduled refresh lead to one run, not two."""
    first = refresh.refresh_source.run("openmeteo", scheduled=True)
    second = refresh.refresh_source.run("openmeteo", scheduled=True)
    assert first["outcome"] == "success"
    assert second == {"outcome": "skipped", "reason": "already_scheduled"}


def test_lock_outlives_the_hard_time_limit(
    tuned: Settings,
    db: Database[dict[str, Any]],
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The refresh lock cannot expire while a run may still go on, whatever the lock TTL says."""
    settings = tuned.model_copy(
        update={"task_soft_time_limit_s": 250, "task_hard_time_limit_s": 300}
    )
    monkeypatch.setattr(refresh, "get_settings", lambda: settings)
    key = f"{settings.redis_prefix}:lock:refresh:openmeteo"
    seen: list[int] = []

    def observe(*_: Any) -> dict[str, Any]:
        seen.append(int(redis_client.pttl(key)))
        return {"outcome": "success"}

    monkeypatch.setattr(refresh, "_run", observe)
    refresh.refresh_source.run("openmeteo")
    assert settings.refresh_lock_ttl_s < settings.task_hard_time_limit_s
    assert seen[0] > settings.task_hard_time_limit_s * 1000


def test_redelivered_scheduled_run_takes_over_from_its_lost_delivery(
    tuned: Settings, db: Database[dict[str, Any]], redis_client: redis.Redis
) -> None:
    """A scheduled refresh redelivered after its worker died (same task id) runs, not skips."""
    task_id = "redelivered-task"
    prefix = f"{tuned.redis_prefix}:"
    # What the lost delivery left behind: the interval's schedule slot and the held lock.
    held = refresh.delivery_token(task_id, 0)
    redis_client.set(f"{prefix}refresh:openmeteo:scheduled", held, ex=60)
    redis_client.set(f"{prefix}lock:refresh:openmeteo", held, ex=60)
    refresh.refresh_source.push_request(id=task_id)
    try:
        result = refresh.refresh_source.run("openmeteo", scheduled=True)
    finally:
        refresh.refresh_source.pop_request()
    assert result["outcome"] == "success"
    assert db.observations.count_documents({}) == 3
    assert redis_client.get(f"{prefix}lock:refresh:openmeteo") is None


def test_other_task_still_skips_on_a_held_slot_and_lock(
    tuned: Settings, db: Database[dict[str, Any]], redis_client: redis.Redis
) -> None:
    """Another task id does not take over a slot or lock it does not own."""
    prefix = f"{tuned.redis_prefix}:"
    redis_client.set(f"{prefix}lock:refresh:openmeteo", "first-task", ex=60)
    refresh.refresh_source.push_request(id="second-task")
    try:
        result = refresh.refresh_source.run("openmeteo")
    finally:
        refresh.refresh_source.pop_request()
    assert result == {"outcome": "skipped", "reason": "locked"}
    assert redis_client.get(f"{prefix}lock:refresh:openmeteo") == b"first-task"
    assert db.observations.count_documents({}) == 0


def test_request_never_sent_spends_no_budget(
    tuned: Settings, db: Database[dict[str, Any]], redis_client: redis.Redis
) -> None:
    """A batch refused at connect (nothing reached the upstream) gives its budget back."""
    closed = f"http://127.0.0.1:{free_port()}"
    settings = tuned.model_copy(update={"upstream_base_url": closed})
    with pytest.raises(refresh.RefreshFailedError, match="ConnectError"):
        _run(settings)
    from apimirror.ratelimit import Budget

    used = {u.window: u.used for u in Budget(redis_client, settings, "openmeteo").usage()}
    assert used == {"minute": 0.0, "hour": 0.0, "day": 0.0, "month": 0.0}


def test_request_sent_and_failed_still_spends(
    tuned: Settings, db: Database[dict[str, Any]], redis_client: redis.Redis, sim_url: str
) -> None:
    """A batch the upstream answered with an error was a real call and stays spent."""
    httpx.post(f"{sim_url}/admin/faults", json={"outage": True})
    with pytest.raises(refresh.RefreshFailedError):
        _run(tuned)
    from apimirror.ratelimit import Budget

    used = {u.window: u.used for u in Budget(redis_client, tuned, "openmeteo").usage()}
    assert used["minute"] > 0
