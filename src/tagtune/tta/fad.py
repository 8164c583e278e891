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
