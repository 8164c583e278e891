"""Seeded train/validation/test assignment that depends only on the ids and the seed.

Items are ordered by a keyed hash of their id and cut at the requested fractions, so the
split is exact in size, reproducible, and an item keeps its split when other items are added
or removed (as far as the cut points allow).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tagtune.errors import ConfigError
from tagtune.ids import stable_hash


def assign_splits(ids: Iterable[str], fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """``{id: split}`` with split sizes proportional to ``fractions`` (largest remainder)."""
    ids = list(ids)
    names = list(fractions)
    values = [float(fractions[n]) for n in names]
    if not names or any(v < 0 for v in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"dataset.splits must be non-negative and sum to 1, got {dict(fractions)}")
    n = len(ids)
    exact = [v * n for v in values]
    sizes = [int(x) for x in exact]
    for i in sorted(range(len(names)), key=lambda i: exact[i] - sizes[i], reverse=True)[: n - sum(sizes)]:
        sizes[i] += 1
    order = sorted(ids, key=lambda i: (stable_hash(f"{seed}:{i}"), i))
    out: dict[str, str] = {}
    start = 0
    for name, size in zip(names, sizes):
        for item in order[start:start + size]:
            out[item] = name
        start += size
    return out
