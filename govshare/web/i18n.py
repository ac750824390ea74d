"""Message catalogs (zh-CN, the default, and English) and the language of a request.

The language comes from ``?lang=`` (which also sets the ``lang`` cookie), else the cookie, else
zh-CN. Catalogs are flat JSON objects, one per language, with the same keys (a test checks);
values are ``str.format`` templates.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from typing import Any

from fastapi import Request

from kernel.problems import Phrase, Phrases

LANGS = ("zh-CN", "en")
DEFAULT = "zh-CN"
COOKIE = "lang"
_ALIASES = {"zh": "zh-CN", "zh-cn": "zh-CN", "zh-hans": "zh-CN", "en": "en", "en-us": "en",
            "en-gb": "en"}


def normalise(value: str | None) -> str | None:
    return _ALIASES.get((value or "").strip().lower())


def requested(request: Request) -> str | None:
    """The language asked for in the query string (to be remembered in the cookie)."""
    return normalise(request.query_params.get("lang"))


def language_of(request: Request) -> str:
    return requested(request) or normalise(request.cookies.get(COOKIE)) or DEFAULT


@lru_cache
def catalog(lang: str) -> dict[str, str]:
    name = "zh-CN.json" if lang == "zh-CN" else "en.json"
    data: dict[str, str] = json.loads((files("govshare.web") / "i18n" / name).read_text("utf-8"))
    return data


class Translator:
    """``t("key", n=3)`` in templates; a missing key shows itself, so it is easy to spot."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.messages = catalog(lang)

    def __call__(self, key: str, **values: Any) -> str:
        text = self.messages.get(key, key)
        return text.format(**values) if values else text

    def label(self, group: str, value: object) -> str:
        """The label of an enum value, e.g. ``label("sharing_type", "conditional")``."""
        raw = getattr(value, "value", value)
        return self.messages.get(f"{group}.{raw}", str(raw))

    def name(self, obj: Any) -> str:
        """A department's or resource's name in this language (English falls back to Chinese)."""
        if isinstance(obj, dict):
            zh, en = obj.get("name_zh") or obj.get("name", ""), obj.get("name_en", "")
        else:
            zh = getattr(obj, "name_zh", None) or getattr(obj, "name", "")
            en = getattr(obj, "name_en", "")
        return (en or zh) if self.lang == "en" else (zh or en)


@lru_cache
def _keys_by_english() -> dict[str, str]:
    """English text → key, so a problem raised without a key still finds its translation."""
    return {text: key for key, text in catalog("en").items()}


def localize_problem(lang: str, key: str | None, params: dict[str, Any],
                     english: str) -> str | None:
    """kernel.problems' localizer: the catalogue's text for ``key`` (or for the English text
    itself), formatted with ``params``; None when the catalogue has neither."""
    messages = catalog(lang)
    if key is None or key not in messages:
        key = _keys_by_english().get(english)
    if key is None or key not in messages:
        return None
    try:
        if not params:
            return messages[key]
        return messages[key].format(**{k: _param(lang, messages, v)
                                       for k, v in params.items()})
    except (KeyError, IndexError, ValueError):
        return None


def _param(lang: str, messages: dict[str, str], value: Any) -> Any:
    """A parameter in the catalogue's language: phrases by their own keys, the rest as is.
    In English a phrase is its own text (the catalogue's English entries for states and
    actions are UI labels, "Delivered", not the words of a sentence, "deliver")."""
    if lang == "en" and isinstance(value, Phrase | Phrases):
        return str(value)
    if isinstance(value, Phrase):
        text = messages.get(value.key)
        try:
            return text.format(**{k: _param(lang, messages, v)
                                  for k, v in value.params.items()}) \
                if text is not None else value.english
        except (KeyError, IndexError, ValueError):  # the fragment alone stays in English
            return value.english
    if isinstance(value, Phrases):
        joiner = messages.get(f"phrase.join.{value.joiner}", ", ")
        return joiner.join(str(_param(lang, messages, p)) for p in value.items)
    return value
