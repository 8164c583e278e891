"""Frechet Audio Distance: the Frechet distance between Gaussians fitted to two sets of embeddings.

``FAD = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``. The matrix square root comes from
scipy's ``sqrtm``; when the product is near-singular (fewer clips than embedding dimensions, the
usual case for small runs) a small ridge is added to both covariances, as the reference
implementations do, and the result is flagged as unreliable by the caller.
"""

from __future__ import annotations

from typing import Any


def gaussian_stats(embeddings: Any) -> tuple[Any, Any]:
    """Mean and (unbiased) covariance of ``(n, dim)`` embeddings; needs n >= 2."""
    import numpy as np

    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need at least 2 embeddings of shape (n, dim), got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    Example:
        >>> import numpy as np
        >>> round(frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2)), 6)  # 2 + 2*(2-1)^2
        4.0
    """
    import numpy as np
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: means {mu1.shape} / {mu2.shape}, covariances {s1.shape} / {s2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():  # singular product: add a small ridge to both covariances
        offset = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)  # round-off leaves tiny imaginary parts
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


def fad(embeddings_a: Any, embeddings_b: Any) -> float:
    """FAD between two sets of embeddings ``(n_a, dim)`` and ``(n_b, dim)``."""
    mu_a, s_a = gaussian_stats(embeddings_a)
    mu_b, s_b = gaussian_stats(embeddings_b)
    return frechet_distance(mu_a, s_a, mu_b, s_b)


def fad_infinity(frames: Any, ref_mu: Any, ref_sigma: Any, steps: int = 25, min_n: int | None = None,
                 seed: int = 0) -> dict[str, Any]:
    """FAD extrapolated to infinitely many frames (Chung et al.'s FAD-inf, fadtk's procedure).

    FAD is biased upwards at small n. Draw ``n`` frames with replacement for ``steps`` values of n
    evenly spaced from ``min_n`` to all frames, fit FAD(n) = slope / n + intercept by least squares;
    the intercept is FAD-inf. Returns the value, the slope, the fit's R^2 and the (n, FAD) points.
    """
    import numpy as np

    x = np.asarray(frames, dtype=np.float64)
    total = len(x)
    low = min_n if min_n is not None else max(2 * x.shape[1], total // 10, 2)
    low = min(low, total)
    ns = sorted({int(n) for n in np.linspace(low, total, steps)})
    if len(ns) < 3:
        return {"value": None, "note": f"too few frames ({total}) for FAD-inf"}
    rng = np.random.default_rng(seed)
    ys = np.array([frechet_distance(ref_mu, ref_sigma, *gaussian_stats(x[rng.integers(0, total, n)])) for n in ns])
    xs = 1.0 / np.array(ns, dtype=np.float64)
    slope, intercept = np.polyfit(xs, ys, 1)
    fitted = slope * xs + intercept
    r2 = 1.0 - float(np.sum((ys - fitted) ** 2)) / max(float(np.sum((ys - ys.mean()) ** 2)), 1e-12)
    return {"value": float(intercept), "slope": float(slope), "r2": r2, "points": [[n, float(y)] for n, y in zip(ns, ys)]}


def per_clip(clip_frames: list[Any], ref_mu: Any, ref_sigma: Any) -> list[float | None]:
    """Each clip's own FAD against the reference (its frames' Gaussian vs the reference's): outliers
    stand out. None for a clip with fewer than two frames."""
    out: list[float | None] = []
    for frames in clip_frames:
        out.append(frechet_distance(ref_mu, ref_sigma, *gaussian_stats(frames)) if len(frames) >= 2 else None)
    return out


def fixed_n(gen: Any, ref: Any, n: int, repeats: int = 5, seed: int = 0) -> dict[str, Any]:
    """FAD on ``n`` clips drawn (without replacement) from each side, averaged over ``repeats`` draws:
    numbers from datasets of different sizes compare when they use the same n."""
    import numpy as np

    gen, ref = np.asarray(gen), np.asarray(ref)
    if min(len(gen), len(ref)) < n:
        return {"value": None, "note": f"fixed n={n} needs at least {n} clips on each side (got {len(gen)}, {len(ref)})"}
    rng = np.random.default_rng(seed)
    values = [fad(gen[rng.choice(len(gen), n, replace=False)], ref[rng.choice(len(ref), n, replace=False)])
              for _ in range(repeats)]
    return {"value": float(np.mean(values)), "std": float(np.std(values)), "n": n, "repeats": repeats}
