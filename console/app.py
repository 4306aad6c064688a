"""The console app factory: `create_app(ctx)` → FastAPI (pages, REST API, static assets).

The composition root (`app/console.py`) builds the `ConsoleContext`; nothing here reads
settings files or opens connections on import.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from console.context import ConsoleContext
from console.deps import CsrfFailed, Forbidden, LoginRequired
from console.problems import (
    ApiProblem,
    domain_status,
    is_api,
    problem_response,
    validation_errors,
)
from console.render import STATIC, render
from crm_core.errors import DomainError

log = logging.getLogger("console")

API_DESCRIPTION = """The hwcrm REST API for ERPs and integrations.

Authenticate with an API key (`Authorization: Bearer hwk_…`; created by an admin with
`hwcrm apikey create` or on the console's API keys page). Each key has scopes and a
per-minute rate limit. Errors are RFC 9457 problem details (`application/problem+json`).
Lists use keyset pagination: pass the `next_cursor` of a page as `cursor` for the next one.
"""


def create_app(ctx: ConsoleContext) -> FastAPI:
    """The staff console and the REST API over the services in `ctx`."""
    from console.api.v1 import router as api_router
    from console.pages import router as pages_router
    from console.pages_campaigns import router as campaigns_router
    from console.pages_imports import router as imports_router

    app = FastAPI(
        title="hwcrm console and REST API",
        version="1",
        description=API_DESCRIPTION,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        swagger_ui_parameters={"syntaxHighlight": False},
    )
    app.state.console = ctx
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.include_router(pages_router)
    app.include_router(campaigns_router)
    app.include_router(imports_router)
    app.include_router(api_router)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not is_api(request):
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
            )
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if is_api(request) or request.method != "GET":
            return problem_response(request, 401, "sign in first")
        from console.pages import redirect

        path = request.url.path
        root = request.scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        return redirect(request, "/login", next=path)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        lang = exc.info.language
        return render(
            request,
            ctx,
            "error.html",
            exc.info,
            status=403,
            title=ctx.ui.t("console.forbidden_title", lang),
            message=ctx.ui.t("console.forbidden", lang, role=exc.info.staff.role),
        )

    @app.exception_handler(CsrfFailed)
    async def csrf_failed(request: Request, exc: CsrfFailed) -> Response:
        info = getattr(request.state, "session", None)
        lang = info.language if info else ctx.settings.app.default_language
        return render(
            request,
            ctx,
            "error.html",
            info,
            status=403,
            title=ctx.ui.t("console.forbidden_title", lang),
            message=ctx.ui.t("console.csrf_failed", lang),
        )

    @app.exception_handler(ApiProblem)
    async def api_problem(request: Request, exc: ApiProblem) -> Response:
        return problem_response(
            request,
            exc.status,
            exc.detail,
            errors=exc.errors,
            headers=exc.headers,
            kind=exc.kind,
        )

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        status = domain_status(exc)
        if is_api(request):
            return problem_response(request, status, str(exc))
        info = getattr(request.state, "session", None)
        lang = info.language if info else ctx.settings.app.default_language
        key = "console.not_found_title" if status == 404 else "console.error_title"
        return render(
            request,
            ctx,
            "error.html",
            info,
            status=status,
            title=ctx.ui.t(key, lang),
            message=str(exc),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        errors = validation_errors(exc)
        if is_api(request):
            return problem_response(request, 422, "the request is invalid", errors=errors)
        info = getattr(request.state, "session", None)
        lang = info.language if info else ctx.settings.app.default_language
        return render(
            request,
            ctx,
            "error.html",
            info,
            status=422,
            title=ctx.ui.t("console.error_title", lang),
            message="; ".join(f"{e['field']}: {e['reason']}" for e in errors),
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if is_api(request) or request.url.path == "/openapi.json":
            return problem_response(
                request, exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None)
            )
        info = getattr(request.state, "session", None)
        lang = info.language if info else ctx.settings.app.default_language
        key = "console.not_found" if exc.status_code == 404 else "console.error_title"
        return render(
            request,
            ctx,
            "error.html",
            info,
            status=exc.status_code,
            title=ctx.ui.t("console.not_found_title" if exc.status_code == 404 else key, lang),
            message=ctx.ui.t(key, lang),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        if is_api(request):
            return problem_response(request, 500, "an internal error occurred; it was logged")
        return Response("internal error", status_code=500, media_type="text/plain")

    return app
