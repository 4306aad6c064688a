"""RFC 9457 problem details (`application/problem+json`) for every API error, and the HTML
error pages of the console."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from crm_core.errors import (
    Conflict,
    DomainError,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)

PROBLEM_TYPE = "https://hwcrm.example/problems/"
MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """An RFC 9457 problem: `type` names the kind, `detail` says what to do about it."""

    type: str = Field(description="URI naming the kind of problem")
    title: str
    status: int
    detail: str = ""
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        None, description="per-field or per-row problems, when there are several"
    )


TITLES = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("too-large", "Request too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation", "Invalid input"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal", "Internal error"),
}


class ApiProblem(Exception):
    """Raise from an API route to answer with a problem (the unit of work rolls back)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.kind = kind


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    kind: str | None = None,
) -> JSONResponse:
    slug, title = TITLES.get(status, ("error", "Error"))
    body = Problem(
        type=PROBLEM_TYPE + (kind or slug),
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def domain_status(exc: DomainError) -> int:
    """The HTTP status of a domain error."""
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, Conflict | InvalidTransition):
        return 409
    if isinstance(exc, ValidationFailed):
        return 422
    return 400


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ())]
        out.append({"field": ".".join(loc), "reason": str(err.get("msg", ""))})
    return out


def is_api(request: Request) -> bool:
    path = request.scope.get("path", "")
    return str(path).startswith("/api/")


__all__ = [
    "MEDIA_TYPE",
    "ApiProblem",
    "Problem",
    "StarletteHTTPException",
    "domain_status",
    "is_api",
    "problem_response",
    "validation_errors",
]
