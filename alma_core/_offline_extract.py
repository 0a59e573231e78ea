"""The offline extractor `AutoLearner` uses when no chat model is given or configured.

It reads a conversation with a few plain rules, no model: the user's first request is the task; an
assistant sentence saying what it did ("I used ...", "I tried ...") is the strategy; the assistant's
words decide success or failure; a user sentence stating a preference ("I prefer ...", "always ...",
"never ...", "please use ...") is a preference. It finds less than a model would, never more: a
conversation with no stated strategy and no verdict yields nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["extract_offline"]

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_STRATEGY = re.compile(
    r"\bI(?:'ve| have)?\s+(?:used|tried|applied|went with|chose|switched to|relied on|added|wrote)\s+(.+?)"
    r"(?:,?\s+(?:which|that|and it|and that|but it|but that|because)\b|[.!?;]|$)",
    re.I,
)
_FAILED = re.compile(
    r"\b(fail(?:ed|s|ing|ure)?|didn'?t work|did not work|broke|error(?:ed|s)?|flaky|timed? out)\b", re.I
)
_WORKED = re.compile(
    r"\b(work(?:ed|s)?(?: well)?|succeed(?:ed|s)?|success(?:ful(?:ly)?)?|pass(?:ed|es)?|fixed)\b", re.I
)
_PREFERENCE = re.compile(
    r"^\s*(?:(?:from now on|going forward),?\s*)?(?:I (?:prefer|like|want|would like)\b|always\b|never\b|"
    r"please (?:always |never )?use\b|don'?t (?:ever )?use\b)",
    re.I,
)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


def extract_offline(turns: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """An `Extraction`-shaped dict from (role, content) turns."""
    turns = list(turns)
    user = [c for r, c in turns if r.lower() in ("user", "human")]
    said = " ".join(c for r, c in turns if r.lower() in ("assistant", "ai"))
    outcomes: list[dict[str, Any]] = []
    strategy = next((m.group(1).strip(" ,") for m in map(_STRATEGY.search, _sentences(said)) if m), "")
    failed, worked = bool(_FAILED.search(said)), bool(_WORKED.search(said))
    if user and strategy and failed != worked:
        task = _sentences(user[0])[0] if _sentences(user[0]) else user[0].strip()
        error = next((s for s in _sentences(said) if _FAILED.search(s)), None) if failed else None
        outcomes.append({"task": task, "success": worked, "strategy_used": strategy, "error_message": error})
    preferences = [
        {"preference": s, "category": "general"} for text in user for s in _sentences(text) if _PREFERENCE.search(s)
    ]
    return {"outcomes": outcomes, "preferences": preferences, "facts": []}
