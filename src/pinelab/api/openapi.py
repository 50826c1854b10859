"""The OpenAPI document: the one error body on every error answer, auth, rate limits, examples.

Routers declare their models and the errors particular to them; this module adds what every
operation shares (401 where a bearer token is needed, 403 under /admin, 404 where a path names a
resource, 422, 429 where a rate limit applies, 500), gives each error answer the one error body,
and fills a request and response example from the schema wherever a model declares none. A
plain Starlette route (`DocumentedRoute`) brings its operation with it.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from string import Template
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pinelab.config import Settings

JSON: Final = "application/json"
_ERRORS: Final = {
    "401": ("AuthenticationError", "Missing, invalid or expired bearer token"),
    "403": ("AuthorizationError", "The caller may not do this (e.g. not an admin)"),
    "404": ("ResourceNotFoundError", "No such resource, or not yours (the same answer)"),
    "409": ("ConflictError", "Conflicts with the current state or an existing resource"),
    "413": ("AlertTooLarge", "Body larger than the limit"),
    "422": ("ValidationError", "Input not acceptable; `details` names each field"),
    "429": ("RateLimitExceeded", "Too many requests; retry after `Retry-After` seconds"),
    "500": ("InternalServerError", "Unexpected error; logged with the request id"),
    "503": ("ServiceUnavailable", "A dependency is down; retry later"),
}
_SAMPLE_STRINGS: Final = {
    "date-time": "2026-01-02T15:30:00Z",
    "date": "2026-01-02",
    "email": "trader@example.com",
    "uri": "https://example.com/",
    "uuid": "8c0e7f8a-5f2e-4d8e-9a63-2b7f1f3b1c10",
}
MAX_EXAMPLE_DEPTH: Final = 6

DESCRIPTION: Final = Template("""\
TradingView alerts to broker orders, with a faithful record of everything.

**Versioning.** Every JSON API route lives under `/api/v1`. Within v1 changes are additive only:
new routes, new optional request fields, new response fields (clients must ignore fields they do
not know). Removing or renaming a field, changing a type or a status code needs `/api/v2`; v1
then keeps answering for at least 6 months, and its responses carry a `Deprecation` header.
The webhook `POST /webhooks/{token}` and `/health/*`, `/metrics` are not versioned and never
change incompatibly.

**Authentication.** `Authorization: Bearer <access token>` from `POST /api/v1/auth/login`
(refresh with `POST /api/v1/auth/refresh`). The webhook is authenticated by the secret token in
its path (and the strategy's passphrase, when set). `/metrics` takes `PINELAB_METRICS_TOKEN` as
a bearer token when that is set.

**Errors.** Every error answer has the body
`{"error": "<Type>", "message": "<human text>", "details": [{"field", "message", "type"}]}`
and every answer carries `X-Request-ID` (yours when you send a sane one, else a new one): quote
it when reporting a problem.

**Rate limits.** Webhooks: $webhook_rate alerts a minute per strategy (bursts of a sixth of
that), $bad_token_rate requests a minute per source address with unknown tokens. Login:
10 attempts a minute per email and address. Over a limit the answer is 429 with `Retry-After`.

**Sizes.** Webhook bodies up to $webhook_bytes bytes; pages of at most 200 items.
""")


class ErrorDetailBody(BaseModel):
    """One problem, naming the field it concerns."""

    field: str = Field(examples=["quantity"])
    message: str = Field(examples=["must be greater than 0"])
    type: str = Field(examples=["value_error"])


class ErrorBody(BaseModel):
    """The one error body of every error answer."""

    error: str = Field(examples=["ValidationError"])
    message: str = Field(examples=["Request validation failed: quantity: must be greater than 0"])
    details: list[ErrorDetailBody] = Field(default_factory=list)
    signal_id: int | None = Field(
        None, description="Webhook only: the id of the rejected alert, which is still recorded"
    )


def rate_limits(settings: Settings) -> dict[str, str]:
    """Return the rate limit of each limited operation, as shown in the document."""
    limits = {
        "post /webhooks/{token}": (
            f"{settings.webhook_rate_per_minute}/minute per strategy; "
            f"{settings.webhook_bad_token_rate_per_minute}/minute per address for unknown tokens"
        ),
        "post /api/v1/auth/login": (
            f"{settings.rate_limit_login_account_per_minute}/minute per account; "
            f"{settings.rate_limit_auth_ip_per_minute}/minute per address"
        ),
        "post /api/v1/auth/login/2fa": (
            f"{settings.rate_limit_two_factor_per_minute}/minute per account; "
            f"{settings.rate_limit_auth_ip_per_minute}/minute per address"
        ),
        "post /api/v1/auth/register": (
            f"{settings.rate_limit_auth_ip_per_minute}/minute per address"
        ),
    }
    recovery = f"{settings.rate_limit_recovery_ip_per_minute}/minute per address"
    emails = (
        f"{recovery}; per email address, 3 at once then "
        f"{settings.rate_limit_account_email_per_minute}/minute"
    )
    for path in ("verify-email", "validate-reset-token", "reset-password"):
        limits[f"post /api/v1/auth/{path}"] = recovery
    for path in ("resend-verification", "request-reset", "change-password"):
        limits[f"post /api/v1/auth/{path}"] = emails
    return limits


class DocumentedRoute(Route):
    """A plain Starlette route that carries its own OpenAPI operation.

    For a hot path: it skips FastAPI's request handling (dependency solving, body and response
    processing), which costs several times the rest of the request, and keeps its document.
    """

    def __init__(
        self,
        path: str,
        endpoint: Callable[[Request], Awaitable[Response]],
        *,
        method: str,
        operation: dict[str, Any],
    ) -> None:
        super().__init__(path, endpoint, methods=[method], include_in_schema=False)
        self.method = method.lower()
        self.operation = operation


def _documented(routes: list[BaseRoute]) -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if isinstance(route, DocumentedRoute):
            paths.setdefault(route.path, {})[route.method] = copy.deepcopy(route.operation)
    return paths


def build_openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """Return the app's OpenAPI document with the shared answers, limits and examples."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=DESCRIPTION.substitute(
            webhook_rate=settings.webhook_rate_per_minute,
            bad_token_rate=settings.webhook_bad_token_rate_per_minute,
            webhook_bytes=settings.webhook_max_body_bytes,
        ),
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(
        ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}").pop("$defs", {})
    )
    schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas["ErrorBody"].pop("$defs", None)
    document["paths"] = {**_documented(app.routes), **document.get("paths", {})}
    limits = rate_limits(settings)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            _complete(operation, path, method, limits.get(f"{method} {path}"), schemas)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Make the app serve the completed document (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _complete(
    operation: dict[str, Any],
    path: str,
    method: str,
    limit: str | None,
    schemas: dict[str, Any],
) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    wanted = {"500"}
    if operation.get("security"):
        wanted.add("401")
    if "/admin/" in path:
        wanted.add("403")
    if "{" in path:
        wanted.update({"404", "422"})
    if operation.get("parameters") or operation.get("requestBody"):
        wanted.add("422")
    if limit is not None:
        wanted.add("429")
        operation["x-rate-limit"] = limit
        operation["description"] = f"{operation.get('description', '')}\n\nRate limit: {limit}."
    for code in wanted:
        responses.setdefault(code, {"description": _ERRORS[code][1]})
    for code, response in responses.items():
        if code[0] in "45":
            _error_content(code, response)
    _add_examples(operation, schemas)


def _error_content(code: str, response: dict[str, Any]) -> None:
    name, text = _ERRORS.get(code, ("Error", response.get("description", "Error")))
    example = {"error": name, "message": text, "details": []}
    if code == "422":
        example["details"] = [
            {"field": "quantity", "message": "must be > 0", "type": "value_error"}
        ]
    content = response.setdefault("content", {})
    if JSON not in content or "HTTPValidationError" in str(content[JSON].get("schema", "")):
        content[JSON] = {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
    content[JSON].setdefault("example", example)
    if code == "429":
        response.setdefault("headers", {})["Retry-After"] = {
            "description": "Seconds to wait",
            "schema": {"type": "integer"},
        }


def _add_examples(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    media = operation.get("requestBody", {}).get("content", {})
    bodies = [media.get(JSON)]
    for code, response in operation.get("responses", {}).items():
        if code.startswith("2"):
            bodies.append(response.get("content", {}).get(JSON))
    for body in bodies:
        if body is None or "example" in body or "examples" in body or "schema" not in body:
            continue
        body["example"] = example_for(body["schema"], schemas)


def example_for(schema: dict[str, Any], schemas: dict[str, Any], depth: int = 0) -> Any:
    """Return an example value for a JSON schema: its own example, else one built from it."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return example_for(schemas.get(name, {}), schemas, depth)
    for key in ("examples", "example", "default", "const", "enum"):
        value = schema.get(key)
        if value is not None and value != []:
            return value[0] if key in ("examples", "enum") and isinstance(value, list) else value
    for key in ("anyOf", "oneOf", "allOf"):
        options = [s for s in schema.get(key, []) if s.get("type") != "null"]
        if options:
            return example_for(options[0], schemas, depth)
    if depth > MAX_EXAMPLE_DEPTH:
        return None
    return _example_of_type(schema, schemas, depth)


def _example_of_type(schema: dict[str, Any], schemas: dict[str, Any], depth: int) -> Any:
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties: dict[str, Any] = schema.get("properties", {})
        example = {k: example_for(v, schemas, depth + 1) for k, v in properties.items()}
        extra = schema.get("additionalProperties")
        if not properties and isinstance(extra, dict):
            example["key"] = example_for(extra, schemas, depth + 1)
        return example
    if kind == "array":
        return [example_for(schema.get("items", {}), schemas, depth + 1)]
    if kind == "integer":
        return int(schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1))
    if kind == "number":
        return schema.get("minimum", 1.5)
    if kind == "boolean":
        return True
    if kind == "string":
        return _SAMPLE_STRINGS.get(
            schema.get("format", ""), "x" * max(schema.get("minLength", 6), 1)
        )
    return None
