"""The in-process API fixture (a pytest plugin: `pytest_plugins = ["tests.api_fixtures"]`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from apimirror.config import Settings


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    """The real app in-process, its lifespan run, on this test's own database and Redis prefix."""
    from apimirror.api.app import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client
