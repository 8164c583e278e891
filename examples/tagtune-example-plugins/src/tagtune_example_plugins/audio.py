"""``sine``: an audio backend (family ``audio_backends``) that renders each caption as a chord of sine tones.

``tta generate`` builds it as ``SineBackend(model, device, tagmap)`` (the typed ``model`` section, a
device string, the typed tagmap), asks it how many decoder steps a duration takes, then calls
``generate(prompts, seeds, steps, params)`` per batch. It is offline, instant and deterministic:
the pitches come from a hash of the caption, so the same caption always sounds the same chord.
Its own settings sit in ``model.options`` (configs/model/tta/sine.yaml)::

    options:
      sample_rate: 16000   # Hz
      voices: 3            # sine tones per chord
      level_db: -20.0      # RMS level of the chord, dBFS (keep generate.normalize=none to hear it)
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import numpy as np

from tagtune.errors import ConfigError
from tagtune.records.rows import CaptionRow
from tagtune.tta.backends.base import SamplingParams, steps_for_duration
from tagtune.tta.config import Tagmap, TtaModel
from tagtune_example_plugins import __version__


def _option(model: TtaModel, key: str) -> float:
    """``model.options.<key>`` as a number; one line naming the key when it is absent or not a number."""
    value = model.options.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"model.options.{key}: expected a number, got {value!r}", key=f"model.options.{key}",
                          hint="start from model=tta/sine (configs/model/tta/sine.yaml of tagtune-example-plugins)")
    return float(value)


def pitches(caption: str, voices: int) -> list[float]:
    """``voices`` frequencies (Hz) picked by a stable hash of the caption: MIDI notes 48-83 (C3-B5)."""
    digest = hashlib.sha256(caption.encode("utf-8")).digest()
    return [440.0 * 2 ** ((48 + digest[i] % 36 - 69) / 12) for i in range(voices)]


class SineBackend:
    """A chord of sine tones per caption, at the RMS level ``model.options.level_db``."""

    requires = ("numpy",)  # import names load() checks before building it (numpy comes with tagtune anyway)
    shaped_by: Literal["caption", "tags"] = "caption"  # a changed caption is rendered again, changed tags are not

    def __init__(self, model: TtaModel, device: str = "auto", tagmap: Tagmap | None = None):
        self.sample_rate = int(_option(model, "sample_rate"))
        self.voices = int(_option(model, "voices"))
        self.level_db = _option(model, "level_db")
        if self.voices < 1 or self.level_db > 0:
            raise ConfigError("model.options: voices must be at least 1 and level_db at most 0 dBFS",
                              key="model.options")
        self.name, self.revision = "sine", f"tagtune-example-plugins:{__version__}"  # both go into provenance.audio
        self.threads = None  # torch threads while generating: None leaves torch alone (no torch here)
        self.frame_rate, self.delay = 50.0, 0  # "decoder steps" of 20 ms; none of them silent
        self.max_steps = int(600 * self.frame_rate)  # ten minutes at most

    def steps_for(self, seconds: float) -> int:
        return steps_for_duration(seconds, self.frame_rate, self.delay)

    def samples_for_steps(self, steps: int) -> int:
        return int(round(steps * self.sample_rate / self.frame_rate))

    def provenance(self, prompt: CaptionRow, seed: int) -> dict[str, Any]:
        return {"pitches_hz": [round(f, 2) for f in pitches(prompt.caption, self.voices)], "level_db": self.level_db}

    def generate(self, prompts: list[CaptionRow], seeds: list[int], steps: int, params: SamplingParams) -> Any:
        """``(batch, 1, samples)`` float32; the seed only sets the tones' phases (sampling params do nothing here)."""
        n = self.samples_for_steps(steps)
        t = np.arange(n) / self.sample_rate
        out = np.zeros((len(prompts), 1, n), dtype=np.float32)
        for i, (prompt, seed) in enumerate(zip(prompts, seeds, strict=True)):
            phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, self.voices)
            chord = sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(pitches(prompt.caption, self.voices), phases))
            rms = float(np.sqrt(np.mean(np.square(chord)))) or 1.0
            out[i, 0] = chord * (10 ** (self.level_db / 20) / rms)
        return out
