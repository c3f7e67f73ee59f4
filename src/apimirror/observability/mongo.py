"""pymongo command monitoring feeding `apimirror_mongo_command_duration_seconds`."""

from __future__ import annotations

from pymongo import monitoring

from apimirror.observability.metrics import MONGO_COMMAND_DURATION

# Command names are a small fixed set in practice; anything unexpected shares one label value
# so a buggy caller cannot blow up the series count.
_KNOWN_COMMANDS = frozenset(
    {
        "find",
        "insert",
        "update",
        "delete",
        "aggregate",
        "count",
        "countDocuments",
        "getMore",
        "createIndexes",
        "listIndexes",
        "ping",
        "hello",
        "isMaster",
        "ismaster",
        "drop",
        "dropDatabase",
        "findAndModify",
        "distinct",
        "listCollections",
        "killCursors",
        "endSessions",
        "buildInfo",
        "create",
    }
)


def _label(name: str) -> str:
    return name if name in _KNOWN_COMMANDS else "other"


class CommandTimer(monitoring.CommandListener):
    """Record the latency of every MongoDB command by command name."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Ignore starts; the duration arrives with the end event."""

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Observe a successful command's duration."""
        MONGO_COMMAND_DURATION.labels(_label(event.command_name)).observe(
            event.duration_micros / 1e6
        )

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Observe a failed command's duration too: slow failures matter."""
        MONGO_COMMAND_DURATION.labels(_label(event.command_name)).observe(
            event.duration_micros / 1e6
        )
