"""The locations API against the real MongoDB-compatible server: CRUD, 409, 404, 422, paging."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymongo import MongoClient
from tests.factories import AUTH, create_location, create_observation, location_payload

from apimirror.config import Settings

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.api_fixtures"]

BASE = "/api/v1/locations"
MISSING_ID = "0123456789abcdef01234567"


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """Check a problem+json response and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def test_create_then_get_returns_the_location(api: TestClient) -> None:
    """A created location comes back with an id, UTC `Z` timestamps and a Location header."""
    payload = location_payload(tags=["alps", "ski"])
    response = api.post(BASE, json=payload, headers=AUTH)
    assert response.status_code == 201, response.text
    created = response.json()
    assert len(created["id"]) == 24
    assert created["created_at"].endswith("Z")
    assert response.headers["location"] == f"{BASE}/{created['id']}"
    fetched = api.get(f"{BASE}/{created['id']}").json()
    assert fetched == created
    assert {k: fetched[k] for k in payload} == payload


def test_same_coordinates_twice_conflict(api: TestClient) -> None:
    """Registering coordinates that are already tracked answers 409."""
    payload = location_payload()
    assert api.post(BASE, json=payload, headers=AUTH).status_code == 201
    again = api.post(BASE, json={**payload, "name": "Other"}, headers=AUTH)
    assert "coordinates" in assert_problem(again, 409)["detail"]


def test_list_pages_through_everything_once(api: TestClient) -> None:
    """Paging with `after` across three pages returns every location exactly once, in order."""
    ids = [create_location(api)["id"] for _ in range(7)]
    seen: list[str] = []
    pages = 0
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"after": after} if after else {})}
        page = api.get(BASE, params=params).json()
        pages += 1
        seen += [item["id"] for item in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert pages == 3
    assert seen == sorted(ids)


def test_list_defaults_and_limit_bounds(api: TestClient) -> None:
    """The default page holds up to 50; a limit over 500 or a malformed cursor answers 422."""
    create_location(api)
    page = api.get(BASE).json()
    assert len(page["items"]) == 1
    assert page["next"] is None
    assert "limit" in assert_problem(api.get(BASE, params={"limit": 501}), 422)["detail"]
    assert "after" in assert_problem(api.get(BASE, params={"after": "$gt"}), 422)["detail"]


def test_patch_changes_only_given_fields(api: TestClient) -> None:
    """PATCH changes the fields sent, keeps the rest, and moves `updated_at`."""
    created = create_location(api)
    response = api.patch(
        f"{BASE}/{created['id']}", json={"name": "Renamed", "active": False}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["active"]) == ("Renamed", False)
    assert body["latitude"] == created["latitude"]
    assert body["updated_at"] >= created["updated_at"]


def test_patch_onto_taken_coordinates_conflicts(api: TestClient) -> None:
    """Moving a location onto another one's coordinates answers 409."""
    first = create_location(api)
    second = create_location(api)
    response = api.patch(
        f"{BASE}/{second['id']}",
        json={"latitude": first["latitude"], "longitude": first["longitude"]},
        headers=AUTH,
    )
    assert_problem(response, 409)


def test_delete_removes_location_and_its_observations(
    api: TestClient, settings: Settings, mongo_client: MongoClient[dict[str, object]]
) -> None:
    """DELETE answers 204, the location is gone, and so are its observations."""
    location = create_location(api)
    create_observation(api, location["id"])
    assert api.delete(f"{BASE}/{location['id']}", headers=AUTH).status_code == 204
    assert_problem(api.get(f"{BASE}/{location['id']}"), 404)
    assert mongo_client[settings.mongodb_db].observations.count_documents({}) == 0


@pytest.mark.parametrize(
    "location_id", ["not-an-id", "0123", "zzzzzzzzzzzzzzzzzzzzzzzz", MISSING_ID]
)
def test_malformed_or_unknown_id_is_404(api: TestClient, location_id: str) -> None:
    """Every item route answers a 404 problem to a malformed or unknown id, never a 500."""
    assert_problem(api.get(f"{BASE}/{location_id}"), 404)
    assert_problem(api.get(f"{BASE}/{location_id}/current"), 404)
    assert_problem(api.patch(f"{BASE}/{location_id}", json={"name": "x"}, headers=AUTH), 404)
    assert_problem(api.delete(f"{BASE}/{location_id}", headers=AUTH), 404)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"latitude": 90.5}, "latitude"),
        ({"longitude": -181}, "longitude"),
        ({"name": ""}, "name"),
        ({"name": {"$gt": ""}}, "name"),
        ({"tags": "alps"}, "tags"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_body_is_422_naming_the_field(
    api: TestClient, change: dict[str, Any], field: str
) -> None:
    """A wrong type, an out-of-range value or an unknown field answers 422 naming the field."""
    body = assert_problem(api.post(BASE, json=location_payload(**change), headers=AUTH), 422)
    assert field in body["detail"]
    assert any(field in error["field"] for error in body["errors"])


def test_writes_need_a_valid_token(api: TestClient) -> None:
    """Writes without a token answer 401 and with a wrong token 403; reads stay open."""
    created = create_location(api)
    item = f"{BASE}/{created['id']}"
    wrong = {"Authorization": "Bearer wrong-token"}
    unauthorized = assert_problem(api.post(BASE, json=location_payload()), 401)
    assert unauthorized["title"] == "Unauthorized"
    assert api.post(BASE, json=location_payload()).headers["www-authenticate"] == "Bearer"
    assert_problem(api.post(BASE, json=location_payload(), headers=wrong), 403)
    assert_problem(api.patch(item, json={"name": "x"}), 401)
    assert_problem(api.patch(item, json={"name": "x"}, headers=wrong), 403)
    assert_problem(api.delete(item), 401)
    assert_problem(api.delete(item, headers=wrong), 403)
    assert api.get(item).status_code == 200
