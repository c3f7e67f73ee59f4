"""Request models refuse coerced types, nulls in PATCH bodies, blank names and odd timestamps."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from apimirror.models import (
    LocationCreate,
    LocationUpdate,
    ObservationCreate,
    ObservationUpdate,
)

LOCATION_ID = "0123456789abcdef01234567"
LOCATION = {"name": "Oslo", "latitude": 59.91, "longitude": 10.75}
OBSERVATION = {
    "location_id": LOCATION_ID,
    "observed_at": "2026-03-01T12:00:00Z",
    "values": {"temperature_2m": 1.5},
}


def _error_fields(model: type[BaseModel], body: dict[str, Any]) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return {str(error["loc"][0]) for error in caught.value.errors()}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"latitude": True}, "latitude"),
        ({"latitude": "59"}, "latitude"),
        ({"longitude": "10.75"}, "longitude"),
        ({"active": 1}, "active"),
        ({"active": "true"}, "active"),
        ({"name": "   "}, "name"),
    ],
)
def test_location_refuses_coerced_or_blank_fields(change: dict[str, Any], field: str) -> None:
    """Booleans or strings for coordinates, non-booleans for `active` and blank names fail."""
    assert _error_fields(LocationCreate, {**LOCATION, **change}) == {field}


def test_location_accepts_integers_and_strips_the_name() -> None:
    """A JSON integer is a valid coordinate and the name loses surrounding whitespace."""
    location = LocationCreate.model_validate({**LOCATION, "latitude": 59, "name": "  Oslo "})
    assert location.latitude == 59.0
    assert location.name == "Oslo"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"values": {"t": True}}, "values"),
        ({"values": {"t": "1.5"}}, "values"),
        ({"observed_at": 1733220000}, "observed_at"),
        ({"observed_at": "1733220000"}, "observed_at"),
        ({"observed_at": "10.0"}, "observed_at"),
        ({"observed_at": "2026-03-01T12:00:00"}, "observed_at"),
        ({"observed_at": "2026-03-01"}, "observed_at"),
        ({"observed_at": "2026-03-01 12:00:00Z"}, "observed_at"),
        ({"observed_at": "1969-12-31T23:59:59Z"}, "observed_at"),
        ({"observed_at": "0001-01-01T00:00:00Z"}, "observed_at"),
    ],
)
def test_observation_refuses_coerced_values_and_times(change: dict[str, Any], field: str) -> None:
    """Values must be JSON numbers; `observed_at` an RFC 3339 string with offset, from 1970."""
    assert _error_fields(ObservationCreate, {**OBSERVATION, **change}) == {field}


def test_observation_accepts_integer_values_offsets_and_upper_case_ids() -> None:
    """Integers are numbers, any offset is normalised to UTC and ids are lower-cased."""
    observation = ObservationCreate.model_validate(
        {
            **OBSERVATION,
            "location_id": LOCATION_ID.upper(),
            "observed_at": "2026-03-01T13:00:00.5+01:00",
            "values": {"t": 2},
        }
    )
    assert observation.values == {"t": 2.0}
    assert observation.location_id == LOCATION_ID
    assert observation.model_dump(mode="json")["observed_at"] == "2026-03-01T12:00:00.500Z"


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (LocationUpdate, "name"),
        (LocationUpdate, "latitude"),
        (LocationUpdate, "longitude"),
        (LocationUpdate, "tags"),
        (LocationUpdate, "active"),
        (ObservationUpdate, "source"),
        (ObservationUpdate, "observed_at"),
        (ObservationUpdate, "values"),
        (ObservationUpdate, "units"),
    ],
)
def test_patch_refuses_explicit_null(model: type[BaseModel], field: str) -> None:
    """An explicit null in a PATCH body is an error, not a silent no-op."""
    assert _error_fields(model, {field: None}) == {field}


def test_patch_schema_does_not_offer_null() -> None:
    """The PATCH schemas document no nullable field and no null default."""
    for model in (LocationUpdate, ObservationUpdate):
        for name, field in model.model_json_schema()["properties"].items():
            assert "anyOf" not in field, name
            assert "default" not in field, name
