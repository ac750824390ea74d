"""What counts as an English sentence in a zh-CN text (shared by the zh-CN browser run and
the API's problem details): four or more English words in a row — a sentence, or most of
one, not a code, a field name or a product name."""

from __future__ import annotations

import re

ENGLISH = re.compile(r"\b[A-Za-z][a-z']+(?:[ ,;:]+[a-z][a-z']*){3,}")


def english_sentences(text: str) -> list[str]:
    return ENGLISH.findall(text)
