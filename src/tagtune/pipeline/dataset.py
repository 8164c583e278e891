"""Assemble the publishable dataset folder from the audio stage's output.

``DIR/dataset/`` gets ``metadata.jsonl`` (:class:`~tagtune.schema.DatasetRow` lines: id, file_name,
split, tags, one list per taxonomy category, caption, duration, sample_rate, provenance and every
column carried from the first file), the audio files (hard links when the file system
allows, else copies), PNG plots and a ``README.md`` dataset card. Every file is written
atomically, so a killed assembly is simply redone.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.errors import InputError
from tagtune.pipeline.splits import assign_splits
from tagtune.resumable import atomic_path, atomic_write_text, dumps_line, ensure_dir
from tagtune.schema import ClipRow, DatasetRow, read_file
from tagtune.taxonomy import Taxonomy


@dataclass
class DatasetSummary:
    path: Path
    items: int
    splits: dict[str, int]
    plots: list[Path] = field(default_factory=list)


def _link_or_copy(src: Path, dest: Path) -> None:
    if dest.exists() and dest.stat().st_size == src.stat().st_size:
        return
    with atomic_path(dest) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def read_clips(tta_dir: Path, taxonomy: Taxonomy) -> list[tuple[ClipRow, Path]]:
    """The audio stage's rows (the one reader), each with its audio file, checked to exist and read."""
    from tagtune.tta.audio import probe
    from tagtune.tta.merge import clip_path

    meta = Path(tta_dir) / "metadata.jsonl"
    if not meta.is_file():
        raise InputError("no metadata.jsonl: the audio stage has not finished", meta)
    out = []
    for row in read_file(meta, ClipRow, taxonomy, empty="keep"):
        audio = clip_path(Path(tta_dir), {"file_name": row.file_name}, meta, row.line)
        if probe(audio) is None:
            raise InputError(f"audio file {audio} is missing or unreadable", meta, row.line, "file_name")
        out.append((row, audio))
    return out


def build_dataset(
    tta_dir: Path,
    out_dir: Path,
    taxonomy: Taxonomy,
    dataset_cfg: Mapping[str, Any],
    provenance: Mapping[str, Any],
) -> DatasetSummary:
    """Write ``out_dir`` (metadata.jsonl, audio/, plots/, README.md) from the audio stage's folder."""
    clips = read_clips(tta_dir, taxonomy)
    if not clips:
        raise InputError("the audio stage produced no clips", Path(tta_dir) / "metadata.jsonl")
    splits = assign_splits([r.id for r, _ in clips], dict(dataset_cfg["splits"]), int(dataset_cfg["split_seed"]))
    ensure_dir(out_dir / "audio")
    clips.sort(key=lambda c: c[0].id)
    lines = []
    for row, audio in clips:
        name = f"audio/{audio.name}"
        _link_or_copy(audio, out_dir / name)
        fields = {f: getattr(row, f) for f in ("id", "tags", "caption", "reference_caption", "pair_id", "concept", "edit",
                                                "provenance", "extra", "duration", "sample_rate")}
        lines.append(DatasetRow(**fields, file_name=name, split=splits[row.id]).to_record(taxonomy))
    atomic_write_text(out_dir / "metadata.jsonl", "".join(dumps_line(r) for r in lines))
    keep = {r["file_name"] for r in lines}
    for stale in (out_dir / "audio").iterdir():  # clips from an earlier, larger run
        if f"audio/{stale.name}" not in keep:
            stale.unlink()
    from tagtune.pipeline.card import write_card, write_plots

    plots = write_plots(lines, taxonomy, out_dir / "plots")
    write_card(out_dir, lines, taxonomy, dataset_cfg, provenance, plots)
    return DatasetSummary(out_dir, len(lines), dict(Counter(splits.values())), plots)
