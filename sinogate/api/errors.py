"""Errors mapped to HTTP in one place: routes and services raise, these handlers answer.

Every error body is flespi's ``{"errors": [{"code": code, "reason": reason}]}``. Domain errors
(the store's, the command service's) map by class in ``STATUS``; anything unexpected is a 500
that is logged with its traceback and says only the exception's class.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sinogate.commands.catalog import CommandError
from sinogate.commands.service import CommandFailed
from sinogate.server.health import StoreUnavailable, storage_problem
from sinogate.store.base import Conflict, NotFound, StoreError

log = logging.getLogger("sinogate.api")


class ApiError(Exception):
    """Raised anywhere in a route: becomes ``{"errors": [{"code": code, "reason": reason}]}``."""

    def __init__(self, status: int, reason: str, code: int = 0) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.code = code


# Most specific class first: the first isinstance match wins.
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (StoreUnavailable, 503),
    (NotFound, 404),
    (Conflict, 409),
    (StoreError, 400),
    (CommandError, 400),
    (CommandFailed, 400),
)

# Bad input that surfaces as a Python error deep in parsing: a reason, never a 500.
INPUT_ERRORS: dict[type[Exception], str] = {
    RecursionError: "input nested too deeply",
    UnicodeEncodeError: "text is not valid Unicode (a lone surrogate?)",
}


def error_body(reason: str, code: int = 0) -> dict[str, Any]:
    return {"errors": [{"code": code, "reason": reason}]}


def as_api_error(exc: Exception) -> ApiError:
    """The ``ApiError`` a domain exception stands for (500 for anything unmapped)."""
    if isinstance(exc, ApiError):
        return exc
    reason = getattr(exc, "reason", None) or str(exc)
    if isinstance(exc, CommandFailed):
        return ApiError(400, reason, exc.code)
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return ApiError(status, reason, status)
    return ApiError(500, f"internal error: {type(exc).__name__}", 500)


def _validation_reason(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        msg = err.get("msg", "invalid")
        parts.append(f"{loc}: {msg}" if loc else str(msg))
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI, response: type[Response]) -> None:
    """Registers the handlers; ``response`` is the JSON response class of the API."""

    async def api_error(_request: Request, exc: Exception) -> Response:
        err = as_api_error(exc)
        return response(error_body(err.reason, err.code), status_code=err.status)

    app.add_exception_handler(ApiError, api_error)
    for cls, _status in STATUS:
        app.add_exception_handler(cls, api_error)

    async def validation(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return response(error_body(_validation_reason(exc), 400), status_code=400)

    async def http(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        reason = exc.detail if isinstance(exc.detail, str) else "request failed"
        return response(error_body(reason, exc.status_code), status_code=exc.status_code, headers=exc.headers)

    async def bad_input(_request: Request, exc: Exception) -> Response:
        reason = next(text for cls, text in INPUT_ERRORS.items() if isinstance(exc, cls))
        return response(error_body(reason, 400), status_code=400)

    for cls in INPUT_ERRORS:
        app.add_exception_handler(cls, bad_input)

    async def bug(request: Request, exc: Exception) -> Response:
        problem = storage_problem(exc)
        if problem is not None:  # a full disk: one line per state change (server.health), not a traceback
            health = getattr(getattr(request.app.state, "context", None), "health", None)
            if health is not None:
                health.failed(exc)
            return response(error_body(f"store unavailable: {problem}; try again later", 503), status_code=503,
                            headers={"Retry-After": "30"})
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return response(error_body(f"internal error: {type(exc).__name__}", 500), status_code=500)

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http)
    app.add_exception_handler(Exception, bug)
