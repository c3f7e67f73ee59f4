"""Read access to `source_status`, which workers and beat write."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

Doc = dict[str, Any]


async def list_source_status(*, db: AsyncDatabase[Doc]) -> dict[str, Doc]:
    """Return every stored source status document keyed by source name."""
    docs = await db.source_status.find({}).to_list(length=1000)
    return {str(doc["_id"]): doc for doc in docs}
