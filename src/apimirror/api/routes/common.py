"""Query parameters shared by list routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from apimirror.models import OBJECT_ID_PATTERN

MAX_PAGE = 500

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, at most {MAX_PAGE}.")]
After = Annotated[
    str | None,
    Query(pattern=OBJECT_ID_PATTERN, description="The `next` cursor of the previous page."),
]
