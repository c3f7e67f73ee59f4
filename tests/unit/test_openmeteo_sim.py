"""The upstream simulator serves recorded Open-Meteo payloads, moved to now, with fault switches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId
from starlette.testclient import TestClient

from apimirror.config import Settings
from apimirror.sources.base import TrackedLocation
from apimirror.sources.openmeteo import OpenMeteoSource
from apimirror.upstream_sim.app import create_app
from apimirror.upstream_sim.faults import Faults
from apimirror.upstream_sim.payloads import interval_start, load_sample


def _client(**faults: Any) -> TestClient:
    return TestClient(create_app(Faults(**faults)))


def _request(count: int) -> tuple[OpenMeteoSource, Any]:
    source = OpenMeteoSource(Settings(APIMIRROR_UPSTREAM_BASE_URL="http://testserver"))
    locations = [TrackedLocation(ObjectId(), 40.0 + i, -3.0 - i) for i in range(count)]
    [request] = source.build_requests(locations)
    return source, request


def test_single_location_is_an_object_with_current_time_now() -> None:
    """One location gets a plain object whose current.time is the current 15-minute interval."""
    source, request = _request(1)
    with _client() as client:
        response = client.get("/v1/forecast", params=dict(request.params))
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, dict)
    assert "location_id" not in body
    [obs] = source.parse(request, body).observations
    assert obs.observed_at == interval_start(datetime.now(UTC))
    assert set(obs.values) == set(Settings().variables())


def test_values_and_units_come_from_recorded_samples() -> None:
    """Every value and unit served is one recorded in a real sample."""
    _, request = _request(1)
    with _client() as client:
        body = client.get("/v1/forecast", params=dict(request.params)).json()
    recorded = load_sample("current-lisbon-unixtime-daily.json")
    assert body["current"]["temperature_2m"] == recorded["current"]["temperature_2m"]
    assert body["current_units"]["wind_speed_10m"] == recorded["current_units"]["wind_speed_10m"]
    assert list(body)[:7] == list(recorded)[:7]


def test_multi_location_array_follows_the_recorded_shape() -> None:
    """Several locations get an array: first item without location_id, then 1, 2, ..."""
    source, request = _request(3)
    with _client() as client:
        body = client.get("/v1/forecast", params=dict(request.params)).json()
    assert isinstance(body, list)
    assert [item.get("location_id") for item in body] == [None, 1, 2]
    assert list(body[1])[7] == "location_id"
    result = source.parse(request, body)
    assert result.errors == []
    assert [o.location_id for o in result.observations] == [loc.id for loc in request.locations]


def test_post_form_is_accepted() -> None:
    """A POST with form-encoded parameters is answered like a GET."""
    source, request = _request(2)
    with _client() as client:
        response = client.post("/v1/forecast", data=dict(request.params))
    assert response.status_code == 200
    assert len(source.parse(request, response.json()).observations) == 2


def test_iso8601_time_is_local_to_the_sample_timezone() -> None:
    """Without timeformat=unixtime, current.time is local iso8601 and parses back to now."""
    source, request = _request(4)
    params = {k: v for k, v in request.params.items() if k != "timeformat"}
    with _client() as client:
        body = client.get("/v1/forecast", params=params).json()
    assert isinstance(body[3]["current"]["time"], str)
    observed = {o.observed_at for o in source.parse(request, body).observations}
    assert observed == {interval_start(datetime.now(UTC))}


def test_enforced_minute_limit_answers_the_real_429_body_without_retry_after() -> None:
    """Over the minute limit the simulator answers 429 with Open-Meteo's minutely body."""
    _, request = _request(1)
    with _client(rate_limit=True, limit_minute=2) as client:
        codes = [client.get("/v1/forecast", params=dict(request.params)) for _ in range(3)]
        assert [r.status_code for r in codes] == [200, 200, 429]
        assert codes[2].json() == load_sample("error-429-minutely.json")
        assert "retry-after" not in codes[2].headers
        client.post("/admin/faults", json={"retry_after": True})
        again = client.get("/v1/forecast", params=dict(request.params))
        assert again.status_code == 429
        assert 1 <= int(again.headers["retry-after"]) <= 60
        stats = client.get("/admin/stats").json()
    assert stats["windows"]["minute"]["accepted"] == 2
    assert stats["windows"]["minute"]["max_received"] == 4
    assert stats["statuses"] == {"200": 2, "429": 2}


def test_daily_limit_body_names_the_day() -> None:
    """The first window exceeded decides the body: a spent day answers the daily reason."""
    _, request = _request(1)
    with _client(rate_limit=True, limit_day=1) as client:
        client.get("/v1/forecast", params=dict(request.params))
        body = client.get("/v1/forecast", params=dict(request.params)).json()
    assert body == load_sample("error-429-daily.json")


@pytest.mark.parametrize(
    ("faults", "status"), [({"outage": True}, 503), ({"error_rate": 1.0}, 503)]
)
def test_outage_and_error_rate_answer_5xx(faults: dict[str, Any], status: int) -> None:
    """A full outage or an error rate of 1 answers every forecast call with a 5xx."""
    _, request = _request(1)
    with _client(**faults) as client:
        assert client.get("/v1/forecast", params=dict(request.params)).status_code == status
        assert client.get("/healthz").status_code == 200


def test_bad_coordinates_get_the_recorded_400_shape() -> None:
    """Out-of-range and mismatched coordinates get 400 with Open-Meteo's error bodies."""
    with _client() as client:
        out = client.get("/v1/forecast", params={"latitude": "999", "longitude": "1"})
        mismatch = client.get("/v1/forecast", params={"latitude": "1,2", "longitude": "1"})
    assert out.status_code == 400
    assert out.json() == load_sample("error-400-latitude-out-of-range.json")
    assert mismatch.json() == load_sample("error-400-latitude-longitude-count-mismatch.json")


def test_faults_change_at_run_time_and_are_validated() -> None:
    """POST /admin/faults changes switches; unknown switches and bad values are refused."""
    with _client() as client:
        assert client.get("/admin/faults").json()["outage"] is False
        assert client.post("/admin/faults", json={"outage": True}).json()["outage"] is True
        assert client.post("/admin/faults", json={"nope": 1}).status_code == 422
        assert client.post("/admin/faults", json={"error_rate": 2}).status_code == 422
        client.post("/admin/reset")
        assert client.get("/admin/stats").json()["total"] == 0


def test_metrics_expose_calls_by_status() -> None:
    """/metrics exposes the simulator's call counters in Prometheus text format."""
    _, request = _request(1)
    with _client() as client:
        client.get("/v1/forecast", params=dict(request.params))
        text = client.get("/metrics").text
    assert 'upstream_sim_requests_total{status="200"} 1.0' in text
    assert 'upstream_sim_window_received{window="minute"}' in text


def test_fault_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """APIMIRROR_SIM_* variables set the switches at start-up."""
    from apimirror.upstream_sim.faults import FaultSettings

    monkeypatch.setenv("APIMIRROR_SIM_RATE_LIMIT", "true")
    monkeypatch.setenv("APIMIRROR_SIM_LIMIT_MINUTE", "7")
    faults = FaultSettings()
    assert faults.rate_limit is True
    assert faults.limit_minute == 7
