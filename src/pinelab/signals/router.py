"""HTTP routes of the signals package: the TradingView webhook and the signal log."""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, Path, Query
from sqlalchemy.exc import DBAPIError
from starlette.requests import Request
from starlette.responses import Response

from pinelab.accounts.dependencies import CurrentUser
from pinelab.api.deps import DatabaseDep, PageDep, get_settings
from pinelab.api.errors import error_body, is_unstorable_text, status_for, unstorable_text_body
from pinelab.api.openapi import DocumentedRoute
from pinelab.api.pagination import Page, next_cursor
from pinelab.api.request import client_ip, receive_capped_body
from pinelab.config import Settings
from pinelab.errors import AuthorizationError, BusinessLogicError
from pinelab.ops.dependencies import get_metrics
from pinelab.ops.metrics import Metrics
from pinelab.signals import queries
from pinelab.signals.dependencies import get_ingestor
from pinelab.signals.exceptions import AlertTooLarge
from pinelab.signals.schemas import MAX_ID, SignalFilters, SignalRead
from pinelab.signals.service import RecordedRejection, UnknownWebhook

log = structlog.get_logger(__name__)

MAX_TOKEN_LENGTH = 128
WEBHOOK_PREFIX = "/webhooks/"
WEBHOOK_PATH = WEBHOOK_PREFIX + "{token}"
SERVICE_UNAVAILABLE = "ServiceUnavailable"
TRADINGVIEW_IPS = frozenset({"52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"})

router = APIRouter(tags=["signals"])

_ALERT_EXAMPLE = {
    "ticker": "AAPL",
    "action": "buy",
    "quantity": "10",
    "price": "190.25",
    "id": "entry-1",
    "time": "2026-01-02T15:30:00Z",
}


WEBHOOK_OPERATION: dict[str, Any] = {
    "tags": ["webhooks"],
    "summary": "Receive a TradingView alert",
    "description": "Store an alert durably with its execution job, then answer 202 with the "
    "signal id.",
    "operationId": "receive_alert_webhooks__token__post",
    "parameters": [
        {
            "name": "token",
            "in": "path",
            "required": True,
            "description": "The strategy's webhook token (shown once)",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_TOKEN_LENGTH},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}, "example": _ALERT_EXAMPLE},
            "text/plain": {"schema": {"type": "string"}, "example": "buy AAPL 10"},
        },
    },
    "responses": {
        "202": {
            "description": "Stored; acting on it",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "signal_id": {"type": "integer"},
                            "status": {"type": "string", "enum": ["accepted", "duplicate"]},
                        },
                        "required": ["signal_id", "status"],
                    },
                    "example": {"signal_id": 1, "status": "accepted"},
                }
            },
        },
        "401": {"description": "Passphrase missing or wrong (the alert is recorded as rejected)"},
        "404": {"description": "Unknown webhook token"},
        "409": {"description": "Strategy disabled (the alert is recorded as rejected)"},
        "413": {"description": "Body larger than the limit (the alert is recorded as rejected)"},
        "422": {"description": "Alert not understood (recorded as rejected, reason in the body)"},
        "429": {"description": "Too many alerts for the strategy or bad tokens from the source"},
        "503": {
            "description": "The alert could not be stored (nothing was accepted); send it again"
        },
    },
}


async def receive_alert(request: Request) -> Response:
    """Store an alert durably with its execution job, then answer 202 with the signal id."""
    # A refusal recorded as a signal answers with its id; other domain errors go to the app's
    # error handlers. A database that cannot take the alert is a 503: nothing was acknowledged.
    # Every alert ends in one INFO line: its strategy, signal id, outcome, reason and time taken.
    started = time.perf_counter()
    try:
        response, line = await _receive(request)
    except BusinessLogicError as error:
        _log_alert(started, outcome="refused", error=type(error).__name__, reason=error.message)
        raise
    _log_alert(started, **line)
    return response


async def _receive(request: Request) -> tuple[Response, dict[str, Any]]:
    settings = await get_settings(request)
    token: str = request.path_params["token"]
    source_ip = _admit(request, token, settings)
    body, truncated = await receive_capped_body(request.receive, settings.webhook_max_body_bytes)
    ingestor = await get_ingestor(request)
    try:
        result = await ingestor.ingest(
            token=token,
            body=body,
            content_type=request.headers.get("content-type"),
            source_ip=source_ip,
            truncated=truncated,
        )
    except RecordedRejection as rejection:
        line = {
            "strategy_id": rejection.strategy_id,
            "signal_id": rejection.signal_id,
            "outcome": "rejected",
            "reason": str(rejection),
        }
        return _rejection_answer(rejection), line
    except DBAPIError as error:
        line = {"outcome": "not_stored", "reason": type(error.orig).__name__}
        return _database_answer(await get_metrics(request), error), line
    line = {"strategy_id": result.strategy_id, "signal_id": result.signal_id}
    line["outcome"] = result.status
    return _json(202, {"signal_id": result.signal_id, "status": result.status}), line


def _log_alert(started: float, **line: Any) -> None:
    log.info("alert", **line, took_ms=round((time.perf_counter() - started) * 1000, 2))


# A plain Starlette route: FastAPI's request handling costs several times the rest of an alert.
webhook_route = DocumentedRoute(
    WEBHOOK_PATH, receive_alert, method="POST", operation=WEBHOOK_OPERATION
)


def _admit(request: Request, token: str, settings: Settings) -> str | None:
    """Check the source and the token's shape before the body is read; return the source IP."""
    source_ip = client_ip(request, settings.trusted_proxies)
    if settings.tradingview_ips_only and source_ip not in TRADINGVIEW_IPS:
        raise AuthorizationError("Webhooks are accepted only from TradingView's addresses")
    if not 0 < len(token) <= MAX_TOKEN_LENGTH:
        raise UnknownWebhook
    return source_ip


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _rejection_answer(rejection: RecordedRejection) -> Response:
    error = rejection.error
    if not isinstance(error, BusinessLogicError):
        raise error
    status = 413 if isinstance(error, AlertTooLarge) else status_for(error)
    body = error_body(type(error).__name__, error.message, [d.as_dict() for d in error.details])
    body["signal_id"] = rejection.signal_id
    return _json(status, body, {"X-Signal-ID": str(rejection.signal_id)})


def _database_answer(metrics: Metrics, error: DBAPIError) -> Response:
    if is_unstorable_text(error):
        metrics.error("ValidationError")
        return _json(422, unstorable_text_body())
    log.error("alert_not_stored", error_type=type(error.orig).__name__)
    metrics.error(SERVICE_UNAVAILABLE)
    body = error_body(
        SERVICE_UNAVAILABLE, "The alert could not be stored and was not accepted; send it again"
    )
    return _json(503, body, {"Retry-After": "1"})


@router.get("/signals")
async def list_signals(
    user: CurrentUser,
    db: DatabaseDep,
    page: PageDep,
    filters: Annotated[SignalFilters, Query()],
) -> Page[SignalRead]:
    """List your signals (every alert received, accepted or not), newest first."""
    async with db.session() as session:
        signals, next_id = await queries.list_signals(
            session, user_id=user.id, filters=filters, limit=page.limit, before_id=page.before_id
        )
    return Page[SignalRead](
        items=[SignalRead.model_validate(signal) for signal in signals],
        next_cursor=next_cursor(next_id),
    )


@router.get("/signals/{signal_id}", responses={404: {"description": "No such signal of yours"}})
async def get_signal(
    signal_id: Annotated[int, Path(ge=1, le=MAX_ID)], user: CurrentUser, db: DatabaseDep
) -> SignalRead:
    """Show one of your signals with its raw body and parsed intent."""
    async with db.session() as session:
        signal = await queries.get_signal(session, user_id=user.id, signal_id=signal_id)
    return SignalRead.model_validate(signal)
