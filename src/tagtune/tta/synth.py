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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from tagtune.tta.config import Tagmap
from tagtune.tta.voices import NO_VOICE, VOICES, Voice, hz, rng_for

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
    def from_tagmap(cls, tagmap: Tagmap) -> SynthTable:
        """Build from the ``tagmap`` section (``tempo_bpm``, ``default_bpm``, ``feels``, ``instruments``)."""
        for tag, bpm in {**tagmap.tempo_bpm, "<default_bpm>": tagmap.default_bpm}.items():
            if len(bpm) != 2:
                raise ValueError(f"tempo range for {tag!r} must be [lowest, highest], got {list(bpm)}")
        ranges = {str(k): (float(v[0]), float(v[1])) for k, v in tagmap.tempo_bpm.items()}
        lo, hi = tagmap.default_bpm
        table = cls(ranges, {str(k): str(v) for k, v in tagmap.instruments.items()},
                    {str(k): str(v) for k, v in tagmap.feels.items()}, (float(lo), float(hi)))
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
        if self.fallback_beat is not None and VOICES.get(self.fallback_beat, NO_VOICE).role != "beat":
            raise ValueError(f"fallback_beat {self.fallback_beat!r} is not a beat voice")
        for tag, feel in self.feels.items():
            if feel not in ("steady", "syncopated"):
                raise ValueError(f"feel {tag!r} maps to unknown feel {feel!r} (steady or syncopated)")


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
    rng = rng_for(seed, "plan")
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
    rng = rng_for(seed, "melody")
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
    rng = rng_for(seed, "velocity", voice.role, str(voice.octave))
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
    rng = rng_for(seed, "voice", name)
    stem = np.zeros(n + sr)  # room for release tails; trimmed below
    chord_index: dict[float, int] = {}
    for start, length, midi, vel in _events(p, voice, n_beats, seed):
        order = chord_index[start] = chord_index.get(start, -1) + 1
        at = round((start * beat_s + order * _STRUM.get(name, 0.0)) * sr)
        if at >= n:
            continue
        gate = length * beat_s * _GATE_OVERRIDE.get(name, _GATE[voice.role])
        note = vel * voice.note(hz(midi), gate, sr, rng)  # type: ignore[misc]
        end = min(len(stem), at + len(note))
        stem[at:end] += note[: end - at]
    return stem[:n]


def _beat_stem(name: str, p: Plan, n: int, sr: int, seed: int) -> np.ndarray:
    """Place the voice's drum hits on every beat of the clip (4/4, pattern per beat of bar)."""
    rng = rng_for(seed, "voice", name)
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
