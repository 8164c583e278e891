"""MusicGen through Meta's ``audiocraft`` (``model.backend=audiocraft``; optional, in its own environment).

audiocraft pins torch 2.1, so it cannot share an environment with the default stack: install
``tagtune[audiocraft]`` in one of its own (docs/audio.md). It samples from the global torch RNG, so
clips are seeded per batch here; with ``generation.seeding=exact`` the batch is one clip and the
seed is the clip's own.
"""

from __future__ import annotations

from typing import Any

from tagtune.errors import ModelNotFoundError
from tagtune.models.device import pick_device
from tagtune.records.rows import CaptionRow
from tagtune.tta.backends.base import SamplingParams, steps_for_duration
from tagtune.tta.config import Tagmap, TtaModel


class AudiocraftMusicgen:
    """MusicGen through ``audiocraft.models.MusicGen``."""

    requires = ("audiocraft",)
    extra = "audiocraft"
    shaped_by = "caption"

    def __init__(self, model: TtaModel, device: str = "auto", tagmap: Tagmap | None = None):
        import torch
        from audiocraft.models import MusicGen

        self._torch = torch
        self.name = model.name
        self.device = pick_device(device)
        self.threads, self.revision = model.threads, model.revision
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
