"""What many routes share: the paging parameters and the error responses they document."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import Query

from api.errors import ErrorResponse
from api.models import MAX_PAGE

__all__ = ["ERRORS", "Limit", "Offset"]

ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 422, 429, 503)
}
"""The error responses every route may give (each with the one error body)."""

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
