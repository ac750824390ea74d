"""The tantivy index of the catalog: its schema, its documents, and where it lives.

One index per machine, in ``<data dir>/search-index`` (``GOVSHARE_SEARCH_INDEX_DIR``). Every
process opens it for reading; one process per machine writes it (``catalog.search.feed``).
tantivy's segments are immutable: a reader keeps the set it opened until it reloads, and it
reloads on its own within about half a second of a commit by any process (tantivy polls
``meta.json``), so several web workers read while the writer commits.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tantivy

from catalog.models import (
    CATEGORY_LABELS,
    Category,
    ResourceStatus,
    SecurityLevel,
    SharingType,
    UpdateCycle,
)
from catalog.schemas import HIT_ITEM_TITLES, SUMMARY_CHARS, ResourceHit
from catalog.search.analysis import name_terms, terms_text, text_terms
from kernel import storage
from kernel.settings import get_settings

# Bumped whenever the schema or the analysis changes: an index of another version is
# rebuilt from the database on start (``feed.Writer``). The stored hits follow the API's
# ResourceHit: a change to that model changes the version by itself.
SCHEMA_VERSION = "3-" + hashlib.sha256(json.dumps(
    ResourceHit.model_json_schema(), sort_keys=True).encode()).hexdigest()[:12]
TOKENIZER = "terms"  # our analysis, already done: split on spaces


@dataclass(frozen=True)
class SearchField:
    """A text field of the index and its weight: name > keywords > data items > summary."""

    name: str
    boost: float


NAME = SearchField("name", 10.0)  # name and English name
KEYWORDS = SearchField("keywords", 6.0)
ITEMS = SearchField("items", 3.0)  # data item names and titles
SUMMARY = SearchField("summary", 1.5)  # summary and English summary
ITEM_DESCRIPTIONS = SearchField("item_descriptions", 1.0)
TEXT_FIELDS = (NAME, KEYWORDS, ITEMS, SUMMARY, ITEM_DESCRIPTIONS)

# Filter fields: small fixed numbers rather than enum positions, so that adding a member to
# an enum never silently renumbers an existing index.
SHARING_CODES = {SharingType.unconditional: 1, SharingType.conditional: 2,
                 SharingType.not_shareable: 3}
CYCLE_CODES = {UpdateCycle.realtime: 1, UpdateCycle.daily: 2, UpdateCycle.weekly: 3,
               UpdateCycle.monthly: 4, UpdateCycle.quarterly: 5, UpdateCycle.yearly: 6,
               UpdateCycle.irregular: 7}
LEVEL_CODES = {SecurityLevel.general: 1, SecurityLevel.important: 2, SecurityLevel.core: 3}


def category_code(category: Category) -> int:
    return int(category.value)  # the guideline's own numbers: 101, 201, ...


# Filter fields (u64, indexed for term filters, fast for facet counts).
DEPARTMENT, CATEGORY, SHARING, CYCLE, LEVEL = "department", "category", "sharing", "cycle", \
    "level"
FILTER_FIELDS = (DEPARTMENT, CATEGORY, SHARING, CYCLE, LEVEL)
QUALITY = "quality"  # f64, for the min_quality range filter and its facet
# Sort keys (u64 fast fields): the value in the high 32 bits, then ~id, so that ties come out
# in id order and pages stay stable; a missing value sorts last in either direction, so the
# nullable ones have a key per direction (both sorted descending).
PUBLISHED = "k_published"
UPDATED_DESC, UPDATED_ASC = "k_updated_desc", "k_updated_asc"
QUALITY_DESC, QUALITY_ASC = "k_quality_desc", "k_quality_asc"
NAME_SORT = "k_name"  # the name, then the zero-padded id: byte order = code point order
# The first 8 bytes of NAME_SORT's value as a big-endian u64: in the same order as the names
# (a prefix never sorts after its string), so a range on it is a window for browsing by name
# (catalog.search.window); tantivy has no range query on strings.
NAME_HEAD = "k_name_head"
# The resource code and each of its tails ("440300-ga-101-00007", "ga-101-00007", ...), case
# folded: a prefix of any of them finds the resource ("GA-101" finds the Public Security
# Bureau's resources of category 101).
CODE = "code"
# The hit as the API lists it (a ResourceHit without score and items, as JSON): a result page
# is served from the index alone. Stored, not indexed; tantivy compresses it in blocks.
CARD = "card"
_LOW = 0xFFFF_FFFF


def _schema() -> tantivy.Schema:
    b = tantivy.SchemaBuilder()
    b.add_unsigned_field("id", indexed=True, fast=True)
    for f in TEXT_FIELDS:
        b.add_text_field(f.name, tokenizer_name=TOKENIZER, index_option="position")
    for name in FILTER_FIELDS:
        b.add_unsigned_field(name, indexed=True, fast=True)
    b.add_float_field(QUALITY, indexed=True, fast=True)
    for name in (PUBLISHED, UPDATED_DESC, UPDATED_ASC, QUALITY_DESC, QUALITY_ASC, NAME_HEAD):
        b.add_unsigned_field(name, fast=True)
    b.add_text_field(NAME_SORT, fast=True, tokenizer_name="raw", index_option="basic")
    b.add_text_field(CODE, tokenizer_name=TOKENIZER, index_option="basic")
    b.add_bytes_field(CARD, stored=True, indexed=False, fast=False)
    return b.build()


SCHEMA = _schema()


def _key(value: int, resource_id: int) -> int:
    return (value << 32) | (_LOW - resource_id)


def name_key(name: str, resource_id: int) -> str:
    return f"{name}{chr(0)}{resource_id:010d}"


def name_head(key: str) -> int:
    return int.from_bytes(key.encode()[:8].ljust(8, b"\0"), "big")


def code_terms(code: str) -> str:
    parts = code.casefold().split("-")
    return " ".join("-".join(parts[i:]) for i in range(len(parts)))


def card(row: Any, items: list[Any], provider: dict[str, str]) -> str:
    """The hit's JSON as the API lists it (a ResourceHit without score and items)."""
    category = Category(row.category)
    zh, en = CATEGORY_LABELS[category]
    summary = row.summary or ""
    return ResourceHit.model_validate({
        "code": row.code, "name": row.name, "name_en": row.name_en, "provider": provider,
        "summary": summary if len(summary) <= SUMMARY_CHARS else summary[:SUMMARY_CHARS] + "…",
        "category": category, "category_label": zh, "category_label_en": en,
        "keywords": row.keywords or [], "sharing_type": row.sharing_type,
        "sharing_method": row.sharing_method, "update_cycle": row.update_cycle,
        "security_level": row.security_level, "published_at": row.published_at,
        "last_data_update": row.last_data_update, "current_version": row.current_version,
        "row_count": row.row_count, "quality_score": row.quality_score,
        "item_count": len(items),
        "item_titles": [i.title or i.name for i in items[:HIT_ITEM_TITLES]],
    }).model_dump_json(exclude={"score", "items"})


def document(row: Any, items: list[Any], provider: dict[str, str]) -> str:
    """The index document of an active resource (an ORM ``Resource`` or a Core row alike), as
    JSON for ``IndexWriter.add_json``: a string crosses process boundaries cheaply (the
    rebuild analyses in worker processes) and tantivy parses it without Python objects.
    ``provider``: its department as ProviderOut's fields."""
    rid = int(row.id)
    updated = row.last_data_update
    seconds = int(updated.timestamp()) if updated is not None else None
    score = row.quality_score
    hundredths = min(max(round(score * 100), 0), 1_000_000) if score is not None else None
    items_terms = " ".join([t for i in items for t in (
        name_terms(i.name), text_terms(i.title), text_terms(i.title_en)) if t])
    # Written as text, not by json.dumps (a tenth of a document's cost): terms are letters,
    # digits and CJK characters only, the card is base64; only the name and code need
    # escaping.
    return (
        f'{{"id":{rid},"{NAME.name}":"{terms_text(row.name, row.name_en)}",'
        f'"{KEYWORDS.name}":"{terms_text(*(row.keywords or []))}",'
        f'"{ITEMS.name}":"{items_terms}",'
        f'"{SUMMARY.name}":"{terms_text(row.summary, row.summary_en)}",'
        f'"{ITEM_DESCRIPTIONS.name}":"{terms_text(*(i.description for i in items))}",'
        f'"{DEPARTMENT}":{int(row.provider_id)},'
        f'"{CATEGORY}":{category_code(Category(row.category))},'
        f'"{SHARING}":{SHARING_CODES[SharingType(row.sharing_type)]},'
        f'"{CYCLE}":{CYCLE_CODES[UpdateCycle(row.update_cycle)]},'
        f'"{LEVEL}":{LEVEL_CODES[SecurityLevel(row.security_level)]},'
        f'"{PUBLISHED}":{_key(row.published_at.toordinal(), rid)},'
        f'"{UPDATED_DESC}":{_key(seconds + 1 if seconds is not None else 0, rid)},'
        f'"{UPDATED_ASC}":{_key(_LOW - seconds if seconds is not None else 0, rid)},'
        f'"{QUALITY_DESC}":{_key(hundredths + 1 if hundredths is not None else 0, rid)},'
        f'"{QUALITY_ASC}":{_key(1_000_001 - hundredths if hundredths is not None else 0, rid)},'
        f'"{NAME_SORT}":{_dumps(name_key(row.name, rid))},'
        f'"{NAME_HEAD}":{name_head(name_key(row.name, rid))},'
        f'"{CODE}":{_dumps(code_terms(row.code))},'
        # tantivy reads a bytes field of a JSON document as base64
        f'"{CARD}":"{base64.b64encode(card(row, items, provider).encode()).decode("ascii")}"'
        + (f',"{QUALITY}":{float(score)!r}}}' if score is not None else "}"))


_dumps = json.JSONEncoder(ensure_ascii=False).encode


def is_indexed(row: Any) -> bool:
    """Withdrawn resources are not searchable: they are left out of the index entirely."""
    return ResourceStatus(row.status) is ResourceStatus.active


# --- opening ----------------------------------------------------------------------------------


def index_dir() -> Path:
    settings = get_settings()
    return settings.search_index_dir or settings.data_dir / "search-index"


def _analyzer() -> tantivy.TextAnalyzer:
    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build()


def open_index(path: Path, *, create: bool) -> tantivy.Index | None:
    """The index at ``path``; with ``create``, a new empty one replaces a missing index or one
    of another schema version. None: there is no usable index (yet)."""
    version = path / "govshare-schema-version"
    usable = version.exists() and version.read_text() == SCHEMA_VERSION and \
        tantivy.Index.exists(str(path))
    if not usable:
        if not create:
            return None
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        tantivy.Index(SCHEMA, str(path), reuse=False)
        storage.publish_text(version, SCHEMA_VERSION)
    index = tantivy.Index(SCHEMA, str(path), reuse=True)
    index.register_tokenizer(TOKENIZER, _analyzer())
    return index


_readers: dict[Path, tantivy.Index] = {}
_readers_lock = threading.Lock()


def reader() -> tantivy.Index | None:
    """This process's reading handle on the index (None before the first build). tantivy
    reloads it by itself after each commit, from any process."""
    path = index_dir()
    with _readers_lock:
        index = _readers.get(path)
        if index is None:
            index = open_index(path, create=False)
            if index is None:
                return None
            index.config_reader(reload_policy="commit")
            _readers[path] = index
        return index


def reload_readers() -> None:
    """After a commit by this process: its readers see it now, not within half a second."""
    with _readers_lock:
        for index in _readers.values():
            index.reload()


def forget_readers() -> None:
    """Drop the cached handles (tests switch data directories; a rebuild replaced a dir)."""
    with _readers_lock:
        _readers.clear()
