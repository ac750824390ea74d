"""One source for each piece of data (一数一源): is a draft resource close to one already in the
catalog?

The regulation forbids collecting the same data twice. Before a resource is registered, its
name and data items are compared with the active resources of the catalog:

* **name similarity**: the Dice coefficient of the two names' character bigrams
  (2·|shared| / (|a| + |b|), as multisets), after folding width and case, dropping spaces
  and punctuation, and taking off the generic words names end with (``GENERIC_ENDINGS``:
  信息, 数据, 表, 清单, …). Bigrams suit Chinese, where most words are two characters and
  nothing separates them: 人口基础信息 and 人口基础信息表 are both 人口基础 (1.0); 人口基础信息
  and 人口基本信息 share 人口, 口基 of 3 bigrams each (0.67); 人口基础信息 and 法人基础信息
  share only 基础 (0.33: another subject), a pair a character edit distance would call as
  close as the second. 失业登记信息 and 企业登记信息 still share 业登 and 登记 (0.67): the
  name alone does not make them close.
* **item overlap**: the Jaccard index of the two sets of data items (shared / (|a| + |b| -
  shared)), two items being the same when their field names or their titles (数据项名称) are
  equal once normalised as file headers are (``catalog.headers.header_key``); a field name
  may also equal the other's title (a Chinese field name 姓名 and a title 姓名).
* **score** = 1 - (1 - name) · (1 - items): either signal alone can make two resources close
  (the same name with other items; the same items under another name), and two middling
  signals reinforce each other (names 0.6 and items 0.5 give 0.8).

A score of at least ``BLOCK_AT`` (0.8) against an active resource of the **same** department
refuses the registration (409 ``similar-resource-exists``) unless the publisher confirms that
it is a different resource; the confirmation is recorded in the registration's log entry.
Resources of **other** departments scoring at least ``SHOW_AT`` (0.6) are shown, never block:
they may be the authoritative source to apply for instead. Only metadata is shown (code,
name, department, item titles), which every signed-in user may already find by searching.
Withdrawn resources do not count. Candidates come from the search index
(``catalog.search.nearby``): the catalog is never read whole per registration.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select as sa_select
from sqlalchemy import text as sa_text
from sqlmodel import Session, col, select

from catalog import messages
from catalog.headers import header_key
from catalog.models import DataItem, Resource, ResourceStatus
from catalog.search import nearby
from kernel.identity import Department
from kernel.problems import Conflict

BLOCK_AT = 0.8  # same department: refused unless confirmed
SHOW_AT = 0.6  # other departments: shown as possible sources
SHOWN = 10  # matches listed per side
RECORDED = 5  # confirmed matches named in the log entry's subjects (200 characters)

_RESOURCE = Resource.__table__  # type: ignore[attr-defined]
_NOT_WORD = re.compile(r"[\W_]+")
# Words that end most resource names and say nothing about the subject: without them, two
# short names with the same ending (失业登记信息, 企业登记信息) would share most bigrams.
GENERIC_ENDINGS = ("信息", "数据", "资料", "资源", "记录", "表", "清单", "名册", "名录", "明细",
                   "目录", "台账", "库")


# --- the measure ------------------------------------------------------------------------------


def core(name: str) -> str:
    """A name as compared: width and case folded, spaces and punctuation dropped, and the
    generic words it ends with (信息, 表, 清单, …) taken off while two characters remain."""
    text = _NOT_WORD.sub("", unicodedata.normalize("NFKC", name).casefold())
    stripped = True
    while stripped:
        stripped = False
        for word in GENERIC_ENDINGS:
            if text.endswith(word) and len(text) - len(word) >= 2:
                text, stripped = text[:-len(word)], True
    return text


def bigrams(name: str) -> Counter[str]:
    """The character bigrams of a name's ``core`` (a one-character name is its own bigram)."""
    text = core(name)
    if len(text) < 2:
        return Counter([text] if text else [])
    return Counter(map(str.__add__, text, text[1:]))


def name_similarity(a: Counter[str], b: Counter[str]) -> float:
    """Dice coefficient of two bigram multisets."""
    total = sum(a.values()) + sum(b.values())
    return 2 * sum((a & b).values()) / total if total else 0.0


class ItemMatch(BaseModel):
    item: str = Field(description="The draft's item (title, else field name)")
    existing: str = Field(description="The existing resource's item it matches")
    by: str = Field(description="name or title: what was equal")


@lru_cache(maxsize=65_536)
def _key(text: str) -> str:
    # Cached: a catalog repeats a few thousand item titles (姓名, 公民身份号码) everywhere.
    return header_key(text)


def _label(name: str, title: str) -> str:
    return title or name


def pairs(draft: Sequence[tuple[str, str]],
          existing: Sequence[tuple[str, str]]) -> list[tuple[int, int]]:
    """(draft index, existing index) of the items that are the same item: equal field names,
    else equal titles (or a name equal to the other's title). Each item is used once. Plain
    tuples: scored for every candidate, kept for a few."""
    by_key: dict[str, list[int]] = {}
    for i, (name, title) in enumerate(existing):
        for key in {_key(name), _key(title)}:
            if key:
                by_key.setdefault(key, []).append(i)
    used: set[int] = set()
    out = []
    for d, (name, title) in enumerate(draft):
        found = next((i for key in (_key(name), _key(title)) if key
                      for i in by_key.get(key, ()) if i not in used), None)
        if found is not None:
            used.add(found)
            out.append((d, found))
    return out


def match_items(draft: Sequence[tuple[str, str]],
                existing: Sequence[tuple[str, str]]) -> list[ItemMatch]:
    """The items a draft and an existing resource have in common, for showing (``pairs``)."""
    out = []
    for d, e in pairs(draft, existing):
        (name, title), (ename, etitle) = draft[d], existing[e]
        by = "name" if _key(name) and _key(name) == _key(ename) else "title"
        out.append(ItemMatch(item=_label(name, title), existing=_label(ename, etitle), by=by))
    return out


def item_overlap(shared: int, a: int, b: int) -> float:
    """Jaccard index of two item sets with ``shared`` items in common."""
    union = a + b - shared
    return shared / union if union else 0.0


def combined(name: float, items: float) -> float:
    return 1 - (1 - name) * (1 - items)


@dataclass(frozen=True)
class Scored:
    score: float
    name_similarity: float
    item_overlap: float
    shared: int  # items in common


def score(a_name: Counter[str], a_items: Sequence[tuple[str, str]], b_name: Counter[str],
          b_items: Sequence[tuple[str, str]]) -> Scored:
    """How close resource a is to resource b, from their names' ``bigrams`` and their
    (field name, title) items: the one measure of the catalog check and of a register's
    rows compared with each other."""
    shared = len(pairs(a_items, b_items))
    n = name_similarity(a_name, b_name)
    i = item_overlap(shared, len(a_items), len(b_items))
    return Scored(combined(n, i), n, i, shared)


# --- the check --------------------------------------------------------------------------------


class DraftItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(default="", max_length=64)
    title: str = Field(default="", max_length=200)


class SimilarIn(BaseModel):
    """A draft's name and data items (a whole ResourceIn draft may be sent: other fields are
    ignored)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "name": "人口基础信息表", "items": [{"name": "id_number", "title": "公民身份号码"},
                                             {"title": "姓名"}]}]})
    name: str = Field(default="", max_length=200)
    items: list[DraftItem] = Field(default_factory=list, max_length=500)
    provider: str | None = Field(default=None, description="Provider department code; "
                                 "defaults to, and must be, the caller's own department")


class ProviderRef(BaseModel):
    code: str
    name_zh: str
    name_en: str


class SimilarMatch(BaseModel):
    code: str
    name: str
    name_en: str
    provider: ProviderRef
    score: float = Field(description="1 - (1 - name_similarity) · (1 - item_overlap)")
    name_similarity: float = Field(description="Dice coefficient of the names' bigrams")
    item_overlap: float = Field(description="Jaccard index of the data items")
    items: int = Field(description="How many data items the existing resource has")
    matched_items: list[ItemMatch]


class SimilarOut(BaseModel):
    same_department: list[SimilarMatch] = Field(description=(
        f"Active resources of the provider department scoring at least {BLOCK_AT}: "
        "registering refuses (409) unless confirmed (confirm_duplicate)"))
    other_departments: list[SimilarMatch] = Field(description=(
        f"Active resources of other departments scoring at least {SHOW_AT}: possible "
        "sources to apply for; they never block"))
    block_at: float = BLOCK_AT
    show_at: float = SHOW_AT


def match(scored: Scored, code: str, name: str, name_en: str, provider: Department,
          draft_items: Sequence[tuple[str, str]],
          existing: Sequence[tuple[str, str]]) -> SimilarMatch:
    """A draft's match with resource ``code`` (its ``name``, items ``existing``), as shown."""
    return SimilarMatch(
        code=code, name=name, name_en=name_en,
        provider=ProviderRef(code=provider.code, name_zh=provider.name_zh,
                             name_en=provider.name_en),
        score=round(scored.score, 3), name_similarity=round(scored.name_similarity, 3),
        item_overlap=round(scored.item_overlap, 3), items=len(existing),
        matched_items=match_items(draft_items, existing))


def find(session: Session, department_id: int, name: str,
         items: Sequence[tuple[str, str]]) -> SimilarOut:
    """The resources close to a draft named ``name`` with these (field name, title) items."""
    draft_items = [(n, t) for n, t in items if n or t]
    same_ids, other_ids = nearby.candidates(session, name, draft_items, department_id)
    ids = same_ids | other_ids
    if not ids:
        return SimilarOut(same_department=[], other_departments=[])
    # Plain rows, not ORM objects: a hundred candidates with their items cost a few ms so.
    res, table = _RESOURCE, DataItem.__table__  # type: ignore[attr-defined]
    resources = session.execute(
        sa_select(res.c.id, res.c.code, res.c.name, res.c.name_en, res.c.provider_id)
        .where(res.c.id.in_(ids), res.c.status == ResourceStatus.active)).all()
    item_rows: dict[int, list[tuple[str, str]]] = {}
    for row in session.execute(sa_select(table.c.resource_id, table.c.name, table.c.title)
                               .where(table.c.resource_id.in_([r.id for r in resources]))
                               .order_by(table.c.resource_id, table.c.position)):
        item_rows.setdefault(row.resource_id, []).append((row.name, row.title))
    departments = {d.id: d for d in session.exec(select(Department).where(
        col(Department.id).in_({r.provider_id for r in resources})))}
    mine = bigrams(name)
    same: list[SimilarMatch] = []
    others: list[SimilarMatch] = []
    for resource in resources:
        existing = item_rows.get(resource.id, [])
        scored = score(mine, draft_items, bigrams(resource.name), existing)
        is_same = resource.provider_id == department_id
        if scored.score < (BLOCK_AT if is_same else SHOW_AT):
            continue
        (same if is_same else others).append(match(
            scored, resource.code, resource.name, resource.name_en,
            departments[resource.provider_id], draft_items, existing))
    return SimilarOut(same_department=sorted(same, key=_ranked)[:SHOWN],
                      other_departments=sorted(others, key=_ranked)[:SHOWN])


def _ranked(match: SimilarMatch) -> tuple[float, str]:
    return -match.score, match.code


def item_pairs(items: Iterable[Any]) -> list[tuple[str, str]]:
    """The (field name, title) of objects with ``name`` and ``title`` (DataItemIn, DraftItem):
    the items as the measures read them."""
    return [(i.name or "", i.title or "") for i in items]


def find_for(session: Session, department_id: int, name: str,
             items: Iterable[Any]) -> SimilarOut:
    """``find`` for objects with ``name`` and ``title`` (DataItemIn, DraftItem)."""
    return find(session, department_id, name, item_pairs(items))


class SimilarResourceExists(Conflict):
    slug, title = "similar-resource-exists", "A similar resource exists"


def _params(match: SimilarMatch, total: int) -> dict[str, Any]:
    return {"code": match.code, "name": match.name,
            "name_pct": round(match.name_similarity * 100),
            "shared": len(match.matched_items), "total": total}


def refusal(found: SimilarOut, total: int, key: str = "similar.exists",
            **extra: Any) -> SimilarResourceExists:
    """The 409 for a draft with same-department matches: names the closest, lists all
    (message ``key``, with ``extra`` parameters beside the closest match's)."""
    first = found.same_department[0]
    params = {**_params(first, total), **extra}
    return SimilarResourceExists(
        messages.text(key, **params), key=key, params=params,
        similar=found.model_dump(mode="json"))


def row_problem(found: SimilarOut, total: int) -> tuple[str, str, dict[str, Any]]:
    """(English text, key, params) of a catalog register row with same-department matches."""
    params = _params(found.same_department[0], total)
    return messages.text("similar.exists_row", **params), "similar.exists_row", params


def check(session: Session, department_id: int, name: str, items: Iterable[Any], *,
          confirmed: bool, reactivating: str | None = None) -> list[SimilarMatch]:
    """Refuse a registration close to an active resource of the same department, unless
    ``confirmed``; returns the same-department matches (to record with the confirmation).
    ``reactivating``: the code of a withdrawn resource being made active again, checked as
    a registration is (withdrawn, it was not in the catalog the later ones were checked
    against); the refusal says so."""
    listed = list(items)
    found = find_for(session, department_id, name, listed)
    if found.same_department and not confirmed:
        if reactivating is not None:
            raise refusal(found, len(listed), "similar.exists_reactivate",
                          resource=reactivating)
        raise refusal(found, len(listed))
    return found.same_department


def record(matches: Sequence[SimilarMatch]) -> tuple[dict[str, str], dict[str, Any]]:
    """The log entry's part of a confirmed registration: a subject naming the resources the
    publisher confirmed it differs from (visible in the entry itself), and the payload's
    scores (digested into the entry)."""
    if not matches:
        return {}, {}
    codes = ""
    for m in matches[:RECORDED]:
        joined = f"{codes},{m.code}" if codes else m.code
        if len(joined) > 200:
            break
        codes = joined
    return ({"similar_confirmed": codes},
            {"similar_confirmed": [{"resource": m.code, "score": m.score} for m in matches]})


# --- a catalog register's rows compared with each other ---------------------------------------


@dataclass(frozen=True)
class Draft:
    """A resource of a catalog register: a new one, or an update of an existing one."""

    department_id: int
    name: str
    items: list[tuple[str, str]]
    new: bool


def within(drafts: Sequence[Draft]) -> dict[int, list[tuple[int, Scored]]]:
    """For each new draft (by index), the other drafts of the same department it is close to
    (``BLOCK_AT``, as against the catalog), closest first: the earlier new ones, and the
    updates wherever they are (an update is compared as the register will leave it). A pair
    of new drafts is named once, at the later; two updates are not compared (both are in the
    catalog already, registered or confirmed so). Every pair is looked at (a register has
    tens to hundreds of resources); the items are matched only for a pair that could reach
    the threshold with as many items in common as the two share item keys (each pair of
    ``pairs`` shares a key, and uses each of the two items once: the multisets' intersection
    bounds them)."""
    names = [bigrams(d.name) for d in drafts]
    keys = [Counter(k for item in d.items for k in {_key(text) for text in item} - {""})
            for d in drafts]
    out: dict[int, list[tuple[int, Scored]]] = {}
    for j, draft in enumerate(drafts):
        if not draft.new:
            continue
        close = []
        for k, other in enumerate(drafts):
            if k == j or other.department_id != draft.department_id or (other.new and k > j):
                continue
            a, b = len(draft.items), len(other.items)
            at_most = item_overlap(min(sum((keys[j] & keys[k]).values()), a, b), a, b)
            if combined(name_similarity(names[j], names[k]), at_most) < BLOCK_AT:
                continue
            scored = score(names[j], draft.items, names[k], other.items)
            if scored.score >= BLOCK_AT:
                close.append((k, scored))
        if close:
            out[j] = sorted(close, key=lambda c: (-c[1].score, c[0]))
    return out


# --- two registrations at the same moment -----------------------------------------------------

# The first key of PostgreSQL's two-key advisory locks taken here (the second is the
# department's id): a constant of our own, so no other lock of the installation collides.
LOCK_NAMESPACE = 0x1D5A  # 一数一源


def lock_department(session: Session, department_id: int) -> None:
    """Hold the department's registration lock until the transaction ends: called by every
    transaction that registers resources, just before its check in the transaction, so that
    of two registrations close to each other the second waits for the first to commit and
    then sees it (PostgreSQL's READ COMMITTED reads each statement from a new snapshot).
    Otherwise two that overlap exactly both pass, each checking before the other commits.
    Take it before the transaction appends to the log (``translog`` locks its state row per
    append): always in this order, two registrations cannot wait for each other.
    A no-op on SQLite, where a writing transaction holds the database's write lock from its
    BEGIN IMMEDIATE (``kernel.db``): registrations are serialised there already."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa_text("SELECT pg_advisory_xact_lock(:ns, :dept)"),
                        {"ns": LOCK_NAMESPACE, "dept": department_id})
