"""Assemble the publishable dataset folder from the audio stage's output.

Layout (the Hugging Face audiofolder convention with one folder per split, so that
``load_dataset(DIR)`` and ``load_dataset("audiofolder", data_dir=DIR)`` both give ``train``,
``validation`` and ``test`` with no row in two splits)::

    DIR/dataset/
      README.md                  # the card: YAML header (configs, dataset_info, licence ...) and body
      train/metadata.parquet     # DatasetRow rows; file_name relative to the split folder
      train/audio/*.wav
      validation/...  test/...
      plots/*.png
      provenance.json            # models with revisions, seeds, settings, licences, exclusions
      NOTICE.md                  # licence notices and obligations of the inputs

Splits are assigned by group (:mod:`tagtune.pipeline.splits`): the members of a counterfactual
pair, and rows with the same tag set, share a split. Rows matching ``dataset.exclude`` (evaluation
sets) are dropped and counted (:mod:`tagtune.pipeline.exclude`). Every row carries every column
(nulls where it has none), so all splits load with the same features. Audio files are hard links
when the file system allows, else copies; every file is written atomically; a rebuild removes
only the files an earlier build listed in its own metadata.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tagtune.errors import InputError
from tagtune.files.resumable import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    ensure_dir,
    link_or_copy,
)
from tagtune.records.reader import read_file
from tagtune.records.rows import ClipRow, DatasetRow
from tagtune.records.taxonomy import Taxonomy
from tagtune.report import SILENT, Reporter

SPLITS = ("train", "validation", "test")
METADATA = "metadata.parquet"


@dataclass
class DatasetSummary:
    path: Path
    items: int
    splits: dict[str, int]
    plots: list[Path] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)
    licence_conflicts: list[str] = field(default_factory=list)


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


def _exclude(clips: list[tuple[ClipRow, Path]], dataset_cfg: Mapping[str, Any],
             reporter: Reporter) -> tuple[list[tuple[ClipRow, Path]], dict[str, Any]]:
    """Drop the rows that repeat an evaluation set's tag sets or captions (``dataset.exclude``)."""
    from tagtune.pipeline.exclude import load_excluder

    files = list(dataset_cfg.get("exclude") or [])
    if not files:
        return clips, {}
    ex = load_excluder(files, n=dataset_cfg["exclude_ngram"], threshold=dataset_cfg["exclude_threshold"])
    kept = [(row, audio) for row, audio in clips if ex.keep(row.tags, row.caption)]
    reporter.note(f"leakage guard: dropped {ex.total_dropped} of {len(clips)} rows matching {', '.join(files)}")
    return kept, ex.summary()


def _records(clips: list[tuple[ClipRow, Path]], splits: dict[str, str],
             taxonomy: Taxonomy) -> tuple[dict[str, list[dict[str, Any]]], Any]:
    """The metadata rows of each split (every row with every column) and their one shared schema."""
    import pyarrow as pa

    from tagtune.pipeline.hf import arrow_schema, conform

    by_split: dict[str, list[dict[str, Any]]] = {}
    for row, audio in sorted(clips, key=lambda c: c[0].id):
        values = {f.name: getattr(row, f.name) for f in fields(ClipRow) if f.name not in ("file_name", "line")}
        if values["loudness_lufs"] is None:  # clips rendered before loudness was recorded, or brought in: measured here
            values["loudness_lufs"] = _measure_loudness(audio)
        rec = DatasetRow(**values, file_name=f"audio/{audio.name}", split=splits[row.id]).to_record(taxonomy)
        by_split.setdefault(splits[row.id], []).append({**rec, "_source": audio})
    schema = arrow_schema([r for rows in by_split.values() for r in rows], drop=("file_name", "split", "_source"))
    schema = pa.schema([pa.field("file_name", pa.string()), *schema])
    return {s: [{**conform(r, schema), "_source": r["_source"]} for r in rows] for s, rows in by_split.items()}, schema


def _measure_loudness(audio: Path) -> float | None:
    """A file's integrated loudness (ITU-R BS.1770-4), so every dataset row carries one."""
    import soundfile as sf

    from tagtune.tta.loudness import integrated

    data, rate = sf.read(str(audio), dtype="float32", always_2d=True)
    return integrated(data.T, rate)[0]


def _previous_files(out_dir: Path) -> set[Path]:
    """Audio files an earlier build listed (they may be removed; nothing else in the folder is)."""
    from tagtune.files.readers import iter_records

    out = set()
    for split in SPLITS:
        meta = out_dir / split / METADATA
        if meta.is_file():
            out |= {out_dir / split / rec["file_name"] for _, rec in iter_records(meta) if isinstance(rec.get("file_name"), str)}
    return out


def _write_splits(out_dir: Path, by_split: dict[str, list[dict[str, Any]]], schema: Any) -> dict[str, int]:
    """Link the audio and write ``<split>/metadata.parquet``; files an earlier build wrote and this one
    does not are removed (nothing else is touched). Returns the bytes of audio per split."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    previous, written, sizes = _previous_files(out_dir), set(), {}
    for split, rows in by_split.items():
        folder = ensure_dir(out_dir / split)
        for rec in rows:
            link_or_copy(rec["_source"], folder / rec["file_name"])
            written.add(folder / rec["file_name"])
        table = pa.Table.from_pylist([{k: v for k, v in r.items() if k != "_source"} for r in rows], schema=schema)
        with atomic_path(folder / METADATA) as tmp:
            pq.write_table(table, tmp)
        sizes[split] = sum((folder / r["file_name"]).stat().st_size for r in rows)
    for stale in previous - written:
        stale.unlink(missing_ok=True)
    for split in set(SPLITS) - set(by_split):  # a split an earlier, larger build had
        (out_dir / split / METADATA).unlink(missing_ok=True)
    return sizes


def build_dataset(tta_dir: Path, out_dir: Path, taxonomy: Taxonomy, dataset_cfg: Mapping[str, Any],
                  run: Mapping[str, Any], reporter: Reporter = SILENT) -> DatasetSummary:
    """Write ``out_dir`` (split folders, card, plots, provenance, notices) from the audio stage's folder.

    Args:
        tta_dir: The audio stage's output folder.
        out_dir: The dataset folder.
        taxonomy: Orders the tags and gives the category columns.
        dataset_cfg: The pipeline's ``dataset`` section (splits, seed, name, licence, exclude ...).
        run: What the pipeline knows about the run: ``inputs`` ({role: model or data id}) and
            ``stages`` (presets, overrides, settings), copied into ``provenance.json`` and the card.
    """
    from tagtune.pipeline.card import write_card, write_plots
    from tagtune.pipeline.splits import assign_splits, group_key
    from tagtune.records import licences

    clips, excluded = _exclude(read_clips(tta_dir, taxonomy), dataset_cfg, reporter)
    if not clips:
        raise InputError("no clips left for the dataset" + (" after the leakage guard" if excluded else ""),
                         Path(tta_dir) / "metadata.jsonl")
    groups = {row.id: group_key(row.tags, row.pair_id) for row, _ in clips}
    splits = assign_splits(list(groups), dict(dataset_cfg["splits"]), dataset_cfg["split_seed"], groups)
    by_split, schema = _records(clips, splits, taxonomy)
    sizes = _write_splits(out_dir, by_split, schema)
    rows = [r for s in by_split.values() for r in s]
    srcs = licences.sources(run.get("inputs", {}), dataset_cfg.get("input_licenses"))
    conflicts = licences.conflicts(dataset_cfg["license"], srcs)
    for line in conflicts:
        reporter.warn(f"licence: {line}; check it before publishing (dataset.license, or the inherited "
                      f"{licences.inherited(srcs)})")
    from omegaconf import OmegaConf

    provenance = {**run, "excluded": excluded, "licences": [s.to_dict() for s in srcs],
                  "declared_license": dataset_cfg["license"], "inherited_license": licences.inherited(srcs),
                  "taxonomy": taxonomy.to_dict(), "dataset": OmegaConf.to_container(OmegaConf.create(dict(dataset_cfg)))}
    atomic_write_json(out_dir / "provenance.json", provenance)
    atomic_write_text(out_dir / "NOTICE.md", _notice(srcs))
    plots = write_plots(rows, taxonomy, out_dir / "plots")
    counts = {s: len(by_split.get(s, [])) for s in SPLITS if s in by_split}
    write_card(out_dir, rows, taxonomy, dataset_cfg, provenance, plots, {s: (counts[s], sizes[s]) for s in counts})
    return DatasetSummary(out_dir, len(rows), counts, plots, excluded, conflicts)


def _notice(srcs: list[Any]) -> str:
    from tagtune.records import licences

    lines = ["# Notices and obligations", "", "What the models and data behind this dataset require of it "
             "(from tagtune's licence registry; check each source's own page before publishing).", ""]
    lines += [f"- {o}" for o in licences.obligations(srcs)] or ["- (none recorded)"]
    for notice in licences.notices(srcs):
        lines += ["", notice]
    unknown = licences.unknown(srcs)
    if unknown:
        lines += ["", "Unknown licences (check these by hand): " + "; ".join(unknown)]
    return "\n".join(lines) + "\n"


def split_counts(dataset_dir: Path) -> dict[str, int]:
    """Rows per split of a dataset folder (for the CLI and tests)."""
    import pyarrow.parquet as pq

    return {s: pq.ParquetFile(dataset_dir / s / METADATA).metadata.num_rows
            for s in SPLITS if (dataset_dir / s / METADATA).is_file()}


def read_provenance(dataset_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(dataset_dir) / "provenance.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def load_lines(dataset_dir: Path) -> list[str]:
    """How to load the folder from Python here: ``load_dataset`` where FFmpeg's libraries are present
    (datasets decodes the audio through torchcodec), else the metadata through Parquet plus soundfile."""
    from tagtune.pipeline.hf import ffmpeg_available

    if ffmpeg_available():
        return [f"datasets.load_dataset('{dataset_dir}')"]
    files = ", ".join(f"'{s}': '{dataset_dir / s / METADATA}'" for s in SPLITS if (Path(dataset_dir) / s / METADATA).is_file())
    return [f"datasets.load_dataset('parquet', data_files={{{files}}})",
            f"(no FFmpeg here, so no audio decoding in datasets: open each row's {dataset_dir}/<split>/<file_name> "
            "with soundfile, or install FFmpeg: bash scripts/install-ffmpeg.sh / apt install ffmpeg)"]
