"""HTTP routes of the signals package: the TradingView webhook and the signal log."""

from __future__ import annotations

import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError
from starlette.types import Receive, Scope, Send

from pinelab.accounts.dependencies import CurrentUser
from pinelab.api.context import AppContext
from pinelab.api.deps import ContextDep, PageDep
from pinelab.api.errors import (
    business_error_answer,
    error_body,
    is_unstorable_text,
    status_for,
    unstorable_text_body,
)
from pinelab.api.middleware import (
    answer_unhandled,
    finish_request,
    request_id_from,
    request_id_header,
)
from pinelab.api.pagination import Page, next_cursor
from pinelab.api.request import receive_capped_body, resolve_client_ip
from pinelab.errors import AuthorizationError, BusinessLogicError
from pinelab.signals import queries
from pinelab.signals.exceptions import AlertTooLarge
from pinelab.signals.schemas import MAX_ID, SignalFilters, SignalRead
from pinelab.signals.service import RecordedRejection, UnknownWebhook

log = structlog.get_logger(__name__)

MAX_TOKEN_LENGTH = 128
WEBHOOK_PREFIX = "/webhooks/"
WEBHOOK_PATH = WEBHOOK_PREFIX + "{token}"
SERVICE_UNAVAILABLE = "ServiceUnavailable"
TRADINGVIEW_IPS = frozenset({"52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"})

webhook_router = APIRouter(tags=["webhooks"])
router = APIRouter(tags=["signals"])

_ALERT_EXAMPLE = {
    "ticker": "AAPL",
    "action": "buy",
    "quantity": "10",
    "price": "190.25",
    "id": "entry-1",
    "time": "2026-01-02T15:30:00Z",
}


@webhook_router.post(
    WEBHOOK_PATH,
    status_code=202,
    summary="Receive a TradingView alert",
    responses={
        202: {
            "description": "Stored; acting on it",
            "content": {"application/json": {"example": {"signal_id": 1, "status": "accepted"}}},
        },
        401: {"description": "Passphrase missing or wrong (the alert is recorded as rejected)"},
        404: {"description": "Unknown webhook token"},
        409: {"description": "Strategy disabled (the alert is recorded as rejected)"},
        413: {"description": "Body larger than the limit (the alert is recorded as rejected)"},
        422: {"description": "Alert not understood (recorded as rejected, reason in the body)"},
        429: {"description": "Too many alerts for the strategy or bad tokens from the source"},
        503: {"description": "The alert could not be stored (nothing was accepted); send it again"},
    },
    openapi_extra={
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
    },
)
async def receive_alert(request: Request) -> Response:
    """Store an alert durably with its execution job, then answer 202 with the signal id."""
    # Documents the webhook in the OpenAPI schema; the app answers it with `WebhookEndpoint`,
    # which runs the same `answer_alert` without FastAPI's request handling.
    answer = await answer_alert(
        request.app.state.context,
        token=request.path_params["token"],
        receive=request.receive,
        peer=request.client.host if request.client else None,
        content_type=request.headers.get("content-type"),
        forwarded_for=request.headers.get("x-forwarded-for"),
    )
    return Response(answer.body, status_code=answer.status, headers=answer.headers)


@dataclass(frozen=True)
class WebhookAnswer:
    """The status, JSON body and extra headers of a webhook's answer."""

    status: int
    body: bytes
    headers: dict[str, str]


async def answer_alert(
    context: AppContext,
    *,
    token: str,
    receive: Receive,
    peer: str | None,
    content_type: str | None,
    forwarded_for: str | None,
) -> WebhookAnswer:
    """Store one alert with its execution job (or why it was refused) and build the answer.

    A domain error becomes its 4xx answer; a database that cannot take the alert is a 503 (the
    alert was not stored, so it was not acknowledged). Anything else is a bug and propagates.
    """
    try:
        source_ip = _admit(context, token, peer, forwarded_for)
        body, truncated = await receive_capped_body(
            receive, context.settings.webhook_max_body_bytes
        )
        if context.ingestor is None:
            raise RuntimeError("ingestion is not configured in this process")
        # Awaited here, not in a helper coroutine: every alert's wait for its batch's commit
        # resumes through one frame less.
        result = await context.ingestor.ingest(
            token=token,
            body=body,
            content_type=content_type,
            source_ip=source_ip,
            truncated=truncated,
        )
    except RecordedRejection as rejection:
        return _rejection_answer(rejection)
    except BusinessLogicError as error:
        context.metrics.error(type(error).__name__)
        status, headers, error_payload = business_error_answer(error)
        return WebhookAnswer(status, orjson.dumps(error_payload), headers)
    except DBAPIError as error:
        return _database_answer(context, error)
    return WebhookAnswer(
        202, orjson.dumps({"signal_id": result.signal_id, "status": result.status}), {}
    )


def _admit(
    context: AppContext, token: str, peer: str | None, forwarded_for: str | None
) -> str | None:
    """Check the source and the token's shape before the body is read; return the source IP."""
    settings = context.settings
    source_ip = resolve_client_ip(peer, forwarded_for, settings.trusted_proxies)
    if settings.tradingview_ips_only and source_ip not in TRADINGVIEW_IPS:
        raise AuthorizationError("Webhooks are accepted only from TradingView's addresses")
    if not 0 < len(token) <= MAX_TOKEN_LENGTH:
        raise UnknownWebhook
    return source_ip


def _rejection_answer(rejection: RecordedRejection) -> WebhookAnswer:
    error = rejection.error
    if not isinstance(error, BusinessLogicError):
        raise error
    status = 413 if isinstance(error, AlertTooLarge) else status_for(error)
    body = error_body(type(error).__name__, error.message, [d.as_dict() for d in error.details])
    body["signal_id"] = rejection.signal_id
    return WebhookAnswer(status, orjson.dumps(body), {"X-Signal-ID": str(rejection.signal_id)})


def _database_answer(context: AppContext, error: DBAPIError) -> WebhookAnswer:
    if is_unstorable_text(error):
        context.metrics.error("ValidationError")
        return WebhookAnswer(422, orjson.dumps(unstorable_text_body()), {})
    log.error("alert_not_stored", error_type=type(error.orig).__name__)
    context.metrics.error(SERVICE_UNAVAILABLE)
    body = error_body(
        SERVICE_UNAVAILABLE, "The alert could not be stored and was not accepted; send it again"
    )
    return WebhookAnswer(503, orjson.dumps(body), {"Retry-After": "1"})


class WebhookEndpoint:
    """`POST /webhooks/{token}` as a bare ASGI app: the hot path every alert takes.

    The app hands it every POST to /webhooks/<one segment> before FastAPI's own request
    handling (exception middlewares, dependency solving, Request objects), which costs more than
    the rest of ingestion. It keeps what matters from those layers, doing itself what
    `RequestContextMiddleware` does for every other request (a request id on the answer and the
    logs, the request metrics under the route template, the bare 500 for a bug), with the same
    functions but without a wrapping layer; domain errors get the one error body from
    `answer_alert`.
    """

    def __init__(self, context: AppContext) -> None:
        self._context = context

    @staticmethod
    def handles(scope: Scope) -> bool:
        """Tell whether a request is a webhook call (POST /webhooks/<token>)."""
        path: str = scope["path"]
        return (
            scope["method"] == "POST"
            and path.startswith(WEBHOOK_PREFIX)
            and len(path) > len(WEBHOOK_PREFIX)
            and "/" not in path[len(WEBHOOK_PREFIX) :]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one webhook call."""
        started = time.perf_counter()
        metrics = self._context.metrics
        request_id = request_id_from(scope["headers"])
        structlog.contextvars.bind_contextvars(request_id=request_id)
        header = request_id_header(request_id)
        status = 500
        try:
            try:
                answer = await self._answer(scope, receive)
            except Exception as exc:
                await answer_unhandled(scope, WEBHOOK_PATH, exc, send, header, metrics)
                return
            status = answer.status
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer.body)).encode("ascii")),
                header,
            ]
            headers.extend(
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in answer.headers.items()
            )
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": answer.body})
        finally:
            finish_request(metrics, "POST", WEBHOOK_PATH, status, started)

    def _answer(self, scope: Scope, receive: Receive) -> Coroutine[Any, Any, WebhookAnswer]:
        content_type = forwarded_for = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                forwarded_for = value.decode("latin-1")
        client = scope.get("client")
        return answer_alert(
            self._context,
            token=scope["path"][len(WEBHOOK_PREFIX) :],
            receive=receive,
            peer=client[0] if client else None,
            content_type=content_type,
            forwarded_for=forwarded_for,
        )


@router.get("/signals")
async def list_signals(
    user: CurrentUser,
    context: ContextDep,
    page: PageDep,
    filters: Annotated[SignalFilters, Query()],
) -> Page[SignalRead]:
    """List your signals (every alert received, accepted or not), newest first."""
    async with context.db.session() as session:
        signals, next_id = await queries.list_signals(
            session, user_id=user.id, filters=filters, limit=page.limit, before_id=page.before_id
        )
    return Page[SignalRead](
        items=[SignalRead.model_validate(signal) for signal in signals],
        next_cursor=next_cursor(next_id),
    )


@router.get("/signals/{signal_id}", responses={404: {"description": "No such signal of yours"}})
async def get_signal(
    signal_id: Annotated[int, Path(ge=1, le=MAX_ID)], user: CurrentUser, context: ContextDep
) -> SignalRead:
    """Show one of your signals with its raw body and parsed intent."""
    async with context.db.session() as session:
        signal = await queries.get_signal(session, user_id=user.id, signal_id=signal_id)
    return SignalRead.model_validate(signal)
