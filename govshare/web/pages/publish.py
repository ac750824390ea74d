"""Publisher pages: the department's resources, registering one (metadata form and upload with
a progress bar), new data versions, and answering rectification notices."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlmodel import col, select
from starlette.datastructures import FormData, UploadFile

from catalog import register_sheet, warehouse
from catalog import service as catalog_service
from catalog.ingest import SourceOptions
from catalog.models import (
    CATEGORY_LABELS,
    ItemKind,
    ItemType,
    Resource,
    ResourceStatus,
    SecurityLevel,
    Sensitivity,
    SharingMethod,
    SharingType,
    UpdateCycle,
    VersionMode,
)
from catalog.schemas import ResourceIn
from govshare.web.base import (
    CheckedForm,
    PageRoute,
    page_user,
    redirect,
    render,
    text,
    texts,
)
from kernel.auth import Principal
from kernel.db import session_scope
from kernel.identity import Department, Role
from kernel.problems import Invalid, TooLarge
from kernel.settings import get_settings
from quality import notices as quality_notices
from quality.models import NoticeStatus, RectificationNotice

router = APIRouter(route_class=PageRoute, include_in_schema=False)
Publisher = Annotated[Principal, Depends(page_user(Role.publisher))]
NoticeReader = Annotated[Principal, Depends(page_user(Role.publisher, Role.auditor))]

ITEM_FIELDS = ("name", "title", "title_en", "type", "sensitivity", "kind")
BLANK_ITEM_ROWS = 6


def _check_length(request: Request) -> None:
    """Refuse an oversize upload from its declared length, before reading it (as the API)."""
    declared = request.headers.get("content-length")
    limit = get_settings().max_upload_bytes
    if declared and declared.isdigit() and int(declared) > limit + 1024 * 1024:
        raise TooLarge(f"The upload is larger than the limit of {limit:,} bytes.",
                       key="problem.upload_too_large", params={"limit": limit})


CheckedLength = Depends(_check_length)


def _done(request: Request, url: str) -> Response:
    """After a successful POST: JSON for the upload script, a redirect for a plain form."""
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"redirect": url})
    return redirect(url)


@router.get("/publish")
def publish_home(request: Request, who: Publisher) -> Response:
    with session_scope(write=False) as session:
        resources = list(session.exec(select(Resource)
                                      .where(Resource.provider_id == who.department_id)
                                      .order_by(col(Resource.updated_at).desc())))
        open_notices = [n for n in quality_notices.list_notices(session, who, None, None)
                        if n.status is not NoticeStatus.closed]
        codes = {r.id: r.code for r in resources}
    return render(request, "publish.html", {"resources": resources, "notices": open_notices,
                                            "codes": codes})


def _form_options() -> dict[str, Any]:
    return {"categories": CATEGORY_LABELS, "sharing_types": list(SharingType),
            "cycles": list(UpdateCycle), "levels": list(SecurityLevel),
            "methods": list(SharingMethod), "types": list(ItemType),
            "sensitivities": list(Sensitivity), "kinds": list(ItemKind)}


@router.get("/publish/new")
def register_page(request: Request, who: Publisher) -> Response:
    return render(request, "register.html", {**_form_options(), "rows": BLANK_ITEM_ROWS})


def metadata_from(form: FormData) -> ResourceIn:
    """The metadata form → ``ResourceIn`` (item rows with an empty name are ignored)."""
    columns = {f: form.getlist(f"item_{f}") for f in ITEM_FIELDS}
    required = set(texts(form, "item_required"))
    keys = set(texts(form, "item_is_key"))
    items = []
    for i in range(len(columns["name"])):
        row = {f: str(columns[f][i]).strip() if i < len(columns[f]) else "" for f in ITEM_FIELDS}
        # A row is an item when it has a name or a title (the name is then derived from it);
        # the key/required boxes name their row by the name, else the title (upload.js).
        label = row["name"] or row["title"]
        if not label:
            continue
        items.append({**{k: v for k, v in row.items() if v},
                      "required": label in required, "is_key": label in keys})
    raw: dict[str, Any] = {
        "name": text(form, "name"), "name_en": text(form, "name_en"),
        "summary": text(form, "summary"), "summary_en": text(form, "summary_en"),
        "category": text(form, "category"),
        "keywords": [k for k in text(form, "keywords").replace("，", ",").split(",") if k.strip()],
        "sharing_type": text(form, "sharing_type"),
        "sharing_condition": text(form, "sharing_condition"),
        "sharing_method": text(form, "sharing_method") or "file",
        "update_cycle": text(form, "update_cycle"),
        "security_level": text(form, "security_level") or "general",
        "date_item": text(form, "date_item") or None, "items": items}
    try:
        return ResourceIn.model_validate(raw)
    except ValidationError as exc:
        raise Invalid.of(exc.errors(), "the resource description") from None


def _upload(form: FormData) -> UploadFile:
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise Invalid("Choose the data file (Excel, CSV, Parquet or JSON lines) to upload.")
    return upload


def _source_options(form: FormData) -> SourceOptions:
    """Where the data is in a workbook: the sheet and the header row, when given."""
    row = text(form, "header_row")
    if row and not row.isdigit():
        raise Invalid(f"The header row must be a row number (1, 2, …), not '{row}'.",
                      key="problem.web.header_row_number", params={"row": row})
    return SourceOptions(sheet=text(form, "sheet") or None,
                         header_row=int(row) if row and int(row) > 0 else None)


def _confirmed(form: FormData) -> bool:
    """The form's "this is a different resource" box (one source for each piece of data)."""
    return text(form, "confirm_duplicate").lower() in ("true", "on", "1")


@router.post("/publish/new", dependencies=[CheckedLength])
def register(request: Request, who: Publisher, form: CheckedForm) -> Response:
    meta = metadata_from(form)
    upload = _upload(form)
    with session_scope(write=True) as session:
        resource = catalog_service.register_resource(session, who, meta, upload.file,
                                                     filename=upload.filename or "upload",
                                                     options=_source_options(form),
                                                     confirm_duplicate=_confirmed(form))
        code = resource.code
    return _done(request, f"/catalog/{code}?ok=registered")


@router.post("/publish/import-catalog", dependencies=[CheckedLength])
def import_catalog(request: Request, who: Publisher, form: CheckedForm) -> Response:
    """The department's catalog register: all of it applied, or a 422 page listing every
    problem by sheet, row and column (catalog.register_sheet)."""
    upload = _upload(form)
    settings = get_settings()
    staged = warehouse.stage(upload.file, upload.filename or "register.xlsx",
                             settings.warehouse_dir, max_bytes=settings.max_upload_bytes)
    try:
        if staged.format not in (warehouse.Format.xlsx, warehouse.Format.xls):
            raise Invalid("A catalog register is an Excel workbook (.xlsx or .xls).")
        with session_scope(write=True) as session:
            applied = register_sheet.import_catalog(session, who, staged.path,
                                                    confirm_duplicate=_confirmed(form))
    finally:
        staged.path.unlink(missing_ok=True)
    return render(request, "imported.html", {"applied": applied})


@router.get("/catalog/{code}/versions/new")
def version_page(request: Request, code: str, who: Publisher) -> Response:
    with session_scope(write=False) as session:
        resource = catalog_service.get_resource(session, code)
        catalog_service.require_provider(who, resource, catalog_service.ADD_DATA)
    return render(request, "version.html", {"r": resource, "modes": list(VersionMode)})


@router.post("/catalog/{code}/versions/new", dependencies=[CheckedLength])
def add_version(request: Request, code: str, who: Publisher, form: CheckedForm) -> Response:
    upload = _upload(form)
    try:
        mode = VersionMode(text(form, "mode") or "replace")
    except ValueError:
        raise Invalid("Choose replace or append.") from None
    with session_scope(write=True) as session:
        catalog_service.add_version(session, who, code, upload.file,
                                    filename=upload.filename or "upload", mode=mode,
                                    options=_source_options(form))
    return _done(request, f"/catalog/{code}?ok=version_added")


@router.post("/catalog/{code}/status")
def change_status(request: Request, code: str, who: Publisher, form: CheckedForm) -> Response:
    """Withdraw a resource (下架: it leaves the catalog and its searches) or reactivate it,
    from its page; reactivating is checked for similar resources as the API does."""
    try:
        status = ResourceStatus(text(form, "status"))
    except ValueError:
        raise Invalid("Choose withdraw or reactivate.") from None
    with session_scope(write=True) as session:
        catalog_service.set_status(session, who, code, status,
                                   confirm_duplicate=bool(text(form, "confirm_duplicate")))
    done = "resource_withdrawn" if status is ResourceStatus.withdrawn else "resource_reactivated"
    return redirect(f"/catalog/{code}?ok={done}")


# --- rectification notices (publishers answer; the bureau's auditors see them all) -----------

@router.get("/notices")
def notices_page(request: Request, who: NoticeReader) -> Response:
    with session_scope(write=False) as session:
        notices = quality_notices.list_notices(session, who, None, None)
        codes = {r.id: (r.code, r.name) for r in session.exec(
            select(Resource).where(col(Resource.id).in_({n.resource_id for n in notices})))}
        depts = {d.id: d for d in session.exec(select(Department))}
        history = {n.id: quality_notices.history(session, n) for n in notices[:50]}
    return render(request, "notices.html", {"notices": notices, "codes": codes,
                                            "depts": depts, "history": history})


@router.post("/notices/{notice_id}/respond")
def respond(request: Request, notice_id: int, who: Publisher, form: CheckedForm) -> Response:
    response = text(form, "response")
    if len(response) < 2:
        raise Invalid("Say what was fixed, so the data bureau can check it.")
    with session_scope(write=True) as session:
        notice = session.get(RectificationNotice, notice_id)
        if notice is None:
            raise Invalid(f"No rectification notice {notice_id}.",
                          key="problem.quality.no_notice",
                          params={"notice_id": notice_id})
        quality_notices.respond(session, who, notice_id, response)
    return redirect("/notices?ok=responded")
