"""Open-Meteo forecast API: multi-location requests, weighted cost, and `current` parsing.

Reference: /work/shared/upstream-samples/open-meteo/SOURCES.md (recorded payloads and the
server behaviour they show). Results are matched to requested locations by array position or
`location_id`, never by coordinates, because Open-Meteo snaps coordinates to its grid.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from apimirror.config import Settings
from apimirror.sources.base import ParsedObservation, ParseResult, TrackedLocation, UpstreamRequest

NAME = "openmeteo"
FORECAST_PATH = "/v1/forecast"
MAX_LOCATIONS_PER_REQUEST = 1000
# Query strings for hundreds of coordinates get too long for GET (open-meteo issue #715).
POST_ABOVE_LOCATIONS = 50
_REASON_WINDOWS = (("minutely", "minute"), ("hourly", "hour"), ("daily", "day"))
_SKIPPED_FIELDS = frozenset({"time", "interval"})
# What the API accepts as a stored variable name (no `.`, no leading `$`) and unit length.
_VARIABLE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
_MAX_UNIT = 32


def request_cost(*, variables: int, days: int, locations: int) -> float:
    """Return Open-Meteo's weighted call count: max(vars/10,1) x max(days/14,1) x locations."""
    return max(variables / 10, 1.0) * max(days / 14, 1.0) * locations


def error_reason(payload: Any) -> str | None:
    """Return the `reason` of an Open-Meteo error body (`{"error": true, "reason": ...}`)."""
    if isinstance(payload, dict) and payload.get("error") is True:
        reason = payload.get("reason")
        return reason if isinstance(reason, str) else ""
    return None


def _format_coord(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


class OpenMeteoSource:
    """The Open-Meteo forecast API as a mirror source."""

    name = NAME

    def __init__(self, settings: Settings) -> None:
        """Remember the settings that shape requests and limits."""
        self._settings = settings
        self._variables = settings.variables()

    def limits(self) -> dict[str, int]:
        """Return the configured weighted-call budget per window."""
        return self._settings.limits()

    def location_cost(self) -> float:
        """Return what one location adds to a request's weighted cost."""
        return request_cost(
            variables=len(self._variables), days=self._settings.forecast_days, locations=1
        )

    def batch_size(self, max_cost: float | None = None) -> int:
        """Return how many locations go into one request (at least 1)."""
        size = min(self._settings.upstream_batch_size, MAX_LOCATIONS_PER_REQUEST)
        if max_cost is not None:
            size = min(size, int(max_cost // self.location_cost()))
        return max(size, 1)

    def build_requests(
        self, locations: Sequence[TrackedLocation], *, max_cost: float | None = None
    ) -> list[UpstreamRequest]:
        """Pack locations, in order, into multi-location forecast requests."""
        size = self.batch_size(max_cost)
        url = self._settings.upstream_base_url.rstrip("/") + FORECAST_PATH
        requests = []
        for start in range(0, len(locations), size):
            batch = tuple(locations[start : start + size])
            params = {
                "latitude": ",".join(_format_coord(loc.latitude) for loc in batch),
                "longitude": ",".join(_format_coord(loc.longitude) for loc in batch),
                "current": ",".join(self._variables),
                "timeformat": "unixtime",
                "forecast_days": str(self._settings.forecast_days),
            }
            method = "POST" if len(batch) > POST_ABOVE_LOCATIONS else "GET"
            cost = request_cost(
                variables=len(self._variables),
                days=self._settings.forecast_days,
                locations=len(batch),
            )
            requests.append(UpstreamRequest(method, url, params, batch, cost))
        return requests

    def parse(self, request: UpstreamRequest, payload: Any) -> ParseResult:
        """Turn a forecast response (object or array) into observations; collect bad items."""
        result = ParseResult()
        for location, item in match_items(request.locations, payload, result.errors):
            try:
                result.observations.append(parse_item(location, item))
            except ValueError as exc:
                result.errors.append(f"location {location.id}: {exc}")
        return result

    def throttle_reason(self, payload: Any) -> str | None:
        """Return the window (minute, hour, day) a 429 body names, or None."""
        reason = (error_reason(payload) or "").lower()
        for word, window in _REASON_WINDOWS:
            if word in reason:
                return window
        return None


def match_items(
    locations: Sequence[TrackedLocation], payload: Any, errors: list[str]
) -> list[tuple[TrackedLocation, dict[str, Any]]]:
    """Pair each response item with its requested location by `location_id` or position."""
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        errors.append(f"payload is {type(payload).__name__}, not an object or array")
        return []
    pairs: dict[int, tuple[TrackedLocation, dict[str, Any]]] = {}
    for position, item in enumerate(payload):
        if not isinstance(item, dict):
            errors.append(f"item {position} is not an object")
            continue
        # The first element carries no location_id; the others carry 1, 2, ... (JsonWriter).
        index = item.get("location_id", position)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(locations):
            errors.append(f"item {position} has an unknown location_id {index!r}")
            continue
        if index in pairs:
            errors.append(f"item {position} repeats location_id {index}")
            continue
        pairs[index] = (locations[index], item)
    missing = len(locations) - len(pairs)
    if missing > 0:
        errors.append(f"{missing} requested location(s) missing from the response")
    return [pairs[i] for i in sorted(pairs)]


def parse_item(location: TrackedLocation, item: dict[str, Any]) -> ParsedObservation:
    """Parse one location's `current` (or legacy `current_weather`) block."""
    block = item.get("current")
    units = item.get("current_units")
    if block is None:
        block, units = item.get("current_weather"), item.get("current_weather_units")
    if not isinstance(block, dict):
        raise ValueError("no current block")
    units = units if isinstance(units, dict) else {}
    observed_at = parse_time(block.get("time"), units.get("time"), item.get("utc_offset_seconds"))
    values: dict[str, float] = {}
    value_units: dict[str, str] = {}
    for key, value in block.items():
        if key in _SKIPPED_FIELDS or not _VARIABLE.match(key):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue  # null (no data) or a non-number: not an observation value
        if not math.isfinite(value):
            continue
        values[key] = value
        unit = units.get(key)
        if isinstance(unit, str) and len(unit) <= _MAX_UNIT:
            value_units[key] = unit
    if not values:
        raise ValueError("current block has no numeric values")
    return ParsedObservation(location.id, observed_at, values, value_units)


def parse_time(raw: Any, fmt: Any, utc_offset: Any) -> datetime:
    """Return the UTC instant of a `current.time` in unixtime or local iso8601 form."""
    if isinstance(raw, bool):
        raise ValueError("time is not a timestamp")
    if isinstance(raw, int | float) and fmt in (None, "unixtime"):
        return datetime.fromtimestamp(raw, tz=UTC)
    if isinstance(raw, str) and fmt in (None, "iso8601"):
        try:
            local = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"time {raw!r} is not iso8601") from None
        if local.tzinfo is not None:
            return local.astimezone(UTC)
        offset = (
            utc_offset if isinstance(utc_offset, int) and not isinstance(utc_offset, bool) else 0
        )
        # iso8601 times are local to the response's timezone; unixtime is always UTC.
        return local.replace(tzinfo=UTC) - timedelta(seconds=offset)
    raise ValueError(f"time {raw!r} does not match format {fmt!r}")
