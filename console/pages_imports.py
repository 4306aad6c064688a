"""Imports page (admins): upload a CSV, see the per-row validation report of a dry run (the
same as `hwcrm import … --dry-run`), then commit or discard it.

The upload is kept server-side under `<app.data_dir>/console-imports/<random id>.csv` with a
JSON sidecar saying what it is and who uploaded it; later requests name only the id (checked
against a strict pattern), never a path, and only its uploader may commit or discard it.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from console.deps import Allow, Crm, CsrfOk, Ctx
from console.pages import redirect
from console.render import render
from crm_core.access.schemas import SessionInfo
from crm_core.errors import NotFound, ValidationFailed
from crm_core.importexport.schemas import Entity, FileFormat, ImportRequest, ImportResult
from crm_core.importexport.service import ImportRejected, ImportService

router = APIRouter(include_in_schema=False)

UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")
CHUNK = 1 << 16
DEFAULT_MAX_BYTES = 50 << 20  # when import.max_file_bytes is 0 (unlimited on the CLI)


def upload_dir(ctx: Ctx) -> Path:
    return Path(ctx.settings.app.data_dir) / "console-imports"


def _files(ctx: Ctx, upload_id: str) -> tuple[Path, Path]:
    if not UPLOAD_ID.match(upload_id):
        raise NotFound("no such upload")
    base = upload_dir(ctx)
    return base / f"{upload_id}.csv", base / f"{upload_id}.json"


def _load(ctx: Ctx, info: SessionInfo, upload_id: str) -> tuple[Path, dict[str, object]]:
    data, meta_path = _files(ctx, upload_id)
    if not data.exists() or not meta_path.exists():
        raise NotFound("this upload was already committed or discarded")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("staff_id") != info.staff.id:
        raise NotFound("no such upload")  # another admin's upload: not theirs to act on
    return data, meta


def _discard(ctx: Ctx, upload_id: str) -> None:
    for path in _files(ctx, upload_id):
        path.unlink(missing_ok=True)


async def _import(crm: Crm, ctx: Ctx, request: ImportRequest) -> ImportResult:
    """Run the import in a savepoint of the request's unit of work: a dry run or a rejected
    file rolls back only its own writes (ImportRejected), a good one is committed with the
    request."""
    service = ImportService(crm.session, crm.clock, ctx.imports)
    try:
        async with crm.session.begin_nested():
            result = await service.import_file(request)
    except ImportRejected as rejected:
        return rejected.result
    result.committed = True
    return result


@router.get("/admin/imports", response_class=HTMLResponse)
async def imports_page(
    request: Request,
    ctx: Ctx,
    info: Annotated[SessionInfo, Depends(Allow("imports"))],
    flash: str | None = None,
) -> Response:
    return render(
        request, ctx, "imports.html", info, entities=[e.value for e in Entity], flash=flash
    )


@router.post("/admin/imports", response_class=HTMLResponse, dependencies=[CsrfOk])
async def imports_upload(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("imports_change"))],
    file: UploadFile,
    entity: Annotated[Entity, Form()],
) -> Response:
    """Keep the upload server-side and show the dry run's per-row report."""
    limit = ctx.imports.max_file_bytes or DEFAULT_MAX_BYTES
    upload_id = secrets.token_urlsafe(16)
    data, meta_path = _files(ctx, upload_id)
    data.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with data.open("wb") as out:
        while chunk := await file.read(CHUNK):
            size += len(chunk)
            if size > limit:
                out.close()
                data.unlink(missing_ok=True)
                raise ValidationFailed(f"the file is larger than {limit:,} bytes; nothing was kept")
            out.write(chunk)
    name = Path(file.filename or "upload.csv").name[:200]
    meta_path.write_text(
        json.dumps({"entity": entity.value, "filename": name, "staff_id": info.staff.id}),
        encoding="utf-8",
    )
    result = await _import(crm, ctx, _request(info, entity, data, dry_run=True))
    return render(
        request,
        ctx,
        "import_report.html",
        info,
        upload_id=upload_id,
        filename=name,
        result=result,
    )


def _request(
    info: SessionInfo, entity: Entity, path: Path, *, dry_run: bool, partial: bool = False
) -> ImportRequest:
    return ImportRequest(
        entity=entity,
        path=path,
        file_format=FileFormat.CSV,
        dry_run=dry_run,
        partial=partial,
        actor=info.staff.actor,
    )


@router.post("/admin/imports/{upload_id}/{action}", dependencies=[CsrfOk])
async def imports_decide(
    request: Request,
    ctx: Ctx,
    crm: Crm,
    info: Annotated[SessionInfo, Depends(Allow("imports_change"))],
    upload_id: str,
    action: str,
    partial: Annotated[bool, Form()] = False,
) -> Response:
    """`commit` (all-or-nothing unless `partial`) or `discard` a kept upload."""
    data, meta = _load(ctx, info, upload_id)
    lang = info.language
    if action == "discard":
        _discard(ctx, upload_id)
        return redirect(request, "/admin/imports", flash=ctx.ui.t("console.import_discarded", lang))
    if action != "commit":
        raise NotFound(f"unknown action {action!r}")
    entity = Entity(str(meta["entity"]))
    result = await _import(crm, ctx, _request(info, entity, data, dry_run=False, partial=partial))
    if result.committed:
        _discard(ctx, upload_id)
    return render(
        request,
        ctx,
        "import_report.html",
        info,
        upload_id=None if result.committed else upload_id,
        filename=str(meta.get("filename", "")),
        result=result,
    )
