"""Query parameters shared by list routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from apimirror.models import ObjectIdInput

MAX_PAGE = 500

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, at most {MAX_PAGE}.")]
# Ids are accepted in either case (as in paths) and lower-cased.
After = Annotated[
    ObjectIdInput | None, Query(description="The `next` cursor of the previous page.")
]
