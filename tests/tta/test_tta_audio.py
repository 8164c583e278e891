"""Audio output: normalisation and clipping before PCM, atomic writes that read back, resampling."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from tagtune.tta.audio import normalize, probe, read_mono, resample, to_pcm, write_clip


def test_out_of_range_audio_is_clipped_not_wrapped(tmp_path):
    x = np.array([[0.0, 0.5, 1.7, -3.0, np.nan]], dtype=np.float32)
    y = normalize(x, "none", -1.0, -23.0)
    assert y.max() <= 1.0 and y.min() >= -1.0 and np.isfinite(y).all()
    write_clip(tmp_path / "c.wav", y, 8000, "wav", "PCM_16")
    back, rate = sf.read(tmp_path / "c.wav", dtype="int16")
    assert rate == 8000
    assert back.tolist() == [0, 16384, 32767, -32767, 0]  # 1.7 -> full scale, never a wrapped negative


def test_peak_and_loudness_normalisation():
    rng = np.random.default_rng(0)
    x = rng.normal(scale=0.05, size=(1, 16000)).astype(np.float32)
    peak = normalize(x, "peak", -1.0, -23.0)
    assert np.isclose(np.abs(peak).max(), 10 ** (-1 / 20), atol=1e-6)
    loud = normalize(x, "loudness", -1.0, -20.0)
    assert np.isclose(20 * np.log10(np.sqrt(np.mean(loud.astype(np.float64) ** 2))), -20.0, atol=0.05)
    silent = normalize(np.zeros((1, 10), np.float32), "peak", -1.0, -23.0)
    assert not silent.any()


def test_unknown_normalize_mode_and_format():
    from tagtune.errors import ConfigError
    from tagtune.tta.audio import check_format

    with pytest.raises(ConfigError):
        normalize(np.zeros((1, 4)), "loudest", -1, -23)
    with pytest.raises(ConfigError, match="wav or flac"):
        check_format("mp3", "PCM_16")


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_write_clip_is_atomic_and_reads_back(tmp_path, fmt):
    x = np.sin(np.linspace(0, 100, 2 * 4000, dtype=np.float32)).reshape(2, 4000) * 0.5
    target = tmp_path / f"clip.{fmt}"
    info = write_clip(target, x, 16000, fmt, "PCM_16")
    assert (info.sample_rate, info.channels, info.frames) == (16000, 2, 4000)
    assert probe(target) == info
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # not the private mode of the temporary file
    mono, rate = read_mono(target, max_seconds=0.1)
    assert rate == 16000 and mono.shape == (1600,)
    pcm = to_pcm(x, "PCM_16")
    assert pcm.dtype == np.int16 and pcm.shape == (4000, 2)


def test_probe_refuses_broken_files(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00not a wave")
    assert probe(bad) is None
    assert probe(tmp_path / "missing.wav") is None


def test_resample_preserves_a_tone():
    rate_in, rate_out = 16000, 48000
    t = np.arange(rate_in) / rate_in
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    up = resample(tone, rate_in, rate_out)
    assert up.shape == (rate_out,)
    spectrum = np.abs(np.fft.rfft(up))
    assert abs(np.argmax(spectrum) * rate_out / len(up) - 440) < 2
    assert resample(tone, 16000, 16000) is not None and np.array_equal(resample(tone, 16000, 16000), tone)
