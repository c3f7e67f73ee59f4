"""QA findings against the real server: times, coercion, nulls, media types, HEAD, echoes, ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.factories import (
    AUTH,
    create_location,
    create_observation,
    hours_ago,
    location_payload,
    observation_payload,
    rfc3339,
)
from tests.integration.test_api_locations import assert_problem

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.api_fixtures"]

LOCATIONS = "/api/v1/locations"
OBSERVATIONS = "/api/v1/observations"


def _fields(body: dict[str, Any]) -> set[str]:
    return {error["field"] for error in body.get("errors", [])}


@pytest.mark.parametrize(
    "observed_at",
    ["2100-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z", "1733220000"],
)
def test_post_refuses_future_ancient_or_numeric_observed_at(
    api: TestClient, observed_at: str
) -> None:
    """A manual POST with `observed_at` past now + skew, before 1970 or not RFC 3339 gets 422."""
    location = create_location(api)
    body = observation_payload(location["id"], observed_at=observed_at)
    problem = assert_problem(api.post(OBSERVATIONS, json=body, headers=AUTH), 422)
    assert _fields(problem) == {"body.observed_at"}
    assert "observed_at" in problem["detail"]


def test_future_observation_cannot_hide_current_data(api: TestClient) -> None:
    """After a refused far-future write, `/current` still serves the real latest observation."""
    location = create_location(api)
    real = create_observation(api, location["id"], observed_at=rfc3339(hours_ago(1)))
    future = observation_payload(location["id"], observed_at="2100-01-01T00:00:00Z")
    assert_problem(api.post(OBSERVATIONS, json=future, headers=AUTH), 422)
    assert api.get(f"{LOCATIONS}/{location['id']}/current").json()["id"] == real["id"]


def test_patch_refuses_future_observed_at(api: TestClient) -> None:
    """PATCH cannot move an observation past now + skew either; within the skew is fine."""
    location = create_location(api)
    created = create_observation(api, location["id"], observed_at=rfc3339(hours_ago(2)))
    url = f"{OBSERVATIONS}/{created['id']}"
    far = api.patch(url, json={"observed_at": "9999-12-31T23:59:59Z"}, headers=AUTH)
    assert _fields(assert_problem(far, 422)) == {"body.observed_at"}
    soon = rfc3339((datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0))
    assert api.patch(url, json={"observed_at": soon}, headers=AUTH).status_code == 200


def test_future_skew_is_a_setting(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """APIMIRROR_MAX_FUTURE_SKEW_SECONDS=0 refuses an observation five minutes ahead."""
    from apimirror.api.app import create_app
    from apimirror.config import get_settings

    monkeypatch.setenv("APIMIRROR_MAX_FUTURE_SKEW_SECONDS", "0")
    get_settings.cache_clear()
    with TestClient(create_app(get_settings())) as client:
        location = create_location(client)
        ahead = rfc3339(datetime.now(UTC) + timedelta(minutes=5))
        body = observation_payload(location["id"], observed_at=ahead)
        assert_problem(client.post(OBSERVATIONS, json=body, headers=AUTH), 422)


def test_manual_data_cannot_claim_an_upstream_source(api: TestClient) -> None:
    """POST or PATCH naming a mirrored source (`openmeteo`) gets 422 naming `source`."""
    location = create_location(api)
    body = observation_payload(location["id"], source="openmeteo")
    assert _fields(assert_problem(api.post(OBSERVATIONS, json=body, headers=AUTH), 422)) == {
        "body.source"
    }
    created = create_observation(api, location["id"], source="station-7")
    patched = api.patch(
        f"{OBSERVATIONS}/{created['id']}", json={"source": "openmeteo"}, headers=AUTH
    )
    assert _fields(assert_problem(patched, 422)) == {"body.source"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"latitude": True}, "body.latitude"),
        ({"latitude": "59"}, "body.latitude"),
        ({"active": "yes"}, "body.active"),
        ({"name": "  \t "}, "body.name"),
    ],
)
def test_location_post_refuses_coercion(
    api: TestClient, change: dict[str, Any], field: str
) -> None:
    """Booleans and strings are not numbers, and a whitespace-only name is empty."""
    response = api.post(LOCATIONS, json=location_payload(**change), headers=AUTH)
    assert _fields(assert_problem(response, 422)) == {field}


@pytest.mark.parametrize(
    ("values", "observed_at"),
    [({"t": True}, None), ({"t": "1.5"}, None), ({"t": 1.5}, 1733220000)],
)
def test_observation_post_refuses_coercion(
    api: TestClient, values: dict[str, Any], observed_at: int | None
) -> None:
    """`{"t": true}`, `{"t": "1.5"}` and an integer `observed_at` get 422."""
    location = create_location(api)
    body = observation_payload(location["id"], values=values)
    if observed_at is not None:
        body["observed_at"] = observed_at
    assert_problem(api.post(OBSERVATIONS, json=body, headers=AUTH), 422)


@pytest.mark.parametrize("field", ["name", "latitude", "longitude", "tags", "active"])
def test_location_patch_refuses_null(api: TestClient, field: str) -> None:
    """`PATCH /locations/{id}` with an explicit null answers 422 and changes nothing."""
    location = create_location(api)
    url = f"{LOCATIONS}/{location['id']}"
    response = api.patch(url, json={field: None}, headers=AUTH)
    assert _fields(assert_problem(response, 422)) == {f"body.{field}"}
    assert api.get(url).json() == location


@pytest.mark.parametrize("field", ["values", "units", "source", "observed_at"])
def test_observation_patch_refuses_null(api: TestClient, field: str) -> None:
    """`PATCH /observations/{id}` with an explicit null answers 422 and changes nothing."""
    observation = create_observation(api, create_location(api)["id"])
    url = f"{OBSERVATIONS}/{observation['id']}"
    response = api.patch(url, json={field: None}, headers=AUTH)
    assert _fields(assert_problem(response, 422)) == {f"body.{field}"}
    assert api.get(url).json() == observation


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_body_without_json_content_type_is_415(api: TestClient, content_type: str | None) -> None:
    """A JSON body sent without a JSON Content-Type answers 415, on POST and PATCH."""
    headers = dict(AUTH)
    if content_type is not None:
        headers["Content-Type"] = content_type
    body = b'{"name": "Oslo", "latitude": 59.91, "longitude": 10.75}'
    assert_problem(api.post(LOCATIONS, content=body, headers=headers), 415)
    location = create_location(api)
    patch = api.patch(f"{LOCATIONS}/{location['id']}", content=b'{"name": "x"}', headers=headers)
    assert_problem(patch, 415)


def test_json_media_types_with_parameters_are_accepted(api: TestClient) -> None:
    """`application/json; charset=utf-8` is JSON, and a body-less refresh needs no type."""
    headers = {**AUTH, "Content-Type": "application/json; charset=utf-8"}
    body = location_payload()
    response = api.post(LOCATIONS, content=json.dumps(body).encode(), headers=headers)
    assert response.status_code == 201, response.text


def test_openapi_documents_415_on_body_operations(api: TestClient) -> None:
    """Operations with a request body document 415; body-less ones do not."""
    paths = api.get("/openapi.json").json()["paths"]
    assert "415" in paths["/api/v1/locations"]["post"]["responses"]
    assert "415" in paths["/api/v1/observations/{observation_id}"]["patch"]["responses"]
    assert "415" not in paths["/api/v1/locations/{location_id}"]["delete"]["responses"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", LOCATIONS, OBSERVATIONS])
def test_head_is_served_like_get_without_a_body(api: TestClient, path: str) -> None:
    """HEAD answers GET's status and headers with an empty body."""
    get = api.get(path)
    head = api.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]


def test_head_on_a_post_only_route_is_405(api: TestClient) -> None:
    """HEAD where no GET exists answers 405 naming HEAD, with Allow."""
    response = api.head("/api/v1/sources/openmeteo/refresh")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_not_found_detail_truncates_the_echoed_id(api: TestClient) -> None:
    """A 20,000-character id comes back cut short in the 404 detail."""
    long_id = "a" * 20_000
    for base in (LOCATIONS, OBSERVATIONS):
        problem = assert_problem(api.get(f"{base}/{long_id}"), 404)
        assert len(problem["detail"]) < 200
    unmatched = assert_problem(api.get(f"/api/v1/{long_id}/x"), 404)
    assert len(unmatched["detail"]) < 200


def test_long_query_and_key_names_are_truncated(api: TestClient) -> None:
    """An unknown query parameter or a huge values key is echoed at most 64 characters long."""
    problem = assert_problem(api.get(LOCATIONS, params={"x" * 5000: "1"}), 422)
    assert len(problem["detail"]) < 200
    location = create_location(api)
    body = observation_payload(location["id"], values={"$" + "k" * 5000: 1.0})
    problem = assert_problem(api.post(OBSERVATIONS, json=body, headers=AUTH), 422)
    assert max(len(error["field"]) for error in problem["errors"]) < 200


def test_upper_case_ids_work_everywhere(api: TestClient) -> None:
    """Upper-case hex ids work in paths, `?after=`, `?location_id=` and bodies alike."""
    location = create_location(api)
    upper = location["id"].upper()
    assert api.get(f"{LOCATIONS}/{upper}").status_code == 200
    observation = create_observation(api, upper)
    assert observation["location_id"] == location["id"]
    listed = api.get(OBSERVATIONS, params={"location_id": upper})
    assert listed.status_code == 200, listed.text
    assert [item["id"] for item in listed.json()["items"]] == [observation["id"]]
    after = api.get(LOCATIONS, params={"after": upper})
    assert after.status_code == 200, after.text
    assert location["id"] not in [item["id"] for item in after.json()["items"]]


@pytest.mark.parametrize("value", ["10.0", "1733220000", "2026-03-01T12:00:00", "2026-03-01"])
@pytest.mark.parametrize("name", ["since", "until"])
def test_since_and_until_need_rfc3339_with_offset(api: TestClient, name: str, value: str) -> None:
    """Bare numbers, naive times and dates in `since`/`until` answer 422 naming the parameter."""
    problem = assert_problem(api.get(OBSERVATIONS, params={name: value}), 422)
    assert name in problem["detail"]


def test_since_accepts_an_offset(api: TestClient) -> None:
    """`since` with an explicit offset still filters."""
    response = api.get(OBSERVATIONS, params={"since": "2026-03-01T12:00:00+01:00"})
    assert response.status_code == 200, response.text


def test_deeply_nested_json_gets_an_accurate_message(api: TestClient) -> None:
    """A body nested 100,000 arrays deep is a 422 saying it nests too deeply, not bad UTF-8."""
    depth = 100_000
    body = b"[" * depth + b"]" * depth
    headers = {**AUTH, "Content-Type": "application/json"}
    problem = assert_problem(api.post(LOCATIONS, content=body, headers=headers), 422)
    assert "too deeply" in problem["detail"]
    assert "UTF-8" not in problem["detail"]


def test_invalid_utf8_body_still_says_so(api: TestClient) -> None:
    """A body that is not UTF-8 gets a 422 saying exactly that."""
    headers = {**AUTH, "Content-Type": "application/json"}
    problem = assert_problem(api.post(LOCATIONS, content=b'{"name": "\xff"}', headers=headers), 422)
    assert "UTF-8" in problem["detail"]
