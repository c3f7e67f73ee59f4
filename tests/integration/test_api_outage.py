"""The API's behaviour while its MongoDB-compatible server is down, and its recovery."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from tests.factories import AUTH, create_location, location_payload
from tests.integration.test_api_locations import assert_problem
from tests.support.procs import PrivateFerretDB, wait_for

from apimirror.api.app import create_app
from apimirror.config import get_settings

pytestmark = pytest.mark.integration


def test_database_outage_gives_503_then_recovers_without_restart(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, private_ferretdb: PrivateFerretDB
) -> None:
    """Data routes and /readyz answer 503 problems while MongoDB is down and 200 once it is back."""
    monkeypatch.setenv("MONGODB_URL", private_ferretdb.url)
    get_settings.cache_clear()
    with TestClient(create_app(get_settings()), raise_server_exceptions=False) as api:
        location = create_location(api)
        item = f"/api/v1/locations/{location['id']}"

        private_ferretdb.stop()
        for response in (
            api.get(item),
            api.get("/api/v1/locations"),
            api.get(f"{item}/current"),
            api.get("/api/v1/observations"),
            api.get("/api/v1/sources"),
            api.post("/api/v1/locations", json=location_payload(), headers=AUTH),
        ):
            assert "mongodb" in assert_problem(response, 503)["detail"]
        ready = assert_problem(api.get("/readyz"), 503)
        assert ready["detail"] == "mongodb is unavailable"
        assert api.get("/healthz").status_code == 200

        private_ferretdb.start()
        wait_for(lambda: api.get(item).status_code == 200, timeout=30, what="the API to recover")
        assert api.get(item).json() == location
        assert api.get("/readyz").status_code == 200
        assert (
            api.post("/api/v1/locations", json=location_payload(), headers=AUTH).status_code == 201
        )
