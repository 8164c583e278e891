"""Assemble the publishable dataset folder from the audio stage's output.

``DIR/dataset/`` gets ``metadata.jsonl`` (id, file_name, split, caption, aspect_list, one list
per taxonomy category, duration, sample_rate), the audio files (hard links when the file system
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
from tagtune.resumable import atomic_path, atomic_write_text, dumps_line, ensure_dir, iter_jsonl
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


def read_audio_metadata(tta_dir: Path, taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """Rows of the audio stage's metadata.jsonl, checked against the files they name."""
    import soundfile as sf

    meta = Path(tta_dir) / "metadata.jsonl"
    if not meta.is_file():
        raise InputError("no metadata.jsonl: the audio stage has not finished", meta)
    rows = []
    for line, rec in iter_jsonl(meta):
        for key in ("id", "file_name"):
            if key not in rec:
                raise InputError(f"missing '{key}'", meta, line, key)
        audio = Path(tta_dir) / rec["file_name"]
        try:
            info = sf.info(str(audio))
        except Exception as exc:
            raise InputError(f"audio file {audio} is missing or unreadable", meta, line, "file_name") from exc
        tags = taxonomy.sort(rec.get("tags") or rec.get("aspect_list") or [])
        row = {
            "id": str(rec["id"]),
            "file_name": f"audio/{Path(rec['file_name']).name}",
            "caption": rec.get("caption") or rec.get("text") or "",
            "aspect_list": tags,
            **taxonomy.by_category(tags),
            "duration": round(info.frames / info.samplerate, 3),
            "sample_rate": info.samplerate,
            "_source": audio,
        }
        rows.append(row)
    return rows


def build_dataset(
    tta_dir: Path,
    out_dir: Path,
    taxonomy: Taxonomy,
    dataset_cfg: Mapping[str, Any],
    provenance: Mapping[str, Any],
) -> DatasetSummary:
    """Write ``out_dir`` (metadata.jsonl, audio/, plots/, README.md) from the audio stage's folder."""
    rows = read_audio_metadata(tta_dir, taxonomy)
    if not rows:
        raise InputError("the audio stage produced no clips", Path(tta_dir) / "metadata.jsonl")
    splits = assign_splits([r["id"] for r in rows], dict(dataset_cfg["splits"]), int(dataset_cfg["split_seed"]))
    ensure_dir(out_dir / "audio")
    rows.sort(key=lambda r: r["id"])
    lines = []
    for row in rows:
        _link_or_copy(row.pop("_source"), out_dir / row["file_name"])
        ordered = {"id": row["id"], "file_name": row["file_name"], "split": splits[row["id"]]}
        ordered.update({k: v for k, v in row.items() if k not in ordered})
        lines.append(ordered)
    atomic_write_text(out_dir / "metadata.jsonl", "".join(dumps_line(r) for r in lines))
    keep = {r["file_name"] for r in lines}
    for stale in (out_dir / "audio").iterdir():  # clips from an earlier, larger run
        if f"audio/{stale.name}" not in keep:
            stale.unlink()
    from tagtune.pipeline.card import write_card, write_plots

    plots = write_plots(lines, taxonomy, out_dir / "plots")
    write_card(out_dir, lines, taxonomy, dataset_cfg, provenance, plots)
    return DatasetSummary(out_dir, len(lines), dict(Counter(splits.values())), plots)
