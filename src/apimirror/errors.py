"""Domain exceptions and the one place that turns every error into RFC 9457 problem+json."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import redis.exceptions
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Set by the HEAD middleware, which serves a HEAD request as a GET without its body.
HEAD_SCOPE_KEY = "apimirror.original_method"
_TYPE_PREFIX = "urn:apimirror:problem:"
_FASTAPI_BODY_ERROR = "There was an error parsing the body"
ECHO_LIMIT = 64


def truncate(text: str, limit: int = ECHO_LIMIT) -> str:
    """Cut client input to `limit` characters for a message, marking the cut."""
    return text if len(text) <= limit else text[:limit] + "..."


def echo(value: object, limit: int = ECHO_LIMIT) -> str:
    """Quote client input for a message, cut to `limit` characters so bodies stay small."""
    text = str(value)
    if len(text) > limit:
        return repr(text[:limit]) + f"... ({len(text)} characters)"
    return repr(text)


class ApiMirrorError(Exception):
    """Base of every domain error; `status` and `slug` say how it is reported."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR
    slug = "internal-error"

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})


class NotFoundError(ApiMirrorError):
    """The addressed resource does not exist (or its id is malformed)."""

    status = HTTPStatus.NOT_FOUND
    slug = "not-found"


class ConflictError(ApiMirrorError):
    """A write would break a uniqueness rule (coordinates, natural key)."""

    status = HTTPStatus.CONFLICT
    slug = "conflict"


class AuthRequiredError(ApiMirrorError):
    """No bearer token was sent where one is needed."""

    status = HTTPStatus.UNAUTHORIZED
    slug = "unauthorized"

    def __init__(self, detail: str = "a bearer token is required") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class ForbiddenError(ApiMirrorError):
    """A bearer token was sent but is not accepted."""

    status = HTTPStatus.FORBIDDEN
    slug = "forbidden"


class InvalidInputError(ApiMirrorError):
    """Input is well-formed but not acceptable (names the field)."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    slug = "invalid-input"


class UnsupportedMediaTypeError(ApiMirrorError):
    """A request body is not declared as JSON."""

    status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    slug = "unsupported-media-type"


class DependencyUnavailableError(ApiMirrorError):
    """A backing service (MongoDB, Redis) cannot be reached right now."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    slug = "dependency-unavailable"

    def __init__(self, dependency: str) -> None:
        super().__init__(f"{dependency} is unavailable", headers={"Retry-After": "5"})
        self.dependency = dependency


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """Build an `application/problem+json` response."""
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": _TYPE_PREFIX + (slug or phrase.lower().replace(" ", "-")),
        "title": phrase,
        "status": status,
        "detail": detail,
        **(extra or {}),
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _field_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    out = []
    for err in errors:
        # A location can hold client input (a dict key), so each part is cut short.
        loc = [truncate(str(part)) for part in err.get("loc", ())]
        out.append({"field": ".".join(loc) or "request", "message": str(err.get("msg", "invalid"))})
    return out


def _body_parse_problem(cause: BaseException | None) -> JSONResponse:
    # FastAPI turns any failure to read the JSON other than a syntax error into this 400.
    if isinstance(cause, RecursionError):
        message = "the JSON body nests arrays or objects too deeply"
    elif isinstance(cause, UnicodeDecodeError):
        message = "the body is not valid UTF-8"
    else:
        message = "the body could not be read as JSON"
    errors = [{"field": "body", "message": message}]
    return problem_response(422, f"body: {message}", slug="invalid-input", extra={"errors": errors})


async def _on_domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiMirrorError)
    if isinstance(exc, DependencyUnavailableError):
        log.warning("dependency_unavailable", dependency=exc.dependency)
    return problem_response(int(exc.status), exc.detail, slug=exc.slug, headers=exc.headers)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    if exc.status_code == HTTPStatus.BAD_REQUEST and detail == _FASTAPI_BODY_ERROR:
        # Unreadable JSON is as invalid as a JSON syntax error, which gets 422.
        return _body_parse_problem(exc.__cause__)
    if exc.status_code == HTTPStatus.NOT_FOUND and detail == "Not Found":
        detail = f"no route matches {echo(request.url.path)}"
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        headers["Allow"] = _allowed_methods(request)
        detail = f"{original_method(request.scope)} is not allowed here; use {headers['Allow']}"
    return problem_response(exc.status_code, detail, headers=headers)


def _allowed_methods(request: Request) -> str:
    # Starlette names only the first route matching the path, and several routes share a path
    # here; the spec lists them all.
    methods: set[str] = set()
    paths = request.app.openapi().get("paths", {})
    for template, operations in paths.items():
        pattern = "^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, request.url.path):
            methods |= {method.upper() for method in operations}
    if "GET" in methods:
        methods.add("HEAD")  # served by HeadMiddleware
    return ", ".join(sorted(methods))


def original_method(scope: Mapping[str, Any]) -> str:
    """Return the method the client sent (HeadMiddleware serves HEAD as GET)."""
    return str(scope.get(HEAD_SCOPE_KEY) or scope.get("method", ""))


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(exc.errors())
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return problem_response(422, detail, slug="invalid-input", extra={"errors": errors})


async def _on_mongo_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("dependency_unavailable", dependency="mongodb", error=type(exc).__name__)
    return problem_response(503, "mongodb is unavailable", headers={"Retry-After": "5"})


async def _on_redis_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("dependency_unavailable", dependency="redis", error=type(exc).__name__)
    return problem_response(503, "redis is unavailable", headers={"Retry-After": "5"})


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled_exception", exc_info=exc, route=_route_template(request))
    return problem_response(500, "the server failed to handle this request")


def _route_template(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", "<unmatched>"))


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that render every error as a problem response."""
    app.add_exception_handler(ApiMirrorError, _on_domain_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    # ServerSelectionTimeoutError, AutoReconnect and NetworkTimeout all derive from this.
    app.add_exception_handler(ConnectionFailure, _on_mongo_down)
    app.add_exception_handler(redis.exceptions.ConnectionError, _on_redis_down)
    app.add_exception_handler(redis.exceptions.TimeoutError, _on_redis_down)
    app.add_exception_handler(Exception, _on_unexpected)
