"""What every audio backend shares: the Protocol, the sampling settings, duration -> steps, and the loader.

``model.backend`` names a member of :data:`AUDIO_BACKENDS`: a built-in (``transformers``,
``audiocraft``, ``synth``), a ``package.module:Class`` or an entry point of the
``tagtune.audio_backends`` group (see :mod:`tagtune.plugins`). ``tta generate`` and the pipeline's
re-render step use nothing but the Protocol below, so a new backend is one module plus one
``model/tta/*.yaml``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from tagtune.errors import ConfigError
from tagtune.plugins import Family, load
from tagtune.records.rows import CaptionRow
from tagtune.tta.config import Generation, Tagmap, TtaModel


@dataclass(frozen=True)
class SamplingParams:
    """The sampling settings that shape a clip (recorded in every metadata line)."""

    do_sample: bool
    temperature: float
    top_k: int
    top_p: float
    guidance_scale: float

    @classmethod
    def from_cfg(cls, gen: Generation) -> SamplingParams:
        """The settings of the ``generation`` section; sampling needs a temperature > 0."""
        params = cls(do_sample=gen.do_sample, temperature=gen.temperature, top_k=gen.top_k, top_p=gen.top_p,
                     guidance_scale=gen.guidance_scale)
        if params.do_sample and params.temperature <= 0:
            raise ConfigError(f"generation.temperature must be > 0 when sampling (got {params.temperature})",
                              key="generation.temperature", hint="use generation.do_sample=false for greedy decoding")
        return params

    def as_dict(self) -> dict[str, Any]:
        return {"guidance_scale": self.guidance_scale, "temperature": self.temperature, "top_k": self.top_k,
                "top_p": self.top_p, "do_sample": self.do_sample}


def steps_for_duration(seconds: float, frame_rate: float, delay: int) -> int:
    """Decoder steps that yield at least ``seconds`` of audio.

    MusicGen's delay pattern offsets codebook ``k`` by ``k`` steps, so ``n`` new tokens decode to
    ``n - delay`` frames (``delay = codebooks per channel - 1``): 50 new tokens at 50 Hz with four
    codebooks give 47 frames. The frame count is rounded up; callers trim to the exact length.
    """
    if not seconds > 0 or math.isinf(seconds):
        raise ConfigError(f"duration must be a positive number of seconds (got {seconds})")
    frames = math.ceil(seconds * frame_rate - 1e-9)
    return frames + delay


class AudioBackend(Protocol):
    """A loaded model that renders batches of prompts into float audio.

    Members are classes built as ``Member(model, device, tagmap)``: ``model`` is the typed ``model``
    section (:class:`~tagtune.tta.config.TtaModel`; a third-party backend reads its own settings from
    ``model.options``), ``device`` is ``auto``/``cpu``/``cuda:N``, ``tagmap`` the typed tagmap. Loading
    happens in the constructor, before ``tta generate`` changes anything in its folder. Besides
    ``requires``/``extra`` (:mod:`tagtune.plugins`) a member has these attributes:

    * ``name``, ``revision``: recorded in every clip's ``provenance.audio``;
    * ``threads``: torch CPU threads while generating (None: leave torch's setting);
    * ``sample_rate``, ``frame_rate`` (decoder steps per second), ``delay`` (steps that make no
      audio), ``max_steps`` (the longest generation);
    * ``shaped_by``: ``caption`` or ``tags``, what of a prompt shapes its audio (a clip whose
      ``shaped_by`` changed is rendered again; the other may change freely).
    """

    name: str
    revision: str | None
    threads: int | None
    sample_rate: int
    frame_rate: float
    delay: int
    max_steps: int
    shaped_by: Literal["caption", "tags"]

    def steps_for(self, seconds: float) -> int:
        """Decoder steps for at least ``seconds`` of audio."""
        ...

    def samples_for_steps(self, steps: int) -> int:
        """Audio samples that ``steps`` decoder steps make."""
        ...

    def provenance(self, prompt: CaptionRow, seed: int) -> dict[str, Any]:
        """What the backend adds to a clip's ``provenance.audio`` (may be empty)."""
        ...

    def generate(self, prompts: list[CaptionRow], seeds: list[int], steps: int, params: SamplingParams) -> Any:
        """Audio for a batch as a float32 numpy array ``(batch, channels, samples)``, one seed per prompt."""
        ...


AUDIO_BACKENDS = Family(
    name="audio_backends",
    what="audio backend",
    protocol=AudioBackend,
    builtins={"transformers": "tagtune.tta.backends.musicgen:TransformersMusicgen",
              "audiocraft": "tagtune.tta.backends.audiocraft:AudiocraftMusicgen",
              "synth": "tagtune.tta.backends.synth:SynthRenderer"},
    key="model.backend",
)


def backend_class(model: TtaModel) -> type[AudioBackend]:
    """The class ``model.backend`` names, imported and with its packages checked (nothing loaded yet)."""
    return load(AUDIO_BACKENDS, model.backend)


def load_backend(model: TtaModel, device: str = "auto", tagmap: Tagmap | None = None) -> AudioBackend:
    """The backend named by ``model.backend`` with ``model.name`` loaded on ``device``."""
    return backend_class(model)(model, device, tagmap)


def needed(model: TtaModel, key: str, who: str) -> Any:
    """``model.<key>``, which only some model options have; a one-line error naming it when absent."""
    value = getattr(model, key)
    if value is None:
        raise ConfigError(f"model.{key}: missing: {who} needs it", key=f"model.{key}",
                          hint="start your model config from one of config/model/tta/*.yaml")
    return value
