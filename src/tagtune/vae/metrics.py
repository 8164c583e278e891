"""Tag-set fidelity metrics: plain numpy/scipy functions over multi-hot matrices.

Every function takes ``(n, T)`` 0/1 matrices (rows are tag sets, columns the taxonomy's tags in
its fixed order) and returns floats, so they are easy to test on hand-computable cases and to
reuse outside the CLI. Distances between sets are Jaccard distances (``1 - |a & b| / |a | b|``,
two empty sets are at distance 0); the MMD kernel is its complement, the Tanimoto similarity.
The k-NN metrics follow Kynkaanniemi et al. 2019 (precision, recall) and Naeem et al. 2020
(density, coverage), computed on equal-size subsamples of both sides so that neither side's
k-NN radii are favoured by its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_EPS = 1e-12


def _as_matrix(x: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D multi-hot matrix, got shape {arr.shape}")
    return (arr > 0.5).astype(np.float64)


# -- marginals and co-occurrence ------------------------------------------------------------------
def tag_frequencies(x: Any) -> np.ndarray:
    """Share of sets that contain each tag (length T)."""
    x = _as_matrix(x)
    return x.mean(axis=0) if len(x) else np.zeros(x.shape[1])


def jensen_shannon(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon divergence (log base 2, so it lies in [0, 1]) of two non-negative vectors.

    Both vectors are normalised to sum 1 first; an all-zero vector counts as uniform so that an
    empty sample gives a large divergence rather than a NaN. scipy returns the Jensen-Shannon
    *distance*, the square root of the divergence: squared here.
    """
    from scipy.spatial.distance import jensenshannon

    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / p.sum() if p.sum() > 0 else np.full_like(p, 1.0 / len(p))
    q = q / q.sum() if q.sum() > 0 else np.full_like(q, 1.0 / len(q))
    with np.errstate(invalid="ignore"):  # rounding can leave the divergence a hair below 0: sqrt gives NaN
        distance = float(jensenshannon(p, q, base=2))
    return 0.0 if np.isnan(distance) else distance**2


def marginal_jsd(generated: Any, reference: Any) -> float:
    """JSD between the two sides' tag distributions (tag counts normalised to sum 1)."""
    return jensen_shannon(_as_matrix(generated).sum(axis=0), _as_matrix(reference).sum(axis=0))


def cooccurrence(x: Any) -> np.ndarray:
    """``C[i, j]`` = share of sets containing both tag i and tag j (diagonal: tag frequency)."""
    x = _as_matrix(x)
    return (x.T @ x) / max(len(x), 1)


def cooccurrence_pearson(generated: Any, reference: Any) -> float:
    """Pearson r between the off-diagonal (upper-triangle) co-occurrence rates of both sides.

    The diagonal (plain tag frequencies) is left out: it is what the JSD already measures, and
    including it would inflate r for any sampler that gets the marginals right.
    """
    a = cooccurrence(generated)
    b = cooccurrence(reference)
    iu = np.triu_indices(a.shape[0], k=1)
    va, vb = a[iu], b[iu]
    if va.std() < _EPS or vb.std() < _EPS:
        return 0.0
    return float(np.corrcoef(va, vb)[0, 1])


# -- set sizes ------------------------------------------------------------------------------------
def set_sizes(x: Any) -> np.ndarray:
    return _as_matrix(x).sum(axis=1)


def wasserstein1(a: Sequence[float], b: Sequence[float]) -> float:
    """Earth mover's distance between two 1-D empirical distributions (e.g. set sizes)."""
    from scipy.stats import wasserstein_distance

    if len(a) == 0 or len(b) == 0:
        return float("nan")
    return float(wasserstein_distance(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)))


def set_size_w1(generated: Any, reference: Any) -> float:
    return wasserstein1(set_sizes(generated), set_sizes(reference))


# -- uniqueness -----------------------------------------------------------------------------------
def _row_keys(x: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in np.packbits(_as_matrix(x).astype(np.uint8), axis=1)]


def diversity(x: Any) -> float:
    """Unique sets / total sets (1.0: no repeats)."""
    keys = _row_keys(x)
    return len(set(keys)) / len(keys) if keys else float("nan")


def novelty(generated: Any, train: Any) -> float:
    """Share of generated sets that do not appear in the training data."""
    keys = _row_keys(generated)
    if not keys:
        return float("nan")
    seen = set(_row_keys(train))
    return sum(k not in seen for k in keys) / len(keys)


# -- set similarity -------------------------------------------------------------------------------
def tanimoto(a: Any, b: Any) -> np.ndarray:
    """Tanimoto (Jaccard) similarity ``|a & b| / |a | b|`` for every pair of rows; empty-empty = 1."""
    a = _as_matrix(a)
    b = _as_matrix(b)
    inter = a @ b.T
    union = a.sum(axis=1)[:, None] + b.sum(axis=1)[None, :] - inter
    sim = np.ones_like(inter)
    np.divide(inter, union, out=sim, where=union > 0)
    return sim


def jaccard_distance(a: Any, b: Any) -> np.ndarray:
    return 1.0 - tanimoto(a, b)


def mmd2_tanimoto(generated: Any, reference: Any, chunk: int = 2048) -> float:
    """Unbiased squared MMD with the Tanimoto kernel (0 in expectation for equal distributions).

    Computed in blocks, so 5000 x 5000 comparisons never hold more than ``chunk`` rows at once.
    """
    x = _as_matrix(generated)
    y = _as_matrix(reference)
    if len(x) < 2 or len(y) < 2:
        return float("nan")

    def _mean_sim(a: np.ndarray, b: np.ndarray, same: bool) -> float:
        total = 0.0
        for i in range(0, len(a), chunk):
            block = tanimoto(a[i:i + chunk], b)
            total += float(block.sum())
            if same:  # remove the self-similarities on the diagonal (each is 1)
                total -= float(min(len(a), i + chunk) - i)
        pairs = len(a) * (len(b) - 1) if same else len(a) * len(b)
        return total / pairs

    return _mean_sim(x, x, True) + _mean_sim(y, y, True) - 2.0 * _mean_sim(x, y, False)


def _kth_radius(d_self: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row to its k-th nearest neighbour within the same side (self excluded)."""
    d = d_self.copy()
    np.fill_diagonal(d, np.inf)
    k = min(k, d.shape[1] - 1)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def prdc(generated: Any, reference: Any, k: int = 3) -> dict[str, float]:
    """k-NN precision/recall (Kynkaanniemi 2019) and density/coverage (Naeem 2020), Jaccard distance.

    * precision: share of generated sets inside at least one real set's k-NN ball;
    * recall: share of real sets inside at least one generated set's k-NN ball;
    * density: average number of real balls holding each generated set, divided by k;
    * coverage: share of real sets whose ball holds at least one generated set.

    A ball includes its boundary (``<=``): with discrete sets, ties at the radius are common and
    an exact duplicate of a real set must count as inside its ball. Sets at the maximal distance
    1 (no tag in common) are never inside a ball, otherwise one outlier whose k-th neighbour
    shares nothing with it would have a ball holding every possible set.
    """
    real = _as_matrix(reference)
    fake = _as_matrix(generated)
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"need more than k={k} sets on each side (got {len(fake)} generated, {len(real)} real)")
    d_rr = jaccard_distance(real, real)
    d_ff = jaccard_distance(fake, fake)
    d_rf = jaccard_distance(real, fake)  # (n_real, n_fake)
    r_real = _kth_radius(d_rr, k)
    r_fake = _kth_radius(d_ff, k)
    near = d_rf < 1.0 - _EPS  # sets with no tag in common are never neighbours
    inside_real = near & (d_rf <= r_real[:, None] + _EPS)  # fake j inside real i's ball
    inside_fake = near & (d_rf <= r_fake[None, :] + _EPS)  # real i inside fake j's ball
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float(inside_fake.any(axis=1).mean()),
        "density": float(inside_real.sum(axis=0).mean() / k),
        "coverage": float(inside_real.any(axis=1).mean()),
    }


def prdc_subsampled(
    generated: Any, reference: Any, k: int = 3, size: int | None = None, repeats: int = 1, seed: int = 0,
) -> dict[str, float]:
    """:func:`prdc` on equal-size random subsamples of both sides, averaged over ``repeats`` draws.

    ``size`` defaults to the smaller side; it is capped at the smaller side. With a small
    reference set, repeating the draw of the larger side lowers the estimate's noise.
    """
    gen = _as_matrix(generated)
    ref = _as_matrix(reference)
    n = min(len(gen), len(ref), size or max(len(gen), len(ref)))
    rng = np.random.default_rng(seed)
    acc: dict[str, float] = {}
    for _ in range(max(1, repeats)):
        g = gen[rng.choice(len(gen), n, replace=False)] if len(gen) > n else gen
        r = ref[rng.choice(len(ref), n, replace=False)] if len(ref) > n else ref
        for key, value in prdc(g, r, k).items():
            acc[key] = acc.get(key, 0.0) + value
    out = {key: value / max(1, repeats) for key, value in acc.items()}
    out["subsample"] = float(n)
    return out


# -- everything at once ---------------------------------------------------------------------------
def category_mean_sizes(x: Any, category_slices: dict[str, slice]) -> dict[str, float]:
    """Mean number of tags per set in each category."""
    x = _as_matrix(x)
    return {cat: float(x[:, sl].sum(axis=1).mean()) if len(x) else float("nan") for cat, sl in category_slices.items()}


def all_metrics(
    generated: Any,
    reference: Any,
    train: Any | None = None,
    k: int = 3,
    subsample: int | None = None,
    repeats: int = 1,
    seed: int = 0,
    category_slices: dict[str, slice] | None = None,
) -> dict[str, Any]:
    """Every metric of ``tagtune vae evaluate`` as one flat-ish dict (JSON-ready)."""
    gen = _as_matrix(generated)
    ref = _as_matrix(reference)
    out: dict[str, Any] = {
        "n_generated": int(len(gen)),
        "n_reference": int(len(ref)),
        "jsd": marginal_jsd(gen, ref),
        "cooccurrence_r": cooccurrence_pearson(gen, ref),
        "set_size_w1": set_size_w1(gen, ref),
        "mean_set_size": float(set_sizes(gen).mean()) if len(gen) else float("nan"),
        "reference_mean_set_size": float(set_sizes(ref).mean()) if len(ref) else float("nan"),
        "empty_share": float((set_sizes(gen) == 0).mean()) if len(gen) else float("nan"),
        "diversity": diversity(gen),
        "mmd2": mmd2_tanimoto(gen, ref),
    }
    if train is not None:
        out["novelty"] = novelty(gen, train)
    p = prdc_subsampled(gen, ref, k=k, size=subsample, repeats=repeats, seed=seed)
    out.update({key: p[key] for key in ("precision", "recall", "density", "coverage")})
    out["knn_subsample"] = int(p["subsample"])
    if category_slices:
        out["mean_set_size_by_category"] = category_mean_sizes(gen, category_slices)
        out["reference_mean_set_size_by_category"] = category_mean_sizes(ref, category_slices)
    return out


def rule_violations(matrix: Any, taxonomy: Any) -> dict[str, Any]:
    """How many sets break the taxonomy's rules: the share of sets, and the count per rule."""
    m = np.asarray(matrix)
    if not taxonomy.rules or not len(m):
        return {"rate": 0.0 if len(m) else float("nan"), "sets": 0, "by_rule": {}, "rules": taxonomy.rules.to_dict()}
    by_rule: dict[str, int] = {}
    for group in taxonomy.rules.exclusive:
        hits = m[:, [taxonomy.index[t] for t in group]].sum(axis=1) > 1
        by_rule["exclusive: " + " / ".join(group)] = int(hits.sum())
    slices = taxonomy.category_slices
    for cat in taxonomy.categories:  # in taxonomy order, as the report lists them
        if cat in taxonomy.rules.counts:
            lo, hi = taxonomy.rules.counts[cat]
            n = m[:, slices[cat]].sum(axis=1)
            by_rule[f"{cat}: {lo}..{'' if hi is None else hi} tags"] = int(((n < lo) | ((n > hi) if hi is not None else False)).sum())
    bad = ~np.asarray(taxonomy.rule_mask(m))
    return {"rate": float(bad.mean()), "sets": int(bad.sum()), "by_rule": by_rule, "rules": taxonomy.rules.to_dict()}

