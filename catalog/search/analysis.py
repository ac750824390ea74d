"""How text becomes index terms and a query becomes tokens (Chinese and English alike).

Chinese is written without spaces and a dictionary segmenter would miss any query cut
differently from the text, so CJK runs become overlapping character **bigrams**, as in
Elasticsearch's CJK analyzer ("人口基础" -> 人口 口基 基础), followed by the run's last
character alone. The last character makes a one-character query findable at the end of a word
(个人所得税) and, sitting between two runs, keeps a phrase query from matching across them.
Other text becomes case-folded words of letters and digits. The analysis runs in Python and
hands tantivy a space-separated string for its whitespace tokenizer: tantivy's own n-gram
tokenizer gives every gram position 0 (no phrase queries) and does not tell Han from Latin.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

MAX_TERM = 64  # characters; longer words are cut (nobody types them)
MAX_QUERY_TOKENS = 16
MIN_PREFIX = 3  # shorter Latin words match exactly: "in" as a prefix would hit half the index

# Scripts written without spaces (Han, kana, Hangul): indexed as character bigrams.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0003134f"
# A run of CJK characters, or a word of other letters and digits (the underscore splits too:
# data item names are snake_case).
_TOKEN_RE = re.compile(f"([{_CJK}]+)|([^\\W_{_CJK}]+)")
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# Dropped from English queries (not from the index), so "population of the city" still
# finds "City population". Chinese needs no list: bigrams of function words are rare.
STOPWORDS = frozenset(
    ["a", "an", "and", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to", "with"]
)
_is_normalized, _normalize, _add = unicodedata.is_normalized, unicodedata.normalize, str.__add__


def normalize(text: str) -> str:
    """Fold width and case: full-width "ＡＢＣ１" and "abc1" index alike."""
    if not _is_normalized("NFKC", text):  # the common case costs a scan, not a copy
        text = _normalize("NFKC", text)
    return text.casefold()


def analyze(text: str) -> list[str]:
    """The index terms of ``text``: CJK bigrams (and each run's last character), Latin words."""
    out: list[str] = []
    append, extend = out.append, out.extend
    for cjk, word in _TOKEN_RE.findall(normalize(text)):
        if word:
            append(word[:MAX_TERM])
        else:  # hot in a full reindex: map() over the run beats slicing
            extend(map(_add, cjk, cjk[1:]))
            append(cjk[-1])
    return out


# Texts met again are not analysed again: data item names, titles and descriptions and
# keywords repeat across a catalog (standard data elements: 姓名, 统一社会信用代码 ...), and a
# full reindex spends most of its time in the analysis.
TERMS_CACHE = 100_000  # texts, per process


@lru_cache(maxsize=TERMS_CACHE)
def text_terms(text: str) -> str:
    """One text's terms, space-separated."""
    return " ".join(analyze(text))


def terms_text(*texts: str | None) -> str:
    """Several texts as one string of terms for tantivy's whitespace tokenizer: the same as
    analysing them joined by newlines (a separator), so phrases never span two texts."""
    return " ".join([terms for terms in map(text_terms, filter(None, texts)) if terms])


def split_camel(name: str) -> str:
    """ "idCardNo" -> "idCardNo id Card No": column names are searchable by their parts."""
    parts = _CAMEL_RE.sub(" ", name)
    return name if parts == name else f"{name} {parts}"


@lru_cache(maxsize=TERMS_CACHE)
def name_terms(name: str) -> str:
    """A data item name's terms, its camelCase parts too."""
    return text_terms(split_camel(name)) if name else ""


@dataclass(frozen=True)
class QueryToken:
    """One query word and how the index answers it.

    ``term``: one index term (a two-character CJK word, a short Latin word). ``phrase``: a CJK
    word of 3+ characters: its bigrams at consecutive positions. ``prefix``: a Latin word of 3+
    letters (the whole word weighs more than longer words it begins), or one CJK character
    (any bigram it starts, or a run it ends).
    """

    text: str
    kind: Literal["term", "phrase", "prefix"]
    cjk: bool

    @property
    def bigrams(self) -> list[str]:
        return list(map(_add, self.text, self.text[1:]))

    def matches(self, terms: list[str], joined: str) -> bool:
        """Whether a text with these terms (and this space-joined form, needed for phrases)
        has the token: the index's test, in Python, for telling which fields of a hit
        matched."""
        if self.kind == "term":
            return self.text in terms
        if self.kind == "phrase":
            return f" {' '.join(self.bigrams)} " in f" {joined} "
        return any(t.startswith(self.text) for t in terms)


def parse_query(q: str | None) -> list[QueryToken]:
    """Analyse a query like the text it searches. Duplicate words count once."""
    tokens: dict[tuple[str, str], QueryToken] = {}
    for cjk, word in _TOKEN_RE.findall(normalize(q or "")):
        token = _cjk_token(cjk) if cjk else _word_token(word[:MAX_TERM])
        tokens.setdefault((token.kind, token.text), token)
    found = list(tokens.values())
    # Stopwords are dropped unless the query is nothing but stopwords.
    kept = [t for t in found if t.cjk or t.text not in STOPWORDS]
    return kept or found


def _cjk_token(run: str) -> QueryToken:
    if len(run) == 1:
        return QueryToken(run, "prefix", cjk=True)
    return QueryToken(run, "term" if len(run) == 2 else "phrase", cjk=True)


def _word_token(word: str) -> QueryToken:
    return QueryToken(word, "prefix" if len(word) >= MIN_PREFIX else "term", cjk=False)
