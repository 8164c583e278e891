"""Benchmark-leakage guard: drop rows that repeat an evaluation set's tag sets or captions.

``--exclude FILE ...`` (``dataset.exclude``) names files of tag sets and/or captions from
evaluation sets (for example the MusicCaps test split). A row is dropped when its tag set equals
an excluded one (as a set, after tag normalisation) or when its caption is a near-duplicate of an
excluded caption: the same text once lower-cased with punctuation and spacing removed, or a word
n-gram containment above ``threshold`` (the share of the row's n-grams found in one excluded
caption; an inverted index keeps this linear in the number of rows).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.errors import InputError
from tagtune.records.reader import Columns, read_file
from tagtune.records.rows import TagSetRow
from tagtune.records.taxonomy import normalize_tag

_WORDS = re.compile(r"[a-z0-9]+")


def normalise(text: str) -> str:
    """Lower case, words only: ``"A calm, slow piece."`` -> ``"a calm slow piece"``."""
    return " ".join(_WORDS.findall(str(text).lower()))


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = normalise(text).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)} or ({tuple(words)} if words else set())


@dataclass
class Excluder:
    """The excluded tag sets and captions, and how many rows each rule dropped."""

    tag_sets: set[frozenset[str]] = field(default_factory=set)
    captions: set[str] = field(default_factory=set)
    index: dict[tuple[str, ...], set[int]] = field(default_factory=lambda: defaultdict(set))
    sizes: list[int] = field(default_factory=list)
    n: int = 4
    threshold: float = 0.5
    dropped: dict[str, int] = field(default_factory=lambda: {"tag_set": 0, "caption_exact": 0, "caption_ngram": 0})
    files: list[str] = field(default_factory=list)

    def add_caption(self, text: str) -> None:
        key = normalise(text)
        if not key or key in self.captions:
            return
        self.captions.add(key)
        grams = ngrams(text, self.n)
        self.sizes.append(len(grams))
        for g in grams:
            self.index[g].add(len(self.sizes) - 1)

    def reason(self, tags: Sequence[str], caption: str | None) -> str | None:
        """Why a row must go (``tag_set``, ``caption_exact``, ``caption_ngram``), or None."""
        if tags and frozenset(map(normalize_tag, tags)) in self.tag_sets:
            return "tag_set"
        if not caption:
            return None
        if normalise(caption) in self.captions:
            return "caption_exact"
        grams = ngrams(caption, self.n)
        hits: dict[int, int] = defaultdict(int)
        for g in grams:
            for i in self.index.get(g, ()):
                hits[i] += 1
        if grams and any(h / len(grams) >= self.threshold for h in hits.values()):
            return "caption_ngram"
        return None

    def keep(self, tags: Sequence[str], caption: str | None) -> bool:
        why = self.reason(tags, caption)
        if why is not None:
            self.dropped[why] += 1
        return why is None

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())

    def summary(self) -> dict[str, Any]:
        """What the card and ``provenance.json`` say about the guard: the files and the drops by rule."""
        return {"files": self.files, "dropped": self.total_dropped, **self.dropped, "ngram": self.n,
                "threshold": self.threshold}


def load_excluder(paths: Iterable[str | Path], n: int = 4, threshold: float = 0.5) -> Excluder:
    """Read the excluded files (any tag-set or caption file: tags and/or a caption column)."""
    ex = Excluder(n=n, threshold=threshold)
    for path in paths:
        ex.files.append(str(path))
        before = (len(ex.tag_sets), len(ex.captions))
        columns: list[str] = []
        for row in read_file(path, TagSetRow, None, Columns(), need_tags=False, empty="keep", unique_ids=False):
            columns = columns or [*row.extra] + ["id"]
            if row.tags:
                ex.tag_sets.add(frozenset(map(normalize_tag, row.tags)))
            text = row.caption or row.extra.get("text") or row.extra.get("prediction")
            if isinstance(text, str):
                ex.add_caption(text)
        if (len(ex.tag_sets), len(ex.captions)) == before:
            raise InputError("holds no tag set and no caption: as a leakage guard it would exclude nothing",
                             path, hint="an evaluation file needs a tags column (tags, aspect_list) and/or a "
                                        f"caption column (caption, text, prediction); its columns: {', '.join(columns[:8])}")
    return ex
