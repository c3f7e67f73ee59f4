"""The simulator's fault switches and its call counters per rate-limit window.

Switches start from `APIMIRROR_SIM_*` environment variables and can be changed at run time
through `POST /admin/faults`. Limits follow Open-Meteo's free tier and its windows (minute,
full hour, UTC day; see samples/SOURCES.md); tests may shorten the windows.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

WINDOWS = ("minute", "hour", "day")
REASONS = {
    "minute": "Minutely API request limit exceeded. Please try again in one minute.",
    "hour": "Hourly API request limit exceeded. Please try again in the next hour.",
    "day": "Daily API request limit exceeded. Please try again tomorrow.",
}


class Faults(BaseModel):
    """Every fault switch; all off by default."""

    model_config = ConfigDict(extra="forbid")

    latency_s: float = Field(0.0, ge=0, description="added delay before every forecast answer")
    error_rate: float = Field(0.0, ge=0, le=1, description="share of forecast calls answered 5xx")
    error_status: int = Field(503, ge=500, le=599)
    hang: bool = Field(False, description="accept forecast calls and never answer")
    outage: bool = Field(False, description="answer every forecast call 503")
    rate_limit: bool = Field(False, description="enforce the limits below with real 429 bodies")
    retry_after: bool = Field(False, description="add Retry-After to 429s (Open-Meteo does not)")
    limit_minute: int = Field(600, ge=0)
    limit_hour: int = Field(5000, ge=0)
    limit_day: int = Field(10000, ge=0)
    window_minute_s: int = Field(60, ge=1)
    window_hour_s: int = Field(3600, ge=1)
    window_day_s: int = Field(86400, ge=1)

    def limit(self, window: str) -> int:
        """Return the limit of a window."""
        return int(getattr(self, f"limit_{window}"))

    def length(self, window: str) -> int:
        """Return the length in seconds of a window."""
        return int(getattr(self, f"window_{window}_s"))


class FaultSettings(BaseSettings, Faults):
    """Fault switches read from `APIMIRROR_SIM_<NAME>` at start-up."""

    model_config = SettingsConfigDict(env_prefix="APIMIRROR_SIM_", extra="ignore")


@dataclass
class _Window:
    index: int = -1
    accepted: float = 0.0
    received: float = 0.0
    max_received: float = 0.0


@dataclass
class SimState:
    """Fault switches plus counters, shared by every request of the process."""

    faults: Faults
    windows: dict[str, _Window] = field(default_factory=lambda: {w: _Window() for w in WINDOWS})
    calls: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=2000))
    statuses: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def update(self, changes: dict[str, Any]) -> Faults:
        """Apply a partial change of switches (validated) and return the result."""
        with self.lock:
            self.faults = Faults.model_validate({**self.faults.model_dump(), **changes})
            return self.faults

    def reset_counters(self) -> None:
        """Forget every counted call."""
        with self.lock:
            self.windows = {w: _Window() for w in WINDOWS}
            self.calls.clear()
            self.statuses.clear()

    def admit(self, cost: float, now: float | None = None) -> tuple[str | None, float]:
        """Count a call of weighted `cost`; return the exceeded window (or None) and its reset."""
        now = now if now is not None else time.time()
        with self.lock:
            exceeded: str | None = None
            reset_in = 0.0
            for name in WINDOWS:
                length = self.faults.length(name)
                window = self.windows[name]
                index = int(now // length)
                if window.index != index:
                    self.windows[name] = window = _Window(
                        index=index, max_received=window.max_received
                    )
                window.received += cost
                window.max_received = max(window.max_received, window.received)
                over = window.accepted + cost > self.faults.limit(name)
                if self.faults.rate_limit and over and exceeded is None:
                    exceeded, reset_in = name, (index + 1) * length - now
            if exceeded is None:
                for window in self.windows.values():
                    window.accepted += cost
            return exceeded, reset_in

    def record(
        self, *, status: int, cost: float, locations: int, retry_after: int | None = None
    ) -> None:
        """Remember one answered forecast call (and the Retry-After it was given, if any)."""
        call: dict[str, Any] = {"t": time.time(), "status": status, "cost": cost}
        call["locations"] = locations
        if retry_after is not None:
            call["retry_after"] = retry_after
        with self.lock:
            self.calls.append(call)
            self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1

    def stats(self) -> dict[str, Any]:
        """Return counters for tests and people: per window and per status."""
        with self.lock:
            windows = {
                name: {
                    "limit": self.faults.limit(name),
                    "length_s": self.faults.length(name),
                    "accepted": w.accepted,
                    "received": w.received,
                    "max_received": w.max_received,
                }
                for name, w in self.windows.items()
            }
            return {
                "windows": windows,
                "statuses": dict(self.statuses),
                "calls": list(self.calls),
                "total": sum(self.statuses.values()),
            }
