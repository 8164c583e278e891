"""Audio output: normalisation and clipping before PCM, atomic writes that read back, resampling."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from tagtune.tta.audio import (
    normalize,
    normalize_clip,
    probe,
    read_mono,
    resample,
    to_pcm,
    write_clip,
)


def test_out_of_range_audio_is_clipped_not_wrapped(tmp_path):
    x = np.array([[0.0, 0.5, 1.7, -3.0, np.nan]], dtype=np.float32)
    y = normalize(x, "none", -1.0, -23.0)
    assert y.max() <= 1.0 and y.min() >= -1.0 and np.isfinite(y).all()
    write_clip(tmp_path / "c.wav", y, 8000, "wav", "PCM_16")
    back, rate = sf.read(tmp_path / "c.wav", dtype="int16")
    assert rate == 8000
    assert back.tolist() == [0, 16384, 32767, -32767, 0]  # 1.7 -> full scale, never a wrapped negative


def test_peak_normalisation():
    rng = np.random.default_rng(0)
    x = rng.normal(scale=0.05, size=(1, 16000)).astype(np.float32)
    peak = normalize(x, "peak", -1.0, -23.0)
    assert np.isclose(np.abs(peak).max(), 10 ** (-1 / 20), atol=1e-6)
    silent = normalize(np.zeros((1, 10), np.float32), "peak", -1.0, -23.0)
    assert not silent.any()


def _tone(freq: float, seconds: float = 2.0, rate: int = 32000, level: float = 0.1) -> np.ndarray:
    return (level * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate))[None].astype(np.float32)


def test_loudness_targets_integrated_lufs_whatever_the_spectrum():
    """The old RMS rule put a "-23" 60 Hz tone at -26.6 LUFS and a 4 kHz one at -19.8; BS.1770 puts both at -23."""
    import pyloudnorm

    from tagtune.tta.loudness import integrated

    assert integrated(_tone(60), 32000)[0] == pytest.approx(-26.6, abs=0.1)  # what an RMS target of -23 dBFS-ish missed
    for freq in (60, 440, 4000):
        out, done = normalize_clip(_tone(freq), "loudness", -1.0, -23.0, rate=32000, true_peak_db=-1.0)
        measured = pyloudnorm.Meter(32000).integrated_loudness(out[0].astype(np.float64))  # the reference meter
        assert measured == pytest.approx(-23.0, abs=0.05), freq
        assert done["normalize"] == "loudness" and done["peak_limited"] is False and done["gated"] is True


def test_true_peak_ceiling_limits_the_peaks_and_the_clip_still_reaches_its_target():
    """A tone with clicks on it (the synth's beat): peaks ~25 dB above its loudness. A plain gain to -14 LUFS
    would put them far past the ceiling; the limiter lowers only them, and the clip still measures -14."""
    import pyloudnorm

    from tagtune.tta.loudness import measure

    clip = _tone(220, level=0.02)
    clip[0, ::6400] = 0.9  # clicks: high peaks, little loudness
    out, done = normalize_clip(clip, "loudness", -1.0, -14.0, rate=32000, true_peak_db=-1.0)
    m = measure(out, 32000)
    assert done["peak_limited"] is True and done["limiter_db"] > 3
    assert m.true_peak_db <= -1.0 + 0.01
    assert pyloudnorm.Meter(32000).integrated_loudness(out[0].astype(np.float64)) == pytest.approx(-14.0, abs=0.05)
    body = np.abs(out[0, 3200:6000]) / np.abs(out[0, 3200:6000]).max()  # between clicks the tone is a pure gain of the input
    assert np.allclose(body, np.abs(clip[0, 3200:6000]) / np.abs(clip[0, 3200:6000]).max(), atol=1e-3)
    quiet, done = normalize_clip(clip, "loudness", -1.0, -40.0, rate=32000, true_peak_db=-1.0)
    assert done["peak_limited"] is False and measure(quiet, 32000).lufs == pytest.approx(-40.0, abs=0.05)
    unbounded, done = normalize_clip(clip, "loudness", -1.0, -14.0, rate=32000, true_peak_db=None)
    assert done["peak_limited"] is False and np.abs(unbounded).max() == 1.0  # no ceiling: only the final clip


def test_true_peak_counts_peaks_between_samples():
    from tagtune.tta.loudness import true_peak_db

    rate = 8000  # a tone at a quarter of the rate sampled 45 degrees off its crest: samples reach only 0.707
    x = np.sin(2 * np.pi * 2000 * np.arange(800) / rate + np.pi / 4)[None]
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-3.01, abs=0.05)
    assert true_peak_db(x) > -0.5


def test_short_clips_are_measured_ungated_and_silence_has_no_loudness():
    from tagtune.tta.loudness import integrated, measure

    short = _tone(1000, seconds=0.1)
    out, done = normalize_clip(short, "loudness", -1.0, -20.0, rate=32000, true_peak_db=-1.0)
    lufs, gated = integrated(out, 32000)
    assert gated is False and done["gated"] is False and lufs == pytest.approx(-20.0, abs=0.05)
    # an ungated measurement of a steady tone agrees with the gated one of a longer stretch of it
    assert integrated(_tone(1000, seconds=0.3), 32000)[0] == pytest.approx(integrated(_tone(1000), 32000)[0], abs=0.2)
    silent, done = normalize_clip(np.zeros((1, 32000), np.float32), "loudness", -1.0, -23.0, rate=32000, true_peak_db=-1.0)
    assert not silent.any() and measure(silent, 32000).lufs is None and done["gain_db"] == 0.0


def test_loudness_needs_the_rate_and_handles_stereo():
    from tagtune.tta.loudness import integrated

    with pytest.raises(ValueError, match="sample rate"):
        normalize(_tone(440), "loudness", -1.0, -23.0)
    stereo = np.concatenate([_tone(440), _tone(440)])
    out = normalize(stereo, "loudness", -1.0, -23.0, rate=32000, true_peak_db=-1.0)
    assert out.shape == stereo.shape and integrated(out, 32000)[0] == pytest.approx(-23.0, abs=0.05)


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
