"""OpenAPI details FastAPI cannot infer: problem+json error bodies and read auth."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from apimirror.config import Settings
from apimirror.errors import PROBLEM_MEDIA_TYPE
from apimirror.models import Problem

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_READ_METHODS = {"get", "head"}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Document error statuses as problem+json responses."""
    return {
        code: {
            "description": HTTPStatus(code).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF}},
        }
        for code in codes
    }


# Every data route can meet these: validation, a down database, read auth when it is on.
READ = problems(401, 403, 422, 503)
WRITE = problems(401, 403, 413, 422, 503)


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Serve a spec with the Problem schema and, when reads need auth, their security."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        _document_media_type(spec)
        if settings.require_auth_for_reads:
            _secure_reads(spec)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _document_media_type(spec: dict[str, Any]) -> None:
    # Every operation that reads a JSON body answers 415 to a body of another media type.
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation.setdefault("responses", {}).update(
                    {str(k): v for k, v in problems(415).items()}
                )


def _secure_reads(spec: dict[str, Any]) -> None:
    for path, operations in spec.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            if method in _READ_METHODS:
                operation.setdefault("security", [{"bearerToken": []}])
