"""One batch of ``tta verify``: read the clips, let the checkers judge them, build their verdict lines.

Kept apart from :mod:`tagtune.tta.verify` (which walks the folder, resumes and reports) so the
verdict line has one author. A clip that cannot be judged (:func:`tagtune.tta.audio.unplayable`:
no frames, a length other than its metadata line states, NaN or infinite samples) is never handed
to a checker, whose DSP would fail on it or measure nothing: its line says ``unplayable: true`` and
why (``reason``), and every tag a checker would have judged counts as not realised (``missed_tags``,
a score marked ``unplayable``), so the pipeline renders it again or drops it instead of trusting it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagtune.tta.audio import read_mono_frames, unplayable
from tagtune.tta.checkers import Checker, Clip, Judgement, TagToJudge
from tagtune.tta.facts import Facts

__all__ = ["Item", "batches", "score_batch"]


@dataclass
class Item:
    """A clip of the folder as ``tta verify`` judges it: where it is, what it was meant to carry."""

    line: int
    id: str
    file_name: str
    path: Path
    tags: list[str]
    categories: dict[str, str | None]
    duration: float | None = None  # seconds its metadata line states
    digest: str = ""
    input_hash: str = ""


def _assign(item: Item, checkers: list[Checker]) -> tuple[dict[str, list[TagToJudge]], list[str]]:
    """The first claiming checker for each tag; the tags none claims (unjudged)."""
    per: dict[str, list[TagToJudge]] = {c.name: [] for c in checkers}
    unjudged: list[str] = []
    for tag in item.tags:
        category = item.categories.get(tag)
        owner = next((c for c in checkers if c.claims(tag, category)), None)
        if owner is None:
            unjudged.append(tag)
        else:
            per[owner.name].append(TagToJudge(tag, category))
    return per, unjudged


def _row(item: Item, verdicts: dict[str, tuple[str, Judgement]], unjudged: list[str],
         facts: dict[str, Any] | None = None, facts_by: dict[str, str] | None = None) -> dict[str, Any]:
    realised = [t for t in item.tags if t in verdicts and verdicts[t][1].realised]
    missed = [t for t in item.tags if t in verdicts and not verdicts[t][1].realised]
    judged = len(realised) + len(missed)
    scores = {t: {"checker": name, "realised": j.realised, "score": j.score, "category": item.categories.get(t), **j.detail}
              for t, (name, j) in verdicts.items()}
    return {"id": item.id, "file_name": item.file_name, "intended_tags": item.tags, "realised_tags": realised,
            "missed_tags": missed, "unjudged_tags": unjudged,
            "realisation": round(len(realised) / judged, 6) if judged else None,
            "scores": scores, **({"facts": facts, "facts_by": facts_by} if facts is not None else {}),
            "input_hash": item.input_hash}


def _unplayable_row(item: Item, checkers: list[Checker], reason: str) -> dict[str, Any]:
    """The line of a clip no checker can measure: each tag a checker claims is missed (its score says
    ``unplayable``), the others stay unjudged as on any clip, and the line says why."""
    per, unjudged = _assign(item, checkers)
    owner = {t.tag: name for name, tags in per.items() for t in tags}
    missed = [t for t in item.tags if t in owner]
    scores = {t: {"checker": owner[t], "realised": False, "score": 0.0, "category": item.categories.get(t), "unplayable": True}
              for t in missed}
    return {"id": item.id, "file_name": item.file_name, "intended_tags": item.tags, "realised_tags": [],
            "missed_tags": missed, "unjudged_tags": unjudged, "realisation": 0.0 if missed else None,
            "unplayable": True, "reason": reason, "scores": scores, "input_hash": item.input_hash}


def _read(item: Item, max_seconds: float | None) -> tuple[Clip, str | None]:
    """The clip as the checkers see it, and why it cannot be judged (None: it can)."""
    audio, rate, frames = read_mono_frames(item.path, max_seconds)
    return Clip(item.id, audio, rate, item.digest), unplayable(audio, rate, frames, item.duration)


def score_batch(items: list[Item], checkers: list[Checker], max_seconds: float | None,
                timings: dict[str, float], facts: Facts | None = None) -> list[dict[str, Any]]:
    """Read a batch of clips, let the checkers judge the playable ones and measure their facts (BPM,
    key: :mod:`tagtune.tta.facts`); every clip's line, in order (an unplayable clip's says why)."""
    read = [_read(it, max_seconds) for it in items]
    ok = [i for i, (_, why) in enumerate(read) if why is None]
    judged = dict(zip(ok, _judge([items[i] for i in ok], [read[i][0] for i in ok], checkers, timings, facts), strict=True))
    return [judged[i] if why is None else _unplayable_row(items[i], checkers, why) for i, (_, why) in enumerate(read)]


def _judge(items: list[Item], clips: list[Clip], checkers: list[Checker], timings: dict[str, float],
           facts: Facts | None) -> list[dict[str, Any]]:
    """The lines of playable clips: each tag judged by the first checker claiming it, then the facts."""
    assigned = [_assign(it, checkers) for it in items]
    verdicts: list[dict[str, tuple[str, Judgement]]] = [{} for _ in items]
    for checker in checkers:
        wanted = [per[checker.name] for per, _ in assigned]
        if not any(wanted):
            continue
        started = time.perf_counter()
        judged = checker.judge(clips, wanted)
        timings[checker.name] = timings.get(checker.name, 0.0) + time.perf_counter() - started
        for i, result in enumerate(judged):
            asked = {t.tag for t in wanted[i]}
            verdicts[i].update({tag: (checker.name, j) for tag, j in result.items() if tag in asked})
    started = time.perf_counter()
    measuring = facts is not None and bool(facts.names) and bool(clips)
    measured = [facts.measure(clip, verdict) if measuring else None for clip, verdict in zip(clips, verdicts, strict=True)]
    if measuring:
        timings["facts"] = timings.get("facts", 0.0) + time.perf_counter() - started
    by = facts.estimators() if facts is not None else None
    rows = []
    for item, (per, unjudged), verdict, found in zip(items, assigned, verdicts, measured, strict=True):
        skipped = [t.tag for ts in per.values() for t in ts if t.tag not in verdict]  # claimed, then not judged
        rows.append(_row(item, verdict, unjudged + skipped, found, by))
    return rows


def batches(items: list[Item], size: int) -> Iterator[list[Item]]:
    """``verification.batch_size`` clips at a time: one append (and one flush) per batch."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
