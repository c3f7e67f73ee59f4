"""Request guards: body size and media type, HEAD support, and unknown query parameters."""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apimirror.errors import (
    HEAD_SCOPE_KEY,
    InvalidInputError,
    UnsupportedMediaTypeError,
    echo,
    problem_response,
    truncate,
)


class BodyLimitMiddleware:
    """Answer 413 to a body over `max_bytes`, by its Content-Length or by what actually arrives."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length up front, then count the streamed bytes."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the route's body read, so the app's handler renders it.
                    raise HTTPException(413, self._detail())
            return message

        await self.app(scope, counting_receive, send)

    def _detail(self) -> str:
        return f"the request body exceeds {self.max_bytes} bytes"

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(413, self._detail(), headers={"Connection": "close"})
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class HeadMiddleware:
    """Serve HEAD as GET and send only the status and headers, so every GET route answers HEAD."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rewrite the method for the routes and drop every body chunk of the response."""
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_head(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET", HEAD_SCOPE_KEY: "HEAD"}, receive, send_head)


def _is_json_media_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = media_type.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


async def require_json_body(request: Request) -> None:
    """Answer 415 when a route that reads a JSON body gets a body not labelled as JSON."""
    route = request.scope.get("route")
    if getattr(route, "body_field", None) is None or not await request.body():
        return  # no body expected, or none sent (validation names the missing fields)
    content_type = request.headers.get("content-type", "")
    if not _is_json_media_type(content_type):
        got = f"Content-Type {echo(content_type)}" if content_type else "no Content-Type"
        raise UnsupportedMediaTypeError(f"the body must be application/json; got {got}")


# Routes live as long as the app, so their dependants' ids are stable keys.
_ALLOWED_QUERY: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    """Refuse query parameters the route does not declare (`?since[$gt]=`, typos) with 422."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed = _ALLOWED_QUERY.get(id(dependant))
    if allowed is None:
        allowed = frozenset(_query_names(dependant))
        _ALLOWED_QUERY[id(dependant)] = allowed
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise InvalidInputError(f"{truncate(unknown[0])}: unknown query parameter")
