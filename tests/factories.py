"""Test data factories for the API tests: valid bodies and helpers that create through the API."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
_names = itertools.count(1)
# Coordinates drawn without replacement so factories never collide on the unique index.
_coordinates = random.Random().sample(range(180 * 360), 180 * 360)
_coordinate_iter = iter(_coordinates)


def unique_coordinates() -> tuple[float, float]:
    """Return (latitude, longitude) no other factory call in this session returned."""
    n = next(_coordinate_iter)
    return round(n // 360 - 89.5, 1), round(n % 360 - 179.5, 1)


def location_payload(**overrides: Any) -> dict[str, Any]:
    """Return a valid `POST /locations` body with unique coordinates."""
    latitude, longitude = unique_coordinates()
    body: dict[str, Any] = {
        "name": f"Place {next(_names)}",
        "latitude": latitude,
        "longitude": longitude,
        "tags": ["test"],
        "active": True,
    }
    body.update(overrides)
    return body


def observation_payload(location_id: str, **overrides: Any) -> dict[str, Any]:
    """Return a valid manual `POST /observations` body for a location."""
    body: dict[str, Any] = {
        "location_id": location_id,
        "observed_at": rfc3339(datetime.now(UTC).replace(microsecond=0)),
        "values": {"temperature_2m": 12.5, "wind_speed_10m": 3.1},
        "units": {"temperature_2m": "°C", "wind_speed_10m": "km/h"},
    }
    body.update(overrides)
    return body


def rfc3339(moment: datetime) -> str:
    """Render a datetime the way the API does: UTC, milliseconds, `Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hours_ago(hours: float) -> datetime:
    """Return an aware UTC datetime `hours` before now, whole seconds."""
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=0)


def create_location(client: TestClient, **overrides: Any) -> dict[str, Any]:
    """Create a location through the API and return its body."""
    response = client.post("/api/v1/locations", json=location_payload(**overrides), headers=AUTH)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def create_observation(client: TestClient, location_id: str, **overrides: Any) -> dict[str, Any]:
    """Create an observation through the API and return its body."""
    response = client.post(
        "/api/v1/observations", json=observation_payload(location_id, **overrides), headers=AUTH
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
