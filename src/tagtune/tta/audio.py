"""Audio files: float model output -> normalised, clipped PCM written atomically; reading back.

MusicGen's decoder can overshoot [-1, 1], and libsndfile does not clip when it converts floats to
integer PCM (out-of-range samples wrap around into loud clicks), so every clip is normalised as
configured (``loudness``: integrated LUFS by ITU-R BS.1770-4, :mod:`tagtune.tta.loudness`) and
then clipped and quantised here before soundfile sees it. A clip is written to a
temporary name, read back (sample rate, channels, frame count) and only then renamed into place,
so a file at its final name is always complete. Resampling uses scipy (no torchaudio here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Any

from tagtune.errors import ConfigError, InputError, OutputError
from tagtune.files.resumable import atomic_path

FORMATS = {"wav": "WAV", "flac": "FLAC"}
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
_INT_SCALE = {"PCM_16": ("int16", 32767.0), "PCM_24": ("int32", 2147483647.0), "PCM_32": ("int32", 2147483647.0)}


@dataclass(frozen=True)
class ClipInfo:
    sample_rate: int
    channels: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def check_format(fmt: str, subtype: str) -> tuple[str, str]:
    """Validate ``generate.format`` / ``generate.subtype``; returns soundfile's names for them."""
    import soundfile as sf

    fmt_l = str(fmt).lower()
    if fmt_l not in FORMATS:
        raise ConfigError(f"unknown generate.format '{fmt}'", key="generate.format", hint="use wav or flac")
    major, sub = FORMATS[fmt_l], str(subtype).upper()
    if not sf.check_format(major, sub):
        raise ConfigError(f"generate.subtype '{subtype}' cannot be written as {fmt_l}", key="generate.subtype",
                          hint="PCM_16 works for both wav and flac")
    return major, sub


def normalize_clip(audio: Any, mode: str, peak_db: float, loudness_db: float, rate: int | None = None,
                   true_peak_db: float | None = None) -> tuple[Any, dict[str, Any]]:
    """Scale one clip ``(channels, samples)``, then clip it to [-1, 1]; returns it and what was done.

    ``peak``: sample peak to ``peak_db`` dBFS. ``loudness``: integrated loudness to ``loudness_db``
    LUFS (ITU-R BS.1770-4, :mod:`tagtune.tta.loudness`; needs ``rate``) with the true peak kept
    under ``true_peak_db`` dBTP (None: no ceiling). ``none``: as it came.
    """
    import numpy as np

    x = np.nan_to_num(np.asarray(audio, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    mode = str(mode or "none").lower()
    done: dict[str, Any] = {"normalize": mode}
    if mode == "peak":
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if peak > 1e-9:
            x = x * (10 ** (float(peak_db) / 20) / peak)
        done["target_peak_db"] = float(peak_db)
    elif mode == "loudness":
        from tagtune.tta.loudness import to_target

        if rate is None:
            raise ValueError("normalize=loudness needs the clip's sample rate")
        x, info = to_target(x, int(rate), float(loudness_db), true_peak_db)
        done.update(info)
    elif mode != "none":
        raise ConfigError(f"unknown generate.normalize '{mode}'", key="generate.normalize", hint="use none, peak or loudness")
    return np.clip(x, -1.0, 1.0), done


def normalize(audio: Any, mode: str, peak_db: float, loudness_db: float, rate: int | None = None,
              true_peak_db: float | None = None) -> Any:
    """:func:`normalize_clip` without the record of what was done."""
    return normalize_clip(audio, mode, peak_db, loudness_db, rate, true_peak_db)[0]


def to_pcm(audio: Any, subtype: str) -> Any:
    """A clipped float clip ``(channels, samples)`` as the frames-first array soundfile writes."""
    import numpy as np

    x = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0).T
    if subtype in _INT_SCALE:
        dtype, scale = _INT_SCALE[subtype]
        return np.ascontiguousarray(np.round(x.astype(np.float64) * scale).astype(dtype))
    return np.ascontiguousarray(x)


def write_clip(path: Path, audio: Any, sample_rate: int, fmt: str, subtype: str) -> ClipInfo:
    """Write ``audio`` ``(channels, samples)`` (already normalised) to ``path`` atomically.

    The temporary file is read back before the rename; a file that does not read back as written
    is an :class:`OutputError` and never reaches its final name.
    """
    import soundfile as sf

    major, sub = check_format(fmt, subtype)
    data = to_pcm(audio, sub)
    expected = ClipInfo(int(sample_rate), int(data.shape[1]), int(data.shape[0]))
    with atomic_path(Path(path)) as tmp:
        try:  # by path, not through a Python file object: a failed write is then libsndfile's error code, not
            # an exception raised inside a cffi callback (which Python prints as a stray traceback)
            sf.write(str(tmp), data, int(sample_rate), subtype=sub, format=major)
        except (AssertionError, RuntimeError) as exc:  # libsndfile's short write: a full disk, most likely
            raise _write_failure(tmp, data.nbytes) from exc
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        got = probe(tmp)
        if got != expected:
            raise OutputError(f"{path}: written clip does not read back ({got} instead of {expected})")
    return expected


def _write_failure(path: Path, size: int) -> OSError:
    """soundfile reports a failed write as an assertion; turn it back into the OS error it was."""
    import errno
    import shutil

    if shutil.disk_usage(path.parent).free < size + (1 << 20):
        return OSError(errno.ENOSPC, "No space left on device")
    return OSError(errno.EIO, "the audio file could not be written")


def probe(path: Path) -> ClipInfo | None:
    """Sample rate, channels and frames of an audio file, or None when it does not read."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError, ValueError):  # soundfile raises LibsndfileError (a RuntimeError)
        return None
    if info.frames <= 0:
        return None
    return ClipInfo(int(info.samplerate), int(info.channels), int(info.frames))


def read_mono(path: Path, max_seconds: float | None = None) -> tuple[Any, int]:
    """A file as mono float32 (channels averaged), cut to ``max_seconds``; returns ``(audio, rate)``."""
    audio, rate, _ = read_mono_frames(path, max_seconds)
    return audio, rate


def read_mono_frames(path: Path, max_seconds: float | None = None) -> tuple[Any, int, int]:
    """:func:`read_mono` plus the frames the whole file holds (a clip is checked against its stated length)."""
    import numpy as np
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as fh:
            rate, total = int(fh.samplerate), int(fh.frames)
            frames = total if max_seconds is None else min(total, int(round(max_seconds * rate)))
            data = fh.read(frames, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise InputError(f"cannot read audio ({str(exc).splitlines()[0][:120]})", path) from exc
    return np.ascontiguousarray(data.mean(axis=1)), rate, total


def unplayable(audio: Any, rate: int, frames: int, stated: float | None) -> str | None:
    """Why a clip cannot be judged, in words (None: it can be).

    A file with no frames, one whose length is more than one frame off the ``stated`` seconds of its
    metadata line (a truncated or replaced file), or samples that are NaN or infinite (what a float
    file gets from an fp16 overflow): measuring any of them would give a verdict about nothing.
    """
    import numpy as np

    if stated is not None and abs(frames - stated * rate) > 1:
        empty = "no audio frames: " if frames <= 0 else ""
        return f"{empty}the file holds {frames / rate:.3f} s but its metadata line says {stated:.3f} s"
    if frames <= 0 or not np.asarray(audio).size:
        return "no audio frames"
    bad = int(np.count_nonzero(~np.isfinite(audio)))
    if bad:
        return f"{bad} of {np.asarray(audio).size} samples are NaN or infinite (an fp16 overflow writes them)"
    return None


def resample(audio: Any, rate_in: int, rate_out: int) -> Any:
    """Polyphase resampling (scipy) between integer rates."""
    import numpy as np

    if int(rate_in) == int(rate_out):
        return np.asarray(audio, dtype=np.float32)
    from scipy.signal import resample_poly

    g = gcd(int(rate_in), int(rate_out))
    return resample_poly(np.asarray(audio, dtype=np.float64), int(rate_out) // g, int(rate_in) // g).astype(np.float32)


def audio_files(folder: Path) -> list[Path]:
    """Audio files under ``folder`` (recursively, sorted; hidden and temporary files skipped)."""
    folder = Path(folder)
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
