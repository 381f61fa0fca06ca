"""One error body for every failure: ``{"error": {"status", "code", "message"}}``.

Library and domain errors are turned into it at the boundary, so an integrator never sees a
traceback, and a 500 means a defect.
"""

from __future__ import annotations

import logging
from typing import Final

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from access import ForbiddenError, SignInError, UserError
from alerting import AlertingError
from analytics.selection import AnalyticsError
from fleetwatch.settings import SettingsError
from ingest.commands import CommandError
from stores.errors import StoreError, StoreUnavailableError
from stores.influx.flux_library import FluxLibraryError
from stores.postgres.alerting_store import NameTakenError, NotFoundError

__all__ = ["ApiError", "ErrorBody", "ErrorResponse", "error_response", "install"]

logger = logging.getLogger(__name__)

_CODES: Final = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "invalid",
    429: "rate_limited", 502: "bad_gateway", 503: "unavailable",
}  # fmt: skip


class ErrorBody(BaseModel):
    """What went wrong."""

    status: int
    code: str
    message: str


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorBody


class ApiError(Exception):
    """An error this API answers with ``status`` (extra ``headers`` such as Retry-After)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON error response of ``status``."""
    body = ErrorResponse(
        error=ErrorBody(status=status, code=_CODES.get(status, "error"), message=message)
    )
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Answer every known failure with the error body."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, str(exc), exc.headers)

    @app.exception_handler(SignInError)
    async def _signin(_: Request, exc: SignInError) -> JSONResponse:
        return error_response(401, str(exc), {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ForbiddenError)
    async def _forbidden(_: Request, exc: ForbiddenError) -> JSONResponse:
        return error_response(403, str(exc))

    @app.exception_handler(NotFoundError)
    async def _missing(_: Request, exc: NotFoundError) -> JSONResponse:
        return error_response(404, str(exc))

    @app.exception_handler(UserError)
    async def _user(_: Request, exc: UserError) -> JSONResponse:
        return error_response(422, str(exc))

    @app.exception_handler(CommandError)
    async def _command(_: Request, exc: CommandError) -> JSONResponse:
        return error_response(422, str(exc))

    @app.exception_handler(NameTakenError)
    async def _taken(_: Request, exc: NameTakenError) -> JSONResponse:
        return error_response(409, str(exc))

    async def _unworkable(_: Request, exc: Exception) -> JSONResponse:
        return error_response(422, str(exc))

    # A rule, recipient, report period or trend that cannot work as asked.
    for unworkable in (AlertingError, AnalyticsError, FluxLibraryError):
        app.add_exception_handler(unworkable, _unworkable)

    @app.exception_handler(SettingsError)
    async def _settings(_: Request, exc: SettingsError) -> JSONResponse:
        logger.error("settings: %s", exc)
        return error_response(503, "a store this needs is not configured; see the server log")

    @app.exception_handler(psycopg.DataError)
    async def _data(_: Request, exc: psycopg.DataError) -> JSONResponse:
        # A value PostgreSQL cannot take as given (a NUL character, a number out of range):
        # the request's fault, said without the statement.
        first = str(exc).splitlines()[0] if str(exc) else "invalid value"
        return error_response(422, f"a value cannot be stored or compared: {first}")

    @app.exception_handler(StoreError)
    async def _refusal(request: Request, exc: StoreError) -> JSONResponse:
        cause = exc.__cause__
        driver = getattr(cause, "orig", cause)  # SQLAlchemy wraps the driver's error
        if isinstance(driver, psycopg.DataError):  # a report's filter PostgreSQL cannot take
            return await _data(request, driver)
        # Reachable, but it refused (InfluxDB without the bucket, say): the server's set-up.
        logger.error("store refused: %s", exc)
        return error_response(502, "a store refused the query; see the server log")

    @app.exception_handler(StoreUnavailableError)
    async def _store(_: Request, exc: StoreUnavailableError) -> JSONResponse:
        logger.warning("store unavailable: %s", exc)
        return error_response(503, "the database is unreachable; try again shortly")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        ]
        return error_response(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))
