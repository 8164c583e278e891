"""Tempo checker: measure a clip's BPM and say which tempo tags it realises.

`estimate_bpm` is a general onset-based estimator (librosa, imported lazily so this module costs
nothing until used); `judge` maps a measured BPM onto declared tag ranges.

Octave errors (half/double tempo) are the main failure of any BPM estimator. They are handled
in the estimator, not in `judge`: a fine hop (so fast tempi are resolved to a few percent), a
sub-bin refinement of the winning tempo, and librosa's log-normal tempo prior (centred on 120
BPM) to pick between octave candidates. `judge` deliberately gives *no* credit to half or
double the measured tempo: with the usual ranges slow x2 lands in fast (60-80 -> 120-160) and
fast /2 in slow, so octave credit would make "slow" and "fast" indistinguishable and the
contradiction check meaningless. Set `octave_credit` > 0 only for ranges that are not
octave-related, and then it is applied only when the raw BPM falls in no declared range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

__all__ = ["best_tag", "estimate_bpm", "judge", "onset_envelope"]

START_BPM = 120.0  # centre of the log-normal tempo prior (librosa's default)
STD_BPM = 2.0  # its width in octaves; librosa's 1.0 halves 160-190 BPM clips (see README)
AC_SECONDS = 4.0  # autocorrelation window (librosa's default 8 s favours half tempo)
SMOOTH_FRAMES = 1.5  # Gaussian blur of the onset envelope, in frames
HOP_SECONDS = 0.008  # ~125 onset frames/s: 190 BPM is ~39 frames a beat, lag steps ~2.5 %


def onset_envelope(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """Onset strength (librosa spectral flux on a log-mel spectrogram) and its frame rate."""
    import librosa

    hop = max(32, round(HOP_SECONDS * sample_rate))
    n_fft = 1 << math.ceil(math.log2(0.064 * sample_rate))  # ~64 ms window
    y = np.asarray(audio, dtype=np.float32).reshape(-1)
    env = librosa.onset.onset_strength(y=y, sr=sample_rate, hop_length=hop, n_fft=n_fft,
                                       n_mels=64, fmax=sample_rate / 2)
    if SMOOTH_FRAMES > 0:  # onsets fall between frames; blur so that a fractional beat
        # period does not lower the autocorrelation at the true lag below that at 2x the lag
        from scipy.ndimage import gaussian_filter1d

        env = gaussian_filter1d(env, SMOOTH_FRAMES, mode="constant")
    return env.astype(np.float64), sample_rate / hop


def _periodicity(env: np.ndarray, fps: float, bpm: float) -> float:
    """Normalised autocorrelation of the onset envelope at one beat period: 1 = perfectly
    periodic at this tempo, ~0 = no pulse. Used as the confidence."""
    x = env - env.mean()
    denom = float(np.dot(x, x))
    lag = 60.0 * fps / bpm
    i = int(lag)
    if denom <= 0 or i + 1 >= len(x):
        return 0.0
    ac = [float(np.dot(x[: len(x) - k], x[k:])) / denom for k in (i, i + 1)]
    frac = lag - i
    return float(np.clip((1 - frac) * ac[0] + frac * ac[1], 0.0, 1.0))


def _refine(env: np.ndarray, fps: float, bpm: float, span: float = 0.05) -> float:
    """Sub-bin BPM: maximise the beat comb (first 4 harmonics of the DFT of the onset
    envelope) within +-span of the coarse estimate. The coarse lag grid alone is too
    coarse near range edges (e.g. 150 vs 152 BPM)."""
    x = env - env.mean()
    t = np.arange(len(x)) / fps
    grid = bpm * np.linspace(1 - span, 1 + span, 201)
    f = grid[:, None] / 60.0
    step = np.exp(-2j * np.pi * f * t[None, :])
    basis, power = step.copy(), np.zeros(len(grid))
    for h in range(1, 5):
        power += np.abs(basis @ x) ** 2 / h
        basis *= step
    return float(grid[int(np.argmax(power))])


class _Log2Prior:
    """librosa's own log-normal tempo prior (Gaussian in log2 BPM, no Jacobian) in the
    `.logpdf` form beat_track accepts; scipy's lognorm would add a 1/bpm slope toward slow."""

    def __init__(self, start_bpm: float, std_bpm: float) -> None:
        self.start, self.std = math.log2(start_bpm), std_bpm

    def logpdf(self, bpm: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return -0.5 * ((np.log2(bpm) - self.start) / self.std) ** 2


def estimate_bpm(audio: np.ndarray, sample_rate: int, method: str = "tempo",
                 refine: bool = True, start_bpm: float = START_BPM,
                 std_bpm: float = STD_BPM, ac_seconds: float = AC_SECONDS
                 ) -> tuple[float, float]:
    """(bpm, confidence in [0, 1]) of a mono clip.

    method "tempo": librosa.feature.tempo (windowed autocorrelation + tempo prior);
    method "beat": librosa.beat.beat_track (dynamic-programming beat tracker).
    Returns (0.0, 0.0) for silence or clips too short to hold two beats.
    """
    import librosa

    env, fps = onset_envelope(audio, sample_rate)
    hop = round(sample_rate / fps)
    if len(env) < 2 * fps * 60.0 / 240.0 or not np.any(env > 0):
        return 0.0, 0.0
    if method == "tempo":
        ac_size = min(ac_seconds, len(env) / fps)
        bpm = float(librosa.feature.tempo(onset_envelope=env.astype(np.float32), sr=sample_rate,
                                          hop_length=hop, ac_size=ac_size,
                                          start_bpm=start_bpm, std_bpm=std_bpm)[0])
    elif method == "beat":
        tempo, _ = librosa.beat.beat_track(onset_envelope=env.astype(np.float32),
                                           sr=sample_rate, hop_length=hop,
                                           prior=_Log2Prior(start_bpm, std_bpm))
        bpm = float(np.atleast_1d(tempo)[0])
    else:
        raise ValueError(f"unknown method {method!r}; use 'tempo' or 'beat'")
    if bpm <= 0:
        return 0.0, 0.0
    if refine:
        bpm = _refine(env, fps, bpm)
    return round(bpm, 2), round(_periodicity(env, fps, bpm), 3)


def judge(bpm: float, ranges: Mapping[str, tuple[float, float]], tolerance: float = 0.0,
          octave_credit: float = 0.0) -> dict[str, float]:
    """Score every tempo tag for a measured BPM: 1.0 inside its range, else 0.0.

    `tolerance` (a fraction, e.g. 0.03) softens the edges: a BPM that far outside a range
    still scores exp(-(distance/tolerance)^2) in log-tempo. `octave_credit` (default 0, see the
    module docstring for why) scores half/double-tempo matches, only when the raw BPM falls in
    no range at all.
    """
    def score(value: float) -> dict[str, float]:
        out = {}
        for tag, (lo, hi) in ranges.items():
            if lo <= value <= hi:
                out[tag] = 1.0
            elif tolerance > 0 and value > 0:
                d = min(abs(math.log(value / lo)), abs(math.log(value / hi)))
                out[tag] = round(math.exp(-((d / tolerance) ** 2)), 4)
            else:
                out[tag] = 0.0
        return out

    scores = score(bpm)
    if octave_credit > 0 and bpm > 0 and max(scores.values(), default=0.0) < 1.0:
        for alt in (bpm / 2.0, bpm * 2.0):
            for tag, s in score(alt).items():
                scores[tag] = max(scores[tag], round(octave_credit * s, 4))
    return scores


def best_tag(bpm: float, ranges: Mapping[str, tuple[float, float]]) -> str | None:
    """The tag whose range contains the BPM (the nearest in log-tempo if none does)."""
    if bpm <= 0 or not ranges:
        return None
    def dist(r: tuple[float, float]) -> float:
        lo, hi = r
        return 0.0 if lo <= bpm <= hi else min(abs(math.log(bpm / lo)), abs(math.log(bpm / hi)))
    return min(ranges, key=lambda tag: dist(ranges[tag]))
