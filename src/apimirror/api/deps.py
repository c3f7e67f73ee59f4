"""Request dependencies: database, Redis, settings and bearer-token auth."""

from __future__ import annotations

import hmac
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pymongo.asynchronous.database import AsyncDatabase
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from apimirror.config import Settings
from apimirror.errors import AuthRequiredError, ForbiddenError

Doc = dict[str, Any]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerToken",
    description="One of the tokens in APIMIRROR_API_TOKENS.",
)


def get_settings_dep(request: Request) -> Settings:
    """Return the settings the app was created with."""
    return cast(Settings, request.app.state.settings)


def get_db(request: Request) -> AsyncDatabase[Doc]:
    """Return the app's database handle (its client is created in the lifespan)."""
    return cast(AsyncDatabase[Doc], request.app.state.db)


def get_redis(request: Request) -> Redis:
    """Return the app's async Redis client."""
    return cast(Redis, request.app.state.redis)


def get_sync_redis(request: Request) -> SyncRedis:
    """Return the app's blocking Redis client, for helpers shared with the workers."""
    return cast(SyncRedis, request.app.state.sync_redis)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DbDep = Annotated[AsyncDatabase[Doc], Depends(get_db)]
RedisDep = Annotated[Redis, Depends(get_redis)]
SyncRedisDep = Annotated[SyncRedis, Depends(get_sync_redis)]


def check_token(token: str | None, settings: Settings) -> None:
    """Raise 401 for no token and 403 for one that matches none, comparing in constant time."""
    if not token:
        raise AuthRequiredError()
    presented = token.encode()
    accepted = False
    # Compare against every token without stopping early, so timing says nothing about which.
    for candidate in settings.tokens():
        accepted |= hmac.compare_digest(presented, candidate.encode())
    if not accepted:
        raise ForbiddenError("the bearer token is not accepted")


async def require_writer(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Let a request through only with a valid bearer token."""
    check_token(credentials.credentials if credentials else None, settings)


async def require_reader(request: Request, settings: SettingsDep) -> None:
    """Check the bearer token on reads only when the settings ask for it."""
    if not settings.require_auth_for_reads:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    check_token(token.strip() if scheme.lower() == "bearer" else None, settings)
