"""The tag taxonomy: ``{category: [tags]}``, its rules, and the multi-hot codec every stage shares.

Order is fixed and documented: categories in the order the file lists them, tags within a
category in file order. Vector position ``i`` is ``taxonomy.tags[i]``. Tags are normalised
(lower case, single spaces, stripped) on load and on lookup, so ``"Slow  Tempo"`` matches
``"slow tempo"``. A tag may belong to one category only.

A taxonomy may declare rules under the key ``_rules`` (:class:`Rules`): groups of mutually
exclusive tags and per-category tag counts. Sampling never produces a set that breaks them and
``vae evaluate`` reports how many sets of a file do; a taxonomy without rules allows every set.
The rules are not part of the vector layout: two taxonomies with the same categories encode
alike (same fingerprint) whatever their rules.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagtune.errors import TaxonomyError
from tagtune.files.readers import missing_file, resolve_path
from tagtune.records.rows import ROW_TYPES

if TYPE_CHECKING:
    import numpy as np

@functools.lru_cache(maxsize=1)
def reserved_names() -> frozenset[str]:
    """Field names the rows use for other things (a category may not take them)."""
    return frozenset(f.name for kind in ROW_TYPES for f in fields(kind)) | {"text", "aspect_list", "split"}


def normalize_tag(tag: str) -> str:
    """Lower case, inner whitespace collapsed to one space, ends stripped."""
    return " ".join(str(tag).split()).lower()


def normalize_category(name: str) -> str:
    """A category name as the taxonomy keys it: a normalised tag with spaces as underscores."""
    return normalize_tag(name).replace(" ", "_")


RULES_KEY = "_rules"


@dataclass(frozen=True)
class Rules:
    """What a plausible tag set may not do.

    Attributes:
        exclusive: Groups of tags of which a set holds at most one (``slow tempo`` / ``fast tempo``).
        counts: ``{category: (min, max)}`` tags of the category per set (max None: no limit).
    """

    exclusive: tuple[tuple[str, ...], ...] = ()
    counts: Mapping[str, tuple[int, int | None]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.exclusive or self.counts)

    def violations(self, tags: Iterable[str], category_of: Mapping[str, str]) -> list[str]:
        """What ``tags`` break, one short phrase per broken rule (empty: the set is fine)."""
        have = {normalize_tag(t) for t in tags}
        out = [f"exclusive: {' + '.join(t for t in group if t in have)}"
               for group in self.exclusive if sum(t in have for t in group) > 1]
        for cat, (lo, hi) in self.counts.items():
            n = sum(1 for t in have if category_of.get(t) == cat)
            if n < lo or (hi is not None and n > hi):
                out.append(f"{cat}: {n} tags (allowed {lo}..{'' if hi is None else hi})")
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.exclusive:
            out["exclusive"] = [list(g) for g in self.exclusive]
        if self.counts:
            out["counts"] = {c: {"min": lo, **({"max": hi} if hi is not None else {})} for c, (lo, hi) in self.counts.items()}
        return out


def _parse_rules(raw: Any, taxonomy: Taxonomy) -> Rules:
    """``_rules: {exclusive: [[tag, ...], ...], counts: {category: {min: 0, max: 1}}}``, checked."""
    src = taxonomy.source
    if raw is None:
        return Rules()
    if not isinstance(raw, Mapping) or set(raw) - {"exclusive", "counts"}:
        raise TaxonomyError("expected a mapping with 'exclusive' and/or 'counts'", src, field=RULES_KEY)
    groups = []
    for i, group in enumerate(raw.get("exclusive") or []):
        where = f"{RULES_KEY}.exclusive[{i}]"
        if isinstance(group, str) or not isinstance(group, Sequence) or len(group) < 2:
            raise TaxonomyError("an exclusive group is a list of at least two tags", src, field=where)
        tags = tuple(normalize_tag(t) for t in group)
        unknown = [t for t in tags if t not in taxonomy.index]
        if unknown:
            raise TaxonomyError(f"unknown tag '{unknown[0]}'", src, field=where)
        groups.append(tags)
    counts: dict[str, tuple[int, int | None]] = {}
    for cat, spec in dict(raw.get("counts") or {}).items():
        where = f"{RULES_KEY}.counts.{cat}"
        name = normalize_category(cat)
        if name not in taxonomy.categories:
            raise TaxonomyError(f"unknown category '{cat}'", src, field=where)
        if not isinstance(spec, Mapping) or set(spec) - {"min", "max"}:
            raise TaxonomyError("expected {min: N, max: N}", src, field=where)
        lo, hi = spec.get("min", 0), spec.get("max")
        if not isinstance(lo, int) or (hi is not None and not isinstance(hi, int)) or lo < 0 or (hi is not None and hi < lo):
            raise TaxonomyError(f"min and max must be integers with 0 <= min <= max (got {lo}, {hi})", src, field=where)
        if lo > len(taxonomy.categories[name]):
            raise TaxonomyError(f"min {lo} is more than the category's {len(taxonomy.categories[name])} tags", src, field=where)
        counts[name] = (lo, hi)
    return Rules(tuple(groups), counts)


class Taxonomy:
    """An ordered set of categories, each an ordered list of unique tags, and the rules of its sets."""

    def __init__(self, categories: Mapping[str, Sequence[str]], source: str = "<taxonomy>"):
        self.source = source
        if not isinstance(categories, Mapping) or not categories:
            raise TaxonomyError("expected a non-empty mapping {category: [tags]}", source)
        raw_rules = categories.get(RULES_KEY)
        categories = {k: v for k, v in categories.items() if k != RULES_KEY}
        if not categories:
            raise TaxonomyError("expected a non-empty mapping {category: [tags]}", source)
        self.categories: dict[str, list[str]] = {}
        self.category_of: dict[str, str] = {}
        for raw_cat, raw_tags in categories.items():
            if not isinstance(raw_cat, str) or not raw_cat.strip():
                raise TaxonomyError(f"category name {raw_cat!r} is not a non-empty string", source)
            cat = normalize_category(raw_cat)
            if cat in reserved_names():
                raise TaxonomyError(f"category name '{cat}' is reserved; rename it", source, field=cat)
            if cat in self.categories:
                raise TaxonomyError(f"category '{cat}' appears twice", source, field=cat)
            if isinstance(raw_tags, str) or not isinstance(raw_tags, Sequence):
                raise TaxonomyError(f"expected a list of tags, got {type(raw_tags).__name__}", source, field=cat)
            if len(raw_tags) == 0:
                raise TaxonomyError("category is empty", source, field=cat)
            tags: list[str] = []
            for raw in raw_tags:
                if not isinstance(raw, str):
                    raise TaxonomyError(f"tag {raw!r} is not a string", source, field=cat)
                tag = normalize_tag(raw)
                if not tag:
                    raise TaxonomyError("contains an empty tag", source, field=cat)
                if "," in tag:
                    raise TaxonomyError(f"tag '{tag}' contains a comma (commas separate tags)", source, field=cat)
                if tag in self.category_of:
                    other = self.category_of[tag]
                    where = "twice" if other == cat else f"in both '{other}' and '{cat}'"
                    raise TaxonomyError(f"tag '{tag}' appears {where}", source, field=cat)
                self.category_of[tag] = cat
                tags.append(tag)
            self.categories[cat] = tags
        self.tags: list[str] = [t for tags in self.categories.values() for t in tags]
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.tags)}
        self.rules: Rules = _parse_rules(raw_rules, self)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        """Read a taxonomy from JSON or YAML (``pkg:`` paths point inside the package)."""
        path = resolve_path(path)
        problem = missing_file(path, "taxonomy file")
        if problem:
            raise TaxonomyError(problem, path, hint="set data.taxonomy_path")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise TaxonomyError("not UTF-8 text", path) from exc
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:  # json / yaml syntax errors
            line = getattr(exc, "lineno", None) or getattr(getattr(exc, "problem_mark", None), "line", None)
            raise TaxonomyError(f"cannot parse taxonomy: {str(exc).splitlines()[0]}", path, line) from exc
        return cls(data, source=str(path))

    # -- codec ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.tags)

    def __contains__(self, tag: object) -> bool:
        return isinstance(tag, str) and normalize_tag(tag) in self.index

    def known(self, tags: Iterable[str]) -> tuple[list[str], list[str]]:
        """Split tags into (known, unknown), normalised, duplicates removed, order kept."""
        known: list[str] = []
        unknown: list[str] = []
        seen: set[str] = set()
        for raw in tags:
            tag = normalize_tag(raw)
            if not tag or tag in seen:
                continue
            seen.add(tag)
            (known if tag in self.index else unknown).append(tag)
        return known, unknown

    def encode(self, tags: Iterable[str]) -> np.ndarray:
        """Multi-hot float32 vector of length ``len(self)``; unknown tags are ignored."""
        import numpy as np

        vec = np.zeros(len(self.tags), dtype=np.float32)
        for tag in tags:
            i = self.index.get(normalize_tag(tag))
            if i is not None:
                vec[i] = 1.0
        return vec

    def encode_many(self, tag_sets: Iterable[Iterable[str]]) -> np.ndarray:
        import numpy as np

        rows = [self.encode(t) for t in tag_sets]
        return np.stack(rows) if rows else np.zeros((0, len(self.tags)), dtype=np.float32)

    def decode(self, vector: Sequence[float] | np.ndarray, threshold: float = 0.5) -> list[str]:
        """Tags whose entry is >= threshold, in taxonomy order."""
        return [self.tags[i] for i, v in enumerate(vector) if v >= threshold]

    def sort(self, tags: Iterable[str]) -> list[str]:
        """Known tags in taxonomy order (unknown tags dropped)."""
        idx = sorted({self.index[t] for t in map(normalize_tag, tags) if t in self.index})
        return [self.tags[i] for i in idx]

    def by_category(self, tags: Iterable[str]) -> dict[str, list[str]]:
        """``{category: [tags]}`` for every category (empty lists included), taxonomy order."""
        out: dict[str, list[str]] = {c: [] for c in self.categories}
        for tag in self.sort(tags):
            out[self.category_of[tag]].append(tag)
        return out

    # -- rules ------------------------------------------------------------------------------
    def violations(self, tags: Iterable[str]) -> list[str]:
        """The rules ``tags`` break (empty: none, or the taxonomy has no rules)."""
        return self.rules.violations(tags, self.category_of)

    @property
    def category_slices(self) -> dict[str, slice]:
        """Each category's columns in the multi-hot order (categories in order, tags in order)."""
        slices, start = {}, 0
        for cat, tags in self.categories.items():
            slices[cat] = slice(start, start + len(tags))
            start += len(tags)
        return slices

    def rule_mask(self, matrix: Any) -> Any:
        """Per row of a multi-hot matrix (numpy or torch), whether it keeps every rule."""
        ok = matrix.sum(1) >= 0  # all True, in the matrix's own library
        for group in self.rules.exclusive:
            ok = ok & (matrix[:, [self.index[t] for t in group]].sum(1) <= 1)
        slices = self.category_slices
        for cat, (lo, hi) in self.rules.counts.items():
            n = matrix[:, slices[cat]].sum(1)
            ok = ok & (n >= lo) & ((n <= hi) if hi is not None else (n >= 0))
        return ok

    def with_rules(self, rules: Rules) -> Taxonomy:
        """This taxonomy with other rules (a model's taxonomy with the rules of a file naming the same tags)."""
        copy = Taxonomy(self.to_dict(rules=False), source=self.source)
        copy.rules = rules
        return copy

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self, rules: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {c: list(t) for c, t in self.categories.items()}
        if rules and self.rules:
            out[RULES_KEY] = self.rules.to_dict()
        return out

    def fingerprint(self) -> str:
        """sha256 of the categories and tags: two taxonomies with equal fingerprints encode alike."""
        blob = json.dumps(self.to_dict(rules=False), separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def save(self, path: str | Path) -> Path:
        from tagtune.files.resumable import atomic_write_json

        return atomic_write_json(Path(path), self.to_dict())

    def __eq__(self, other: Any) -> bool:
        """Same categories and tags in the same order (the vector layout); rules may differ."""
        return isinstance(other, Taxonomy) and self.to_dict(rules=False) == other.to_dict(rules=False)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{c}={len(t)}" for c, t in self.categories.items())
        return f"Taxonomy({sizes})"


def cooccurrence(matrix: Any) -> np.ndarray:
    """``C[i, j]``: the share of sets (rows of a multi-hot matrix) holding both tag i and tag j
    (the diagonal: each tag's own frequency)."""
    import numpy as np

    m = np.asarray(matrix, dtype=np.float64)
    return (m.T @ m) / max(len(m), 1)
