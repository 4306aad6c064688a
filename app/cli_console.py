"""`hwcrm console` (the staff console + REST API) and `hwcrm apikey create|list|revoke`.

Behind a reverse proxy: `hwcrm console --root-path /crm --forwarded-allow-ips 10.0.0.5`
(or `console.root_path` / `console.forwarded_allow_ips`); uvicorn then takes the client
address and https from the proxy's X-Forwarded-For / X-Forwarded-Proto headers — only from
those addresses — so cookies get the Secure flag (`console.secure_cookies: auto`) and the
login rate limit sees the real client.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

apikey_app = typer.Typer(
    help="REST API keys (scopes, per-key rate limits); the key is shown once.",
    no_args_is_help=True,
)


def register(cli: typer.Typer) -> None:
    cli.command("console")(console_cmd)
    cli.add_typer(apikey_app, name="apikey")


def uvicorn_config(app: Any, settings: Any, **overrides: Any) -> Any:
    """The uvicorn configuration of the console (shared by `hwcrm console` and `start`)."""
    import uvicorn

    c = settings.console
    return uvicorn.Config(
        app,
        host=overrides.get("host") or c.host,
        port=c.port if overrides.get("port") is None else int(overrides["port"]),
        root_path=str(overrides.get("root_path") or c.root_path),
        proxy_headers=True,
        forwarded_allow_ips=overrides.get("forwarded_allow_ips") or c.forwarded_allow_ips,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


def console_cmd(
    host: str = typer.Option(None, "--host", help="Address to listen on (console.host)."),
    port: int = typer.Option(None, "--port", help="Port (console.port; 0 = any free port)."),
    root_path: str = typer.Option(
        None, "--root-path", help="Path prefix when served behind a reverse proxy (/crm)."
    ),
    forwarded_allow_ips: str = typer.Option(
        None,
        "--forwarded-allow-ips",
        help="Proxy addresses whose X-Forwarded-For/-Proto headers are trusted.",
    ),
) -> None:
    """Serve the staff console and the REST API (uvicorn)."""
    import uvicorn

    from app.cli import console, run_async
    from app.console import build_console_app
    from app.container import container_scope
    from app.settings import load_settings

    settings = load_settings()

    async def go() -> None:
        async with container_scope(settings) as container:
            app = build_console_app(container)
            config = uvicorn_config(
                app,
                settings,
                host=host,
                port=port,
                root_path=root_path,
                forwarded_allow_ips=forwarded_allow_ips,
            )
            console.print(
                f"console on http://{config.host}:{config.port}{config.root_path}/login "
                f"(API: /api/v1, schema: /openapi.json)"
            )
            await uvicorn.Server(config).serve()

    run_async(go())


@apikey_app.command("create")
def apikey_create(
    name: str = typer.Option(..., "--name", help="Who uses it, e.g. 'ERP sync'."),
    scope: list[str] = typer.Option(..., "--scope", help="Repeat: customers:read, orders:write, …"),
    rate_limit: int = typer.Option(None, "--rate-limit", help="Requests per minute."),
) -> None:
    """Create an API key and print it (once: only its hash is stored)."""
    from app.cli import console
    from app.cli_staff import _in_unit_of_work
    from crm_core.access.service import AccessService

    async def work(container: Any, session: Any) -> tuple[Any, str]:
        limit = rate_limit or container.settings.console.api_rate_limit_per_minute
        key, plaintext = await AccessService(session, container.clock).create_key(
            name, scope, rate_limit_per_minute=limit
        )
        from crm_core.audit.service import AuditService

        await AuditService(session, container.clock).record(
            "cli", "create", "api_key", key.id, reason="hwcrm apikey create"
        )
        return key, plaintext

    key, plaintext = _in_unit_of_work(work)
    console.print(f"API key #{key.id} {escape(key.name)} ({', '.join(key.scopes)})")
    console.print("Copy it now; it is not shown again:")
    print(plaintext)


@apikey_app.command("list")
def apikey_list(
    include_revoked: bool = typer.Option(False, "--all", help="Also revoked keys."),
) -> None:
    """List API keys (never the keys themselves)."""
    from app.cli import console
    from app.cli_staff import _in_unit_of_work
    from crm_core.access.service import AccessService

    async def work(container: Any, session: Any) -> list[Any]:
        return await AccessService(session, container.clock).list_keys(
            include_revoked=include_revoked
        )

    keys = _in_unit_of_work(work)
    table = Table(title="API keys")
    for column in ("id", "name", "prefix", "scopes", "per minute", "last used", "revoked"):
        table.add_column(column)
    for k in keys:
        table.add_row(
            str(k.id),
            escape(k.name),
            k.prefix,
            ", ".join(k.scopes),
            str(k.rate_limit_per_minute),
            str(k.last_used_at or ""),
            str(k.revoked_at or ""),
        )
    console.print(table)


@apikey_app.command("revoke")
def apikey_revoke(key_id: int = typer.Argument(..., help="Key id (hwcrm apikey list).")) -> None:
    """Revoke an API key: it stops working on the next request."""
    from app.cli import console
    from app.cli_staff import _in_unit_of_work
    from crm_core.access.service import AccessService

    async def work(container: Any, session: Any) -> Any:
        key = await AccessService(session, container.clock).revoke_key(key_id)
        from crm_core.audit.service import AuditService

        await AuditService(session, container.clock).record(
            "cli", "revoke", "api_key", key.id, reason="hwcrm apikey revoke"
        )
        return key

    key = _in_unit_of_work(work)
    console.print(f"API key #{key.id} {escape(key.name)} is revoked")
