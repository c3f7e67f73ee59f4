"""The beat sampler's queue lengths from real Redis, and the worker/beat `/metrics` exporter."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import httpx
import pytest
import redis
from prometheus_client import REGISTRY
from tests.support.procs import free_port

from apimirror.observability import exporter
from apimirror.observability.celery import sample_queues

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("prefix", ["", "test-prefix:celery:"])
def test_queue_length_counts_every_priority_list_of_each_queue(
    redis_client: redis.Redis, prefix: str
) -> None:
    """`apimirror_queue_length{queue}` is the LLEN sum over the queue's (prefixed) lists."""
    queue = f"test-queue-{uuid.uuid4().hex[:8]}"
    options = {"global_keyprefix": prefix} if prefix else {}
    app = SimpleNamespace(
        conf=SimpleNamespace(
            task_default_queue=queue, task_queues=None, broker_transport_options=options
        )
    )
    keys = (f"{prefix}{queue}", f"{prefix}{queue}\x06\x163")
    try:
        redis_client.rpush(keys[0], "a", "b", "c")
        redis_client.rpush(keys[1], "d")
        assert sample_queues(app, redis_client) == {queue: 4}
        assert REGISTRY.get_sample_value("apimirror_queue_length", {"queue": queue}) == 4
        redis_client.delete(*keys)
        assert sample_queues(app, redis_client) == {queue: 0}
    finally:
        redis_client.delete(*keys)


def test_exporter_serves_metrics_with_build_info() -> None:
    """The small exporter of worker and beat serves the text format with build info."""
    port = free_port()
    server, _ = exporter.start(port, "127.0.0.1")
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.shutdown()
    assert "apimirror_build_info{" in body
    assert "# TYPE apimirror_task_runs_total counter" in body
