"""Balanced sampling: every tag in at least K sets (``--min-per-tag K``, ``sample.quotas``).

The model's own sets come first: the requested number is drawn as usual and every tag counted.
Each tag below its quota is then topped up with sets drawn *conditioned on that tag* (the
``require`` machinery of :mod:`tagtune.vae.sampler`: latents resampled towards the tag, the rest
of the set drawn from the decoder, so the sets stay plausible), the rarest tag first, counting
again after each. To keep the requested number of sets, as many of the model's own sets are then
removed, last first, skipping any set whose removal would take one of its tags below its quota.

A quota that cannot be met is refused by name before anything is written: a tag the training
data never holds (``train_tag_counts`` in the model's ``metrics.json``; for older models, a tag
the decoder gives less than ``sample.min_tag_probability`` under every training posterior), or
one whose top-up runs out of draw budget. ``sample.skip_absent=true`` leaves the never-seen tags
out instead (a taxonomy may list tags its data lacks: ConceptCaps' has ``beatbox``, its data only
``beatboxing``); the report names them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tagtune.errors import ConfigError
from tagtune.records.taxonomy import Taxonomy, normalize_category, normalize_tag
from tagtune.vae.constraints import ConstraintError


@dataclass
class BalanceReport:
    """What balancing did: the quota of each tag, the count reached, the sets drawn for it."""

    quotas: dict[str, int]
    counts: dict[str, int] = field(default_factory=dict)
    topped_up: dict[str, int] = field(default_factory=dict)  # tag -> sets drawn conditioned on it
    skipped_absent: list[str] = field(default_factory=list)  # quota tags the model never saw (sample.skip_absent)
    removed: int = 0  # the model's own sets taken out to keep the requested number
    extra: int = 0  # sets beyond the requested number (own sets that could not be removed)
    draws: int = 0  # candidate sets drawn in the whole run (the model's own sets and the top-ups)

    def to_dict(self) -> dict[str, Any]:
        below = {t: c for t, c in self.counts.items() if c < self.quotas.get(t, 0)}
        return {"quotas": self.quotas, "counts": self.counts, "topped_up": self.topped_up, "removed": self.removed,
                "extra": self.extra, "draws": self.draws, "below_quota": below, "skipped_absent": self.skipped_absent,
                "min_count": min(self.counts.values(), default=0)}


def parse_quotas(min_per_tag: int | None, quotas: Mapping[str, Any] | None, taxonomy: Taxonomy) -> dict[str, int]:
    """``{tag: K}`` from ``sample.min_per_tag`` (every tag) and ``sample.quotas`` ({tag or category: K})."""
    out = {t: int(min_per_tag) for t in taxonomy.tags} if min_per_tag else {}
    for key, value in dict(quotas or {}).items():
        name = normalize_tag(str(key))
        try:
            k = int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"sample.quotas.{key}: expected an integer, got {value!r}", key="sample.quotas") from exc
        if k < 0:
            raise ConfigError(f"sample.quotas.{key}: must be >= 0", key="sample.quotas")
        if normalize_category(name) in taxonomy.categories:
            out.update({t: max(out.get(t, 0), k) for t in taxonomy.categories[normalize_category(name)]})
        elif name in taxonomy.index:
            out[name] = max(out.get(name, 0), k)
        else:
            raise ConfigError(f"sample.quotas: '{key}' is neither a tag nor a category of the model's taxonomy",
                              key="sample.quotas")
    return {t: k for t, k in out.items() if k > 0}


def unreachable(loaded: Any, quotas: Mapping[str, int], min_probability: float) -> tuple[list[str], str]:
    """The quota tags the model cannot produce, and why (before anything is drawn or written)."""
    counts = training_counts(loaded)
    if counts is not None:
        return [t for t in quotas if counts.get(t, 0) == 0], "never occurs in the model's training data"
    absent = [t for t, p in _max_probabilities(loaded, list(quotas)).items() if p < min_probability]
    return absent, f"has probability below {min_probability:g} under every training set's posterior"


def check_reachable(loaded: Any, quotas: Mapping[str, int], min_probability: float) -> None:
    """Refuse, by name, the tags the model cannot produce (before anything is drawn or written)."""
    absent, why = unreachable(loaded, quotas, min_probability)
    if absent:
        more = f" (and {len(absent) - 1} more: {', '.join(absent[1:6])})" if len(absent) > 1 else ""
        raise ConstraintError(f"quota for '{absent[0]}' cannot be met: the tag {why}{more}",
                              hint="sample.skip_absent=true leaves such tags out (named in the report), or lower "
                                   "their quota (+sample.quotas.TAG=0), or train on data that holds them")


def training_summary(loaded: Any) -> dict[str, Any]:
    """The training data's statistics in the model's ``metrics.json`` (``dataset``); empty when absent."""
    try:
        data = json.loads((loaded.path / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    summary = data.get("dataset") if isinstance(data, dict) else None
    return summary if isinstance(summary, dict) else {}


def training_counts(loaded: Any) -> dict[str, int] | None:
    """How often each tag occurs in the model's training sets (``metrics.json``); None for older models."""
    counts = training_summary(loaded).get("train_tag_counts")
    return counts if isinstance(counts, dict) else None


def expected_total(quotas: Mapping[str, int], loaded: Any, n: int) -> int | None:
    """About how many sets balancing will write, from the training statistics (None for older models).

    Said before drawing, so a quota that multiplies the output is known before the wait (see
    :func:`estimate_total`)."""
    data = training_summary(loaded)
    counts, rows, size = data.get("train_tag_counts"), data.get("train"), data.get("train_mean_set_size")
    if not isinstance(counts, dict) or not rows or not size:
        return None
    return estimate_total(quotas, {t: int(c) / int(rows) for t, c in counts.items()}, float(size), n)


def estimate_total(quotas: Mapping[str, int], shares: Mapping[str, float], mean_size: float, n: int) -> int:
    """About how many sets :func:`balance` ends with: ``n``, or the top-ups when the quotas need more.

    Replays :func:`balance` on expected counts: ``n`` own sets hold each tag at its training share;
    tags are topped up rarest first, each top-up set holding its tag and ``mean_size - 1`` others
    spread like the training shares (co-occurrence ignored). An estimate, within about 30% on the
    demo data: ``--min-per-tag 5000 -n 100`` gives about 76,000, where the quick_test and default
    models write 60,049 and 81,732 sets.

    Args:
        quotas: ``{tag: K}``.
        shares: ``{tag: share of training sets holding it}``.
        mean_size: The mean number of tags per training set.
        n: ``sample.num_samples``.
    """
    have = {t: n * shares.get(t, 0.0) for t in quotas}
    spread = max(mean_size - 1.0, 0.0)
    total_share = sum(shares.values())
    topups = 0.0
    for t in sorted(quotas, key=lambda t: (have[t], t)):
        need = quotas[t] - have[t]
        if need <= 0:
            continue
        topups += need
        others = total_share - shares.get(t, 0.0)
        if others > 0:
            for u in have:
                if u != t:
                    have[u] += need * spread * shares.get(u, 0.0) / others
    return round(max(float(n), topups))


def _max_probabilities(loaded: Any, tags: list[str]) -> dict[str, float]:
    import torch

    with torch.no_grad():
        logits, _ = loaded.model.decode(loaded.prior_mu)
    idx = [loaded.taxonomy.index[t] for t in tags]
    top = torch.sigmoid(logits[:, idx]).max(dim=0).values
    return {t: float(p) for t, p in zip(tags, top, strict=True)}


def balance(own: list[list[int]], quotas: Mapping[str, int], taxonomy: Taxonomy,
            draw: Callable[[int, int], list[list[int]]]) -> tuple[list[list[int]], list[tuple[str, list[int]]], BalanceReport]:
    """Top up every tag below its quota, then trim the model's own sets back to their number.

    Args:
        own: The model's own sets (taxonomy indices).
        quotas: ``{tag: K}``.
        draw: ``(tag index, count) -> sets containing that tag`` (raises ConstraintError by name).

    Returns:
        The own sets kept, the top-up sets with the tag each was drawn for, and the report.
    """
    counts = Counter(i for s in own for i in s)
    want = {taxonomy.index[t]: k for t, k in quotas.items()}
    report = BalanceReport(quotas=dict(quotas))
    extra: list[tuple[str, list[int]]] = []
    for i in sorted(want, key=lambda i: (counts[i], i)):
        need = want[i] - counts[i]
        if need <= 0:
            continue
        sets = draw(i, need)
        report.topped_up[taxonomy.tags[i]] = len(sets)
        for s in sets:
            counts.update(s)
            extra.append((taxonomy.tags[i], s))
    kept, to_remove = list(own), len(extra)
    for pos in range(len(kept) - 1, -1, -1):
        if to_remove == 0:
            break
        if all(counts[i] - 1 >= want.get(i, 0) for i in kept[pos]):
            counts.subtract(kept[pos])
            del kept[pos]
            to_remove -= 1
    report.removed, report.extra = len(extra) - to_remove, to_remove
    report.counts = {taxonomy.tags[i]: int(counts[i]) for i in range(len(taxonomy))}
    return kept, extra, report
