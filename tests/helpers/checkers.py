"""A user's own checker, as a test of the checker interface (loaded by name from config)."""

from __future__ import annotations

from typing import Any

import numpy as np


class LoudnessChecker:
    """Judges the made-up tag "loud": realised when the clip's RMS is at least ``min_rms``."""

    name = "loudness"

    def __init__(self, settings: dict[str, Any], context: Any):
        self.min_rms = float(settings.get("min_rms", 0.1))

    def claims(self, tag: str, category: str | None) -> bool:
        return tag == "loud"

    def judge(self, clips: list[Any], tags: list[list[Any]]) -> list[dict[str, Any]]:
        from tagtune.tta.checkers import Judgement

        out = []
        for clip, wanted in zip(clips, tags, strict=True):
            rms = float(np.sqrt(np.mean(np.square(clip.audio)))) if len(clip.audio) else 0.0
            out.append({t.tag: Judgement(rms >= self.min_rms, rms) for t in wanted})
        return out
