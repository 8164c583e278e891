"""MusicGen through ``transformers`` (``model.backend=transformers``): the released checkpoints or the tiny model.

``MusicgenForConditionalGeneration`` and its processor load through
:func:`tagtune.models.hub.load_pretrained`; ``model.name=tiny`` builds the offline tiny model first.

Per-sample seeding: each clip draws its tokens from its own seed through
:class:`tagtune.models.sampling.RowSeededSampler`, so its draws do not depend on its batch
neighbours; see docs/audio.md for how far the resulting audio is batch-independent.

Precision: ``model.dtype: auto`` runs the text encoder and the decoder in bfloat16 on GPUs that
support it (float16 on older ones, float32 on CPU); EnCodec always decodes in float32, since it turns
codes into the samples written to disk and costs little next to the decoder. ``model.compile: true``
compiles the decoder's forward pass with ``torch.compile`` (the first batch pays the compile time).
"""

from __future__ import annotations

from typing import Any

from tagtune.errors import DependencyError
from tagtune.models.device import pick_device, pick_dtype
from tagtune.models.hub import load_pretrained, quiet_transformers, resolved_revision
from tagtune.models.sampling import RowSeededSampler
from tagtune.records.rows import CaptionRow
from tagtune.tta.backends.base import SamplingParams, needed, steps_for_duration
from tagtune.tta.config import Tagmap, TtaModel
from tagtune.tta.tiny import TINY_NAME, ensure_tiny_musicgen


class TransformersMusicgen:
    """MusicGen through ``transformers`` (any of the released checkpoints, or the tiny model)."""

    shaped_by = "caption"

    def __init__(self, model: TtaModel, device: str = "auto", tagmap: Tagmap | None = None):
        """Load ``model.name`` (a Hub id, a local path, or ``tiny``) on ``device`` in ``model.dtype``."""
        from transformers import AutoProcessor

        quiet_transformers()
        name = model.name
        source = str(ensure_tiny_musicgen(needed(model, "tiny", "the tiny MusicGen"))) if name == TINY_NAME else name
        device = pick_device(device)
        common = {"revision": model.revision, "trust_remote_code": bool(model.trust_remote_code)}  # None: not asked, so no
        processor = load_pretrained(AutoProcessor.from_pretrained, source, "MusicGen processor", **common)
        loaded = _load_model(source, device, pick_dtype(model.dtype, device), common)
        if model.compile:
            compile_decoder(loaded)
        self._wrap(loaded, processor, name)
        self.threads = model.threads
        self.revision = resolved_revision(loaded, source, model.revision)

    @classmethod
    def wrap(cls, model: Any, processor: Any, name: str) -> TransformersMusicgen:
        """A backend around an already loaded model and processor (benchmarks build models in memory)."""
        backend = cls.__new__(cls)
        backend._wrap(model, processor, name)
        return backend

    def _wrap(self, model: Any, processor: Any, name: str) -> None:
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
                hint="lower generation.batch_size (finished clips are kept; rerun the same command to resume)",
            ) from exc
        if not torch.is_tensor(audio):  # return_dict_in_generate set in a checkpoint's generation config
            audio = audio.sequences
        return np.ascontiguousarray(audio.float().cpu().numpy())


def _load_model(source: str, device: str, dtype: Any, common: dict[str, Any]) -> Any:
    """The model on ``device``: loaded in float32 (as stored), then all but EnCodec cast to ``dtype``, so the
    codec that makes the written samples keeps its weights' full precision."""
    import torch
    from transformers import MusicgenForConditionalGeneration

    loaded = load_pretrained(MusicgenForConditionalGeneration.from_pretrained, source, "MusicGen model",
                             dtype=torch.float32, **common)
    loaded = loaded.to(device).eval()
    for part, module in loaded.named_children():
        if part != "audio_encoder":
            module.to(dtype)
    return loaded


def compile_decoder(model: Any) -> None:
    """Compile the decoder's forward pass (``model.compile``); ``dynamic`` because the cache grows every step."""
    import torch

    model.decoder.forward = torch.compile(model.decoder.forward, dynamic=True)


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
