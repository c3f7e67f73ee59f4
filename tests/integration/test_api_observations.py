"""The observations API against the real server: manual CRUD, natural key, filters, safe keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.factories import (
    AUTH,
    create_location,
    create_observation,
    hours_ago,
    observation_payload,
    rfc3339,
)
from tests.integration.test_api_locations import MISSING_ID, assert_problem

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.api_fixtures"]

BASE = "/api/v1/observations"


def test_manual_post_then_get(api: TestClient) -> None:
    """A manual observation defaults its source to `manual` and carries our and their times."""
    location = create_location(api)
    observed = hours_ago(1)
    response = api.post(
        BASE, json=observation_payload(location["id"], observed_at=rfc3339(observed)), headers=AUTH
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["source"] == "manual"
    assert created["observed_at"] == rfc3339(observed)
    assert created["fetched_at"].endswith("Z")
    assert created["updated_at"].endswith("Z")
    assert created["values"] == {"temperature_2m": 12.5, "wind_speed_10m": 3.1}
    assert api.get(f"{BASE}/{created['id']}").json() == created


def test_same_natural_key_twice_conflicts(api: TestClient) -> None:
    """A second observation for the same location and instant (in any offset) answers 409."""
    location = create_location(api)
    create_observation(api, location["id"], observed_at="2026-03-01T12:00:00Z")
    again = api.post(
        BASE,
        json=observation_payload(location["id"], observed_at="2026-03-01T13:00:00+01:00"),
        headers=AUTH,
    )
    assert_problem(again, 409)


def test_unknown_location_is_422(api: TestClient) -> None:
    """An observation for a location that does not exist answers 422 naming `location_id`."""
    response = api.post(BASE, json=observation_payload(MISSING_ID), headers=AUTH)
    assert "location_id" in assert_problem(response, 422)["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"values": {"temp.max": 1.0}}, "values"),
        ({"values": {"$where": 1.0}}, "values"),
        ({"units": {"$gt": "C"}}, "units"),
        ({"values": {"t": "warm"}}, "values"),
        ({"values": {"t": {"$gt": 1}}}, "values"),
        ({"observed_at": "2026-03-01T12:00:00"}, "observed_at"),
        ({"location_id": {"$ne": None}}, "location_id"),
        ({"fetched_at": "2026-03-01T12:00:00Z"}, "fetched_at"),
    ],
)
def test_unsafe_or_invalid_body_is_422(api: TestClient, change: dict[str, Any], field: str) -> None:
    """Keys with `.` or a leading `$`, operator objects, naive times and unknown fields get 422."""
    location = create_location(api)
    response = api.post(BASE, json={**observation_payload(location["id"]), **change}, headers=AUTH)
    assert field in assert_problem(response, 422)["detail"]


def test_nan_is_refused(api: TestClient) -> None:
    """A NaN value (which Python's JSON parser accepts) answers 422 instead of being stored."""
    location = create_location(api)
    body = '{"location_id": "%s", "observed_at": "2026-01-01T00:00:00Z", "values": {"t": NaN}}'
    response = api.post(
        BASE,
        content=(body % location["id"]).encode(),
        headers={**AUTH, "content-type": "application/json"},
    )
    assert "values" in assert_problem(response, 422)["detail"]


def test_list_filters_by_location_and_time(api: TestClient) -> None:
    """`location_id` picks one location's rows; `since` is inclusive and `until` exclusive."""
    here, there = create_location(api), create_location(api)
    times = [hours_ago(h) for h in (5, 4, 3, 2, 1)]
    for moment in times:
        create_observation(api, here["id"], observed_at=rfc3339(moment))
    create_observation(api, there["id"], observed_at=rfc3339(times[0]))
    params = {
        "location_id": here["id"],
        "since": rfc3339(times[1]),
        "until": rfc3339(times[4]),
    }
    page = api.get(BASE, params=params).json()
    assert [item["observed_at"] for item in page["items"]] == [rfc3339(t) for t in times[1:4]]
    assert all(item["location_id"] == here["id"] for item in page["items"])
    everything = api.get(BASE).json()["items"]
    assert len(everything) == 6


def test_list_pages_through_everything_once(api: TestClient) -> None:
    """Three pages of a filtered list return each observation exactly once."""
    location = create_location(api)
    start = hours_ago(24)
    ids = [
        create_observation(api, location["id"], observed_at=rfc3339(start + timedelta(minutes=i)))[
            "id"
        ]
        for i in range(8)
    ]
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"location_id": location["id"], "limit": 3}
        if after:
            params["after"] = after
        page = api.get(BASE, params=params).json()
        pages += 1
        seen += [item["id"] for item in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert pages == 3
    assert seen == sorted(ids)


@pytest.mark.parametrize(
    "query",
    [
        "location_id[$ne]=x",
        "location_id=$ne",
        "since[$gt]=2020-01-01T00:00:00Z",
        "since=yesterday",
        "limit=0",
        "limit=501",
    ],
)
def test_injection_and_bad_query_values_are_422(api: TestClient, query: str) -> None:
    """Operator-shaped or malformed query parameters are refused with 422, never run as a query."""
    assert_problem(api.get(f"{BASE}?{query}"), 422)


def test_patch_replaces_values_and_moves_updated_at(api: TestClient) -> None:
    """PATCH replaces `values` and `units`, keeps `fetched_at`, and moves `updated_at`."""
    location = create_location(api)
    created = create_observation(api, location["id"])
    response = api.patch(
        f"{BASE}/{created['id']}",
        json={"values": {"temperature_2m": 1.0}, "units": {"temperature_2m": "K"}},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["values"] == {"temperature_2m": 1.0}
    assert body["fetched_at"] == created["fetched_at"]
    assert body["updated_at"] >= created["updated_at"]


def test_patch_onto_taken_natural_key_conflicts(api: TestClient) -> None:
    """Moving an observation onto another's (location_id, observed_at) answers 409."""
    location = create_location(api)
    first = create_observation(api, location["id"], observed_at=rfc3339(hours_ago(2)))
    second = create_observation(api, location["id"], observed_at=rfc3339(hours_ago(1)))
    response = api.patch(
        f"{BASE}/{second['id']}", json={"observed_at": first["observed_at"]}, headers=AUTH
    )
    assert_problem(response, 409)


def test_delete_then_gone(api: TestClient) -> None:
    """DELETE answers 204 and the observation is then 404."""
    location = create_location(api)
    created = create_observation(api, location["id"])
    assert api.delete(f"{BASE}/{created['id']}", headers=AUTH).status_code == 204
    assert_problem(api.get(f"{BASE}/{created['id']}"), 404)
    assert_problem(api.delete(f"{BASE}/{created['id']}", headers=AUTH), 404)


@pytest.mark.parametrize("observation_id", ["nope", "123", "g" * 24, MISSING_ID])
def test_malformed_or_unknown_id_is_404(api: TestClient, observation_id: str) -> None:
    """Item routes answer a 404 problem to a malformed or unknown id."""
    assert_problem(api.get(f"{BASE}/{observation_id}"), 404)
    assert_problem(api.patch(f"{BASE}/{observation_id}", json={}, headers=AUTH), 404)
    assert_problem(api.delete(f"{BASE}/{observation_id}", headers=AUTH), 404)


def test_writes_need_a_valid_token(api: TestClient) -> None:
    """Observation writes answer 401 without a token and 403 with a wrong one."""
    location = create_location(api)
    created = create_observation(api, location["id"])
    item = f"{BASE}/{created['id']}"
    wrong = {"Authorization": "Bearer nope"}
    assert_problem(api.post(BASE, json=observation_payload(location["id"])), 401)
    assert_problem(api.post(BASE, json=observation_payload(location["id"]), headers=wrong), 403)
    assert_problem(api.patch(item, json={}), 401)
    assert_problem(api.patch(item, json={}, headers=wrong), 403)
    assert_problem(api.delete(item), 401)
    assert_problem(api.delete(item, headers=wrong), 403)


def test_current_returns_latest_with_freshness(api: TestClient) -> None:
    """`/current` serves the latest observation by observed_at, fresh right after a write."""
    location = create_location(api)
    create_observation(api, location["id"], observed_at=rfc3339(hours_ago(2)))
    latest = create_observation(api, location["id"], observed_at=rfc3339(hours_ago(1)))
    response = api.get(f"/api/v1/locations/{location['id']}/current")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == latest["id"]
    assert body["freshness"]["fetched_at"] == latest["fetched_at"]
    assert body["freshness"]["stale"] is False
    assert body["freshness"]["age_seconds"] >= 0


def test_current_without_observations_is_404(api: TestClient) -> None:
    """A location with no observations yet answers a 404 problem on `/current`."""
    location = create_location(api)
    body = assert_problem(api.get(f"/api/v1/locations/{location['id']}/current"), 404)
    assert "no observations" in body["detail"]
