"""RFC 9457 problem documents: the one shape of every error the API returns."""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

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
