"""What every sampled tag set must satisfy: required and forbidden tags, per-category counts, and
the taxonomy's own rules (:class:`tagtune.records.taxonomy.Rules`).

``sample.require`` / ``forbid`` / ``category_min`` / ``category_max`` / ``min_tags`` / ``max_tags``
(``--require``, ``--forbid``, ``--min CATEGORY=K``, ``--max CATEGORY=K`` on the command line) are checked against the model's taxonomy and turned into taxonomy indices
once, before anything is drawn; :func:`meets_counts` then tells which drawn sets satisfy them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tagtune.errors import ConfigError, TagtuneError
from tagtune.records.taxonomy import Taxonomy, normalize_category, normalize_tag
from tagtune.vae.config import VaeSample

if TYPE_CHECKING:
    import torch


class ConstraintError(TagtuneError):
    """Constraints that the model cannot satisfy often enough (exit 2, one line)."""


@dataclass
class Constraints:
    """What every sampled set must satisfy, as taxonomy indices."""

    require: list[int] = field(default_factory=list)
    forbid: list[int] = field(default_factory=list)
    category_min: dict[str, int] = field(default_factory=dict)
    category_max: dict[str, int] = field(default_factory=dict)
    min_tags: int = 0
    max_tags: int | None = None

    def active(self) -> bool:
        return bool(self.require or self.forbid or self.category_min or self.category_max or self.min_tags or self.max_tags)


def _unknown_tag(tag: str, taxonomy: Taxonomy, key: str) -> ConfigError:
    close = difflib.get_close_matches(normalize_tag(tag), taxonomy.tags, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "see the model's taxonomy.json"
    return ConfigError(f"{key}: '{tag}' is not a tag of the model's taxonomy", key=key, hint=hint)


def _counts(value: Mapping[str, Any] | list[str] | None, key: str, taxonomy: Taxonomy) -> dict[str, int]:
    """``{category: k}`` from a mapping or from ``["cat=k", ...]``; categories must exist."""
    items: list[tuple[str, Any]] = []
    if value is None:
        return {}
    if isinstance(value, Mapping):
        items = list(value.items())
    else:
        for entry in value:
            text = str(entry)
            if "=" not in text:
                raise ConfigError(f"{key}: '{text}' must look like CATEGORY=COUNT, e.g. genre=1", key=key)
            cat, _, num = text.partition("=")
            items.append((cat, num))
    out: dict[str, int] = {}
    for cat, num in items:
        name = normalize_category(cat)
        if name not in taxonomy.categories:
            raise ConfigError(f"{key}: unknown category '{cat}'", key=key,
                              hint=f"categories: {', '.join(taxonomy.categories)}")
        try:
            k = int(str(num).strip())
        except ValueError as exc:
            raise ConfigError(f"{key}: {cat}={num}: the count must be an integer", key=key) from exc
        if k < 0:
            raise ConfigError(f"{key}: {cat}={k}: the count must be >= 0", key=key)
        out[name] = k
    return out


def parse_constraints(spec: VaeSample, taxonomy: Taxonomy) -> Constraints:
    """Check the ``sample`` constraint keys against the taxonomy and turn them into indices.

    Raises:
        ConfigError: An unknown tag (with close matches) or category, a bad count (the key named).
        ConstraintError: Constraints that contradict each other.
    """
    def tags(values: list[str], key: str) -> list[int]:
        out = []
        for tag in values:
            if tag not in taxonomy:
                raise _unknown_tag(tag, taxonomy, key)
            idx = taxonomy.index[normalize_tag(tag)]
            if idx not in out:
                out.append(idx)
        return out

    c = Constraints(
        require=tags(spec.require, "sample.require"), forbid=tags(spec.forbid, "sample.forbid"),
        category_min=_counts(spec.category_min, "sample.category_min", taxonomy),
        category_max=_counts(spec.category_max, "sample.category_max", taxonomy),
        min_tags=spec.min_tags, max_tags=spec.max_tags,
    )
    both = set(c.require) & set(c.forbid)
    if both:
        raise ConstraintError(f"'{taxonomy.tags[min(both)]}' is both required and forbidden")
    for cat, lo in c.category_min.items():
        hi = c.category_max.get(cat)
        size = len(taxonomy.categories[cat])
        if hi is not None and lo > hi:
            raise ConstraintError(f"category '{cat}': sample.category_min {lo} is above sample.category_max {hi}")
        if lo > size:
            raise ConstraintError(f"category '{cat}' has only {size} tags; sample.category_min {lo} cannot be met")
    for cat, hi in c.category_max.items():
        forced = sum(1 for i in c.require if taxonomy.category_of[taxonomy.tags[i]] == cat)
        if forced > hi:
            raise ConstraintError(f"category '{cat}': {forced} required tags but sample.category_max {hi}")
    broken = required_break_rules([taxonomy.tags[i] for i in c.require], taxonomy)
    if broken:
        raise ConstraintError(f"the required tags break the taxonomy's rules ({'; '.join(broken)})")
    if c.max_tags is not None and (len(c.require) > c.max_tags or c.min_tags > c.max_tags):
        raise ConstraintError(f"sample.max_tags={c.max_tags} is below sample.min_tags or the number of required tags")
    return c


def required_break_rules(required: list[str], taxonomy: Taxonomy) -> list[str]:
    """The taxonomy rules the required tags alone already break (exclusive groups, category maximums);
    also asked of the required tags plus a counterfactual concept (:mod:`tagtune.vae.pairs`)."""
    out = []
    for group in taxonomy.rules.exclusive:
        both = [t for t in group if t in required]
        if len(both) > 1:
            out.append(f"{' and '.join(both)} exclude each other")
    for cat, (_, hi) in taxonomy.rules.counts.items():
        n = sum(taxonomy.category_of[t] == cat for t in required)
        if hi is not None and n > hi:
            out.append(f"{n} required {cat} tags, at most {hi} allowed")
    return out


def meets_counts(sets: torch.Tensor, cons: Constraints, taxonomy: Taxonomy) -> torch.Tensor:
    """Which drawn sets satisfy the constraints and the taxonomy's rules (exclusive groups, counts)."""
    import torch

    ok = taxonomy.rule_mask(sets) if taxonomy.rules else torch.ones(len(sets), dtype=torch.bool)
    sizes = sets.sum(dim=1)
    ok &= sizes >= cons.min_tags  # min_tags 0 lets empty sets through (the reference recipe)
    if cons.max_tags is not None:
        ok &= sizes <= cons.max_tags
    for cat, columns in taxonomy.category_slices.items():
        count = sets[:, columns].sum(dim=1)
        if cat in cons.category_min:
            ok &= count >= cons.category_min[cat]
        if cat in cons.category_max:
            ok &= count <= cons.category_max[cat]
    return ok


