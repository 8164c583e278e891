"""``--format audiocraft``: everything audiocraft's MusicGen solver needs to train on the dataset.

Written into the export folder ``E``::

    E/train/data.jsonl  E/valid/data.jsonl  E/evaluate/data.jsonl  E/generate/data.jsonl
    E/audio/<split>/<clip>.wav + <clip>.json      # the clip and its MusicInfo sidecar
    E/<name>.yaml                                 # the dset config: copy it to audiocraft's config/dset/audio/

* Manifests (``data.jsonl``): one ``AudioMeta`` per line (``path``, ``duration``, ``sample_rate``,
  ``amplitude``, ``weight``, ``info_path``) for the splits audiocraft names ``train``, ``valid``
  and ``evaluate`` (our train, validation and test), plus ``generate``: the prompts audiocraft's
  ``generate`` stage renders samples from, which are the test split's rows (as audiocraft's own
  MusicCaps config makes ``generate`` identical to ``evaluate``).
* Sidecars: every ``MusicInfo`` field audiocraft's ``MusicDataset`` reads, with ``bpm`` and
  ``key`` as the verify step measured them (null where not measured).
* ``<name>.yaml`` (``name``: the export folder's name): ``datasource.train/valid/evaluate/generate``
  pointing at the manifests, ``max_sample_rate`` and ``max_channels`` of the clips.

Paths are relative, never absolute: relative to the directory the export ran from, which is where
audiocraft expects to run (its manifests and dset configs are resolved against the directory the
solver runs from; dora resolves them against its launch directory). So export from your audiocraft
checkout, ``tagtune dataset export DS --format audiocraft -o egs/NAME``, and copy ``egs/NAME/NAME.yaml``
to ``config/dset/audio/``; then ``dora run solver=musicgen/musicgen_base_32khz dset=audio/NAME``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tagtune.files.resumable import atomic_write_json, atomic_write_text, dumps_line, link_or_copy
from tagtune.pipeline.exporters.base import ExportOptions, ExportResult, ExportRow
from tagtune.report import Reporter

AUDIOCRAFT_SPLITS = {"train": "train", "validation": "valid", "test": "evaluate"}
GENERATE_FROM = "evaluate"  # audiocraft's generate stage samples its prompts from the test split's rows


def music_info(rec: Mapping[str, Any]) -> dict[str, Any]:
    """The sidecar audiocraft's ``MusicDataset`` reads: every ``MusicInfo`` field (null when unknown)."""
    def joined(cat: str) -> str | None:
        tags = rec.get(cat) or []
        return ", ".join(tags) if tags else None

    bpm = rec.get("bpm")
    return {"title": rec.get("id"), "artist": None, "key": rec.get("key_estimate") or None,
            "bpm": round(float(bpm), 2) if isinstance(bpm, (int, float)) and bpm == bpm else None,
            "genre": joined("genre"), "moods": list(rec.get("mood") or []), "keywords": list(rec.get("tags") or []),
            "description": rec.get("caption"), "name": rec.get("id"), "instrument": joined("instrument")}


def _relative(path: Path) -> str:
    """``path`` relative to the working directory, with forward slashes (what the manifests and YAML hold)."""
    return Path(os.path.relpath(path, Path.cwd())).as_posix()


def dset_yaml(name: str, folders: Mapping[str, Path | None], max_sample_rate: int, max_channels: int) -> str:
    """audiocraft's ``config/dset/audio/<name>.yaml``: the datasource of every stage."""
    def where(split: str) -> str:
        folder = folders.get(split)
        return _relative(folder) if folder is not None else "null"

    lines = ["# @package __global__", f"# Written by tagtune (dataset export --format audiocraft): {name}.",
             "# Paths are relative to the directory the export ran from; run audiocraft from there.",
             "datasource:", f"  max_sample_rate: {int(max_sample_rate)}", f"  max_channels: {int(max_channels)}"]
    lines += [f"  {split}: {where(split)}" for split in ("train", "valid", "evaluate", "generate")]
    return "\n".join(lines) + "\n"


class AudiocraftExporter:
    """audiocraft manifests per split (and ``generate``), a ``MusicInfo`` sidecar beside each clip, a dset YAML."""

    name = "audiocraft"
    publishable = False

    def write(self, ds_dir: Path, out: Path, rows: Iterator[ExportRow], options: ExportOptions,
              reporter: Reporter) -> ExportResult:
        import soundfile as sf

        lines: dict[str, list[str]] = {}
        rate, channels = 0, 1
        for row in rows:
            rec = row.record
            name = AUDIOCRAFT_SPLITS.get(row.split, row.split)
            clip = out / "audio" / name / row.audio.name
            link_or_copy(row.audio, clip)
            atomic_write_json(clip.with_suffix(".json"), music_info(rec))
            lines.setdefault(name, []).append(dumps_line({
                "path": _relative(clip), "duration": rec.get("duration"), "sample_rate": rec.get("sample_rate"),
                "amplitude": None, "weight": None, "info_path": None}))
            rate = max(rate, int(rec.get("sample_rate") or 0))
            channels = max(channels, int(sf.info(str(clip)).channels))
        if GENERATE_FROM in lines:
            lines["generate"] = list(lines[GENERATE_FROM])
        files = {s: [atomic_write_text(out / s / "data.jsonl", "".join(v))] for s, v in lines.items()}
        folders = {s: out / s for s in lines}
        counts = {s: len(v) for s, v in lines.items()}
        files["dset"] = [atomic_write_text(out / f"{out.name}.yaml", dset_yaml(out.name, folders, rate, channels))]
        counts["dset"] = sum(n for s, n in counts.items() if s != "generate")  # the rows the dset config covers
        return ExportResult(out, files, counts)
