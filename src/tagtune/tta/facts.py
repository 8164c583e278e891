"""Musical facts of every clip, kept as data: its tempo (BPM) and key, measured by ``tta verify``.

The tempo checker measures a BPM to judge a tempo tag and used to throw it away afterwards; now
every clip gets its measurements stored in its verdict line (``facts``), whatever its tags, and
the pipeline copies them into the dataset rows (``bpm``, ``bpm_confidence``, ``key``,
``key_confidence``; the estimators in ``provenance.verify.facts_by``):

* ``bpm``, ``bpm_confidence``: :func:`tagtune.tta.tempo.estimate_bpm` with
  ``verification.tempo.method``, the same estimate the tempo checker judges with (a clip the
  checker measured is not measured twice); the confidence is the onset envelope's periodicity at
  that tempo (0: no pulse, 1: perfectly periodic).
* ``key``, ``key_confidence``: :func:`tagtune.tta.key.estimate_key` (chroma against
  Krumhansl-Schmuckler key profiles, ``verification.key.profile``); a key whose confidence is
  under ``verification.key.min_confidence`` is stored as null.

``verification.facts`` chooses which are measured (``[bpm, key]`` by default, ``[]`` for none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tagtune.tta.checkers import Clip, Judgement
from tagtune.tta.config import VerificationSettings


@dataclass(frozen=True)
class Facts:
    """Which facts to measure and with what settings (from ``verification``)."""

    names: tuple[str, ...]
    tempo_method: str
    key_profile: str
    key_min_confidence: float

    @classmethod
    def from_settings(cls, v: VerificationSettings) -> Facts:
        return cls(tuple(dict.fromkeys(v.facts)), v.tempo.method, v.key.profile, float(v.key.min_confidence))

    def estimators(self) -> dict[str, str]:
        """What measured each fact, in words (stored beside the facts)."""
        from tagtune.tta.key import estimator

        out = {}
        if "bpm" in self.names:
            out["bpm"] = (f"tagtune.tta.tempo: librosa onset autocorrelation with a log-normal tempo prior, "
                          f"method={self.tempo_method}")
        if "key" in self.names:
            out["key"] = estimator(self.key_profile)
        return out

    def measure(self, clip: Clip, verdicts: dict[str, tuple[str, Judgement]]) -> dict[str, Any]:
        """The facts of one clip, reusing the tempo checker's BPM when it measured one."""
        out: dict[str, Any] = {}
        if "bpm" in self.names:
            out["bpm"], out["bpm_confidence"] = self._bpm(clip, verdicts)
        if "key" in self.names:
            from tagtune.tta.key import estimate_key

            key, confidence = estimate_key(clip.audio, clip.sample_rate, self.key_profile)
            out["key"] = key if key is not None and confidence >= self.key_min_confidence else None
            out["key_confidence"] = confidence
        return out

    def _bpm(self, clip: Clip, verdicts: dict[str, tuple[str, Judgement]]) -> tuple[float | None, float]:
        for name, judgement in verdicts.values():
            if name == "tempo" and "bpm" in judgement.detail:
                bpm, confidence = float(judgement.detail["bpm"]), float(judgement.detail.get("confidence", 0.0))
                return (bpm if bpm > 0 else None), confidence
        from tagtune.tta.tempo import estimate_bpm

        bpm, confidence = estimate_bpm(clip.audio, clip.sample_rate, self.tempo_method)
        return (bpm if bpm > 0 else None), confidence


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """For the report: how many clips have each fact, the BPM range and the commonest keys."""
    import statistics
    from collections import Counter

    facts = [r.get("facts") or {} for r in rows]
    bpms = sorted(float(f["bpm"]) for f in facts if f.get("bpm"))
    keys = Counter(str(f["key"]) for f in facts if f.get("key"))
    out: dict[str, Any] = {}
    if any("bpm" in f for f in facts):
        out["bpm"] = {"measured": len(bpms), "median": round(statistics.median(bpms), 2) if bpms else None,
                      "min": bpms[0] if bpms else None, "max": bpms[-1] if bpms else None}
    if any("key" in f for f in facts):
        out["key"] = {"measured": sum(keys.values()), "most_common": [[k, n] for k, n in keys.most_common(6)]}
    return out
