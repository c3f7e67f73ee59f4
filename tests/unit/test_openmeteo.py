"""Open-Meteo source: cost, batching and parsing of every recorded sample."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from bson import ObjectId

from apimirror.config import Settings
from apimirror.sources import SOURCES, UnknownSourceError, get_source
from apimirror.sources.base import TrackedLocation
from apimirror.sources.openmeteo import (
    OpenMeteoSource,
    error_reason,
    match_items,
    request_cost,
)
from apimirror.upstream_sim.payloads import load_sample, sample_names


def _settings(**overrides: Any) -> Settings:
    return Settings(**overrides)


def _locations(count: int) -> list[TrackedLocation]:
    return [TrackedLocation(ObjectId(), 10.0 + i / 100, 20.0 - i / 100) for i in range(count)]


def _source(**overrides: Any) -> OpenMeteoSource:
    return OpenMeteoSource(_settings(**overrides))


@pytest.mark.parametrize(
    ("variables", "days", "locations", "expected"),
    [
        (6, 1, 1, 1.0),
        (10, 14, 1, 1.0),
        (15, 14, 1, 1.5),
        (15, 28, 1, 3.0),
        (20, 28, 3, 12.0),
        (6, 1, 1000, 1000.0),
    ],
)
def test_request_cost_weights_variables_days_and_locations(
    variables: int, days: int, locations: int, expected: float
) -> None:
    """A request costs max(vars/10,1) x max(days/14,1) x locations weighted calls."""
    assert request_cost(variables=variables, days=days, locations=locations) == expected


def test_registry_knows_openmeteo_and_refuses_unknown_names() -> None:
    """The registry returns the Open-Meteo source by name and refuses names it does not know."""
    assert "openmeteo" in SOURCES
    assert get_source("openmeteo", _settings()).name == "openmeteo"
    with pytest.raises(UnknownSourceError):
        get_source("nope", _settings())


def test_batches_hold_at_most_1000_locations_in_order() -> None:
    """2,500 locations become requests of 1,000, 1,000 and 500, in the original order."""
    locations = _locations(2500)
    requests = _source().build_requests(locations)
    assert [len(r.locations) for r in requests] == [1000, 1000, 500]
    assert [loc for r in requests for loc in r.locations] == locations
    assert [r.cost for r in requests] == [1000.0, 1000.0, 500.0]
    assert all(r.method == "POST" for r in requests)


def test_batch_size_setting_and_budget_cap_shrink_batches() -> None:
    """The configured batch size and a cost cap both limit locations per request."""
    locations = _locations(5)
    assert [
        len(r.locations) for r in _source(APIMIRROR_BATCH_SIZE=2).build_requests(locations)
    ] == [
        2,
        2,
        1,
    ]
    capped = _source().build_requests(locations, max_cost=3)
    assert [len(r.locations) for r in capped] == [3, 2]
    assert all(r.cost <= 3 for r in capped)


def test_request_carries_comma_separated_coordinates_and_variables() -> None:
    """A small batch is one GET with comma-separated coordinates and the `current` variables."""
    locations = [
        TrackedLocation(ObjectId(), 52.52, 13.41),
        TrackedLocation(ObjectId(), -33.9, 18.4),
    ]
    [request] = _source(APIMIRROR_UPSTREAM_BASE_URL="http://sim:1/").build_requests(locations)
    assert request.method == "GET"
    assert request.url == "http://sim:1/v1/forecast"
    assert request.params["latitude"] == "52.52,-33.9"
    assert request.params["longitude"] == "13.41,18.4"
    assert request.params["current"].split(",") == _settings().variables()


EXPECTED_TIMES = {
    # unixtime is UTC; iso8601 is local time, so utc_offset_seconds is subtracted.
    "current-lisbon-unixtime-daily.json": datetime.fromtimestamp(1706264100, tz=UTC),
    "current-lisbon-iso8601-daily.json": datetime(2024, 1, 25, 16, 0, tzinfo=UTC),
    "current-null-island-unixtime-hourly-daily.json": datetime.fromtimestamp(1790674200, tz=UTC),
    "current-toronto-imperial-pastday-hourly-daily.json": datetime(2026, 3, 6, 2, 0, tzinfo=UTC),
    "current-paris-iso8601-daily.json": datetime(2026, 10, 7, 13, 30, tzinfo=UTC),
    "current-texas-fahrenheit-gmt-current-only.json": datetime(2024, 4, 23, 21, 45, tzinfo=UTC),
    "legacy-current-weather-braunau-gmt.json": datetime(2026, 3, 10, 8, 0, tzinfo=UTC),
    "legacy-current-weather-funchal-gmt.json": datetime(2026, 3, 10, 8, 0, tzinfo=UTC),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_TIMES))
def test_every_recorded_single_location_sample_parses(name: str) -> None:
    """Each recorded single-location body yields one observation at the right UTC instant."""
    source = _source()
    [request] = source.build_requests(_locations(1))
    payload = load_sample(name)
    result = source.parse(request, payload)
    assert result.errors == []
    [obs] = result.observations
    assert obs.location_id == request.locations[0].id
    assert obs.observed_at == EXPECTED_TIMES[name]
    block = payload.get("current") or payload["current_weather"]
    assert obs.values == {k: v for k, v in block.items() if k not in ("time", "interval")}
    assert set(obs.units) == set(obs.values)


def test_every_sample_file_is_covered() -> None:
    """Every recorded sample is exercised by a parsing test in this module."""
    covered = set(EXPECTED_TIMES) | {
        "multi-2-locations-berlin-paris-hourly.json",
        *(n for n in sample_names() if n.startswith("error-")),
    }
    assert set(sample_names()) == covered


def test_multi_location_sample_matches_items_by_position_and_location_id() -> None:
    """The recorded array (first item without location_id) pairs with requested locations."""
    locations = _locations(2)
    payload = load_sample("multi-2-locations-berlin-paris-hourly.json")
    errors: list[str] = []
    pairs = match_items(locations, payload, errors)
    assert errors == []
    assert [loc for loc, _ in pairs] == locations
    assert pairs[1][1]["location_id"] == 1
    assert pairs[1][1]["timezone"] == "Europe/Paris"


def test_multi_location_sample_without_current_is_reported_not_raised() -> None:
    """An hourly-only array yields no observations and one error per location, no exception."""
    source = _source()
    [request] = source.build_requests(_locations(2))
    result = source.parse(request, load_sample("multi-2-locations-berlin-paris-hourly.json"))
    assert result.observations == []
    assert len(result.errors) == 2
    assert all("no current block" in e for e in result.errors)


def test_items_are_matched_by_location_id_even_out_of_order() -> None:
    """An array whose items come out of order is matched by location_id, not coordinates."""
    source = _source()
    [request] = source.build_requests(_locations(3))
    first = load_sample("current-lisbon-unixtime-daily.json")
    second = {**load_sample("current-paris-iso8601-daily.json"), "location_id": 2}
    third = {**load_sample("current-null-island-unixtime-hourly-daily.json"), "location_id": 1}
    result = source.parse(request, [first, second, third])
    assert result.errors == []
    by_loc = {o.location_id: o for o in result.observations}
    assert by_loc[request.locations[2].id].values["temperature_2m"] == 19.1
    assert by_loc[request.locations[1].id].values["apparent_temperature"] == 27.7


def test_partial_payload_keeps_good_items_and_reports_bad_ones() -> None:
    """A broken item is reported while the good items of the same response are kept."""
    source = _source()
    [request] = source.build_requests(_locations(4))
    good = load_sample("current-lisbon-unixtime-daily.json")
    bad_time = {**load_sample("current-paris-iso8601-daily.json"), "location_id": 1}
    bad_time["current"] = {**bad_time["current"], "time": "yesterday"}
    not_object = "oops"
    result = source.parse(request, [good, bad_time, not_object])
    assert [o.location_id for o in result.observations] == [request.locations[0].id]
    assert len(result.errors) == 3  # bad time, not an object, one location missing


@pytest.mark.parametrize("payload", [None, 42, "text", [], {"current": "x"}, {"current": {}}])
def test_malformed_payloads_never_raise(payload: Any) -> None:
    """Payloads of the wrong shape produce errors, never exceptions."""
    source = _source()
    [request] = source.build_requests(_locations(1))
    result = source.parse(request, payload)
    assert result.observations == []
    assert result.errors


def test_non_numeric_and_unsafe_values_are_dropped() -> None:
    """Nulls, booleans, NaN and keys unsafe for MongoDB never reach the stored values."""
    source = _source()
    [request] = source.build_requests(_locations(1))
    payload = load_sample("current-lisbon-unixtime-daily.json")
    payload["current"].update(
        {"a.b": 1, "$x": 2, "nothing": None, "flag": True, "nan": float("nan")}
    )
    [obs] = source.parse(request, payload).observations
    assert not {"a.b", "$x", "nothing", "flag", "nan"} & set(obs.values)


@pytest.mark.parametrize(
    ("name", "window"),
    [
        ("error-429-minutely.json", "minute"),
        ("error-429-daily.json", "day"),
        ("error-400-latitude-out-of-range.json", None),
        ("error-400-latitude-longitude-count-mismatch.json", None),
    ],
)
def test_error_bodies_are_read_for_their_reason_and_window(name: str, window: str | None) -> None:
    """Recorded error bodies give their reason, and 429 bodies name the window to wait for."""
    source = _source()
    payload = load_sample(name)
    assert error_reason(payload)
    assert source.throttle_reason(payload) == window
    [request] = source.build_requests(_locations(1))
    result = source.parse(request, payload)
    assert result.observations == []
    assert result.errors


def test_hourly_reason_from_server_source_names_the_hour() -> None:
    """The hourly reason string of the server source maps to the hour window."""
    body = {
        "error": True,
        "reason": "Hourly API request limit exceeded. Please try again in the next hour.",
    }
    assert _source().throttle_reason(body) == "hour"
    assert (
        _source().throttle_reason({"error": True, "reason": "Too many concurrent requests"}) is None
    )


def test_request_round_trip_through_mock_transport() -> None:
    """A built request sent through httpx reaches the upstream with the expected query."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=load_sample("current-lisbon-unixtime-daily.json"))

    source = _source(APIMIRROR_UPSTREAM_BASE_URL="http://upstream.test")
    [request] = source.build_requests(_locations(1))
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        response = client.request(request.method, request.url, params=dict(request.params))
    assert seen[0].url.path == "/v1/forecast"
    assert seen[0].url.params["timeformat"] == "unixtime"
    assert len(source.parse(request, response.json()).observations) == 1
