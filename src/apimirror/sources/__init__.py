"""Upstream sources the mirror can refresh from; look one up by name with `get_source`."""

from __future__ import annotations

from apimirror.config import Settings
from apimirror.sources.base import Source
from apimirror.sources.openmeteo import OpenMeteoSource

SOURCES: tuple[str, ...] = (OpenMeteoSource.name,)


class UnknownSourceError(LookupError):
    """No source has that name."""


def get_source(name: str, settings: Settings) -> Source:
    """Return the source called `name`, configured from `settings`."""
    if name == OpenMeteoSource.name:
        return OpenMeteoSource(settings)
    raise UnknownSourceError(name)
