"""Word helpers shared by strategy matching, category inference and the mock embedder."""

from __future__ import annotations

import re

__all__ = ["WORD", "stem"]

WORD = re.compile(r"[a-z0-9]+")  # the words of lower-cased text


def stem(word: str, suffixes: tuple[str, ...]) -> str:
    """`word` without the first of `suffixes` it ends with, when at least 3 letters remain."""
    for suffix in suffixes:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word
