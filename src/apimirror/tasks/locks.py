"""Owned Redis keys for single runs: a lock or slot held by a token (the Celery delivery).

A message redelivered after its worker died (`acks_late` + `reject_on_worker_lost`) carries
the same task id, so it may take over what its lost delivery held instead of skipping itself
until the key expires. Any other token still finds the key taken.
"""

from __future__ import annotations

import redis

# Take the key when it is free or already ours, and (re)start its expiry.
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# Free the key only while we still hold it (it may have expired and gone to another run).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def claim(client: redis.Redis, key: str, token: str, *, ttl_s: float) -> bool:
    """Hold `key` for `token` for `ttl_s` seconds; False when another token holds it."""
    ttl_ms = max(int(ttl_s * 1000), 1)
    return int(client.eval(_CLAIM, 1, key, token, ttl_ms)) == 1


def release(client: redis.Redis, key: str, token: str) -> bool:
    """Free `key` if `token` still holds it; False when it expired or changed hands."""
    return int(client.eval(_RELEASE, 1, key, token)) == 1
