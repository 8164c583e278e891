"""The tag taxonomy: ``{category: [tags]}`` and the multi-hot codec every stage shares.

Order is fixed and documented: categories in the order the file lists them, tags within a
category in file order. Vector position ``i`` is ``taxonomy.tags[i]``. Tags are normalised
(lower case, single spaces, stripped) on load and on lookup, so ``"Slow  Tempo"`` matches
``"slow tempo"``. A tag may belong to one category only.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagtune.errors import TaxonomyError

if TYPE_CHECKING:
    import numpy as np

@functools.lru_cache(maxsize=1)
def reserved_names() -> frozenset[str]:
    """Field names the rows use for other things (a category may not take them)."""
    from dataclasses import fields

    from tagtune.schema import ROW_TYPES

    return frozenset(f.name for kind in ROW_TYPES for f in fields(kind)) | {"text", "aspect_list", "split"}


def normalize_tag(tag: str) -> str:
    """Lower case, inner whitespace collapsed to one space, ends stripped."""
    return " ".join(str(tag).split()).lower()


class Taxonomy:
    """An ordered set of categories, each an ordered list of unique tags."""

    def __init__(self, categories: Mapping[str, Sequence[str]], source: str = "<taxonomy>"):
        self.source = source
        if not isinstance(categories, Mapping) or not categories:
            raise TaxonomyError("expected a non-empty mapping {category: [tags]}", source)
        self.categories: dict[str, list[str]] = {}
        self.category_of: dict[str, str] = {}
        for raw_cat, raw_tags in categories.items():
            if not isinstance(raw_cat, str) or not raw_cat.strip():
                raise TaxonomyError(f"category name {raw_cat!r} is not a non-empty string", source)
            cat = normalize_tag(raw_cat).replace(" ", "_")
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

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        """Read a taxonomy from JSON or YAML (``pkg:`` paths point inside the package)."""
        from tagtune.records import resolve_path

        path = resolve_path(path)
        if not path.is_file():
            raise TaxonomyError("taxonomy file does not exist", path, hint="set data.taxonomy_path")
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

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, list[str]]:
        return {c: list(t) for c, t in self.categories.items()}

    def fingerprint(self) -> str:
        """sha256 of the canonical content: two taxonomies with equal fingerprints encode alike."""
        blob = json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def save(self, path: str | Path) -> Path:
        from tagtune.resumable import atomic_write_json

        return atomic_write_json(Path(path), self.to_dict())

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Taxonomy) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        sizes = ", ".join(f"{c}={len(t)}" for c, t in self.categories.items())
        return f"Taxonomy({sizes})"
