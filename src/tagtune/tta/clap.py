"""CLAP embeddings: text and audio in one space, for the CLAP score and for FAD.

The default model is ``laion/clap-htsat-unfused`` through transformers' ``ClapModel`` and
``ClapProcessor``; ``evaluate.clap_model=tiny`` uses the offline tiny CLAP (random weights, for
tests). Audio is mixed to mono, cut to ``evaluate.max_seconds`` (and to the model's window, so
the feature extractor never crops at random) and resampled with scipy to the model's rate
(48 kHz for the released checkpoints). Embeddings come back L2-normalised, so the CLAP score of
a clip is the dot product of its text and audio embeddings.

The checkpoint is pinned (``evaluate.revision``, a Hub commit: scores move by tenths between
checkpoints) and the commit actually loaded is recorded. ``evaluate.dtype: auto`` runs the model in
bfloat16 on a CUDA GPU with native bfloat16 (compute capability 8.0+) and in float32 elsewhere
(never float16 by itself: its range is too narrow for the audio tower's activations);
embeddings are always returned in float32.
"""

from __future__ import annotations

from typing import Any

from tagtune.errors import ConfigError
from tagtune.models.device import bf16_native, pick_device, pick_dtype
from tagtune.models.hub import load_pretrained, quiet_transformers, resolved_revision
from tagtune.tta.audio import resample
from tagtune.tta.config import Clap
from tagtune.tta.tiny import TINY_NAME, ensure_tiny_clap


class ClapEmbedder:
    """A loaded CLAP model that embeds texts and audio clips.

    Args:
        clap: The CLAP model of ``evaluate`` (``clap_model``, ``revision``, ``max_seconds``, ``tiny``).
        device: ``auto``, ``cpu``, ``cuda``...
    """

    def __init__(self, clap: Clap, device: str = "auto"):
        import torch
        from transformers import ClapModel, ClapProcessor

        quiet_transformers()
        self.name = clap.clap_model
        if self.name == TINY_NAME and clap.tiny is None:
            raise ConfigError("evaluate.tiny: missing: the tiny CLAP is built from it", key="evaluate.tiny")
        source = str(ensure_tiny_clap(clap.tiny)) if self.name == TINY_NAME else self.name
        self.device = pick_device(device)
        self.dtype = clap_dtype(clap.dtype, self.device)
        common = {"revision": clap.revision}
        self.processor = load_pretrained(ClapProcessor.from_pretrained, source, "CLAP processor", **common)
        model = load_pretrained(ClapModel.from_pretrained, source, "CLAP model", **common)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.requested_revision = clap.revision
        self.revision = resolved_revision(self.model, source, clap.revision)
        fe = self.processor.feature_extractor
        if getattr(fe, "truncation", None) == "fusion" and not getattr(self.model.config.audio_config, "enable_fusion", False):
            fe.truncation = "rand_trunc"  # fusion features do not fit an unfused model; clips are cut to the window anyway
        self.sample_rate = int(fe.sampling_rate)
        window = float(getattr(fe, "max_length_s", 10) or 10)
        self.max_seconds = min(float(clap.max_seconds or window), window)
        self._torch = torch

    def embed_texts(self, texts: list[str]) -> Any:
        """``(n, dim)`` float32 numpy array of normalised text embeddings."""
        torch = self._torch
        inputs = self.processor(text=list(texts), padding=True, truncation=True, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            out = self.model.get_text_features(**inputs)
        emb = out.pooler_output if hasattr(out, "pooler_output") else out
        return torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy()

    def embed_audio(self, clips: list[tuple[Any, int]]) -> Any:
        """``(n, dim)`` normalised audio embeddings of ``(mono float audio, sample_rate)`` clips."""
        torch = self._torch
        prepared = []
        for audio, rate in clips:
            audio = audio[: int(round(self.max_seconds * rate))]
            prepared.append(resample(audio, rate, self.sample_rate))
        inputs = self.processor(audio=prepared, sampling_rate=self.sample_rate, return_tensors="pt").to(self.device)
        for name, value in inputs.items():  # the mel features in the model's dtype (bfloat16 on a GPU)
            if value.is_floating_point():
                inputs[name] = value.to(self.dtype)
        with torch.inference_mode():
            out = self.model.get_audio_features(**inputs)
        emb = out.pooler_output if hasattr(out, "pooler_output") else out
        return torch.nn.functional.normalize(emb.float(), dim=-1).cpu().numpy()


def clap_dtype(spec: str, device: str) -> Any:
    """``evaluate.dtype``: ``auto`` is bfloat16 on a CUDA GPU with native bfloat16, float32 elsewhere;
    a named dtype as :func:`tagtune.models.device.pick_dtype` gives it (half precision on CPU: float32)."""
    import torch

    if str(spec or "auto").lower() == "auto":
        return torch.bfloat16 if bf16_native(device) else torch.float32
    return pick_dtype(spec, device)
