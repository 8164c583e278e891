"""Caption lint: artefacts an LLM leaves in captions that a text-to-music model should never see.

Each rule looks at one caption and names what it found; ``caption evaluate`` reports the counts
with examples, ``caption infer`` can flag rows (``infer.lint=flag``) or draw a caption again with
the next seed when it fails (``infer.lint=retry``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_CHAT = re.compile(r"^\s*(here is|here's|sure[,!.]|certainly|of course|as an ai|i hope|okay[,!.]|description\s*:|"
                   r"caption\s*:|the description\s*:)|\b(let me know|i can help|feel free to)\b", re.I)
_BULLET = re.compile(r"(^|\n)\s*([-*•]|\d+[.)])\s+\S")
_NUMBER = re.compile(r"\b\d+(\.\d+)?\s*%|\b0\.\d+\b|\bprobabilit(y|ies)\b|\bconfidence\b|\bscore of\b", re.I)
_TAGS = re.compile(r"[\[\]{}]|\btags?\s*:|\baspect_list\b|'[^']+',\s*'", re.I)
_ENDING = re.compile(r"[.!?\"')\]]\s*$")
_DANGLING = re.compile(r"\b(and|or|with|of|the|a|an|to|in|by|for|featuring|while)\s*$", re.I)

RULES = ("chat_residue", "bullet_list", "numbers", "tag_syntax", "truncated", "repetition")


def _repeated(text: str, n: int = 3) -> bool:
    words = re.findall(r"[a-z0-9']+", text.lower())
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def lint(caption: str) -> list[str]:
    """The rules a caption breaks (empty: clean). An empty caption is ``truncated``."""
    text = caption or ""
    found = []
    if _CHAT.search(text):
        found.append("chat_residue")
    if _BULLET.search(text):
        found.append("bullet_list")
    if _NUMBER.search(text):
        found.append("numbers")
    if _TAGS.search(text):
        found.append("tag_syntax")
    if not text.strip() or not _ENDING.search(text) or _DANGLING.search(text.rstrip(".!? ")):
        found.append("truncated")
    if _repeated(text):
        found.append("repetition")
    return found


def summary(captions: Sequence[str], examples: int = 3) -> dict[str, Any]:
    """Counts per rule, the share of clean captions, and a few examples of each rule."""
    counts = dict.fromkeys(RULES, 0)
    shown: dict[str, list[str]] = {r: [] for r in RULES}
    clean = 0
    for caption in captions:
        found = lint(caption)
        clean += not found
        for rule in found:
            counts[rule] += 1
            if len(shown[rule]) < examples:
                shown[rule].append(caption[:200])
    return {"clean": clean / len(captions) if captions else 1.0, "counts": counts,
            "examples": {r: v for r, v in shown.items() if v}}
