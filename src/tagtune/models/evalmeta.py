"""What every evaluation records beside its scores, and the self-test it runs before scoring.

``eval_manifest.json`` names the protocol, the metric implementations with the versions of the
packages behind them, the models (backbones) with their revisions, and n, so that a number can be
set beside a published one or reproduced later. The self-test embeds a few very different texts
(and, for audio models, noise next to a tonal clip) and refuses a model whose embeddings do not
tell them apart: a collapsed model (``laion/larger_clap_music`` returns near-constant text
embeddings, for example) would otherwise give meaningless scores that look fine.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from tagtune.errors import ModelQualityError

PROBE_TEXTS = (
    "a calm solo piano piece", "aggressive heavy metal with distorted guitars and screaming vocals",
    "upbeat electronic dance music with a four on the floor kick", "a choir singing in a large cathedral",
    "birds chirping in a quiet forest", "a fast drum and bass beat", "a sad slow violin melody",
    "a brass band marching in the street",
)
TEXT_LIMIT = 0.98   # mean cosine between the probe texts above which text embeddings count as collapsed
AUDIO_LIMIT = 0.98  # cosine between white noise and a tonal clip above which audio embeddings count as collapsed


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def write_manifest(folder: Path, protocol: str, n: Mapping[str, int], metrics: Mapping[str, Any],
                   models: Iterable[Mapping[str, Any]], packages: Iterable[str], **extra: Any) -> Path:
    """``folder/eval_manifest.json``: protocol, metrics, models, n, package versions, when and where."""
    from tagtune import __version__
    from tagtune.files.resumable import atomic_write_json

    record = {"protocol": protocol, "n": dict(n), "metrics": dict(metrics), "models": list(models),
              "packages": {"tagtune": __version__, **package_versions(packages)},
              "python": platform.python_version(), "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}
    return atomic_write_json(Path(folder) / "eval_manifest.json", record)


def _mean_offdiagonal(emb: Any) -> float:
    import numpy as np

    x = np.asarray(emb, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sims = x @ x.T
    n = len(x)
    return float((sims.sum() - np.trace(sims)) / (n * n - n))


def check_text_embeddings(embed: Callable[[list[str]], Any], model: str) -> float:
    """Refuse a model whose text embeddings of very different texts are (near) the same.

    Returns:
        The mean pairwise cosine of the probe texts (recorded in the manifest).

    Raises:
        ModelQualityError: One line naming the model and the figure.
    """
    mean = _mean_offdiagonal(embed(list(PROBE_TEXTS)))
    if mean > TEXT_LIMIT:
        raise ModelQualityError(
            f"self-test: '{model}' gives near-constant text embeddings (mean cosine {mean:.4f} between "
            f"{len(PROBE_TEXTS)} very different texts, limit {TEXT_LIMIT}): its scores would be meaningless",
            hint="use another checkpoint (e.g. laion/clap-htsat-unfused)",
        )
    return mean


def check_audio_embeddings(embed: Callable[[list[tuple[Any, int]]], Any], model: str, sample_rate: int = 48000) -> float:
    """Refuse a model that cannot tell white noise from a tonal clip; returns their cosine."""
    import numpy as np

    t = np.arange(int(sample_rate * 4)) / sample_rate
    noise = (np.random.default_rng(0).standard_normal(len(t)) * 0.3).astype(np.float32)
    notes = 220.0 * 2 ** (np.floor(t * 2) % 8 / 12)  # a short rising line, two notes a second
    tone = (0.3 * np.sin(2 * np.pi * notes * t) * np.exp(-3 * (t % 0.5))).astype(np.float32)
    emb = np.asarray(embed([(noise, sample_rate), (tone, sample_rate)]), dtype=np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    cosine = float(emb[0] @ emb[1])
    if cosine > AUDIO_LIMIT:
        raise ModelQualityError(
            f"self-test: '{model}' gives the same audio embedding for white noise and a tonal clip "
            f"(cosine {cosine:.4f}, limit {AUDIO_LIMIT}): its scores would be meaningless",
            hint="use another checkpoint (e.g. laion/clap-htsat-unfused)",
        )
    return cosine
