"""Loudness by ITU-R BS.1770-4 (pyloudnorm): measuring a clip and bringing it to a target in LUFS.

Why not RMS: an RMS target ignores how loud frequencies *sound*, so a "-23" RMS clip of a 60 Hz tone
measures -26.6 LUFS and one of a 4 kHz tone -19.8. BS.1770 K-weights the signal (a high shelf and
a high-pass), measures it in 400 ms blocks with 75 % overlap, and gates out silence (blocks below
-70 LUFS) and quiet passages (blocks more than 10 LU under the ungated mean): the integrated
loudness that broadcast (EBU R128: -23 LUFS) and streaming (-14 LUFS) targets are stated in.

Two rules a user should know:

* **Short clips.** A clip under one gating block (0.4 s) has no block to gate, so it is measured
  as one block of its own length: the K-weighted loudness of the whole clip, without gating.
  Such a clip is flagged ``ungated`` in its provenance.
* **True-peak ceiling.** After the gain to the target, the clip's true peak (4x oversampled with
  scipy's polyphase filter, as BS.1770 Annex 2 suggests) must stay under ``true_peak_db`` dBTP.
  Peaks that would pass it are lowered by a look-ahead limiter (a gain dip of a few milliseconds
  around each, nothing else changes), and the clip still reaches its target: percussive clips
  (the synth's clicks, drum hits) have peaks 25 dB and more above their loudness, which a plain gain
  could only meet by missing the target by several LU. Such a clip is flagged ``peak_limited``
  with the largest reduction (``limiter_db``). Its stored loudness is what it measures.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

BLOCK_SECONDS = 0.4  # BS.1770's gating block: shorter clips are measured ungated
OVERSAMPLE = 4  # true peak: 4x oversampling (BS.1770-4 Annex 2 for 48 kHz; finer for lower rates)
METHOD = "ITU-R BS.1770-4 (pyloudnorm)"


@dataclass(frozen=True)
class Measured:
    """A clip's loudness: ``lufs`` (None for silence), ``gated`` (False: shorter than one block), and
    its true peak in dBTP (None for silence)."""

    lufs: float | None
    gated: bool
    true_peak_db: float | None


def _frames_first(audio: Any) -> Any:
    """``(channels, samples)`` (or mono ``(samples,)``) as the float64 ``(samples, channels)`` pyloudnorm reads."""
    import numpy as np

    x = np.asarray(audio, dtype=np.float64)
    return (x[None] if x.ndim == 1 else x).T


def integrated(audio: Any, rate: int) -> tuple[float | None, bool]:
    """Integrated loudness in LUFS of ``(channels, samples)`` audio and whether it was gated.

    A clip of at least one gating block is measured as BS.1770-4 specifies; a shorter one as a
    single block of its own length (no gating). Silence gives None (BS.1770: minus infinity).
    """
    import numpy as np
    import pyloudnorm

    data = _frames_first(audio)
    n = data.shape[0]
    if n == 0 or not np.any(data):
        return None, n >= BLOCK_SECONDS * rate
    gated = n >= BLOCK_SECONDS * rate
    # one block as long as the clip: pyloudnorm wants strictly more samples than a block holds
    meter = pyloudnorm.Meter(int(rate)) if gated else pyloudnorm.Meter(int(rate), block_size=(n - 0.5) / rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyloudnorm warns about clipping; clips here are in range by design
        value = float(meter.integrated_loudness(data))
    return (round(value, 4) if math.isfinite(value) else None), gated


def true_peak_db(audio: Any) -> float | None:
    """The true peak (dBTP) of ``(channels, samples)`` audio: the largest absolute sample after 4x
    oversampling, so peaks between samples count. None for silence."""
    import numpy as np
    from scipy.signal import resample_poly

    x = np.asarray(audio, dtype=np.float64)
    x = x[None] if x.ndim == 1 else x
    if x.size == 0:
        return None
    peak = float(np.max(np.abs(x)))
    if x.shape[1] >= 8:
        peak = max(peak, float(np.max(np.abs(resample_poly(x, OVERSAMPLE, 1, axis=1)))))
    return round(20 * math.log10(peak), 4) if peak > 0 else None


def measure(audio: Any, rate: int) -> Measured:
    """Integrated loudness (gated or not) and true peak of one clip."""
    lufs, gated = integrated(audio, rate)
    return Measured(lufs, gated, true_peak_db(audio))


def _oversampled_envelope(x: Any) -> Any:
    """Per sample, the largest absolute value over channels and the 4 oversampled points it spans."""
    import numpy as np
    from scipy.signal import resample_poly

    up = np.abs(resample_poly(x, OVERSAMPLE, 1, axis=1)).max(axis=0)
    n = x.shape[1]
    up = np.pad(up[: n * OVERSAMPLE], (0, max(0, n * OVERSAMPLE - len(up))))
    return np.maximum(up.reshape(n, OVERSAMPLE).max(axis=1), np.abs(x).max(axis=0))


def limit(audio: Any, rate: int, ceiling_db: float, envelope: Any = None) -> tuple[Any, float]:
    """A look-ahead true-peak limiter: lower the gain around every (oversampled) peak above ``ceiling_db``
    and nowhere else. Returns the limited audio and the largest reduction in dB (0.0: nothing to do).

    The gain curve is the needed gain, min-filtered and then averaged over the same 10 ms window:
    it falls before a peak and recovers after it, and is never above what any sample needs (aimed
    0.1 dB under the ceiling, for the gain's slope between samples). ``envelope``: the audio's
    :func:`_oversampled_envelope` when the caller has it (it scales with any plain gain)."""
    import numpy as np
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    x = np.asarray(audio, dtype=np.float64)
    if x.shape[1] < 8:
        return x, 0.0
    env = _oversampled_envelope(x) if envelope is None else envelope
    need = np.minimum(1.0, 10 ** ((float(ceiling_db) - 0.1) / 20) / np.maximum(env, 1e-12))
    if need.min() >= 1.0:
        return x, 0.0
    width = 2 * max(1, round(0.005 * rate)) + 1
    gain = np.minimum(uniform_filter1d(minimum_filter1d(need, width, mode="nearest"), width, mode="nearest"), 1.0)
    return x * gain, round(-20 * math.log10(float(gain.min())), 4)


def to_target(audio: Any, rate: int, target_lufs: float, ceiling_db: float | None,
              tolerance: float = 0.01, rounds: int = 6) -> tuple[Any, dict[str, Any]]:
    """Scale a clip to ``target_lufs`` integrated loudness with its true peak under ``ceiling_db`` dBTP.

    A gain brings the clip to the target; peaks that then pass the ceiling go through :func:`limit`
    (it lowers only the peaks, which takes a little loudness away), and the gain is corrected and the
    limiter run again, from the original, until the loudness is within ``tolerance`` LU. Returns the
    audio and what was done: the gain, whether the limiter acted and by how much at most.
    """
    import numpy as np

    x = np.asarray(audio, dtype=np.float64)
    lufs, gated = integrated(x, rate)
    info: dict[str, Any] = {"target_lufs": float(target_lufs), "gated": gated, "gain_db": 0.0, "peak_limited": False}
    if lufs is None:
        return x.astype(np.float32), info  # silence stays silence
    target = float(target_lufs)
    gain, y, reduction = target - lufs, x, 0.0
    envelope = _oversampled_envelope(x) if ceiling_db is not None and x.shape[1] >= 8 else None  # once: it scales
    before: tuple[float, float] | None = None  # the previous round's (gain, loudness): a secant step
    for _ in range(rounds):
        y = x * 10 ** (gain / 20)
        reduction = 0.0
        if envelope is not None:
            y, reduction = limit(y, rate, float(ceiling_db), envelope * 10 ** (gain / 20))
        now, _ = integrated(y, rate)
        if now is None or abs(now - target) <= tolerance:
            break
        # limiting takes more loudness away the harder it works: loudness grows slower than the gain
        slope = 1.0 if before is None or gain == before[0] else (now - before[1]) / (gain - before[0])
        before = (gain, now)
        gain += (target - now) / min(1.0, max(0.05, slope))
    if reduction > 0:  # the last word: whatever the gain's slope let through goes by a plain gain
        peak = true_peak_db(y)
        if peak is not None and peak > float(ceiling_db):
            y = y * 10 ** ((float(ceiling_db) - peak) / 20)
    info.update(gain_db=round(gain, 4), peak_limited=reduction > 0, limiter_db=reduction)
    return y.astype(np.float32), info
