"""One error body everywhere: {"error", "message", "details"}; never a stack trace."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pinelab import errors
from pinelab.ops.metrics import Metrics

log = structlog.get_logger(__name__)

INTERNAL_ERROR = "InternalServerError"
INTERNAL_MESSAGE = "An unexpected error occurred; it has been logged."
# SQLSTATE 22021: text the database cannot store (a NUL character in PostgreSQL).
UNSTORABLE_TEXT = "22021"

STATUS_BY_ERROR: list[tuple[type[errors.BusinessLogicError], int]] = [
    (errors.ValidationFailed, 422),
    (errors.InsufficientFundsError, 422),
    (errors.OrderRejectedError, 422),
    (errors.AuthenticationError, 401),
    (errors.AuthorizationError, 403),
    (errors.RateLimitExceeded, 429),
    (errors.ResourceNotFoundError, 404),
    (errors.DuplicateResourceError, 409),
    (errors.ConflictError, 409),
]

HTTP_ERROR_NAMES = {
    400: "BadRequest",
    401: "AuthenticationError",
    403: "AuthorizationError",
    404: "ResourceNotFoundError",
    405: "MethodNotAllowed",
    409: "ConflictError",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "ValidationError",
    429: "RateLimitExceeded",
}


def error_body(
    error: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Build the one error body."""
    return {"error": error, "message": message, "details": details or []}


def internal_error_body() -> dict[str, Any]:
    """Build the generic 500 body: it names nothing about the failure."""
    return error_body(INTERNAL_ERROR, INTERNAL_MESSAGE)


def _count(request: Request, error_type: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if isinstance(metrics, Metrics):
        metrics.error(error_type)


def status_for(exc: errors.BusinessLogicError) -> int:
    """Return the HTTP status of a domain error."""
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 400


def business_error_answer(
    exc: errors.BusinessLogicError,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """Return the (status, headers, body) a domain error is answered with."""
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, errors.AuthenticationError) else {}
    if isinstance(exc, errors.RateLimitExceeded):
        headers["Retry-After"] = str(exc.retry_after)
    body = error_body(type(exc).__name__, exc.message, [d.as_dict() for d in exc.details])
    return status_for(exc), headers, body


class BodyTooLarge(StarletteHTTPException):
    """The request body is larger than the route accepts (413, connection closed)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        super().__init__(413, too_large_message(cap), headers={"Connection": "close"})


def too_large_message(cap: int) -> str:
    """Return the message of a 413: what the limit is."""
    return f"The request body is larger than the limit of {cap} bytes"


def too_large_body(cap: int) -> dict[str, Any]:
    """Return the error body of a 413, naming the body as the field."""
    return error_body(
        "PayloadTooLarge",
        too_large_message(cap),
        [{"field": "body", "message": f"larger than {cap} bytes", "type": "too_large"}],
    )


def unstorable_text_body() -> dict[str, Any]:
    """Build the 422 body for text the database cannot store (NUL on PostgreSQL)."""
    return error_body(
        "ValidationError",
        "Text must not contain NUL characters",
        [{"field": "body", "message": "contains a NUL character", "type": "value_error"}],
    )


def is_unstorable_text(exc: BaseException) -> bool:
    """Tell whether a database error is about text it cannot store."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == UNSTORABLE_TEXT


async def _business_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(
        exc, errors.BusinessLogicError
    ):  # pragma: no cover - registration guarantees it
        return await _unhandled_error(_, exc)
    status, headers, body = business_error_answer(exc)
    _count(_, type(exc).__name__)
    return JSONResponse(body, status_code=status, headers=headers)


def _field_name(location: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover
        return await _unhandled_error(_, exc)
    details = [
        {
            "field": _field_name(err.get("loc", ())),
            "message": err.get("msg", "invalid"),
            "type": err.get("type", "value_error"),
        }
        for err in exc.errors()
    ]
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:3])
    _count(_, "ValidationError")
    return JSONResponse(
        error_body("ValidationError", f"Request validation failed: {summary}", details),
        status_code=422,
    )


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
        return await _unhandled_error(_, exc)
    name = HTTP_ERROR_NAMES.get(exc.status_code, "HTTPError")
    message = exc.detail if isinstance(exc.detail, str) else name
    _count(_, name)
    body = too_large_body(exc.cap) if isinstance(exc, BodyTooLarge) else error_body(name, message)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if is_unstorable_text(exc):
        _count(request, "ValidationError")
        return JSONResponse(unstorable_text_body(), status_code=422)
    return await _unhandled_error(request, exc)


async def _unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    log.error("unhandled_error", method=request.method, request_id=request_id, exc_info=exc)
    _count(request, INTERNAL_ERROR)
    headers = {"X-Request-ID": request_id} if request_id else None
    return JSONResponse(internal_error_body(), status_code=500, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to the one body."""
    app.add_exception_handler(errors.BusinessLogicError, _business_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unhandled_error)
