"""The shared Redis budget: atomic check-and-spend across every window."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import redis

from apimirror.config import Settings
from apimirror.observability.metrics import RATELIMIT_REMAINING
from apimirror.ratelimit import Budget, usage

pytestmark = pytest.mark.integration

NOW = datetime(2026, 6, 15, 12, 30, 10, tzinfo=UTC)


def _budget(redis_client: redis.Redis, settings: Settings, **limits: int) -> Budget:
    tuned = settings.model_copy(update=limits)
    return Budget(redis_client, tuned, "openmeteo")


def test_spend_within_limits_is_allowed_and_counted(
    redis_client: redis.Redis, settings: Settings
) -> None:
    """Spending within every window's limit succeeds and shows up in usage."""
    budget = _budget(redis_client, settings)
    assert budget.try_spend(3, now=NOW).allowed
    assert budget.try_spend(1.5, now=NOW).allowed
    used = {u.window: u.used for u in budget.usage(now=NOW)}
    assert used == {"minute": 4.5, "hour": 4.5, "day": 4.5, "month": 4.5}


def test_over_limit_spends_nothing_and_waits_for_the_window(
    redis_client: redis.Redis, settings: Settings
) -> None:
    """A spend that does not fit is refused whole, with the wait until the minute resets."""
    budget = _budget(redis_client, settings, limit_minute=5)
    assert budget.try_spend(4, now=NOW).allowed
    decision = budget.try_spend(2, now=NOW)
    assert not decision.allowed
    assert decision.wait_s == pytest.approx(50.0)
    assert {u.window: u.used for u in budget.usage(now=NOW)}["hour"] == 4
    later = NOW + timedelta(seconds=50)
    assert budget.try_spend(2, now=later).allowed


def test_the_longest_exhausted_window_sets_the_wait(
    redis_client: redis.Redis, settings: Settings
) -> None:
    """When several windows are full, the wait runs until the last of them resets."""
    budget = _budget(redis_client, settings, limit_minute=5, limit_hour=5)
    assert budget.try_spend(5, now=NOW).allowed
    decision = budget.try_spend(1, now=NOW)
    assert decision.wait_s == pytest.approx(29 * 60 + 50)


def test_a_block_after_429_holds_everyone_back(
    redis_client: redis.Redis, settings: Settings
) -> None:
    """After a 429 block, no spend is allowed until the block ends."""
    budget = _budget(redis_client, settings)
    now = datetime.now(UTC)
    budget.block_until(now + timedelta(seconds=30))
    decision = budget.try_spend(1, now=now)
    assert not decision.allowed
    assert 29 < decision.wait_s <= 30
    assert budget.blocked_until() is not None
    assert budget.try_spend(1, now=now + timedelta(seconds=31)).allowed


def test_zero_limit_turns_a_window_off(redis_client: redis.Redis, settings: Settings) -> None:
    """A window configured with limit 0 is not enforced."""
    budget = _budget(redis_client, settings, limit_month=0, limit_minute=2)
    assert budget.try_spend(2, now=NOW).allowed


def test_concurrent_spenders_never_overspend(
    redis_client: redis.Redis, settings: Settings, redis_url: str
) -> None:
    """Many threads racing for the budget together get exactly the limit, no more."""
    tuned = settings.model_copy(update={"limit_minute": 37})
    granted: list[bool] = []
    lock = threading.Lock()

    def spend() -> None:
        client = redis.Redis.from_url(redis_url)
        budget = Budget(client, tuned, "openmeteo")
        for _ in range(20):
            ok = budget.try_spend(1, now=NOW).allowed
            with lock:
                granted.append(ok)
        client.close()

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 37


def test_usage_reports_left_and_reset_and_sets_gauges(
    redis_client: redis.Redis, settings: Settings
) -> None:
    """usage() gives used/left/limit/reset per window and updates the remaining gauge."""
    tuned = settings.model_copy(update={"limit_day": 100})
    Budget(redis_client, tuned, "openmeteo").try_spend(10, now=NOW)
    rows = {u.window: u for u in usage(redis_client, tuned, "openmeteo", now=NOW)}
    assert rows["day"].left == 90
    assert rows["day"].limit == 100
    assert rows["day"].reset_at == datetime(2026, 6, 16, tzinfo=UTC)
    assert rows["minute"].reset_at == datetime(2026, 6, 15, 12, 31, tzinfo=UTC)
    assert RATELIMIT_REMAINING.labels("openmeteo", "day")._value.get() == 90


def test_keys_live_under_the_configured_prefix(
    redis_client: redis.Redis, settings: Settings, redis_prefix: str
) -> None:
    """Every budget key is under the configured Redis prefix and expires."""
    Budget(redis_client, settings, "openmeteo").try_spend(1)
    keys = list(redis_client.scan_iter(f"{redis_prefix}:ratelimit:*"))
    assert len(keys) == 4
    assert all(redis_client.ttl(k) > 0 for k in keys)


def test_a_block_is_only_ever_extended(redis_client: redis.Redis, settings: Settings) -> None:
    """A shorter 429 wait reported later never shortens an existing block."""
    budget = _budget(redis_client, settings)
    now = datetime.now(UTC)
    budget.block_until(now + timedelta(seconds=60))
    budget.block_until(now + timedelta(seconds=5))
    until = budget.blocked_until()
    assert until is not None
    assert until >= now + timedelta(seconds=59)


def test_refund_gives_a_spend_back_to_the_windows_it_came_from(
    redis_client: redis.Redis, settings: Settings
) -> None:
    """A refund undoes a spend in the windows of its spend time, never below zero."""
    budget = _budget(redis_client, settings, limit_minute=5)
    assert budget.try_spend(4, now=NOW).allowed
    later = NOW + timedelta(seconds=55)
    budget.refund(4, spent_at=NOW)
    budget.refund(4, spent_at=NOW)
    assert {u.window: u.used for u in budget.usage(now=NOW)} == dict.fromkeys(
        ("minute", "hour", "day", "month"), 0.0
    )
    assert budget.try_spend(5, now=later).allowed
    assert not budget.try_spend(1, now=later).allowed
