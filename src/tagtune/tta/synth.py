"""Deterministic procedural music renderer (the "synth" backend).

Renders a short clip that *carries its tags*: a beat at a BPM drawn from the tempo tag's range,
and one synthetic voice per instrument tag, playing a seeded chord progression and melody that
sit on the beat grid. Everything is numpy/scipy, so a clip renders in a fraction of a second on a
CPU and the same (tags, seconds, sample_rate, seed, table) always gives the same samples.

Which tag means what is data (`SynthTable`), so any taxonomy can map its own tag names onto the
built-in tempo ranges and voices. Tags the table does not cover are ignored and reported by
`what_it_renders`, so a dataset can record exactly which of its tags the audio realises.

Design rule that keeps the tempo measurable: every onset falls on a beat (quarter notes or
longer, syncopation only in pitched parts), and no voice accents the bar or subdivides the beat
strongly, so onset-based estimators lock onto the beat and not onto its half or double.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import signal

__all__ = [
    "VOICES",
    "Plan",
    "SynthTable",
    "plan",
    "render",
    "what_it_renders",
]

@dataclass(frozen=True)
class SynthTable:
    """What each tag means to the renderer: read from a ``tagmap`` config (config/tagmap/*.yaml)."""

    tempo_ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    instruments: Mapping[str, str] = field(default_factory=dict)
    feels: Mapping[str, str] = field(default_factory=dict)
    default_range: tuple[float, float] = (90.0, 115.0)  # used when no tempo tag is given
    fallback_beat: str | None = "click"  # beat voice added when no tag supplies one
    max_voices: int = 6  # instrument voices beyond this are ignored (and reported)
    edge_margin: float = 0.01  # BPM is drawn this fraction inside each range edge, so a
    # measurement error of ~1 % cannot push a clip out of its own tag's range

    @classmethod
    def from_tagmap(cls, tagmap: Mapping[str, Any]) -> SynthTable:
        """Build from a ``tagmap`` section (``tempo_bpm``, ``default_bpm``, ``feels``, ``instruments``)."""
        ranges = {str(k): (float(v[0]), float(v[1])) for k, v in dict(tagmap.get("tempo_bpm") or {}).items()}
        lo, hi = tagmap.get("default_bpm") or (90.0, 115.0)
        table = cls(ranges, {str(k): str(v) for k, v in dict(tagmap.get("instruments") or {}).items()},
                    {str(k): str(v) for k, v in dict(tagmap.get("feels") or {}).items()}, (float(lo), float(hi)))
        table.validate()
        return table

    def validate(self) -> None:
        """Fail on unknown voices, empty ranges or unknown feels rather than mid-render."""
        for tag, (lo, hi) in {**self.tempo_ranges, "<default>": self.default_range}.items():
            if not 20.0 <= lo <= hi <= 400.0:
                raise ValueError(f"tempo range for {tag!r} must satisfy 20 <= lo <= hi <= 400")
        for tag, voice in self.instruments.items():
            if voice not in VOICES:
                raise ValueError(f"instrument {tag!r} maps to unknown voice {voice!r} (voices: {', '.join(VOICES)})")
        if self.fallback_beat is not None and VOICES.get(self.fallback_beat, _NO).role != "beat":
            raise ValueError(f"fallback_beat {self.fallback_beat!r} is not a beat voice")
        for tag, feel in self.feels.items():
            if feel not in ("steady", "syncopated"):
                raise ValueError(f"feel {tag!r} maps to unknown feel {feel!r} (steady or syncopated)")


# ----------------------------------------------------------------------------------------------
# Small DSP helpers
# ----------------------------------------------------------------------------------------------

_TABLE_SIZE = 4096


def _rng(seed: int, *names: str) -> np.random.Generator:
    """Independent, platform-stable stream per (seed, name) — not Python's salted hash()."""
    keys = [zlib.crc32(n.encode()) for n in names]
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *keys])


def _hz(midi: float) -> float:
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


_NO = Voice("none", 0, 0.0)

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

# ----------------------------------------------------------------------------------------------
# Planning: tags -> tempo, voices, harmony. Pure data, cheap, deterministic.
# ----------------------------------------------------------------------------------------------

_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
_PROGRESSIONS = ((0, 4, 5, 3), (0, 3, 4, 3), (5, 3, 0, 4), (0, 5, 3, 4), (0, 3, 0, 4),
                 (0, 6, 5, 4))


@dataclass(frozen=True)
class Plan:
    """Everything `render` decides from (tags, seed, table) before making any sound."""

    bpm: float
    tempo_tag: str | None
    voices: tuple[str, ...]
    feel: str
    tonic: int  # MIDI pitch class 0-11
    scale: str
    progression: tuple[int, ...]
    rendered: tuple[str, ...]
    ignored: tuple[str, ...]


def plan(tags: Iterable[str], seed: int, table: SynthTable | None = None) -> Plan:
    """Resolve tags against the table: first tempo/feel tag wins, voices dedupe, rest ignored."""
    table = table or SynthTable()
    rendered: list[str] = []
    ignored: list[str] = []
    tempo_tag: str | None = None
    feel: str | None = None
    voices: list[str] = []
    for tag in tags:
        if tag in table.tempo_ranges and tempo_tag is None:
            tempo_tag = tag
        elif tag in table.feels and feel is None:
            feel = table.feels[tag]
        elif tag in table.instruments and (table.instruments[tag] in voices
                                           or len(voices) < table.max_voices):
            if table.instruments[tag] not in voices:
                voices.append(table.instruments[tag])
        else:
            ignored.append(tag)
            continue
        rendered.append(tag)
    if table.fallback_beat and not any(VOICES[v].role == "beat" for v in voices):
        voices.append(table.fallback_beat)
    rng = _rng(seed, "plan")
    lo, hi = table.tempo_ranges[tempo_tag] if tempo_tag else table.default_range
    lo, hi = lo * (1 + table.edge_margin), hi * (1 - table.edge_margin)
    hi = max(lo, hi)
    bpm = round(float(rng.uniform(lo, hi)), 2)
    scale = "minor" if rng.uniform() < 0.5 else "major"
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    return Plan(bpm, tempo_tag, tuple(voices), feel or "steady", int(rng.integers(12)), scale,
                prog, tuple(rendered), tuple(ignored))


def what_it_renders(tags: Iterable[str], table: SynthTable | None = None
                    ) -> tuple[list[str], list[str]]:
    """(tags the audio realises, tags it ignores), in input order; independent of the seed."""
    p = plan(list(tags), 0, table)
    return list(p.rendered), list(p.ignored)


def _degree_pitch(p: Plan, degree: int, octave: int) -> int:
    """MIDI pitch of a scale degree (may exceed 7: wraps into the next octave)."""
    steps = _SCALES[p.scale]
    return 12 * (octave + 1) + p.tonic + steps[degree % 7] + 12 * (degree // 7)


def _melody(p: Plan, n_beats: int, seed: int) -> list[tuple[int, int, int]]:
    """Seeded melody as (start beat, length in beats, scale degree), chord tones on downbeats."""
    rng = _rng(seed, "melody")
    notes: list[tuple[int, int, int]] = []
    beat, degree = 0, p.progression[0] + 2 * int(rng.integers(3))
    while beat < n_beats:
        chord = p.progression[(beat // 4) % len(p.progression)]
        if beat % 4 == 0:
            degree = chord + 2 * int(rng.integers(3))  # root, third or fifth of the chord
        else:
            degree += int(rng.choice([-2, -1, 1, 1, 2]))
            degree = int(np.clip(degree, chord - 2, chord + 7))
        length = int(rng.choice([1, 1, 2])) if beat % 2 == 0 else 1
        notes.append((beat, length, degree))
        beat += length
    return notes


# ----------------------------------------------------------------------------------------------
# Arrangement and mixing
# ----------------------------------------------------------------------------------------------

Event = tuple[float, float, int, float]  # (start beat, length in beats, MIDI pitch, velocity)

_STEADY = ((0.0, 1.0), (1.0, 1.0), (2.0, 1.0), (3.0, 1.0))
# Syncopation as one anticipation per bar: the "and" of 2 is struck and tied over beat 3. Beats
# 1, 2 and 4 keep their onsets, so the pulse stays unambiguous even in pitched-only clips.
_PUSHED = ((0.0, 1.0), (1.0, 0.5), (1.5, 1.5), (3.0, 1.0))


def _events(p: Plan, voice: Voice, n_beats: int, seed: int) -> list[Event]:
    """Notes for one pitched voice: chords/bass on the beat grid, pads per bar, or the melody."""
    rng = _rng(seed, "velocity", voice.role, str(voice.octave))
    if voice.role == "melody":
        return [(float(b), float(n), _degree_pitch(p, d, voice.octave), 0.9)
                for b, n, d in _melody(p, n_beats, seed)]
    pattern = _PUSHED if p.feel == "syncopated" and voice.role != "pad" else _STEADY
    events: list[Event] = []
    for bar in range(0, n_beats, 4):
        chord = p.progression[(bar // 4) % len(p.progression)]
        root = _degree_pitch(p, chord, voice.octave)
        pitches = {
            "pad": [_degree_pitch(p, chord + i, voice.octave) for i in voice.voicing],
            "chord": [_degree_pitch(p, chord + i, voice.octave) for i in voice.voicing],
            "power": [root, root + 7, root + 12],
            "bass": [root],
        }[voice.role]
        slots = ((0.0, 4.0),) if voice.role == "pad" else pattern
        for start, length in slots:
            vel = float(rng.uniform(0.85, 1.0))
            events += [(bar + start, length, m, vel) for m in pitches]
    return events


_GATE = {"chord": 0.9, "power": 0.8, "bass": 0.85, "pad": 1.0, "melody": 0.95}
_STRUM = {"pluck": 0.012, "eguitar": 0.008}
_GATE_OVERRIDE = {"eguitar": 0.6}  # clean electric comps in short chops; acoustic rings


def _pitched_stem(name: str, p: Plan, n: int, sr: int, seed: int) -> np.ndarray:
    """Render every note of one pitched voice into a stem of `n` samples."""
    voice = VOICES[name]
    beat_s = 60.0 / p.bpm
    n_beats = int(np.ceil(n / sr / beat_s))
    rng = _rng(seed, "voice", name)
    stem = np.zeros(n + sr)  # room for release tails; trimmed below
    chord_index: dict[float, int] = {}
    for start, length, midi, vel in _events(p, voice, n_beats, seed):
        order = chord_index[start] = chord_index.get(start, -1) + 1
        at = round((start * beat_s + order * _STRUM.get(name, 0.0)) * sr)
        if at >= n:
            continue
        gate = length * beat_s * _GATE_OVERRIDE.get(name, _GATE[voice.role])
        note = vel * voice.note(_hz(midi), gate, sr, rng)  # type: ignore[misc]
        end = min(len(stem), at + len(note))
        stem[at:end] += note[: end - at]
    return stem[:n]


def _beat_stem(name: str, p: Plan, n: int, sr: int, seed: int) -> np.ndarray:
    """Place the voice's drum hits on every beat of the clip (4/4, pattern per beat of bar)."""
    rng = _rng(seed, "voice", name)
    bar = VOICES[name].hits(sr, rng)  # type: ignore[misc]
    beat_s = 60.0 / p.bpm
    stem = np.zeros(n + sr)
    for b in range(int(np.ceil(n / sr / beat_s))):
        at = round(b * beat_s * sr)
        vel = float(rng.uniform(0.92, 1.0))
        for hit, level in bar[b % len(bar)]:
            stem[at : at + len(hit)] += vel * level * hit
    return stem[:n]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def _mix(stems: dict[str, np.ndarray], sr: int) -> np.ndarray:
    """Level-match stems (beat on top so the pulse stays clear), fade edges, peak to -1 dBFS."""
    n = len(next(iter(stems.values())))
    pitched = [k for k in stems if VOICES[k].role != "beat"]
    out = np.zeros(n)
    for name, stem in stems.items():
        level = _rms(stem)
        if level < 1e-9 or not np.all(np.isfinite(stem)):
            continue
        share = 1.0 if VOICES[name].role == "beat" else 0.9 / np.sqrt(len(pitched))
        out += stem * (VOICES[name].gain * share / level)
    fade = min(n // 4, int(0.02 * sr))
    if fade:
        out[-fade:] *= np.linspace(1.0, 0.0, fade)
    peak = float(np.max(np.abs(out))) if n else 0.0
    if peak > 1e-9:
        out *= 10 ** (-1.0 / 20.0) / peak
    return out.astype(np.float32)


def render(tags: list[str], seconds: float, sample_rate: int, seed: int,
           table: SynthTable | None = None) -> np.ndarray:
    """Render `seconds` of float32 mono audio in [-1, 1] that realises the renderable tags.

    Deterministic for (tags, seconds, sample_rate, seed, table). Unrenderable tags are ignored;
    ask `what_it_renders` which ones.
    """
    if seconds <= 0 or sample_rate < 4000:
        raise ValueError("seconds must be > 0 and sample_rate >= 4000")
    p = plan(tags, seed, table)
    n = round(seconds * sample_rate)
    stems: dict[str, np.ndarray] = {}
    for name in p.voices:
        if VOICES[name].role == "beat":
            stems[name] = _beat_stem(name, p, n, sample_rate, seed)
        else:
            stems[name] = _pitched_stem(name, p, n, sample_rate, seed)
    if not stems:  # no beat voice and no instruments: a quiet but valid clip
        return np.zeros(n, dtype=np.float32)
    return _mix(stems, sample_rate)
