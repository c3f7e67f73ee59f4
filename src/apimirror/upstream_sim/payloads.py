"""The recorded Open-Meteo payloads (see samples/SOURCES.md), replayed with time moved to now."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

INTERVAL_S = 900
# Samples whose `current` block is in metric units, and the imperial ones.
METRIC_CURRENT = (
    "current-lisbon-unixtime-daily.json",
    "current-null-island-unixtime-hourly-daily.json",
    "current-lisbon-iso8601-daily.json",
    "current-paris-iso8601-daily.json",
)
IMPERIAL_CURRENT = (
    "current-toronto-imperial-pastday-hourly-daily.json",
    "current-texas-fahrenheit-gmt-current-only.json",
)
LEGACY = ("legacy-current-weather-braunau-gmt.json", "legacy-current-weather-funchal-gmt.json")
_META = (
    "latitude",
    "longitude",
    "generationtime_ms",
    "utc_offset_seconds",
    "timezone",
    "timezone_abbreviation",
    "elevation",
)


def sample_names() -> list[str]:
    """Return the file names of every recorded sample."""
    folder = resources.files("apimirror.upstream_sim") / "samples"
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".json"))


@cache
def _load_text(name: str) -> str:
    return (resources.files("apimirror.upstream_sim") / "samples" / name).read_text("utf-8")


def load_sample(name: str) -> Any:
    """Return a fresh copy of one recorded sample body."""
    return json.loads(_load_text(name))


def interval_start(now: datetime) -> datetime:
    """Return the start of the 15-minute interval `now` falls in."""
    stamp = int(now.timestamp()) // INTERVAL_S * INTERVAL_S
    return datetime.fromtimestamp(stamp, tz=UTC)


def format_time(instant: datetime, *, unixtime: bool, utc_offset: int) -> int | str:
    """Render an instant the way Open-Meteo does: epoch seconds or local iso8601 minutes."""
    if unixtime:
        return int(instant.timestamp())
    local = instant.astimezone(UTC) + timedelta(seconds=utc_offset)
    return local.strftime("%Y-%m-%dT%H:%M")


def _find_variable(variable: str, names: tuple[str, ...]) -> tuple[Any, Any] | None:
    for name in names:
        sample = load_sample(name)
        if variable in sample["current"]:
            return sample["current"][variable], sample["current_units"][variable]
    return None


def current_item(
    *,
    index: int,
    latitude: float,
    longitude: float,
    variables: list[str],
    imperial: bool,
    unixtime: bool,
    now: datetime,
) -> dict[str, Any]:
    """Build one location's response from a recorded sample, with `current.time` moved to now."""
    names = IMPERIAL_CURRENT if imperial else METRIC_CURRENT
    base = load_sample(names[index % len(names)])
    ordered = (names[index % len(names)], *names)
    item: dict[str, Any] = {key: base[key] for key in _META}
    # Open-Meteo returns grid-cell centres, not the requested point.
    item["latitude"], item["longitude"] = round(latitude, 2), round(longitude, 2)
    offset = int(base["utc_offset_seconds"])
    units: dict[str, Any] = {"time": "unixtime" if unixtime else "iso8601", "interval": "seconds"}
    block: dict[str, Any] = {
        "time": format_time(interval_start(now), unixtime=unixtime, utc_offset=offset),
        "interval": INTERVAL_S,
    }
    for variable in variables:
        found = _find_variable(variable, ordered)
        if found is not None:
            block[variable], units[variable] = found
    item["current_units"], item["current"] = units, block
    return item


def legacy_item(*, index: int, latitude: float, longitude: float, now: datetime) -> dict[str, Any]:
    """Build a legacy `current_weather=true` response from a recorded sample."""
    item: dict[str, Any] = load_sample(LEGACY[index % len(LEGACY)])
    item["latitude"], item["longitude"] = round(latitude, 2), round(longitude, 2)
    item["current_weather"]["time"] = format_time(interval_start(now), unixtime=False, utc_offset=0)
    return item


def with_location_id(item: dict[str, Any], location_id: int) -> dict[str, Any]:
    """Insert `location_id` after `elevation`, as the recorded multi-location array has it."""
    if location_id == 0:
        return item  # the server's JsonWriter omits location_id 0
    result: dict[str, Any] = {}
    for key, value in item.items():
        result[key] = value
        if key == "elevation":
            result["location_id"] = location_id
    return result
