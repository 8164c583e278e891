"""Seeded train/validation/test assignment by group, so that related rows never straddle splits.

Rows are grouped before they are split: both members of a counterfactual pair (``pair_id``), and
every row with the same tag set, land in the same split, so a test row never has a twin in train.
Groups are ordered by a keyed hash of their key and cut at the requested fractions of rows, so
the split is reproducible and a group keeps its split when other groups are added or removed (as
far as the cut points allow). Sizes follow the fractions as closely as whole groups allow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from tagtune.errors import ConfigError
from tagtune.files.ids import stable_hash


def group_key(tags: Sequence[str], pair_id: str | None = None) -> str:
    """What keeps rows together: the counterfactual pair, else the (order-free) tag set."""
    return f"pair:{pair_id}" if pair_id else "tags:" + "|".join(sorted(set(tags)))


def _targets(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Rows per split for ``n`` rows (largest remainder)."""
    names = list(fractions)
    values = [float(fractions[k]) for k in names]
    if not names or any(v < 0 for v in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"dataset.splits must be non-negative and sum to 1, got {dict(fractions)}", key="dataset.splits")
    exact = [v * n for v in values]
    sizes = [int(x) for x in exact]
    for i in sorted(range(len(names)), key=lambda i: exact[i] - sizes[i], reverse=True)[: n - sum(sizes)]:
        sizes[i] += 1
    return dict(zip(names, sizes))


def assign_splits(ids: Iterable[str], fractions: Mapping[str, float], seed: int,
                  groups: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{id: split}`` with split sizes close to ``fractions`` of the rows; rows of a group stay together.

    Args:
        ids: Row ids.
        fractions: ``{split: share}``, summing to 1 (order = the order splits are filled in).
        seed: Keys the hash that orders the groups.
        groups: ``{id: group key}`` (:func:`group_key`); without it every row is its own group.
    """
    ids = list(ids)
    groups = groups or {}
    members: dict[str, list[str]] = {}
    for item in ids:
        members.setdefault(groups.get(item, f"id:{item}"), []).append(item)
    order = sorted(members, key=lambda g: (stable_hash(f"{seed}:{g}"), g))
    targets = _targets(len(ids), fractions)
    names = list(fractions)
    out: dict[str, str] = {}
    filled = dict.fromkeys(names, 0)
    split = 0
    for g in order:
        while split < len(names) - 1 and filled[names[split]] + len(members[g]) / 2 > targets[names[split]]:
            split += 1  # this group would push the split past its target by more than half of itself
        for item in members[g]:
            out[item] = names[split]
        filled[names[split]] += len(members[g])
    return out
