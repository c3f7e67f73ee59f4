"""The shared, weighted rate-limit budget in Redis, and the arithmetic of honouring a 429.

Windows follow Open-Meteo's limiter: the minute, the full UTC hour, the UTC day (reset at
midnight) and the calendar month. One Lua script checks every window and spends from all of
them atomically, so concurrent workers can never overspend between a check and a spend.
A 429 also "blocks" the budget until the wait it implies has passed, for every worker.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import redis

from apimirror.config import Settings
from apimirror.observability.metrics import RATELIMIT_LIMIT, RATELIMIT_REMAINING

WINDOWS = ("minute", "hour", "day", "month")

# KEYS: one counter per window, then the block key.
# ARGV: cost, now (epoch s), then per window: limit, reset_at (epoch s). A limit of 0 is off.
_SPEND = """
local cost = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local n = #KEYS - 1
local wait = 0
local blocked = tonumber(redis.call('GET', KEYS[n + 1]) or '0')
if blocked > now then wait = blocked - now end
for i = 1, n do
  local limit = tonumber(ARGV[1 + 2 * i])
  local reset_at = tonumber(ARGV[2 + 2 * i])
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if limit > 0 and used + cost > limit and reset_at - now > wait then wait = reset_at - now end
end
if wait > 0 then return {0, tostring(wait)} end
for i = 1, n do
  redis.call('INCRBYFLOAT', KEYS[i], cost)
  redis.call('EXPIRE', KEYS[i], math.ceil(tonumber(ARGV[2 + 2 * i]) - now) + 60)
end
return {1, '0'}
"""


# KEYS: the window counters a spend went to. ARGV: cost. Never below zero; never creates a key.
_REFUND = """
local cost = tonumber(ARGV[1])
for i = 1, #KEYS do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used > 0 then redis.call('INCRBYFLOAT', KEYS[i], -math.min(used, cost)) end
end
return 1
"""


# Move the block's end later, never earlier, even when workers report 429s concurrently.
_EXTEND_BLOCK = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
"""


@dataclass(frozen=True)
class Decision:
    """Whether a spend was allowed; if not, the seconds until enough budget frees."""

    allowed: bool
    wait_s: float


@dataclass(frozen=True)
class WindowUsage:
    """One window's budget as seen now."""

    window: str
    used: float
    left: float
    limit: int
    reset_at: datetime


def window_bounds(window: str, now: datetime) -> tuple[datetime, datetime]:
    """Return the UTC calendar start and end of the window containing `now`."""
    now = now.astimezone(UTC)
    if window == "minute":
        start = now.replace(second=0, microsecond=0)
        return start, start + timedelta(minutes=1)
    if window == "hour":
        start = now.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    if window == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    if window == "month":
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        return start, end
    raise ValueError(f"unknown window {window!r}")


def _key(settings: Settings, source: str, suffix: str) -> str:
    return f"{settings.redis_prefix}:ratelimit:{source}:{suffix}"


def _window_key(settings: Settings, source: str, window: str, start: datetime) -> str:
    return _key(settings, source, f"{window}:{int(start.timestamp())}")


class Budget:
    """The weighted-call budget of one source, shared by every process through Redis."""

    def __init__(self, client: redis.Redis, settings: Settings, source: str) -> None:
        """Bind the budget to a Redis client, the settings' limits and a source name."""
        self._redis = client
        self._settings = settings
        self._source = source
        self._limits = settings.limits()
        self._script = client.register_script(_SPEND)
        self._extend = client.register_script(_EXTEND_BLOCK)
        self._refund = client.register_script(_REFUND)

    def try_spend(self, cost: float, *, now: datetime | None = None) -> Decision:
        """Spend `cost` from every window at once, or spend nothing and say how long to wait."""
        now = now or datetime.now(UTC)
        keys: list[str] = []
        args: list[float] = [cost, now.timestamp()]
        for window in WINDOWS:
            start, end = window_bounds(window, now)
            keys.append(_window_key(self._settings, self._source, window, start))
            args += [self._limits[window], end.timestamp()]
        keys.append(_key(self._settings, self._source, "blocked_until"))
        allowed, wait = self._script(keys=keys, args=args)
        return Decision(allowed=int(allowed) == 1, wait_s=float(wait))

    def refund(self, cost: float, *, spent_at: datetime) -> None:
        """Give back a spend made at `spent_at` (its request never reached the upstream)."""
        keys = [
            _window_key(self._settings, self._source, window, window_bounds(window, spent_at)[0])
            for window in WINDOWS
        ]
        self._refund(keys=keys, args=[cost])

    def block_until(self, until: datetime) -> None:
        """Hold every worker back from the upstream until `until` (after a 429)."""
        key = _key(self._settings, self._source, "blocked_until")
        ttl = max(int(until.timestamp() - time.time()), 0) + 60
        self._extend(keys=[key], args=[until.timestamp(), ttl])

    def blocked_until(self) -> datetime | None:
        """Return when a 429 block ends, if one is in force."""
        raw = self._redis.get(_key(self._settings, self._source, "blocked_until"))
        if raw is None:
            return None
        until = datetime.fromtimestamp(float(raw), tz=UTC)
        return until if until > datetime.now(UTC) else None

    def usage(self, *, now: datetime | None = None) -> list[WindowUsage]:
        """Return used/left/limit/reset per window and update the budget gauges."""
        now = now or datetime.now(UTC)
        bounds = [window_bounds(window, now) for window in WINDOWS]
        keys = [
            _window_key(self._settings, self._source, w, start)
            for w, (start, _) in zip(WINDOWS, bounds, strict=True)
        ]
        raw = self._redis.mget(keys)
        result = []
        for window, (_, end), value in zip(WINDOWS, bounds, raw, strict=True):
            limit = self._limits[window]
            used = float(value) if value is not None else 0.0
            left = max(limit - used, 0.0)
            RATELIMIT_LIMIT.labels(self._source, window).set(limit)
            RATELIMIT_REMAINING.labels(self._source, window).set(left)
            result.append(WindowUsage(window, used, left, limit, end))
        return result


def usage(
    client: redis.Redis, settings: Settings, source: str, *, now: datetime | None = None
) -> list[WindowUsage]:
    """Return one source's budget per window (GET /sources) and refresh the gauges."""
    return Budget(client, settings, source).usage(now=now)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return the seconds a Retry-After header asks for (delta-seconds or HTTP-date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def wait_for_window(window: str, *, now: datetime | None = None) -> float:
    """Return the seconds until a named window resets (next minute, full hour, UTC midnight)."""
    now = now or datetime.now(UTC)
    _, end = window_bounds(window, now)
    return (end - now).total_seconds()


def backoff(attempt: int, *, base: float = 5.0, cap: float = 600.0) -> float:
    """Return an exponential backoff delay for the given attempt (0-based)."""
    return float(min(cap, base * (2 ** max(attempt, 0))))


def jitter(max_jitter: float) -> float:
    """Return a positive random delay of at most `max_jitter` seconds."""
    if max_jitter <= 0:
        return 0.0
    return random.uniform(max_jitter / 10, max_jitter)  # noqa: S311 - not for cryptography


def throttle_wait(
    *,
    retry_after: str | None,
    window: str | None,
    attempt: int,
    now: datetime | None = None,
) -> float:
    """Return how long a 429 says to wait: Retry-After, else the named window, else backoff."""
    seconds = parse_retry_after(retry_after, now=now)
    if seconds is not None:
        return seconds
    if window is not None:
        return wait_for_window(window, now=now)
    return backoff(attempt)
