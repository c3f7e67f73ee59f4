"""Request and response models for the HTTP API (see DESIGN.md "HTTP API contract")."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

# Ids we return are lower-case; ids we are given may be in either case and are lower-cased.
OBJECT_ID_PATTERN = r"^[0-9a-f]{24}$"
OBJECT_ID_INPUT_PATTERN = r"^[0-9a-fA-F]{24}$"
# Stored variable names: no `.`, no leading `$` (MongoDB/FerretDB keys), nothing exotic.
VARIABLE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"
_UNSAFE_TEXT = re.compile(r"[\x00\ud800-\udfff]")
# RFC 3339 `date-time` (section 5.6): a full date, `T`, a full time and a mandatory offset.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$"
)
EARLIEST_OBSERVED_AT = datetime(1970, 1, 1, tzinfo=UTC)


def _utc_millis(value: datetime) -> datetime:
    """Normalise to UTC at millisecond precision, which is what BSON stores."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("datetime is out of range once converted to UTC") from None
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def format_utc(value: datetime) -> str:
    """Render a datetime as RFC 3339 in UTC with a `Z` suffix."""
    return _utc_millis(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rfc3339_text(value: object) -> object:
    """Accept only an RFC 3339 string with an offset (or a datetime from Python callers).

    Without this, pydantic would also read numbers and numeric strings as Unix times.
    """
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError(
            "must be an RFC 3339 date-time string with an offset, e.g. 2026-03-01T12:00:00Z"
        )
    return value


def _not_before_epoch(value: datetime) -> datetime:
    if value < EARLIEST_OBSERVED_AT:
        raise ValueError("must not be before 1970-01-01T00:00:00Z")
    return value


def _safe_text(value: str) -> str:
    """Refuse NUL and lone surrogates, which BSON cannot store."""
    if _UNSAFE_TEXT.search(value):
        raise ValueError("text contains NUL or an unpaired surrogate")
    return value


def _not_negative_zero(value: float) -> float:
    # -0.0 == 0.0 for the unique coordinate index; store one spelling.
    return value + 0.0


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_utc_millis),
    PlainSerializer(format_utc, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
InputDatetime = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_text),
    AfterValidator(_utc_millis),
    PlainSerializer(format_utc, return_type=str, when_used="json"),
]
# When a thing was observed; later than "now" is checked where the settings are known.
ObservedAt = Annotated[InputDatetime, AfterValidator(_not_before_epoch)]
ObjectIdStr = Annotated[str, StringConstraints(pattern=OBJECT_ID_PATTERN)]
ObjectIdInput = Annotated[
    str, StringConstraints(pattern=OBJECT_ID_INPUT_PATTERN), AfterValidator(str.lower)
]
Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_safe_text),
]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_safe_text)]
Unit = Annotated[str, StringConstraints(max_length=32), AfterValidator(_safe_text)]
Variable = Annotated[str, StringConstraints(pattern=VARIABLE_PATTERN)]
SourceName = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$"), AfterValidator(_safe_text)
]
# Strict: a JSON number only (integers included), never a boolean or a numeric string.
Latitude = Annotated[float, Strict(), Field(ge=-90, le=90), AfterValidator(_not_negative_zero)]
Longitude = Annotated[float, Strict(), Field(ge=-180, le=180), AfterValidator(_not_negative_zero)]
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Flag = Annotated[bool, Strict()]
Values = Annotated[dict[Variable, Number], Field(max_length=200)]
Units = Annotated[dict[Variable, Unit], Field(max_length=200)]

_INPUT = ConfigDict(extra="forbid", allow_inf_nan=False)


class Problem(BaseModel):
    """An RFC 9457 problem details body."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = None


class LocationBase(BaseModel):
    """Fields a client sets on a tracked location."""

    name: Text
    latitude: Latitude
    longitude: Longitude
    tags: Annotated[list[Tag], Field(max_length=50)] = Field(default_factory=list)
    active: Flag = True


class LocationCreate(LocationBase):
    """Body of `POST /locations`."""

    model_config = _INPUT


def _drop_null_defaults(schema: dict[str, Any]) -> None:
    for field in schema.get("properties", {}).values():
        if field.get("default", ...) is None:
            del field["default"]


class _Patch(BaseModel):
    """A PATCH body: a field left out keeps its value; an explicit null is refused."""

    model_config = ConfigDict(**_INPUT, json_schema_extra=_drop_null_defaults)

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null; leave the field out to keep its value")
        return value


class LocationUpdate(_Patch):
    """Body of `PATCH /locations/{id}`: only the fields given change."""

    # `SkipJsonSchema[None]` keeps null out of the spec: None only means "not given".
    name: Text | SkipJsonSchema[None] = None
    latitude: Latitude | SkipJsonSchema[None] = None
    longitude: Longitude | SkipJsonSchema[None] = None
    tags: Annotated[list[Tag], Field(max_length=50)] | SkipJsonSchema[None] = None
    active: Flag | SkipJsonSchema[None] = None


class LocationPublic(LocationBase):
    """A location as the API returns it."""

    id: ObjectIdStr
    created_at: UtcDatetime
    updated_at: UtcDatetime


class ObservationBase(BaseModel):
    """Fields every observation has (stored by workers as well as by clients)."""

    location_id: ObjectIdStr
    source: str = "manual"
    values: dict[str, float]
    units: dict[str, str] = Field(default_factory=dict)


class ObservationCreate(ObservationBase):
    """Body of a manual `POST /observations`."""

    model_config = _INPUT

    location_id: ObjectIdInput
    source: SourceName = "manual"
    observed_at: ObservedAt
    values: Values
    units: Units = Field(default_factory=dict)


class ObservationUpdate(_Patch):
    """Body of `PATCH /observations/{id}`: only the fields given change."""

    source: SourceName | SkipJsonSchema[None] = None
    observed_at: ObservedAt | SkipJsonSchema[None] = None
    values: Values | SkipJsonSchema[None] = None
    units: Units | SkipJsonSchema[None] = None


class ObservationPublic(ObservationBase):
    """An observation as the API returns it."""

    id: ObjectIdStr
    observed_at: UtcDatetime
    fetched_at: UtcDatetime
    updated_at: UtcDatetime


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next` as `after` to get the following page."""

    items: list[T]
    next: str | None


class Freshness(BaseModel):
    """How old the served data is."""

    fetched_at: UtcDatetime
    age_seconds: float
    stale: bool


class CurrentPublic(ObservationPublic):
    """A location's latest observation with its freshness."""

    freshness: Freshness


class BudgetWindow(BaseModel):
    """Rate-limit budget use in one window (weighted calls; null when Redis cannot be read)."""

    window: str
    limit: int
    used: float | None
    remaining: float | None
    resets_at: UtcDatetime | None


class SourceStatusPublic(BaseModel):
    """The refresh status and budget of one upstream source."""

    name: str
    last_success_at: UtcDatetime | None = None
    last_error_at: UtcDatetime | None = None
    last_error: str | None = None
    next_run_at: UtcDatetime | None = None
    budget: list[BudgetWindow]
    blocked_until: UtcDatetime | None = Field(
        None, description="Set while an upstream 429 holds every worker back."
    )


class TaskQueued(BaseModel):
    """The answer to a queued refresh."""

    task_id: str
    source: str


class Health(BaseModel):
    """The answer of `/healthz` and a healthy `/readyz`."""

    status: str
    checks: dict[str, str] = Field(default_factory=dict)


def doc_to_public(doc: dict[str, Any]) -> dict[str, Any]:
    """Turn a stored document into public fields: `_id` becomes `id`, ObjectIds become hex."""
    out = {k: v for k, v in doc.items() if k != "_id"}
    out["id"] = str(doc["_id"])
    if "location_id" in out:
        out["location_id"] = str(out["location_id"])
    return out
