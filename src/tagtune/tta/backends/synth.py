"""The synth renderer as an audio backend (``model=tta/synth``): it renders each prompt's *tags*, not its caption.

The DSP lives in :mod:`tagtune.tta.synth`; this adapter gives it the backend surface: no model, no
download, and audio that carries its tempo and instrument tags, so verification has a real oracle
offline.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tagtune.errors import ConfigError
from tagtune.records.rows import CaptionRow
from tagtune.tta.backends.base import SamplingParams, needed, steps_for_duration
from tagtune.tta.config import Tagmap, TtaModel


class SynthRenderer:
    """The procedural renderer: a beat at a BPM inside the tempo tag's range and one voice per instrument tag.

    Which tag means what comes from the ``tagmap``; other tags are ignored and listed per clip in
    ``provenance.audio`` (``unrendered_tags``), so the dataset card can say what the audio does not
    carry. ``model.miss_rate`` renders that share of clips (chosen by seed) at a contradicting tempo:
    a deliberately unreliable renderer for exercising the verification policies.
    """

    shaped_by = "tags"

    def __init__(self, model: TtaModel, device: str = "auto", tagmap: Tagmap | None = None):
        from tagtune.tta.synth import SynthTable

        try:
            self.table = SynthTable.from_tagmap(tagmap) if tagmap is not None else SynthTable()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"tagmap: {exc}", key="tagmap", hint="see config/tagmap/default.yaml") from exc
        self.name, self.threads = "synth", None
        blob = json.dumps([self.table.tempo_ranges, self.table.instruments, self.table.feels, self.table.default_range],
                          sort_keys=True, default=list)
        self.revision = "tagmap:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]
        self.sample_rate = int(needed(model, "sample_rate", "the synth renderer"))
        self.miss_rate = float(needed(model, "miss_rate", "the synth renderer"))
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
        """What the clip really plays: the tags it renders (and not), and its plan's ``bpm`` and ``key``
        (the truth that ``tta verify``'s BPM and key estimates are measured against)."""
        from tagtune.tta.key import key_name
        from tagtune.tta.synth import plan, what_it_renders

        tags = self.tags_to_render(prompt.tags, seed)
        rendered, ignored = what_it_renders(tags, self.table)
        p = plan(tags, int(seed), self.table)
        info: dict[str, Any] = {"rendered_tags": rendered, "unrendered_tags": ignored,
                                "plan": {"bpm": p.bpm, "key": key_name(p.tonic, p.scale), "tonic": p.tonic, "scale": p.scale}}
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
