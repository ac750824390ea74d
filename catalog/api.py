"""Catalog HTTP API: register, browse, search, edit and export resources."""

from collections.abc import Iterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from sqlmodel import Session

from catalog import export, ingest, search, service, similar
from catalog.models import CATEGORY_LABELS, DataItem, Resource, ResourceStatus, VersionMode
from catalog.schemas import (
    DataItemOut,
    DataVersionOut,
    Preview,
    ProviderOut,
    ResourceHit,
    ResourceIn,
    ResourceOut,
    ResourceUpdate,
    RevisionOut,
)
from kernel.auth import DbSession, Principal, SignedIn, SignedInOnLoop, WriteSession, require
from kernel.db import session_scope
from kernel.idempotency import IDEMPOTENT, IdempotentRoute
from kernel.identity import Department, Role, User, get_department
from kernel.problems import Forbidden, Invalid, TooLarge
from kernel.settings import get_settings

router = APIRouter(tags=["catalog"], route_class=IdempotentRoute)
Publisher = Annotated[Principal, Depends(require(Role.publisher))]


def resource_out(session: DbSession, resource: Resource, dept: Department | None = None,
                 items: Sequence[Any] | None = None) -> ResourceOut:
    """The resource as the API shows it; pass its provider and its items (ORM objects or
    rows) when they are already loaded: a search page loads them all at once."""
    dept = dept or service.provider_of(session, resource)
    zh, en = CATEGORY_LABELS[resource.category]
    return ResourceOut(
        **resource.model_dump(exclude={"id", "provider_id", "created_at", "updated_at"}),
        provider=ProviderOut(code=dept.code, name_zh=dept.name_zh, name_en=dept.name_en,
                             kind=dept.kind.value, level=dept.level.value),
        category_label=zh, category_label_en=en,
        items=[DataItemOut.model_validate(i if isinstance(i, DataItem) else dict(i))
               for i in (resource.items if items is None else items)],
    )


def _parse_metadata(raw: str) -> ResourceIn:
    try:
        return ResourceIn.model_validate_json(raw)
    except ValidationError as exc:
        raise Invalid.of(exc.errors(), "the resource metadata") from None


def _check_length(request: Request) -> None:
    """Refuse an oversize upload from its declared length, before reading it."""
    declared = request.headers.get("content-length")
    limit = get_settings().max_upload_bytes
    if declared and declared.isdigit() and int(declared) > limit + 1024 * 1024:
        raise TooLarge(f"The upload is larger than the limit of {limit:,} bytes.",
                       key="problem.upload_too_large", params={"limit": limit})


METADATA_HELP = ("The resource's metadata: a JSON object of schema ResourceIn (a complete "
                 "example: docs/examples/meta.json). With curl: -F metadata=<meta.json "
                 "(the file's text as the field's value).")
FILE_HELP = ("CSV (UTF-8 or GB 18030), Parquet, JSON lines, or an Excel workbook (.xlsx, .xls). "
             "The header names each data item by its field name or its title (数据项名称).")
SHEET_HELP = ("Excel only: the sheet, by name or 1-based number. Default: the first sheet "
              "with a header row naming the data items.")
HEADER_ROW_HELP = ("Excel only: the 1-based row of the header, below any title rows. Default: "
                   "found by matching the data items in the first 30 rows.")
CONFIRM_HELP = ("Register even though the department already has a similar active resource "
                "(see POST /api/v1/resources/similar): the publisher confirms it is a "
                "different resource, and the registration's log entry records it. Without it, "
                "such a registration is refused with 409 similar-resource-exists.")


@router.post("/resources", response_model=ResourceOut, status_code=status.HTTP_201_CREATED,
             dependencies=[Depends(_check_length), IDEMPOTENT])
def register(session: WriteSession, who: Publisher,
             metadata: Annotated[str, Form(description=METADATA_HELP)],
             file: Annotated[UploadFile, File(description=FILE_HELP)],
             sheet: Annotated[str | None, Form(description=SHEET_HELP)] = None,
             header_row: Annotated[int | None, Form(ge=1, description=HEADER_ROW_HELP)] = None,
             confirm_duplicate: Annotated[bool, Form(description=CONFIRM_HELP)] = False,
             ) -> ResourceOut:
    """Register a resource together with its data. Nothing is stored unless both are valid.
    A resource close to an active one of the same department is refused (409) unless
    ``confirm_duplicate`` (one source for each piece of data, docs/catalog.md)."""
    meta = _parse_metadata(metadata)
    resource = service.register_resource(session, who, meta, file.file,
                                         filename=file.filename or "upload",
                                         options=_options(sheet, header_row),
                                         confirm_duplicate=confirm_duplicate)
    out = resource_out(session, resource)
    version = service.current_version(session, resource)
    out.normalised = version.normalised if version else {}
    return out


def _options(sheet: str | None, header_row: int | None) -> ingest.SourceOptions:
    return ingest.SourceOptions(sheet=sheet or None, header_row=header_row)


def document_metadata(schema: dict[str, Any]) -> None:
    """Make the OpenAPI document say what ``metadata`` is: a JSON-encoded ResourceIn.

    The form field is text (multipart has no JSON fields), so FastAPI documents it as a plain
    string. Here its schema becomes a reference to ResourceIn, with the part's content type
    ``application/json`` (OpenAPI's multipart ``encoding``), so Swagger UI shows the fields
    with an example and sends the part as JSON, and client generators type it."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    resource_in = ResourceIn.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in resource_in.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components["ResourceIn"] = resource_in
    post = schema["paths"]["/api/v1/resources"]["post"]
    body = post["requestBody"]["content"]["multipart/form-data"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[1]
    components[ref]["properties"]["metadata"] = {
        "$ref": "#/components/schemas/ResourceIn", "description": METADATA_HELP}
    body["encoding"] = {"metadata": {"contentType": "application/json"}}


class SearchResult(BaseModel):
    total: int = Field(description=f"Exact up to {search.TOTAL_BOUND:,}; beyond, "
                       f"{search.TOTAL_BOUND:,} with total_capped (show it as "
                       f"\"{search.TOTAL_BOUND:,}+\")")
    total_capped: bool = False
    page: int
    size: int
    hits: list[ResourceHit]
    facets: search.Facets | None = Field(
        default=None, description="Hits per value of each filter (department codes, category "
        "codes, enum values; min_quality: hits scoring at least 60, 80, 90)")


@router.get("/resources", response_model=SearchResult)
async def search_resources(_: SignedInOnLoop,
                           params: Annotated[search.SearchParams, Query()]) -> Response:
    """Full-text search (Chinese and English; a resource code or its start) with filters,
    facets, sorting and pagination. Every signed-in user may search the whole catalog (its
    metadata is public within the government); withdrawn resources are not listed."""
    if params.department or params.facets or params.items:
        # These read the database as well: in the thread pool, never on the event loop.
        return await run_in_threadpool(_search_page, params)
    # The common page reads the index alone (CPU work, no I/O, ~1-2 ms at a million
    # resources): answered on the event loop, as is its caller's token (kernel.auth:
    # signed_in_on_loop), which spares the hops to the thread pool and back, about a third
    # of the page's CPU (docs/search.md, figures).
    return _search_page(params)


def _search_page(params: search.SearchParams) -> Response:
    # A session never connects unless used: a page of the index alone runs no query.
    with session_scope(write=False) as session:
        return _page(session, params)


def _page(session: Session, params: search.SearchParams) -> Response:
    found = search.search_cards(session, params)
    # The hits' JSON comes stored in the index (docs/search.md): no database query per page
    # and no model per hit. Their items, if asked for: one query.
    cards = found.cards
    if params.items:
        items = search.items_json(session, found.ids)
        cards = [c[:-1] + f',"items":{items[i]}}}' for c, i in zip(cards, found.ids,
                                                                    strict=True)]
    facets = found.facets.model_dump_json() if found.facets is not None else "null"
    body = (f'{{"total":{found.total},"total_capped":{"true" if found.total_capped else "false"},'
            f'"page":{found.page},"size":{found.size},"hits":[{",".join(cards)}],'
            f'"facets":{facets}}}')
    return Response(body, media_type="application/json")


@router.post("/resources/similar", response_model=similar.SimilarOut)
def similar_resources(draft: similar.SimilarIn, session: DbSession,
                      who: Publisher) -> similar.SimilarOut:
    """Does this already exist? Before registering: the active resources close to a draft's
    name and data items, with the score and the items in common. Same department: a
    registration is refused unless confirmed (confirm_duplicate). Other departments: shown
    as sources to apply for, never blocking. Only catalog metadata is returned."""
    department = get_department(session, draft.provider) if draft.provider else \
        get_department(session, who.department_id)
    if department.id != who.department_id:
        raise Forbidden(f"You register resources only for your own department "
                        f"({who.department_code}), not {department.code}.",
                        key="problem.catalog.similar_own_department",
                        params={"department_code": who.department_code,
                                "code": department.code})
    return similar.find_for(session, department.id or 0, draft.name, draft.items)


@router.get("/resources/{code}", response_model=ResourceOut)
def get_resource(code: str, session: DbSession, _: SignedIn) -> ResourceOut:
    """Metadata, including data items, is visible to everyone signed in."""
    return resource_out(session, service.get_resource(session, code))


@router.patch("/resources/{code}", response_model=ResourceOut)
def update_resource(code: str, edit: ResourceUpdate, session: WriteSession,
                    who: Publisher) -> ResourceOut:
    return resource_out(session, service.update_resource(session, who, code, edit))


@router.post("/resources/{code}/withdraw", response_model=ResourceOut)
def withdraw(code: str, session: WriteSession, who: Publisher) -> ResourceOut:
    return resource_out(session, service.set_status(session, who, code,
                                                    ResourceStatus.withdrawn))


REACTIVATE_CONFIRM_HELP = ("Reactivate even though the department registered a similar "
                           "active resource meanwhile: the publisher confirms they are "
                           "different resources, and the log entry records it. Without it, "
                           "such a reactivation is refused with 409 similar-resource-exists.")


@router.post("/resources/{code}/reactivate", response_model=ResourceOut)
def reactivate(code: str, session: WriteSession, who: Publisher,
               confirm_duplicate: Annotated[bool, Query(description=REACTIVATE_CONFIRM_HELP)]
               = False) -> ResourceOut:
    """Make a withdrawn resource active again. Checked as a registration is: refused (409)
    when the department has a similar active resource, unless ``confirm_duplicate``."""
    return resource_out(session, service.set_status(session, who, code, ResourceStatus.active,
                                                    confirm_duplicate=confirm_duplicate))


@router.post("/resources/{code}/versions", response_model=DataVersionOut,
             status_code=status.HTTP_201_CREATED, dependencies=[Depends(_check_length), IDEMPOTENT])
def add_version(code: str, session: WriteSession, who: Publisher,
                file: Annotated[UploadFile, File(description=FILE_HELP)],
                mode: Annotated[VersionMode, Form()] = VersionMode.replace,
                sheet: Annotated[str | None, Form(description=SHEET_HELP)] = None,
                header_row: Annotated[int | None, Form(ge=1, description=HEADER_ROW_HELP)]
                = None) -> DataVersionOut:
    """A new data version: ``replace`` the data, or ``append`` rows to it (key items stay
    unique across the appended and current data)."""
    version = service.add_version(session, who, code, file.file,
                                  filename=file.filename or "upload", mode=mode,
                                  options=_options(sheet, header_row))
    return DataVersionOut.model_validate(version)


@router.get("/resources/{code}/versions", response_model=list[DataVersionOut])
def list_versions(code: str, session: DbSession, _: SignedIn) -> list[DataVersionOut]:
    return [DataVersionOut.model_validate(v) for v in service.list_versions(session, code)]


@router.get("/resources/{code}/revisions", response_model=list[RevisionOut])
def list_revisions(code: str, session: DbSession, _: SignedIn) -> list[RevisionOut]:
    """Who changed which metadata, when."""
    out = []
    for rev in service.list_revisions(session, code):
        user = session.get(User, rev.changed_by) if rev.changed_by else None
        out.append(RevisionOut(revision=rev.revision, changed_by=user.username if user else None,
                               changed_at=rev.changed_at, changes=rev.changes))
    return out


@router.get("/resources/{code}/preview", response_model=Preview)
def preview(code: str, session: WriteSession, who: Publisher,
            limit: Annotated[int, Query(ge=1, le=200)] = 20) -> Preview:
    """A few rows, for the provider department's publishers only (each preview is an entry
    of the access log: a write)."""
    columns, rows, total = service.preview(session, who, code, limit)
    return Preview(columns=columns, rows=rows, total_rows=total)


@router.get("/catalog.jsonld", response_class=JSONResponse)
def catalog_dcat(request: Request, session: WriteSession, who: SignedIn) -> JSONResponse:
    """The whole catalog as DCAT-AP JSON-LD, for CKAN-style harvesters (logged)."""
    service.record_export(session, who, "jsonld")
    base = str(request.base_url).rstrip("/")
    return JSONResponse(export.dcat_jsonld(session, base), media_type="application/ld+json")


@router.get("/catalog.csv")
def catalog_csv(session: DbSession, who: SignedIn) -> StreamingResponse:
    # Logged (and committed) before the rows stream: the read session serves the stream,
    # so the write lock is not held while a client downloads.
    with session_scope(write=True) as log_session:
        service.record_export(log_session, who, "csv")
    rows: Iterator[str] = export.catalog_csv(session)
    return StreamingResponse(rows, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="catalog.csv"'})


class Vocabulary(BaseModel):
    categories: dict[str, dict[str, str]]


@router.get("/vocabulary", response_model=Vocabulary)
def vocabulary(_: SignedIn) -> Vocabulary:
    """Code lists for forms: categories with their Chinese and English labels."""
    return Vocabulary(categories={c.value: {"name": c.name, "zh": zh, "en": en}
                                  for c, (zh, en) in CATEGORY_LABELS.items()})

