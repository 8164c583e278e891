"""``rms``: a checker (family ``checkers``) for ``tta verify``: a tag is realised when the clip is loud enough.

``tta verify`` builds it as ``RmsChecker(settings, context)``: ``settings`` is the dict under
``verification.custom.rms`` (under ``verification.custom.RmsChecker`` when it is named
``tagtune_example_plugins.checkers:RmsChecker``), ``context`` a ``tagtune.tta.checkers.CheckerContext``.
It claims the tags its settings list and judges each from the clip's RMS level::

    verification:
      checkers: [rms, tempo, clap]      # in order of precedence
      custom:
        rms:
          thresholds: {loud: -30.0, deafening: -3.0}   # tag: RMS level in dBFS it must exceed
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tagtune.errors import ConfigError
from tagtune.tta.checkers import CheckerContext, Clip, Judgement, TagToJudge


def rms_dbfs(audio: Any) -> float:
    """The RMS level of float audio in dB relative to full scale (silence: -120, a finite number for JSON)."""
    x = np.asarray(audio, dtype=np.float64)
    rms = math.sqrt(float(np.mean(np.square(x)))) if x.size else 0.0
    return 20 * math.log10(max(rms, 1e-6))


class RmsChecker:
    """Realised when the clip's RMS level (dBFS) is above the tag's threshold."""

    name = "rms"  # keys its verdicts and its line in the report

    def __init__(self, settings: dict[str, Any], context: CheckerContext):
        thresholds = settings.get("thresholds")
        if not isinstance(thresholds, dict) or not thresholds:
            raise ConfigError("verification.custom.rms.thresholds: missing: the rms checker judges the tags listed there",
                              key="verification.custom.rms.thresholds",
                              hint="e.g. +verification.custom.rms.thresholds.loud=-30")
        try:
            self.thresholds = {str(tag): float(db) for tag, db in thresholds.items()}
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"verification.custom.rms.thresholds: expected dBFS numbers ({exc})",
                              key="verification.custom.rms.thresholds") from exc

    def claims(self, tag: str, category: str | None) -> bool:
        return tag in self.thresholds

    def describe(self) -> dict[str, Any]:
        """Optional: the settings, recorded in the verification report."""
        return {"thresholds": dict(self.thresholds)}

    def judge(self, clips: list[Clip], tags: list[list[TagToJudge]]) -> list[dict[str, Judgement]]:
        out = []
        for clip, wanted in zip(clips, tags, strict=True):
            level = rms_dbfs(clip.audio)
            out.append({t.tag: Judgement(level > self.thresholds[t.tag], round(level, 3),
                                         {"rms_db": round(level, 3), "threshold_db": self.thresholds[t.tag]})
                        for t in wanted})
        return out
