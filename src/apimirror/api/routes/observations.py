"""`/api/v1/observations`: the mirrored data, with manual CRUD."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.exceptions import RequestValidationError

from apimirror.api.deps import DbDep, SettingsDep, require_reader, require_writer
from apimirror.api.openapi import READ, WRITE, problems
from apimirror.api.routes.common import After, Limit
from apimirror.api.routes.sources import configured_sources
from apimirror.config import Settings
from apimirror.errors import NotFoundError, echo
from apimirror.models import (
    InputDatetime,
    ObjectIdInput,
    ObservationCreate,
    ObservationPublic,
    ObservationUpdate,
    Page,
)
from apimirror.sources import SOURCES
from apimirror.storage import observations as store

router = APIRouter(prefix="/observations", tags=["observations"])
reads = [Depends(require_reader)]
writes = [Depends(require_writer)]


def _missing(observation_id: str) -> NotFoundError:
    return NotFoundError(f"no observation has id {echo(observation_id)}")


def _check_written(body: ObservationCreate | ObservationUpdate, settings: Settings) -> None:
    """Refuse what the model alone cannot judge: a future `observed_at`, an upstream's name.

    A far-future observation would stay the location's latest (and hide real data in
    `/current`) for ever; a manual one named after a mirrored source would pass for its data.
    """
    errors = []
    skew = settings.max_future_skew_seconds
    latest_allowed = datetime.now(UTC) + timedelta(seconds=skew)
    if body.observed_at is not None and body.observed_at > latest_allowed:
        message = f"must not be later than now plus {skew} seconds"
        errors.append({"type": "value_error", "loc": ("body", "observed_at"), "msg": message})
    if body.source is not None and body.source in {*SOURCES, *configured_sources(settings)}:
        message = f"{body.source!r} names a mirrored upstream source; use another name"
        errors.append({"type": "value_error", "loc": ("body", "source"), "msg": message})
    if errors:
        raise RequestValidationError(errors)


@router.post(
    "",
    summary="Record an observation by hand",
    status_code=status.HTTP_201_CREATED,
    dependencies=writes,
    responses={**WRITE, **problems(409)},
)
async def create_observation(
    body: ObservationCreate, db: DbDep, settings: SettingsDep, response: Response
) -> ObservationPublic:
    """Create an observation; a second one with the same (location_id, observed_at) gets 409."""
    _check_written(body, settings)
    observation = await store.create_observation(db=db, data=body)
    response.headers["Location"] = f"/api/v1/observations/{observation.id}"
    return observation


@router.get("", summary="List observations", dependencies=reads, responses=READ)
async def list_observations(
    db: DbDep,
    limit: Limit = 50,
    after: After = None,
    location_id: Annotated[ObjectIdInput | None, Query(description="Only this location's.")] = None,
    since: Annotated[
        InputDatetime | None, Query(description="Observed at or after this time.")
    ] = None,
    until: Annotated[InputDatetime | None, Query(description="Observed before this time.")] = None,
) -> Page[ObservationPublic]:
    """Return one page of observations in a stable order, optionally filtered."""
    return await store.list_observations(
        db=db, limit=limit, after=after, location_id=location_id, since=since, until=until
    )


@router.get(
    "/{observation_id}",
    summary="Get one observation",
    dependencies=reads,
    responses={**READ, **problems(404)},
)
async def get_observation(observation_id: str, db: DbDep) -> ObservationPublic:
    """Return an observation by id."""
    observation = await store.get_observation(db=db, observation_id=observation_id)
    if observation is None:
        raise _missing(observation_id)
    return observation


@router.patch(
    "/{observation_id}",
    summary="Change an observation",
    dependencies=writes,
    responses={**WRITE, **problems(404, 409)},
)
async def update_observation(
    observation_id: str, body: ObservationUpdate, db: DbDep, settings: SettingsDep
) -> ObservationPublic:
    """Change the given fields of an observation (`values` and `units` are replaced whole)."""
    _check_written(body, settings)
    observation = await store.update_observation(db=db, observation_id=observation_id, data=body)
    if observation is None:
        raise _missing(observation_id)
    return observation


@router.delete(
    "/{observation_id}",
    summary="Delete an observation",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=writes,
    responses={**WRITE, **problems(404)},
)
async def delete_observation(observation_id: str, db: DbDep) -> Response:
    """Delete one observation."""
    if not await store.delete_observation(db=db, observation_id=observation_id):
        raise _missing(observation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
