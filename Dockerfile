# syntax=docker/dockerfile:1.7
# One image for every apimirror process: `apimirror api|worker|beat|upstream-sim|init-db`.
#   docker build -t apimirror:latest .
# The stack (deploy/stack.yml) picks the command and a fitting healthcheck per service.

ARG PYTHON_VERSION=3.12
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---- build: resolve the locked dependencies into /opt/venv, then add the project itself
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
COPY --from=uv /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Dependencies first, from the lock alone, so editing src/ does not re-download anything.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --no-install-project
COPY pyproject.toml uv.lock README.md ./
COPY src ./src
# --no-editable installs the package into the venv, so the final image needs no /src.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# ---- runtime: the venv and nothing else; no compilers, no uv, no sources
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="apimirror" \
      org.opencontainers.image.description="Rate-limit-safe, monitored mirror of an external HTTP API" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
RUN groupadd --system --gid 10001 apimirror \
 && useradd --system --uid 10001 --gid apimirror --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin apimirror
COPY --from=build /opt/venv /opt/venv
# Settings come from the environment and Docker secrets (*_FILE) at run time; none are baked in.
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    APIMIRROR_ENV=production \
    APIMIRROR_METRICS_HOST=0.0.0.0
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000 8081 9101 9102
# Probes the process named by APIMIRROR_SERVICE (api, worker, beat, upstream-sim; default api),
# e.g. `docker run -e APIMIRROR_SERVICE=worker apimirror:latest worker`. The worker check pings
# its own Celery node through the broker, so a worker that lost Redis turns unhealthy.
# deploy/stack.yml also states each service's check explicitly, with its own timings.
HEALTHCHECK --interval=30s --timeout=15s --start-period=60s --retries=3 \
    CMD ["sh", "-c", "exec apimirror healthcheck \"${APIMIRROR_SERVICE:-api}\""]
ENTRYPOINT ["apimirror"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
