"""`/api/v1/locations`: the items the mirror tracks, and each one's current observation."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Response, status

from apimirror.api.deps import DbDep, SettingsDep, require_reader, require_writer
from apimirror.api.openapi import READ, WRITE, problems
from apimirror.api.routes.common import After, Limit
from apimirror.errors import NotFoundError, echo
from apimirror.models import (
    CurrentPublic,
    Freshness,
    LocationCreate,
    LocationPublic,
    LocationUpdate,
    Page,
)
from apimirror.storage import locations as store
from apimirror.storage.observations import latest_observation

router = APIRouter(prefix="/locations", tags=["locations"])
reads = [Depends(require_reader)]
writes = [Depends(require_writer)]


def _missing(location_id: str) -> NotFoundError:
    return NotFoundError(f"no location has id {echo(location_id)}")


@router.post(
    "",
    summary="Track a new location",
    status_code=status.HTTP_201_CREATED,
    dependencies=writes,
    responses={**WRITE, **problems(409)},
)
async def create_location(body: LocationCreate, db: DbDep, response: Response) -> LocationPublic:
    """Create a location; the same coordinates twice get 409."""
    location = await store.create_location(db=db, data=body)
    response.headers["Location"] = f"/api/v1/locations/{location.id}"
    return location


@router.get("", summary="List locations", dependencies=reads, responses=READ)
async def list_locations(db: DbDep, limit: Limit = 50, after: After = None) -> Page[LocationPublic]:
    """Return one page of locations in a stable order."""
    return await store.list_locations(db=db, limit=limit, after=after)


@router.get(
    "/{location_id}",
    summary="Get one location",
    dependencies=reads,
    responses={**READ, **problems(404)},
)
async def get_location(location_id: str, db: DbDep) -> LocationPublic:
    """Return a location by id."""
    location = await store.get_location(db=db, location_id=location_id)
    if location is None:
        raise _missing(location_id)
    return location


@router.patch(
    "/{location_id}",
    summary="Change a location",
    dependencies=writes,
    responses={**WRITE, **problems(404, 409)},
)
async def update_location(location_id: str, body: LocationUpdate, db: DbDep) -> LocationPublic:
    """Change the given fields of a location."""
    location = await store.update_location(db=db, location_id=location_id, data=body)
    if location is None:
        raise _missing(location_id)
    return location


@router.delete(
    "/{location_id}",
    summary="Stop tracking a location and delete its observations",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=writes,
    responses={**WRITE, **problems(404)},
)
async def delete_location(location_id: str, db: DbDep) -> Response:
    """Delete a location together with its observations."""
    if not await store.delete_location(db=db, location_id=location_id):
        raise _missing(location_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{location_id}/current",
    summary="Get a location's latest observation and its freshness",
    dependencies=reads,
    responses={**READ, **problems(404)},
)
async def get_current(location_id: str, db: DbDep, settings: SettingsDep) -> CurrentPublic:
    """Return the latest observation with how old it is and whether that is stale."""
    latest = await latest_observation(db=db, location_id=location_id)
    if latest is None:
        if await store.get_location(db=db, location_id=location_id) is None:
            raise _missing(location_id)
        raise NotFoundError(f"location {location_id!r} has no observations yet")
    age = max((datetime.now(UTC) - latest.fetched_at).total_seconds(), 0.0)
    freshness = Freshness(
        fetched_at=latest.fetched_at,
        age_seconds=round(age, 3),
        stale=age > settings.stale_after_seconds,
    )
    return CurrentPublic(**latest.model_dump(), freshness=freshness)
