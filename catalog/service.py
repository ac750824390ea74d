"""Catalog use cases: register resources with their data, new data versions, metadata edits,
reads. Department scoping is enforced here from the caller's ``Principal``."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from sqlmodel import Session, col, select

from catalog import codes, ingest, similar, warehouse
from catalog.models import (
    DataItem,
    DataVersion,
    ItemType,
    Resource,
    ResourceRevision,
    ResourceStatus,
    SecurityLevel,
    SharingType,
    VersionMode,
)
from catalog.schemas import DataItemIn, ResourceIn, ResourceUpdate
from kernel import crashpoints, storage
from kernel.auth import Principal
from kernel.db import on_rollback, session_scope, utcnow
from kernel.events import Event, publish
from kernel.identity import Department, Role, get_department
from kernel.problems import Conflict, Forbidden, Invalid, NotFound, Phrase
from kernel.settings import get_settings

# --- lookups ---------------------------------------------------------------------------------


def get_resource(session: Session, code: str) -> Resource:
    resource = session.exec(select(Resource).where(Resource.code == code)).first()
    if resource is None:
        raise NotFound(f"No resource with code '{code}'. Search the catalog to find its code.",
                       key="problem.catalog.no_resource", params={"code": code})
    return resource


def provider_of(session: Session, resource: Resource) -> Department:
    dept = session.get(Department, resource.provider_id)
    assert dept is not None  # foreign key
    return dept


# What a publisher does to a resource, named in refusals (in the caller's language).
ADD_DATA = Phrase("phrase.resource.add_data", "add data to")
EDIT = Phrase("phrase.resource.edit", "edit")
WITHDRAW = Phrase("phrase.resource.withdraw", "withdraw or reactivate")
SET_SOURCE = Phrase("phrase.resource.set_source", "set the data source of")
REMOVE_SOURCE = Phrase("phrase.resource.remove_source", "remove the data source of")
SEE_SOURCE = Phrase("phrase.resource.see_source", "see the data source of")


def require_provider(who: Principal, resource: Resource, action: Phrase) -> None:
    """Only the provider department's own publishers act on its resources' data."""
    if who.department_id != resource.provider_id or not who.has(Role.publisher):
        raise Forbidden(f"Only publishers of the provider department can {action} "
                        f"resource {resource.code}.",
                        key="problem.catalog.not_provider_publisher",
                        params={"action": action, "code": resource.code})


def segments_for(session: Session, resource: Resource, version: int | None = None) -> list[Path]:
    """The segment files whose union is the data as of ``version`` (default: current)."""
    version = version or resource.current_version
    target = session.exec(select(DataVersion).where(
        DataVersion.resource_id == resource.id, DataVersion.version == version)).first()
    if target is None:
        raise NotFound(f"Resource {resource.code} has no data version {version}.",
                       key="problem.catalog.no_version",
                       params={"code": resource.code, "version": version})
    chain = session.exec(select(DataVersion).where(
        DataVersion.resource_id == resource.id,
        col(DataVersion.version) >= target.base_version,
        col(DataVersion.version) <= version,
    ).order_by(col(DataVersion.version))).all()
    root = get_settings().warehouse_dir
    return [root / v.segment for v in chain]


# --- registration ----------------------------------------------------------------------------


def check_registration(session: Session, who: Principal, meta: ResourceIn) -> Department:
    """Everything about a registration that can be refused before reading the data."""
    provider = get_department(session, meta.provider) if meta.provider else \
        get_department(session, who.department_id)
    if provider.id != who.department_id:
        raise Forbidden(f"You can register resources only for your own department "
                        f"({who.department_code}), not {provider.code}.",
                        key="problem.catalog.register_own_department",
                        params={"department_code": who.department_code, "code": provider.code})
    _check_metadata(meta)
    if meta.code is not None:
        if not codes.is_valid(meta.code):
            raise Invalid(f"Resource code '{meta.code}' may contain only letters, digits and "
                          "hyphens (4–40 characters). Leave it empty to have one assigned.",
                          key="problem.catalog.code_form", params={"code": meta.code})
        if session.exec(select(Resource.id).where(Resource.code == meta.code)).first():
            raise Conflict(f"A resource with code '{meta.code}' already exists.",
                           key="problem.catalog.code_taken", params={"code": meta.code})
    return provider


def _check_metadata(meta: ResourceIn) -> None:
    items = {i.name: i for i in meta.items}
    if meta.date_item and items[meta.date_item].type not in (ItemType.date, ItemType.datetime):
        raise Invalid(f"date_item '{meta.date_item}' must be a date or datetime item.",
                      key="problem.catalog.date_item_type", params={"date_item": meta.date_item})
    for item in meta.items:
        if item.kind is not None and item.kind.value == "code" and not item.code_list:
            raise Invalid(f"Item '{item.name}' is of kind 'code' but has no code_list.",
                          key="problem.catalog.code_list_missing", params={"name": item.name})
    if meta.security_level is SecurityLevel.core and \
            meta.sharing_type is not SharingType.not_shareable:
        # Core data never leaves its department through govshare (Data Security Law grading).
        raise Invalid("Core data cannot be shared: register it with sharing_type not_shareable.")


def columns_of(items: Sequence[DataItemIn | DataItem]) -> list[ingest.Column]:
    return [ingest.Column(i.name, ItemType(i.type), i.title, i.kind, i.is_key, i.precision,
                          i.scale) for i in items]


def check_similar(session: Session, provider: Department, meta: ResourceIn, *,
                  confirm_duplicate: bool) -> list[similar.SimilarMatch]:
    """One source for each piece of data: a 409 when the department already has an active
    resource close to this one (``catalog.similar``), unless the publisher confirmed that it
    is a different resource; returns the matches so confirmed (recorded in the log)."""
    return similar.check(session, provider.id or 0, meta.name, meta.items,
                         confirmed=confirm_duplicate)


def register_resource(session: Session, who: Principal, meta: ResourceIn,
                      source: Path | BinaryIO, *, filename: str,
                      options: ingest.SourceOptions | None = None,
                      confirm_duplicate: bool = False) -> Resource:
    """Register a resource with its first data version, all or nothing.

    The cheap checks run first in a short read transaction of their own, and the data is
    loaded before ``session`` is first used, so a slow upload never holds the database's
    write lock (SQLite write sessions take it at BEGIN); a refused file leaves nothing behind.
    The duplicate check is among them: a publisher told of a similar resource has not waited
    for the upload to load.
    """
    with session_scope(write=False) as read:
        provider = check_registration(read, who, meta)
        similar_to = check_similar(read, provider, meta, confirm_duplicate=confirm_duplicate)
    loaded = _load(source, filename, columns_of(meta.items), options=options)
    return _register_loaded(session, who, meta, loaded, similar_to, confirm_duplicate)


def register_pulled_resource(session: Session, who: Principal, meta: ResourceIn,
                             segment: Path, result: ingest.Ingested, *, sha256: str,
                             nbytes: int, similar_to: Sequence[similar.SimilarMatch] = (),
                             confirm_duplicate: bool = False) -> Resource:
    """Register a resource whose first version was loaded from a database source
    (``catalog.sources``); the caller checked the registration (and ``check_similar``)
    before the pull."""
    staged = warehouse.StagedFile(segment, warehouse.Format.database, nbytes, sha256)
    return _register_loaded(session, who, meta, _Loaded(staged, segment, result), similar_to,
                            confirm_duplicate)


def _register_loaded(session: Session, who: Principal, meta: ResourceIn,
                     loaded: "_Loaded", similar_to: Sequence[similar.SimilarMatch],
                     confirm_duplicate: bool) -> Resource:
    try:
        provider = check_registration(session, who, meta)  # again, inside the transaction
        # Held to the commit, taken confirmed or not (a confirmed registration is still one
        # the next must see): the department's registrations one after another, the second
        # seeing the first's resource (on SQLite the write lock does this already).
        similar.lock_department(session, provider.id or 0)
        if not confirm_duplicate:
            # Again too: a similar resource may have been registered during the load (the
            # same form sent twice), and is visible here with its feed row
            # (catalog.search.nearby).
            check_similar(session, provider, meta, confirm_duplicate=False)
        resource = _insert_resource(session, who, provider, meta)
        version = _insert_version(session, who, resource, loaded, VersionMode.replace)
    except BaseException:
        loaded.discard()
        raise
    subjects, payload = similar.record(similar_to)
    publish(session, Event("resource.registered", who.actor,
                           {"resource": resource.code, "version": str(version.version),
                            **subjects},
                           {"metadata": meta.model_dump(mode="json"),
                            "data_sha256": loaded.staged.sha256, **payload}))
    return resource


def register_metadata(session: Session, who: Principal, meta: ResourceIn, *,
                      similar_to: Sequence[similar.SimilarMatch] = ()) -> Resource:
    """Register a resource's metadata only (a catalog register, ``catalog.register_sheet``):
    its data follows as data versions. No quality run is queued until data arrives. The
    caller ran ``check_similar`` in this transaction after ``similar.lock_department``;
    ``similar_to`` are the matches the publisher confirmed."""
    provider = check_registration(session, who, meta)
    resource = _insert_resource(session, who, provider, meta)
    subjects, payload = similar.record(similar_to)
    publish(session, Event("resource.catalogued", who.actor,
                           {"resource": resource.code, **subjects},
                           {"metadata": meta.model_dump(mode="json"), **payload}))
    return resource


class _Loaded:
    """A segment loaded into the incoming area, waiting for its metadata to commit."""

    def __init__(self, staged: warehouse.StagedFile, path: Path,
                 result: ingest.Ingested) -> None:
        self.staged, self.path = staged, path
        self.rows, self.normalised = result.rows, result.normalised

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def _load(source: Path | BinaryIO, filename: str, columns: list[ingest.Column], *,
          existing: Sequence[Path] = (), options: ingest.SourceOptions | None = None) -> _Loaded:
    settings = get_settings()
    root = settings.warehouse_dir
    if isinstance(source, Path):
        with source.open("rb") as fh:
            staged = warehouse.stage(fh, filename, root, max_bytes=settings.max_upload_bytes)
    else:
        staged = warehouse.stage(source, filename, root, max_bytes=settings.max_upload_bytes)
    try:
        crashpoints.reach("catalog.staged")  # the upload is in; the DuckDB load not begun
        incoming = warehouse.staging_dir(root) / f"{staged.path.stem.split('.')[0]}.duckdb"
        result = ingest.ingest(staged, columns, incoming, existing=existing, options=options)
    finally:
        staged.path.unlink(missing_ok=True)
    return _Loaded(staged, incoming, result)


def _insert_resource(session: Session, who: Principal, provider: Department,
                     meta: ResourceIn) -> Resource:
    code = meta.code or codes.next_code(session, get_settings().region_code, provider.code,
                                        meta.category)
    fields = meta.model_dump(exclude={"items", "code", "provider"})
    resource = Resource(code=code, provider_id=provider.id or 0, **fields,
                        items=[DataItem(position=i, **item.model_dump())
                               for i, item in enumerate(meta.items)])
    session.add(resource)
    session.flush()
    return resource


def _insert_version(session: Session, who: Principal, resource: Resource, loaded: _Loaded,
                    mode: VersionMode) -> DataVersion:
    number = resource.current_version + 1
    root = get_settings().warehouse_dir
    segment = warehouse.new_segment_path(root, resource.code, number)
    segment.parent.mkdir(parents=True, exist_ok=True)
    storage.publish(loaded.path, segment, synced=True)  # ingest fsynced the file
    loaded.path = segment
    on_rollback(session, loaded.discard)
    crashpoints.reach("catalog.renamed")  # the segment is in place; nothing committed yet
    previous = resource.row_count if mode is VersionMode.append else 0
    base = number if mode is VersionMode.replace or number == 1 else _base_of(session, resource)
    version = DataVersion(resource_id=resource.id or 0, version=number, mode=mode,
                          base_version=base, segment=str(segment.relative_to(root)),
                          row_count=loaded.rows, total_rows=previous + loaded.rows,
                          source_format=loaded.staged.format.value,
                          source_bytes=loaded.staged.bytes, source_sha256=loaded.staged.sha256,
                          normalised=loaded.normalised, created_by=who.user_id)
    now = utcnow()
    resource.current_version, resource.row_count = number, version.total_rows
    resource.last_data_update = resource.updated_at = now
    session.add_all([version, resource])
    session.flush()
    return version


def _base_of(session: Session, resource: Resource) -> int:
    current = session.exec(select(DataVersion).where(
        DataVersion.resource_id == resource.id,
        DataVersion.version == resource.current_version)).one()
    return current.base_version


# --- new data versions -----------------------------------------------------------------------


def add_version(session: Session, who: Principal, code: str, source: Path | BinaryIO, *,
                filename: str, mode: VersionMode,
                options: ingest.SourceOptions | None = None) -> DataVersion:
    """Replace or append the resource's data; the columns must match the declared items.

    As in ``register_resource``, the checks run first in a read transaction and again inside
    ``session`` once the data is loaded, so the write lock is never held during the load.
    """
    with session_scope(write=False) as read:
        resource = _accepting_data(read, who, code)
        columns = columns_of(resource.items)
        # An append keeps the key unique across the data it adds to.
        existing = segments_for(read, resource) if mode is VersionMode.append and \
            resource.current_version and any(c.is_key for c in columns) else []
        seen_version = resource.current_version
    loaded = _load(source, filename, columns, existing=existing, options=options)
    return _store_version(session, who, code, loaded, mode, seen_version)


def add_pulled_version(session: Session, who: Principal, code: str, segment: Path,
                       result: ingest.Ingested, *, sha256: str, nbytes: int) -> DataVersion:
    """Store a segment already loaded from a database source (``catalog.sources``) as the
    resource's new data (a replace), with the same checks and event as an upload."""
    staged = warehouse.StagedFile(segment, warehouse.Format.database, nbytes, sha256)
    return _store_version(session, who, code, _Loaded(staged, segment, result),
                          VersionMode.replace, None)


def _store_version(session: Session, who: Principal, code: str, loaded: "_Loaded",
                   mode: VersionMode, seen_version: int | None) -> DataVersion:
    try:
        resource = _accepting_data(session, who, code)
        if mode is VersionMode.append and resource.current_version != seen_version:
            # Another version landed during the load: the key check saw older data.
            raise Conflict(f"Resource {code} got a new data version while this file was "
                           "loading. Send the file again.",
                           key="problem.catalog.version_raced", params={"code": code})
        version = _insert_version(session, who, resource, loaded, mode)
    except BaseException:
        loaded.discard()
        raise
    publish(session, Event("resource.version_added", who.actor,
                           {"resource": code, "version": str(version.version)},
                           {"mode": mode.value, "rows": loaded.rows,
                            "data_sha256": loaded.staged.sha256}))
    return version


def _accepting_data(session: Session, who: Principal, code: str) -> Resource:
    resource = get_resource(session, code)
    require_provider(who, resource, ADD_DATA)
    if resource.status is not ResourceStatus.active:
        raise Conflict(f"Resource {code} is withdrawn; reactivate it before adding data.",
                       key="problem.catalog.withdrawn", params={"code": code})
    return resource


def current_version(session: Session, resource: Resource) -> DataVersion | None:
    return session.exec(select(DataVersion).where(
        DataVersion.resource_id == resource.id,
        DataVersion.version == resource.current_version)).first()


def list_versions(session: Session, code: str) -> list[DataVersion]:
    resource = get_resource(session, code)
    return list(session.exec(select(DataVersion).where(DataVersion.resource_id == resource.id)
                             .order_by(col(DataVersion.version).desc())))


# --- metadata edits --------------------------------------------------------------------------


def update_resource(session: Session, who: Principal, code: str, edit: ResourceUpdate) -> Resource:
    resource = get_resource(session, code)
    require_provider(who, resource, EDIT)
    changes = _apply(resource, edit)
    if not changes:
        return resource
    if resource.sharing_type is SharingType.conditional and not resource.sharing_condition.strip():
        raise Invalid("A conditional resource must state its sharing condition.")
    if resource.security_level is SecurityLevel.core and \
            resource.sharing_type is not SharingType.not_shareable:
        raise Invalid("Core data cannot be shared: set sharing_type to not_shareable.")
    resource.revision += 1
    resource.updated_at = utcnow()
    session.add(ResourceRevision(resource_id=resource.id or 0, revision=resource.revision,
                                 changed_by=who.user_id, changes=changes))
    session.add(resource)
    session.flush()
    publish(session, Event("resource.updated", who.actor,
                           {"resource": code, "revision": str(resource.revision)},
                           {"changes": changes}))
    return resource


def _apply(resource: Resource, edit: ResourceUpdate) -> dict[str, Any]:
    """Apply the edit and return {field: [old, new]} for what really changed."""
    changes: dict[str, Any] = {}
    for field, new in edit.model_dump(exclude_unset=True, exclude={"item_descriptions"},
                                      mode="json").items():
        old = getattr(resource, field)
        old_json = old.value if hasattr(old, "value") else old
        if new is not None and new != old_json:
            changes[field] = [old_json, new]
            setattr(resource, field, type(old)(new) if hasattr(old, "value") else new)
    for name, text in (edit.item_descriptions or {}).items():
        item = next((i for i in resource.items if i.name == name), None)
        if item is None:
            raise Invalid(f"Resource {resource.code} has no data item '{name}'.",
                          key="problem.catalog.no_item",
                          params={"code": resource.code, "name": name})
        if item.description != text:
            changes[f"items.{name}.description"] = [item.description, text]
            item.description = text
    return changes


def set_status(session: Session, who: Principal, code: str, status: ResourceStatus, *,
               confirm_duplicate: bool = False) -> Resource:
    """Withdraw a resource, or reactivate a withdrawn one. Reactivating is checked as a
    registration is (one source for each piece of data): while it was withdrawn, its
    department may have registered a resource close to it, and two similar active resources
    would follow; refused (409) unless ``confirm_duplicate``, recorded in the log if so."""
    resource = get_resource(session, code)
    require_provider(who, resource, WITHDRAW)
    if resource.status is status:
        return resource
    similar_to: list[similar.SimilarMatch] = []
    if status is ResourceStatus.active:
        # The lock before the check and before the log append, as for a registration.
        similar.lock_department(session, resource.provider_id)
        similar_to = similar.check(session, resource.provider_id, resource.name,
                                   resource.items, confirmed=confirm_duplicate,
                                   reactivating=code)
    old = resource.status
    resource.status = status
    resource.revision += 1
    session.add(ResourceRevision(resource_id=resource.id or 0, revision=resource.revision,
                                 changed_by=who.user_id,
                                 changes={"status": [old.value, status.value]}))
    session.flush()
    subjects, payload = similar.record(similar_to)
    publish(session, Event(f"resource.{status.value}", who.actor,
                           {"resource": code, **subjects}, payload))
    return resource


def list_revisions(session: Session, code: str) -> list[ResourceRevision]:
    resource = get_resource(session, code)
    return list(session.exec(select(ResourceRevision)
                             .where(ResourceRevision.resource_id == resource.id)
                             .order_by(col(ResourceRevision.revision).desc())))


# --- data preview ----------------------------------------------------------------------------


def preview(session: Session, who: Principal, code: str, limit: int) -> tuple[list[str],
                                                                              list[list[Any]], int]:
    """A few rows, for the provider department only: raw data never leaves it otherwise."""
    resource = get_resource(session, code)
    if who.department_id != resource.provider_id:
        raise Forbidden(f"Only the provider department sees rows of {code}. Other departments "
                        "apply for access through an application.",
                        key="problem.catalog.rows_provider_only", params={"code": code})
    if resource.current_version == 0:
        raise NotFound(f"Resource {code} has no data yet.",
                       key="problem.catalog.no_data_yet", params={"code": code})
    with warehouse.open_data(segments_for(session, resource)) as con:
        cur = con.execute(f"SELECT * FROM {warehouse.TABLE} LIMIT ?", [limit])
        names = [d[0] for d in cur.description or []]
        rows = [[_jsonable(v) for v in row] for row in cur.fetchall()]
    # Raw rows, even for the provider's own publishers: every read is on record.
    publish(session, Event("resource.previewed", who.actor, {"resource": code},
                           {"rows": len(rows), "limit": limit,
                            "version": resource.current_version}))
    return names, rows, resource.row_count


def record_export(session: Session, who: Principal, fmt: str) -> None:
    """Catalog exports are reads on record too (an entry of the access log)."""
    publish(session, Event("catalog.exported", who.actor, {"format": fmt}, {"format": fmt}))


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value

