"""Every Prometheus metric apimirror exports, defined once (see DESIGN.md "Metrics contract").

Processes run prometheus-client in multiprocess mode when `PROMETHEUS_MULTIPROC_DIR` is set,
so each gauge states how values from several processes combine.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
UNMATCHED_ROUTE = "<unmatched>"

# API
HTTP_REQUESTS = Counter(
    "apimirror_http_requests_total", "HTTP requests handled.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "apimirror_http_request_duration_seconds",
    "HTTP request latency.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_PROGRESS = Gauge(
    "apimirror_http_requests_in_progress",
    "HTTP requests being handled now.",
    multiprocess_mode="livesum",
)
HTTP_REQUEST_SIZE = Histogram(
    "apimirror_http_request_size_bytes",
    "HTTP request body size.",
    ["method", "route"],
    buckets=SIZE_BUCKETS,
)
HTTP_RESPONSE_SIZE = Histogram(
    "apimirror_http_response_size_bytes",
    "HTTP response body size.",
    ["method", "route"],
    buckets=SIZE_BUCKETS,
)

# Tasks
TASK_RUNS = Counter("apimirror_task_runs_total", "Task runs by outcome.", ["task", "outcome"])
TASK_DURATION = Histogram(
    "apimirror_task_duration_seconds", "Task run time.", ["task"], buckets=TASK_BUCKETS
)
QUEUE_LENGTH = Gauge(
    "apimirror_queue_length",
    "Messages waiting in a broker queue.",
    ["queue"],
    multiprocess_mode="mostrecent",
)

# Upstream
UPSTREAM_REQUESTS = Counter(
    "apimirror_upstream_requests_total", "Requests sent upstream.", ["source", "status"]
)
UPSTREAM_DURATION = Histogram(
    "apimirror_upstream_request_duration_seconds",
    "Upstream request latency.",
    ["source"],
    buckets=(*LATENCY_BUCKETS, 20.0, 30.0),
)
UPSTREAM_COST = Counter(
    "apimirror_upstream_cost", "Weighted upstream calls spent.", ["source"]
)  # exported as apimirror_upstream_cost_total
UPSTREAM_THROTTLED = Counter(
    "apimirror_upstream_throttled",
    "Refreshes held back (reason=budget) or refused upstream (reason=429).",
    ["source", "reason"],
)
RATELIMIT_LIMIT = Gauge(
    "apimirror_ratelimit_limit",
    "Configured budget per window.",
    ["source", "window"],
    multiprocess_mode="mostrecent",
)
RATELIMIT_REMAINING = Gauge(
    "apimirror_ratelimit_remaining",
    "Budget left in the current window.",
    ["source", "window"],
    multiprocess_mode="mostrecent",
)

# Freshness
REFRESH_LAST_SUCCESS = Gauge(
    "apimirror_refresh_last_success_timestamp_seconds",
    "Unix time of the last successful refresh (restored from stored data at start-up).",
    ["source"],
    multiprocess_mode="max",
)
DATA_AGE = Gauge(
    "apimirror_data_age_seconds",
    "Age of the stalest active location's latest observation.",
    ["source"],
    multiprocess_mode="mostrecent",
)
RECORDS_UPSERTED = Counter(
    "apimirror_records_upserted", "Observations written, by result.", ["source", "result"]
)

# Storage
MONGO_COMMAND_DURATION = Histogram(
    "apimirror_mongo_command_duration_seconds",
    "MongoDB command latency.",
    ["command"],
    buckets=LATENCY_BUCKETS,
)

# Build
BUILD_INFO = Gauge(
    "apimirror_build_info",
    "Build version and revision (value is always 1).",
    ["version", "revision"],
    multiprocess_mode="max",
)

# Scheduling and alert thresholds. Rules read thresholds from the running configuration, so a
# shortened setting (tests, demos) shortens the alert without editing the rule files.
BEAT_LAST_PUBLISH = Gauge(
    "apimirror_beat_last_publish_timestamp_seconds",
    "Unix time beat last sent a scheduled task to the broker.",
    multiprocess_mode="max",
)
REFRESH_LAST_ERROR = Gauge(
    "apimirror_refresh_last_error_timestamp_seconds",
    "Unix time of the last failed refresh (from stored source status).",
    ["source"],
    multiprocess_mode="max",
)
CONFIG_STALE_AFTER = Gauge(
    "apimirror_config_stale_after_seconds",
    "Configured data age above which data counts as stale.",
    multiprocess_mode="max",
)
CONFIG_REFRESH_INTERVAL = Gauge(
    "apimirror_config_refresh_interval_seconds",
    "Configured interval between scheduled refreshes.",
    multiprocess_mode="max",
)
