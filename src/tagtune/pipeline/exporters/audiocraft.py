"""``--format audiocraft``: the manifests and sidecars audiocraft's music dataset trains from.

``E/<split>/data.jsonl`` manifests (path, duration, sample_rate, ...) for the splits audiocraft
names ``train``, ``valid`` and ``evaluate``, and a sidecar ``.json`` beside each clip with every
``MusicInfo`` field audiocraft's ``MusicDataset`` reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tagtune.files.resumable import atomic_write_json, atomic_write_text, dumps_line, link_or_copy
from tagtune.pipeline.exporters.base import ExportOptions, ExportResult, ExportRow
from tagtune.report import Reporter

AUDIOCRAFT_SPLITS = {"train": "train", "validation": "valid", "test": "evaluate"}


def music_info(rec: Mapping[str, Any]) -> dict[str, Any]:
    """The sidecar audiocraft's ``MusicDataset`` reads: every ``MusicInfo`` field (null when unknown)."""
    def joined(cat: str) -> str | None:
        tags = rec.get(cat) or []
        return ", ".join(tags) if tags else None

    return {"title": rec.get("id"), "artist": None, "key": None, "bpm": rec.get("bpm"), "genre": joined("genre"),
            "moods": list(rec.get("mood") or []), "keywords": list(rec.get("tags") or []),
            "description": rec.get("caption"), "name": rec.get("id"), "instrument": joined("instrument")}


class AudiocraftExporter:
    """audiocraft manifests per split and a ``MusicInfo`` sidecar beside each clip."""

    name = "audiocraft"
    publishable = False

    def write(self, ds_dir: Path, out: Path, rows: Iterator[ExportRow], options: ExportOptions,
              reporter: Reporter) -> ExportResult:
        lines: dict[str, list[str]] = {}
        for row in rows:
            rec = row.record
            name = AUDIOCRAFT_SPLITS.get(row.split, row.split)
            clip = (out / "audio" / name / row.audio.name).resolve()
            link_or_copy(row.audio, clip)
            atomic_write_json(clip.with_suffix(".json"), music_info(rec))
            lines.setdefault(name, []).append(dumps_line({
                "path": str(clip), "duration": rec.get("duration"), "sample_rate": rec.get("sample_rate"),
                "amplitude": None, "weight": None, "info_path": None}))
        files = {s: [atomic_write_text(out / s / "data.jsonl", "".join(v))] for s, v in lines.items()}
        return ExportResult(out, files, {s: len(v) for s, v in lines.items()})
