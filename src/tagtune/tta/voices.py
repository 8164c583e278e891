"""The synth renderer's instruments: band-limited oscillators, plucked and bowed strings, reeds and drums.

Each pitched voice renders one note ``(f0, gate, sample_rate, rng) -> samples``; each beat voice a
bar of drum hits, per beat. :data:`VOICES` names them for the tagmap (``piano``, ``drums`` ...).
Everything is numpy/scipy and seeded through :func:`rng_for`, so the same seed gives the same
samples on every platform. :mod:`tagtune.tta.synth` plans and mixes them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal

__all__ = ["NO_VOICE", "VOICES", "Voice", "hz", "rng_for"]


# ----------------------------------------------------------------------------------------------
# Small DSP helpers
# ----------------------------------------------------------------------------------------------

_TABLE_SIZE = 4096


def rng_for(seed: int, *names: str) -> np.random.Generator:
    """Independent, platform-stable stream per (seed, name) — not Python's salted hash()."""
    keys = [zlib.crc32(n.encode()) for n in names]
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *keys])


def hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


@lru_cache(maxsize=256)
def _wavetable(shape: str, n_harm: int) -> np.ndarray:
    """One band-limited cycle with `n_harm` harmonics (so oscillators never alias)."""
    k = np.arange(1, max(1, n_harm) + 1)
    amps = {
        "sine": (k == 1).astype(float),
        "saw": 1.0 / k,
        "square": np.where(k % 2 == 1, 1.0 / k, 0.0),
        "reed": np.where(k % 2 == 1, 1.0, 0.45) / k ** 0.8,  # odd-heavy, bright: free reed
        "flute": np.array([1.0, 0.22, 0.06, 0.02] + [0.0] * max(0, len(k) - 4))[: len(k)],
        "dark": 1.0 / k ** 2.2,  # muted brass at the start of a note
    }[shape]
    spec = np.zeros(_TABLE_SIZE // 2 + 1, dtype=complex)
    spec[1 : len(k) + 1] = -1j * amps * (_TABLE_SIZE / 2)
    table = np.fft.irfft(spec, _TABLE_SIZE)
    return table / np.max(np.abs(table))


def _osc(shape: str, f0: float, phase: np.ndarray, sr: int, cap: int = 40) -> np.ndarray:
    """Read a band-limited wavetable at `phase` (in cycles); harmonics stop below Nyquist."""
    table = _wavetable(shape, int(min(cap, 0.45 * sr / f0)))
    idx = (phase % 1.0) * _TABLE_SIZE
    i0 = idx.astype(np.int64)
    frac = idx - i0
    return table[i0] * (1.0 - frac) + table[(i0 + 1) % _TABLE_SIZE] * frac


def _phase(f0: float, n: int, sr: int, vib_rate: float = 0.0, vib_depth: float = 0.0,
           vib_delay: float = 0.0, start: float = 0.0) -> np.ndarray:
    """Phase in cycles, with optional vibrato that fades in after `vib_delay` seconds."""
    t = np.arange(n) / sr
    depth = vib_depth * np.clip((t - vib_delay) / 0.25, 0.0, 1.0) if vib_depth else 0.0
    freq = f0 * (1.0 + depth * np.sin(2 * np.pi * vib_rate * t))
    return start + np.cumsum(freq) / sr


def _env(n: int, sr: int, attack: float, gate: float, release: float,
         decay: float | None = None, sustain: float = 1.0) -> np.ndarray:
    """Attack / (decay to sustain) / release envelope; the release tail fades to about -45 dB."""
    t = np.arange(n) / sr
    e = np.minimum(1.0, t / attack) if attack > 0 else np.ones(n)
    if decay is not None:
        e = e * (sustain + (1.0 - sustain) * np.exp(-t / decay))
    tail = t > gate
    e[tail] *= np.exp(-(t[tail] - gate) / max(release / 5.0, 1e-3))
    return e


@lru_cache(maxsize=128)
def _sos(kind: str, lo: float, hi: float, sr: int, order: int = 2) -> np.ndarray:
    """Cached Butterworth filter; frequencies are clipped to what this sample rate allows."""
    nyq = sr / 2.0
    lo_n, hi_n = min(lo / nyq, 0.95), min(hi / nyq, 0.95)
    if kind == "band":
        return signal.butter(order, [min(lo_n, hi_n * 0.9), hi_n], "bandpass", output="sos")
    return signal.butter(order, lo_n, kind, output="sos")


def _filt(x: np.ndarray, kind: str, lo: float, sr: int, hi: float = 0.0,
          order: int = 2) -> np.ndarray:
    return signal.sosfilt(_sos(kind, lo, hi, sr, order), x)


def _karplus(f0: float, n: int, sr: int, rng: np.random.Generator, loss: float,
             brightness: float) -> np.ndarray:
    """Karplus-Strong string, computed a period at a time (vectorised, no per-sample loop)."""
    period = max(2, round(sr / f0 - 0.5))
    burst = rng.uniform(-1.0, 1.0, period)
    if brightness < 1.0:  # a softer pluck: low-pass the excitation
        burst = _filt(burst, "low", max(200.0, brightness * sr * 0.45), sr)
    chunks = n // period + 2
    out = np.zeros(chunks * period)
    out[:period] = burst - burst.mean()
    for k in range(1, chunks):
        prev = out[(k - 1) * period : k * period]
        before = out[(k - 1) * period - 1 : k * period - 1] if k > 1 else np.r_[0.0, prev[:-1]]
        out[k * period : (k + 1) * period] = loss * 0.5 * (prev + before)
    return out[:n]


# ----------------------------------------------------------------------------------------------
# Voices: one function per timbre renders one note of `gate` seconds (plus its release tail).
# ----------------------------------------------------------------------------------------------

NoteFn = Callable[[float, float, int, np.random.Generator], np.ndarray]


def _piano(f0: float, gate: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Struck string: slightly stretched partials, upper ones dying first, plus a hammer thud."""
    n = int((gate + 0.25) * sr)
    t = np.arange(n) / sr
    k = np.arange(1, 13)[:, None]
    fk = k * f0 * np.sqrt(1.0 + 0.0004 * k ** 2)
    keep = (fk[:, 0] < 0.45 * sr)
    tau = 1.6 * (220.0 / f0) ** 0.5 / (1.0 + 0.45 * (k - 1))
    amp = (1.0 / k ** 1.1) * np.exp(-t[None, :] / tau)
    ph = rng.uniform(0, 2 * np.pi, (12, 1))
    tone = (amp * np.sin(2 * np.pi * fk * t[None, :] + ph))[keep].sum(axis=0)
    thud = _filt(rng.standard_normal(n) * np.exp(-t / 0.004), "low", 1200.0, sr) * 0.6
    return (tone + thud) * _env(n, sr, 0.002, gate, 0.25)


def _epiano(f0: float, gate: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """FM tine: bright bell-like attack whose modulation index decays into a round sine."""
    n = int((gate + 0.3) * sr)
    t = np.arange(n) / sr
    index = 2.8 * np.exp(-t / 0.12) + 0.35
    mod = np.sin(2 * np.pi * f0 * t) * index
    tine = 0.0
    if 7.0 * f0 < 0.45 * sr:  # the metallic tine partial, only where it cannot alias
        tine = 0.25 * np.sin(2 * np.pi * 7.0 * f0 * t) * np.exp(-t / 0.03)
    y = np.sin(2 * np.pi * f0 * t + mod + rng.uniform(0, 2 * np.pi)) + tine
    return y * np.exp(-t / 1.8) * _env(n, sr, 0.001, gate, 0.3)


def _pluck(f0: float, gate: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Acoustic guitar: Karplus-Strong with a soft, fairly quickly decaying string."""
    n = int((gate + 0.2) * sr)
    return _karplus(f0, n, sr, rng, 0.996, 0.55) * _env(n, sr, 0.0, gate, 0.2)


def _eguitar(f0: float, gate: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Clean-ish electric: long-sustain bright string, lightly overdriven, pickup-like band."""
    n = int((gate + 0.15) * sr)
    y = np.tanh(4.0 * _karplus(f0, n, sr, rng, 0.9995, 1.0))
    return _filt(y, "band", 200.0, sr, 3500.0) * _env(n, sr, 0.0, gate, 0.15)


def _distguitar(f0: float, gate: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Distorted power chord tone: detuned saws hard-clipped, then a cabinet low-pass."""
    n = int((gate + 0.08) * sr)
    y = sum(_osc("saw", f0 * d, _phase(f0 * d, n, sr, start=rng.uniform()), sr)
            for d in (0.997, 1.0, 1.004))
    y = np.tanh(6.0 * y)
    return _filt(y, "low", 3200.0, sr, order=4) * _env(n, sr, 0.004, gate, 0.08, 0.25, 0.6)


def _bass(f0: float, gate: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Electric bass: low sine plus a little 2nd/3rd harmonic, plucked envelope."""
    n = int((gate + 0.08) * sr)
    ph = 2 * np.pi * _phase(f0, n, sr, start=rng.uniform())
    y = np.sin(ph) + 0.35 * np.sin(2 * ph) + 0.12 * np.sin(3 * ph)
    return y * _env(n, sr, 0.006, gate, 0.08, decay=0.35, sustain=0.45)


def _upright(f0: float, gate: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Double bass: a dark, woody low string pluck that dies away."""
    n = int((gate + 0.1) * sr)
    y = _filt(_karplus(f0, n, sr, rng, 0.995, 0.15), "low", 900.0, sr)
    return y * _env(n, sr, 0.0, gate, 0.1)


def _bowed(f0: float, gate: float, sr: int, rng: np.random.Generator, detunes: Iterable[float],
           attack: float, vib: float) -> np.ndarray:
    """Bowed strings: saws with delayed vibrato and a slow attack; several = a section."""
    n = int((gate + 0.3) * sr)
    y = sum(_osc("saw", f0, _phase(f0 * d, n, sr, 5.5 + rng.uniform(-.4, .4), vib, 0.2,
                                   rng.uniform()), sr, cap=30) for d in detunes)
    y = _filt(y, "low", 4500.0, sr)
    return y * _env(n, sr, attack, gate, 0.3)


def _strings(f0: float, gate: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    return _bowed(f0, gate, sr, rng, (0.996, 1.0, 1.004), 0.25, 0.003)


def _solo_string(f0: float, gate: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    return _bowed(f0, gate, sr, rng, (1.0,), 0.08, 0.006)


def _brass(f0: float, gate: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Brass: a dark tone that brightens as the lips 'open' (cross-fade of two tables)."""
    n = int((gate + 0.1) * sr)
    t = np.arange(n) / sr
    ph = _phase(f0, n, sr, 5.0, 0.002, 0.3, rng.uniform())
    bright = np.clip(t / 0.06, 0.0, 1.0) * (0.75 + 0.25 * np.exp(-t / 0.2))
    y = (1.0 - bright) * _osc("dark", f0, ph, sr) + bright * _osc("saw", f0, ph, sr)
    return y * _env(n, sr, 0.03, gate, 0.1)


def _reed(f0: float, gate: float, sr: int, rng: np.random.Generator, band: tuple[float, float],
          vib: float) -> np.ndarray:
    """Reed tone through a formant band; used for saxophone and harmonica."""
    n = int((gate + 0.08) * sr)
    ph = _phase(f0, n, sr, 5.2, vib, 0.15, rng.uniform())
    y = _osc("reed", f0, ph, sr) + 0.03 * rng.standard_normal(n)
    y = _filt(y, "band", band[0], sr, band[1])
    return y * _env(n, sr, 0.02, gate, 0.08)


def _sax(f0: float, gate: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    return _reed(f0, gate, sr, rng, (250.0, 2200.0), 0.005)


def _harmonica(f0: float, gate: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    y = _reed(f0, gate, sr, rng, (700.0, 4500.0), 0.0)
    t = np.arange(len(y)) / sr
    return y * (1.0 - 0.35 * (0.5 + 0.5 * np.sin(2 * np.pi * 6.5 * t)))  # hand tremolo


def _flute(f0: float, gate: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Flute: near-sine with soft overtones, vibrato, and band-passed breath noise."""
    n = int((gate + 0.1) * sr)
    y = _osc("flute", f0, _phase(f0, n, sr, 5.0, 0.004, 0.2, rng.uniform()), sr)
    breath = _filt(rng.standard_normal(n), "band", f0, sr, min(4.0 * f0, 0.45 * sr))
    return (y + 0.12 * breath) * _env(n, sr, 0.06, gate, 0.1)


def _synth(f0: float, gate: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """PWM synth: difference of two saws whose offset (the pulse width) is swept by an LFO."""
    n = int((gate + 0.05) * sr)
    t = np.arange(n) / sr
    ph = _phase(f0, n, sr, start=rng.uniform())
    width = 0.5 + 0.35 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 2 * np.pi))
    y = _osc("saw", f0, ph, sr) - _osc("saw", f0, ph + width, sr)
    y = _filt(y, "low", 2800.0, sr)
    return y * _env(n, sr, 0.005, gate, 0.05, decay=0.3, sustain=0.7)


# ----------------------------------------------------------------------------------------------
# Beat voices: one hit each; patterns place them on beats.
# ----------------------------------------------------------------------------------------------

def _kick(sr: int, rng: np.random.Generator, low: float = 50.0, tau: float = 0.16) -> np.ndarray:
    t = np.arange(int(0.45 * sr)) / sr
    freq = low + 90.0 * np.exp(-t / 0.035)
    body = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / tau)
    click = _filt(rng.standard_normal(len(t)) * np.exp(-t / 0.002), "low", 4000.0, sr) * 0.3
    return body + click


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.25 * sr)) / sr
    tone = (np.sin(2 * np.pi * 185 * t) + 0.5 * np.sin(2 * np.pi * 330 * t)) * np.exp(-t / 0.04)
    noise = _filt(rng.standard_normal(len(t)), "band", 1500.0, sr, 7000.0) * np.exp(-t / 0.09)
    return 0.6 * tone + 1.0 * noise


def _hat(sr: int, rng: np.random.Generator, tau: float = 0.025) -> np.ndarray:
    t = np.arange(int(0.1 * sr)) / sr
    return _filt(rng.standard_normal(len(t)), "high", min(6000.0, 0.35 * sr), sr) * np.exp(-t / tau)


def _clap(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.2 * sr)) / sr
    bursts = sum(np.exp(-np.clip(t - d, 0, None) / 0.006) * (t >= d) for d in (0.0, 0.011, 0.022))
    env = bursts + 0.6 * (t >= 0.03) * np.exp(-np.clip(t - 0.03, 0, None) / 0.07)
    return _filt(rng.standard_normal(len(t)), "band", 900.0, sr, 3000.0) * env


def _conga(sr: int, rng: np.random.Generator, f0: float) -> np.ndarray:
    t = np.arange(int(0.3 * sr)) / sr
    freq = f0 * (1.0 + 0.15 * np.exp(-t / 0.01))
    slap = _filt(rng.standard_normal(len(t)) * np.exp(-t / 0.003), "band", 800.0, sr, 3000.0)
    return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.12) + 0.3 * slap


def _shaker(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.09 * sr)) / sr
    env = np.minimum(1.0, t / 0.012) * np.exp(-t / 0.025)
    return _filt(rng.standard_normal(len(t)), "band", 3000.0, sr, 7000.0) * env


def _click(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.06 * sr)) / sr
    wood = np.sin(2 * np.pi * 900 * t) * np.exp(-t / 0.012)
    return wood + 0.5 * _hat(sr, rng, 0.004)[: len(t)]


BeatFn = Callable[[int, np.random.Generator], list[list[tuple[np.ndarray, float]]]]


def _drums_kit(sr: int, rng: np.random.Generator) -> list[list[tuple[np.ndarray, float]]]:
    """Rock kit, per beat of a 4/4 bar: kick on 1 and 3, snare on 2 and 4, hat on every beat.

    Levels are set so every beat carries about the same onset energy (a loud hat on the kick
    beats balances the broadband snare); an alternating accent would pull tempo estimators
    toward half tempo.
    """
    kick, snare, hat = _kick(sr, rng), _snare(sr, rng), _hat(sr, rng)
    return [[(kick, 1.0), (hat, 1.0)], [(snare, 0.3), (kick, 0.7), (hat, 0.2)]] * 2


def _drum_machine(sr: int, rng: np.random.Generator) -> list[list[tuple[np.ndarray, float]]]:
    """Electronic kit: long pitched '808' kick on every beat, claps on 2 and 4, metallic hats."""
    kick = np.tanh(1.5 * _kick(sr, rng, low=45.0, tau=0.35))
    clap = _clap(sr, rng)
    t = np.arange(int(0.06 * sr)) / sr
    metal = sum(np.sign(np.sin(2 * np.pi * f * t)) for f in (3140, 3920, 4730, 5390))
    hat = _filt(metal, "high", min(5000.0, 0.3 * sr), sr) * np.exp(-t / 0.015) * 0.4
    return [[(kick, 1.0), (hat, 0.9)], [(kick, 0.9), (clap, 0.45), (hat, 0.2)]] * 2


def _percussion(sr: int, rng: np.random.Generator) -> list[list[tuple[np.ndarray, float]]]:
    """Hand percussion: conga on every beat (low-high-low-high) with a shaker on each beat."""
    lo, hi, sh = _conga(sr, rng, 190.0), _conga(sr, rng, 290.0), _shaker(sr, rng)
    return [[(lo, 1.0), (sh, 0.3)], [(hi, 0.9), (sh, 0.3)]] * 2


def _click_track(sr: int, rng: np.random.Generator) -> list[list[tuple[np.ndarray, float]]]:
    """Plain woodblock tick on every beat, unaccented, for clips with no percussion tag."""
    c = _click(sr, rng)
    return [[(c, 1.0)]] * 4


@dataclass(frozen=True)
class Voice:
    """How a voice plays: its role in the arrangement, octave, level and sound."""

    role: str  # "chord" | "pad" | "power" | "melody" | "bass" | "beat"
    octave: int
    gain: float
    note: NoteFn | None = None
    hits: BeatFn | None = None
    voicing: tuple[int, ...] = (0, 2, 4)  # chord/pad notes as scale steps above the root


NO_VOICE = Voice("none", 0, 0.0)

VOICES: dict[str, Voice] = {
    "piano": Voice("chord", 4, 0.8, _piano),
    "epiano": Voice("chord", 4, 0.8, _epiano),
    "pluck": Voice("chord", 3, 0.8, _pluck, voicing=(0, 4, 7, 9, 11)),  # open guitar shape
    "eguitar": Voice("chord", 4, 0.7, _eguitar),  # upper-string comping
    "distguitar": Voice("power", 2, 0.7, _distguitar),
    "synth": Voice("chord", 4, 0.7, _synth),
    "strings": Voice("pad", 4, 0.7, _strings),
    "brass": Voice("chord", 3, 0.7, _brass),
    "violin": Voice("melody", 5, 0.7, _solo_string),
    "cello": Voice("melody", 3, 0.7, _solo_string),
    "trumpet": Voice("melody", 4, 0.7, _brass),
    "sax": Voice("melody", 4, 0.7, _sax),
    "flute": Voice("melody", 5, 0.7, _flute),
    "harmonica": Voice("melody", 5, 0.7, _harmonica),
    "bass": Voice("bass", 2, 0.8, _bass),
    "upright": Voice("bass", 2, 0.8, _upright),
    "drums": Voice("beat", 0, 1.0, hits=_drums_kit),
    "drum_machine": Voice("beat", 0, 1.0, hits=_drum_machine),
    "perc": Voice("beat", 0, 1.0, hits=_percussion),
    "click": Voice("beat", 0, 0.8, hits=_click_track),
}
