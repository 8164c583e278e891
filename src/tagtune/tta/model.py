"""Audio backends: load a model once, then turn batches of prompts into float audio arrays.

``transformers`` (default) loads ``MusicgenForConditionalGeneration`` and its processor through
:func:`tagtune.models.hub.load_pretrained`; ``model.name=tiny`` builds the offline tiny model first.
``audiocraft`` is optional and lives in its own environment (it pins torch 2.1), so it is
imported only when asked for. ``synth`` (``model=tta/synth``) renders the tags themselves with
the procedural renderer of :mod:`tagtune.tta.synth`: no model, no download, and audio that
carries its tempo and instrument tags, so verification has a real oracle offline. All expose the
same small surface: ``name``, ``revision``, ``sample_rate``, ``frame_rate``, ``channels``,
``steps_for(seconds)``, ``samples_for_steps(steps)``, ``generate(prompts, seeds, steps, params)``
(prompts are :class:`~tagtune.records.rows.CaptionRow`) and ``provenance(prompt, seed)`` (what the
backend adds to a clip's ``provenance.audio``).

Per-sample seeding (transformers backend): each clip draws its tokens from its own seed through
:class:`tagtune.models.sampling.RowSeededSampler`, so its draws do not depend on its batch neighbours;
see docs/audio.md for how far the resulting audio is batch-independent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tagtune.errors import ConfigError, DependencyError, ModelNotFoundError
from tagtune.models.hub import load_pretrained, resolved_revision
from tagtune.models.sampling import RowSeededSampler
from tagtune.records.rows import CaptionRow

TINY_NAME = "tiny"


@dataclass(frozen=True)
class SamplingParams:
    """The sampling settings that shape a clip (recorded in every metadata line)."""

    do_sample: bool
    temperature: float
    top_k: int
    top_p: float
    guidance_scale: float

    @classmethod
    def from_cfg(cls, gen: Any) -> SamplingParams:
        """The settings of a (schema-checked) ``generation`` section; sampling needs a temperature > 0."""
        params = cls(do_sample=gen.do_sample, temperature=gen.temperature, top_k=gen.top_k, top_p=gen.top_p,
                     guidance_scale=gen.guidance_scale)
        if params.do_sample and params.temperature <= 0:
            raise ConfigError(f"generation.temperature must be > 0 when sampling (got {params.temperature})",
                              key="generation.temperature", hint="use generation.do_sample=false for greedy decoding")
        return params

    def as_dict(self) -> dict[str, Any]:
        return {"guidance_scale": self.guidance_scale, "temperature": self.temperature, "top_k": self.top_k,
                "top_p": self.top_p, "do_sample": self.do_sample}


class TransformersMusicgen:
    """MusicGen through ``transformers`` (any of the released checkpoints, or the tiny model)."""

    backend = "transformers"

    def __init__(self, model: Any, processor: Any, name: str):
        """Wrap an already loaded model and processor (see :meth:`from_config` to load one)."""
        import torch

        self.model, self.processor, self.name = model, processor, name
        self.device = str(next(model.parameters()).device)
        self.threads: int | None = None
        self.revision: str | None = None
        self._torch = torch
        _decode_clips_one_by_one(model.audio_encoder)
        config = model.config
        self.sample_rate = int(config.audio_encoder.sampling_rate)
        self.frame_rate = float(config.audio_encoder.frame_rate)
        self.channels = int(config.decoder.audio_channels)
        self.num_codebooks = int(config.decoder.num_codebooks)
        # Stereo checkpoints interleave left/right codebooks: the delay spans half of them.
        self.delay = self.num_codebooks // self.channels - 1
        self.max_steps = int(config.decoder.max_position_embeddings) - 1
        self.hop = int(round(self.sample_rate / self.frame_rate))

    @classmethod
    def from_config(cls, model_cfg: Any, device: str = "auto") -> TransformersMusicgen:
        """Load ``model.name`` (a Hub id, a local path, or ``tiny``) on ``device`` in ``model.dtype``."""
        from transformers import AutoProcessor, MusicgenForConditionalGeneration

        from tagtune.models.device import pick_device, pick_dtype
        from tagtune.tta.tiny import ensure_tiny_musicgen, quiet_transformers

        quiet_transformers()
        name = str(model_cfg.name)
        source = str(ensure_tiny_musicgen(model_cfg.tiny)) if name == TINY_NAME else name
        device = pick_device(device)
        dtype = pick_dtype(model_cfg.dtype, device)
        common = {"revision": model_cfg.revision, "trust_remote_code": model_cfg.trust_remote_code}
        processor = load_pretrained(AutoProcessor.from_pretrained, source, "MusicGen processor", **common)
        model = load_pretrained(MusicgenForConditionalGeneration.from_pretrained, source, "MusicGen model", dtype=dtype, **common)
        backend = cls(model.to(device).eval(), processor, name)
        backend.threads = model_cfg.threads
        backend.revision = resolved_revision(model, source, model_cfg.revision)
        return backend

    def steps_for(self, seconds: float) -> int:
        """Decoder steps for ``seconds`` of audio: whole frames plus the delay pattern's offset."""
        return steps_for_duration(seconds, self.frame_rate, self.delay)

    def samples_for_steps(self, steps: int) -> int:
        return max(0, steps - self.delay) * self.hop

    def provenance(self, prompt: CaptionRow, seed: int) -> dict[str, Any]:
        return {}

    def generate(self, prompts: list[CaptionRow], seeds: list[int], steps: int, params: SamplingParams) -> Any:
        """Audio for a batch as a float32 numpy array ``(batch, channels, samples)``."""
        import numpy as np
        from transformers import LogitsProcessorList

        torch = self._torch
        texts = [p.caption for p in prompts]
        inputs = self.processor(text=texts, padding=True, return_tensors="pt").to(self.device)
        sampler = RowSeededSampler(seeds, steps, params.do_sample, params.temperature, params.top_k, params.top_p,
                                   rows_per_seed=self.num_codebooks, guidance_scale=params.guidance_scale)
        try:
            with torch.inference_mode():
                audio = self.model.generate(
                    **inputs, do_sample=False, guidance_scale=params.guidance_scale,
                    max_new_tokens=steps, logits_processor=LogitsProcessorList([sampler]),
                    top_k=None, top_p=None, temperature=None,
                )
        except torch.OutOfMemoryError as exc:
            raise DependencyError(
                f"out of {'GPU ' if self.device.startswith('cuda') else ''}memory generating {len(texts)} clip(s) of {steps} steps",
                hint="lower --batch-size (finished clips are kept; rerun the same command to resume)",
            ) from exc
        if not torch.is_tensor(audio):  # return_dict_in_generate set in a checkpoint's generation config
            audio = audio.sequences
        return np.ascontiguousarray(audio.float().cpu().numpy())


def _decode_clips_one_by_one(codec: Any) -> None:
    """Make EnCodec decode a batch clip by clip, so a clip's audio does not depend on its batch.

    Batched convolutions round differently from single ones (differences of ~1e-7 that flip a
    16-bit sample now and then); decoding each clip alone costs little next to generation and
    makes the same codes give the same bytes whatever batch they came in.
    """
    import torch
    from transformers.models.encodec.modeling_encodec import EncodecDecoderOutput

    batched = codec.decode

    def decode(audio_codes: Any, audio_scales: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["return_dict"] = True
        outs = []
        for i in range(audio_codes.shape[1]):  # codes are (frames, batch, codebooks, length)
            scales = [s if s is None else s[i : i + 1] for s in audio_scales]
            outs.append(batched(audio_codes[:, i : i + 1], scales, *args, **kwargs).audio_values)
        return EncodecDecoderOutput(audio_values=torch.cat(outs, dim=0))

    codec.decode = decode


class AudiocraftMusicgen:
    """MusicGen through Meta's ``audiocraft`` (optional; install it in its own environment).

    audiocraft samples from the global torch RNG, so clips are seeded per batch here; with
    ``generation.seeding=exact`` the batch is one clip and the seed is the clip's own.
    """

    backend = "audiocraft"

    def __init__(self, model_cfg: Any, device: str = "auto"):
        try:
            from audiocraft.models import MusicGen
        except ImportError as exc:
            raise DependencyError(
                "model.backend=audiocraft needs the audiocraft package, which is not installed in this environment",
                hint="audiocraft pins torch 2.1: install tagtune[audiocraft] in its own environment (docs/audio.md), or use model.backend=transformers",
            ) from exc
        import torch

        from tagtune.models.device import pick_device

        self._torch = torch
        self.name = str(model_cfg.name)
        self.device = pick_device(device)
        self.threads, self.revision = model_cfg.threads, model_cfg.revision
        try:
            self.model = MusicGen.get_pretrained(self.name, device=self.device)
        except Exception as exc:  # audiocraft raises assorted errors for unknown or unreachable models
            raise ModelNotFoundError(f"cannot load audiocraft model '{self.name}': {str(exc).splitlines()[0][:160]}",
                                     hint="use a name such as facebook/musicgen-small") from exc
        self.sample_rate = int(self.model.sample_rate)
        self.frame_rate = float(self.model.frame_rate)
        self.channels = int(getattr(self.model.compression_model, "channels", 1))
        self.delay = 0  # audiocraft takes a duration, not a token count
        self.max_steps = int(30 * self.frame_rate)
        self.hop = int(round(self.sample_rate / self.frame_rate))

    def steps_for(self, seconds: float) -> int:
        return steps_for_duration(seconds, self.frame_rate, 0)

    def samples_for_steps(self, steps: int) -> int:
        return steps * self.hop

    def provenance(self, prompt: CaptionRow, seed: int) -> dict[str, Any]:
        return {}

    def generate(self, prompts: list[CaptionRow], seeds: list[int], steps: int, params: SamplingParams) -> Any:
        import numpy as np

        torch = self._torch
        self.model.set_generation_params(
            use_sampling=params.do_sample, top_k=params.top_k, top_p=params.top_p, temperature=params.temperature,
            duration=steps / self.frame_rate, cfg_coef=params.guidance_scale,
        )
        torch.manual_seed(int(seeds[0]))
        with torch.inference_mode():
            audio = self.model.generate([p.caption for p in prompts], progress=False)
        return np.ascontiguousarray(audio.float().cpu().numpy())


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


class SynthRenderer:
    """The procedural renderer (``model=tta/synth``): renders each prompt's *tags*, not its caption.

    A beat at a BPM inside the tempo tag's range and one voice per instrument tag, as mapped by
    the ``tagmap`` config; other tags are ignored and listed per clip in ``provenance.audio``
    (``unrendered_tags``), so the dataset card can say what the audio does not carry.
    ``model.miss_rate`` renders that share of clips (chosen by seed) at a contradicting tempo: a
    deliberately unreliable renderer for exercising the verification policies.
    """

    backend = "synth"

    def __init__(self, model_cfg: Any, tagmap: Any):
        import hashlib
        import json

        from tagtune.tta.synth import SynthTable

        try:
            self.table = SynthTable.from_tagmap(tagmap or {})
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"tagmap: {exc}", key="tagmap", hint="see config/tagmap/default.yaml") from exc
        self.name, self.threads = "synth", None
        blob = json.dumps([self.table.tempo_ranges, self.table.instruments, self.table.feels, self.table.default_range],
                          sort_keys=True, default=list)
        self.revision = "tagmap:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]
        self.sample_rate = int(model_cfg.sample_rate)
        self.miss_rate = float(model_cfg.miss_rate)
        self.frame_rate, self.channels, self.delay = 50.0, 1, 0
        self.max_steps = int(3600 * self.frame_rate)
        self.hop = self.sample_rate / self.frame_rate

    def steps_for(self, seconds: float) -> int:
        return steps_for_duration(seconds, self.frame_rate, 0)

    def samples_for_steps(self, steps: int) -> int:
        return int(round(steps * self.hop))

    def _misses(self, seed: int) -> bool:
        import numpy as np

        return self.miss_rate > 0 and float(np.random.default_rng([seed, 7]).uniform()) < self.miss_rate

    def tags_to_render(self, tags: list[str], seed: int) -> list[str]:
        """The tags as given, or (a miss) with the tempo tag swapped for the farthest other one."""
        ranges = self.table.tempo_ranges
        intended = [t for t in tags if t in ranges]
        if not intended or not self._misses(seed):
            return list(tags)
        lo, hi = ranges[intended[0]]
        far = max(ranges, key=lambda t: abs(sum(ranges[t]) - (lo + hi)))
        return [far if t == intended[0] else t for t in tags]

    def provenance(self, prompt: CaptionRow, seed: int) -> dict[str, Any]:
        from tagtune.tta.synth import what_it_renders

        tags = self.tags_to_render(prompt.tags, seed)
        rendered, ignored = what_it_renders(tags, self.table)
        info: dict[str, Any] = {"rendered_tags": rendered, "unrendered_tags": ignored}
        if tags != list(prompt.tags):
            info["missed"] = True  # model.miss_rate: rendered at a contradicting tempo on purpose
        return info

    def generate(self, prompts: list[CaptionRow], seeds: list[int], steps: int, params: SamplingParams) -> Any:
        import numpy as np

        from tagtune.tta.synth import render

        samples = self.samples_for_steps(steps)
        out = np.zeros((len(prompts), 1, samples), dtype=np.float32)
        for i, (prompt, seed) in enumerate(zip(prompts, seeds, strict=True)):
            out[i, 0] = render(self.tags_to_render(prompt.tags, seed), samples / self.sample_rate, self.sample_rate,
                               int(seed), self.table)[:samples]
        return out


def load_backend(model_cfg: Any, device: str = "auto", tagmap: Any = None) -> Any:
    """The backend named by ``model.backend`` with ``model.name`` loaded on ``device``."""
    if model_cfg.backend == "synth":
        return SynthRenderer(model_cfg, tagmap)
    if model_cfg.backend == "audiocraft":
        return AudiocraftMusicgen(model_cfg, device)
    return TransformersMusicgen.from_config(model_cfg, device)
