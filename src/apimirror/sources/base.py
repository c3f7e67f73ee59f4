"""What every upstream source provides: requests for a batch, their cost, its limits, parsing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bson import ObjectId


@dataclass(frozen=True)
class TrackedLocation:
    """An active location the mirror refreshes."""

    id: ObjectId
    latitude: float
    longitude: float


@dataclass(frozen=True)
class UpstreamRequest:
    """One upstream HTTP request covering a batch of locations, in order."""

    method: str
    url: str
    params: Mapping[str, str]
    locations: tuple[TrackedLocation, ...]
    cost: float


@dataclass(frozen=True)
class ParsedObservation:
    """One observation parsed from a payload, keyed by (location_id, observed_at)."""

    location_id: ObjectId
    observed_at: datetime
    values: dict[str, float]
    units: dict[str, str]


@dataclass
class ParseResult:
    """The good observations of one response plus a description of every bad item."""

    observations: list[ParsedObservation] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Source(Protocol):
    """An upstream the mirror can refresh from (see DESIGN.md "Default upstream")."""

    name: str

    def limits(self) -> dict[str, int]:
        """Return the weighted-call budget per window name (minute, hour, day, month)."""
        ...

    def location_cost(self) -> float:
        """Return the weighted cost one location adds to a request."""
        ...

    def build_requests(
        self, locations: Sequence[TrackedLocation], *, max_cost: float | None = None
    ) -> list[UpstreamRequest]:
        """Pack locations into requests, none costing more than `max_cost` when it is given."""
        ...

    def parse(self, request: UpstreamRequest, payload: Any) -> ParseResult:
        """Turn a successful response body into observations matched to the request's locations."""
        ...

    def throttle_reason(self, payload: Any) -> str | None:
        """Return the window a 429 body names (minute, hour or day), if it names one."""
        ...
