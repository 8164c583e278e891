"""Key estimation: which of the 24 major and minor keys a clip is in, with a confidence.

The Krumhansl-Schmuckler method: a clip's pitch-class profile (librosa's constant-Q chroma,
log-compressed and summed over time) is correlated with a key profile rotated to each of the
12 tonics, for major and minor; the best correlation names the key, and that correlation is the
confidence (1: the clip's pitch classes are distributed exactly like the profile's). Two profiles
are built in: Krumhansl and Kessler's probe-tone ratings (1982), the method's original, and
Temperley's profiles counted from the Kostka-Payne harmony textbook (2007), which weigh the scale
degrees more sharply. The accuracy of each on clips whose key is known is measured by
``benchmarks/bench_audio_facts.py`` (docs/benchmarks.md); Krumhansl-Kessler, the default
(``verification.key.profile``), was the more accurate on the synth's clips (52% against 45% exact
at 4 s); both name every key of an unambiguous cadence.

What it cannot do: tell keys that share all their notes apart when the music does not lean on
the tonic (a progression that dwells on vi sounds like the relative minor), say anything of atonal
or unpitched audio (the confidence is then low; ``verification.key.min_confidence`` turns such
estimates into null), or follow modulations (one key per clip).
"""

from __future__ import annotations

import warnings
from typing import Any

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
PROFILES: dict[str, dict[str, tuple[float, ...]]] = {
    # Krumhansl & Kessler (1982), probe-tone ratings, tonic first
    "krumhansl": {"major": (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
                  "minor": (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)},
    # Temperley (2007), "Music and Probability": scale-degree frequencies in the Kostka-Payne corpus
    "temperley": {"major": (0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400),
                  "minor": (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330)},
}
HOP_SECONDS = 0.05  # chroma frames: pitch content changes slowly, a coarse hop keeps the CQT cheap


def key_name(tonic: int, mode: str) -> str:
    """``"A minor"`` for tonic 9 (pitch class, C = 0) and mode ``minor``."""
    return f"{PITCH_CLASSES[int(tonic) % 12]} {mode}"


def estimator(profile: str) -> str:
    """How keys were estimated, in words (recorded in the provenance of every row that carries one)."""
    return f"tagtune.tta.key: librosa chroma_cqt + Krumhansl-Schmuckler correlation, {profile} profiles"


def chroma_profile(audio: Any, sample_rate: int) -> Any:
    """The clip's 12-bin pitch-class distribution: constant-Q chroma (tuning estimated), log-compressed
    per frame so that a loud bass note or drum hit does not outweigh the harmony, summed over frames."""
    import librosa
    import numpy as np

    y = np.asarray(audio, dtype=np.float32).reshape(-1)
    hop = 512 * max(1, round(HOP_SECONDS * sample_rate / 512))  # the CQT wants a multiple of 2^(octaves-1)
    with warnings.catch_warnings():  # librosa warns when a low octave's window outlasts a short clip: harmless here
        warnings.simplefilter("ignore", UserWarning)
        chroma = librosa.feature.chroma_cqt(y=y, sr=sample_rate, hop_length=hop, norm=None)
    return np.asarray(np.log1p(10.0 * chroma).sum(axis=1), dtype=np.float64)


def correlations(profile: Any, which: str = "krumhansl") -> dict[tuple[int, str], float]:
    """Pearson correlation of a pitch-class distribution with every key's rotated profile."""
    import numpy as np

    x = np.asarray(profile, dtype=np.float64)
    out: dict[tuple[int, str], float] = {}
    if not np.any(x) or np.std(x) == 0:
        return out
    for mode, weights in PROFILES[which].items():
        w = np.asarray(weights, dtype=np.float64)
        for tonic in range(12):
            out[(tonic, mode)] = float(np.corrcoef(x, np.roll(w, tonic))[0, 1])
    return out


def estimate_key(audio: Any, sample_rate: int, profile: str = "krumhansl") -> tuple[str | None, float]:
    """``(key, confidence)`` of a mono clip: ``("A minor", 0.83)``; ``(None, 0.0)`` for silence or a
    clip with no pitch content (flat chroma). The confidence is the best key's correlation, clipped to [0, 1]."""
    import numpy as np

    y = np.asarray(audio, dtype=np.float32).reshape(-1)
    if y.size < sample_rate // 10 or not np.any(y):
        return None, 0.0
    scores = correlations(chroma_profile(y, sample_rate), profile)
    if not scores:
        return None, 0.0
    (tonic, mode), best = max(scores.items(), key=lambda kv: kv[1])
    return key_name(tonic, mode), round(float(np.clip(best, 0.0, 1.0)), 3)
