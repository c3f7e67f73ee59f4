"""The simulator's HTTP app: `/v1/forecast` from recorded payloads, plus admin endpoints."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from apimirror.sources.openmeteo import MAX_LOCATIONS_PER_REQUEST, request_cost
from apimirror.upstream_sim import payloads
from apimirror.upstream_sim.faults import REASONS, WINDOWS, Faults, SimState

JSON_TYPE = "application/json; charset=utf-8"


class BadRequestError(ValueError):
    """A request Open-Meteo would refuse with 400."""


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": True, "reason": reason}, status, headers, media_type=JSON_TYPE)


def _floats(raw: str, name: str) -> list[float]:
    try:
        return [float(part) for part in raw.split(",")] if raw else []
    except ValueError:
        raise BadRequestError(f"Parameter '{name}' must be a number") from None


def _coordinates(params: dict[str, str]) -> list[tuple[float, float]]:
    lats = _floats(params.get("latitude", ""), "latitude")
    lons = _floats(params.get("longitude", ""), "longitude")
    if len(lats) != len(lons):
        raise BadRequestError(
            "Parameter 'latitude' and 'longitude' must have the same number of elements"
        )
    if not lats:
        raise BadRequestError("Parameter 'latitude' is required")
    if len(lats) > MAX_LOCATIONS_PER_REQUEST:
        raise BadRequestError("Only up to 1000 locations can be requested at once")
    for lat, lon in zip(lats, lons, strict=True):
        if not -90 <= lat <= 90:
            raise BadRequestError(f"Latitude must be in range of -90 to 90°. Given: {lat}.")
        if not -180 <= lon <= 180:
            raise BadRequestError(f"Longitude must be in range of -180 to 180°. Given: {lon}.")
    return list(zip(lats, lons, strict=True))


def _body(params: dict[str, str], coords: list[tuple[float, float]]) -> Any:
    now = datetime.now(UTC)
    variables = [v for v in params.get("current", "").split(",") if v]
    imperial = params.get("temperature_unit") == "fahrenheit"
    unixtime = params.get("timeformat") == "unixtime"
    items = []
    for index, (lat, lon) in enumerate(coords):
        if variables or params.get("current_weather") != "true":
            item = payloads.current_item(
                index=index,
                latitude=lat,
                longitude=lon,
                variables=variables,
                imperial=imperial,
                unixtime=unixtime,
                now=now,
            )
        else:
            item = payloads.legacy_item(index=index, latitude=lat, longitude=lon, now=now)
        items.append(payloads.with_location_id(item, index))
    # One location answers with a plain object, several with an array (JsonWriter).
    return items[0] if len(items) == 1 else items


async def _hang(request: Request) -> Response:
    await request.body()
    # After the body, the next ASGI message is the client giving up; until then, say nothing.
    message: dict[str, Any] = {}
    while message.get("type") != "http.disconnect":
        message = dict(await request.receive())
    return Response(status_code=499)


def _cost(params: dict[str, str], locations: int) -> float:
    variables = len([v for v in params.get("current", "").split(",") if v])
    days = int(params.get("forecast_days", "7") or 7)
    return request_cost(variables=variables, days=days, locations=locations)


async def forecast(request: Request) -> Response:
    """Answer a forecast call (GET query or POST form), applying the fault switches."""
    state: SimState = request.app.state.sim
    params = dict(request.query_params)
    if request.method == "POST":
        params.update(parse_qsl((await request.body()).decode("utf-8", "replace")))
    faults = state.faults
    if faults.hang:
        return await _hang(request)
    if faults.latency_s:
        await asyncio.sleep(faults.latency_s)
    try:
        coords = _coordinates(params)
        cost = _cost(params, len(coords))
    except (BadRequestError, ValueError) as exc:
        state.record(status=400, cost=0, locations=0)
        return _error(400, str(exc))
    if faults.outage:
        state.record(status=503, cost=0, locations=len(coords))
        return PlainTextResponse("upstream-sim: outage", 503)
    exceeded, reset_in = state.admit(cost)
    if exceeded is not None:
        headers = (
            {"Retry-After": str(max(int(reset_in + 0.999), 1))} if faults.retry_after else None
        )
        retry_after = int(headers["Retry-After"]) if headers else None
        state.record(status=429, cost=cost, locations=len(coords), retry_after=retry_after)
        return _error(429, REASONS[exceeded], headers)
    if faults.error_rate and random.random() < faults.error_rate:  # noqa: S311
        state.record(status=faults.error_status, cost=cost, locations=len(coords))
        return PlainTextResponse("upstream-sim: injected error", faults.error_status)
    state.record(status=200, cost=cost, locations=len(coords))
    return JSONResponse(_body(params, coords), media_type=JSON_TYPE)


async def get_faults(request: Request) -> Response:
    """Return the current fault switches."""
    return JSONResponse(request.app.state.sim.faults.model_dump())


async def set_faults(request: Request) -> Response:
    """Change some fault switches; unknown names or bad values get 422."""
    try:
        changes = await request.json()
        if not isinstance(changes, dict):
            raise TypeError("body must be a JSON object")
        faults = request.app.state.sim.update(changes)
    except (ValueError, TypeError, ValidationError) as exc:
        return JSONResponse({"detail": str(exc)}, 422)
    return JSONResponse(faults.model_dump())


async def stats(request: Request) -> Response:
    """Return call counters per window and status, and the recent calls."""
    return JSONResponse(request.app.state.sim.stats())


async def reset(request: Request) -> Response:
    """Forget every counted call."""
    request.app.state.sim.reset_counters()
    return JSONResponse({"reset": True})


async def healthz(request: Request) -> Response:
    """Say the simulator process is alive (faults do not apply here)."""
    return JSONResponse({"status": "ok"})


class _SimCollector:
    def __init__(self, state: SimState) -> None:
        self._state = state

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        data = self._state.stats()
        calls = CounterMetricFamily(
            "upstream_sim_requests", "Forecast calls answered, by status.", labels=["status"]
        )
        for status, count in data["statuses"].items():
            calls.add_metric([status], count)
        used = GaugeMetricFamily(
            "upstream_sim_window_received",
            "Weighted calls received in the current window.",
            labels=["window"],
        )
        for name in WINDOWS:
            used.add_metric([name], data["windows"][name]["received"])
        yield calls
        yield used


async def metrics(request: Request) -> Response:
    """Expose the simulator's own counters for Prometheus."""
    return Response(
        generate_latest(request.app.state.registry), media_type="text/plain; version=0.0.4"
    )


def create_app(faults: Faults) -> Starlette:
    """Build the simulator app with initial fault switches."""
    app = Starlette(
        routes=[
            Route("/v1/forecast", forecast, methods=["GET", "POST"]),
            Route("/admin/faults", get_faults, methods=["GET"]),
            Route("/admin/faults", set_faults, methods=["POST"]),
            Route("/admin/stats", stats, methods=["GET"]),
            Route("/admin/reset", reset, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )
    app.state.sim = SimState(faults=Faults.model_validate(faults.model_dump()))
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_SimCollector(app.state.sim))
    app.state.registry = registry
    return app
