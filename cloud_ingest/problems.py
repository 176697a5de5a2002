"""RFC 9457 problem documents: the one shape of every error the API returns, as documented."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

from fastapi.responses import JSONResponse

PROBLEM_JSON: Final = "application/problem+json"


def problem(
    status: int,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: object,
) -> JSONResponse:
    """An RFC 9457 problem document (`type` is `about:blank`: the status says it all)."""
    body: dict[str, object] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


PROBLEM_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "description": "An RFC 9457 problem document.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "reason": {"type": "string", "description": "why an envelope was refused"},
        "errors": {
            "type": "array",
            "description": "where the request does not match the schema",
            "items": {
                "type": "object",
                "properties": {"loc": {"type": "array"}, "msg": {"type": "string"}},
            },
        },
    },
}
"""The JSON schema of `problem()`'s documents (`components/schemas/Problem` of the API)."""

_PROBLEM_REF: Final = {"$ref": "#/components/schemas/Problem"}
_FASTAPI_422: Final = "#/components/schemas/HTTPValidationError"
_WWW_AUTHENTICATE: Final = {
    "description": "`Bearer`, with `error` when a token was given but refused",
    "required": True,
    "schema": {"type": "string"},
}


@dataclass(frozen=True)
class Implied:
    """Error answers an operation has by what it uses, not by what its route declares.

    `by_security`: per security scheme name, the statuses (and their descriptions) of an operation
    secured by it; `by_query`: likewise per query parameter name; `by_body`: those of an operation
    whose request body the framework parses into a model (its schema is a `$ref`).
    """

    by_security: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    by_query: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    by_body: Mapping[int, str] = field(default_factory=dict)


def document_problems(openapi: dict[str, Any], implied: Implied) -> dict[str, Any]:
    """Document every error answer of the `openapi` document as a problem document, in place.

    Each operation gets the statuses `implied` by its security schemes, query parameters and
    request body (a `401` also documents its `WWW-Authenticate` header). Every `4xx`/`5xx`
    answer without a body of its own, and FastAPI's validation error (`422`), become
    `application/problem+json` with the `Problem` schema. Returns `openapi`.
    """
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                _document_operation(operation, implied)
    if not _references(openapi["paths"], _FASTAPI_422):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return openapi


def _document_operation(operation: dict[str, Any], implied: Implied) -> None:
    responses: dict[str, Any] = operation["responses"]
    for status, description in _implied_statuses(operation, implied).items():
        responses.setdefault(str(status), {"description": description})
    for code, response in responses.items():
        if not (code.isdigit() and int(code) >= HTTPStatus.BAD_REQUEST):
            continue
        content = response.get("content")
        if not content or _references(content, _FASTAPI_422):
            response["content"] = {PROBLEM_JSON: {"schema": _PROBLEM_REF}}
        if code == str(HTTPStatus.UNAUTHORIZED):
            headers = response.setdefault("headers", {})
            headers["WWW-Authenticate"] = copy.deepcopy(_WWW_AUTHENTICATE)


def _implied_statuses(operation: dict[str, Any], implied: Implied) -> dict[int, str]:
    statuses: dict[int, str] = {}
    for requirement in operation.get("security", []):
        for scheme in requirement:
            statuses.update(implied.by_security.get(scheme, {}))
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "query":
            statuses.update(implied.by_query.get(parameter.get("name"), {}))
    body = operation.get("requestBody", {}).get("content", {})
    if any("$ref" in media.get("schema", {}) for media in body.values()):
        statuses.update(implied.by_body)
    return statuses


def _references(document: object, ref: str) -> bool:
    if isinstance(document, dict):
        return document.get("$ref") == ref or any(_references(v, ref) for v in document.values())
    if isinstance(document, list):
        return any(_references(v, ref) for v in document)
    return False
