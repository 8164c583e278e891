"""``tagtune dataset export``: the dataset folder in the formats trainers and the Hub read.

Formats (each into its own folder ``E``; never inside the dataset folder, where ``datasets`` would
mistake it for data):

* ``parquet``: ``E/data/<split>-0000i-of-0000n.parquet`` with the audio embedded as a real ``Audio``
  feature (``struct<bytes, path>`` plus the ``huggingface`` schema metadata), sharded by size and
  written by streaming (one batch of clips in memory), and ``E/README.md``: the card of exactly
  what ``E`` holds. ``--push REPO`` uploads it with ``datasets``' own ``push_to_hub`` plus the card,
  plots and notices (refused when the declared licence is less restrictive than an input's,
  unless ``--licence-checked``).
* ``jsonl``: ``E/<split>.jsonl`` (every column, ``file_name`` relative to ``E``) and ``E/audio/``.
* ``audiocraft``: ``E/<split>/data.jsonl`` manifests (path, duration, sample_rate ...) and a sidecar
  ``.json`` beside each clip with the fields audiocraft's music dataset reads.
* ``webdataset``: ``E/<split>-000000.tar`` shards of ``<key>.wav`` + ``<key>.json`` (``prompt`` ...),
  the format stable-audio-tools trains from.
* ``concepts``: per concept, positive clips and as many matched negatives, its counterfactual pairs,
  random sets and a manifest, for TCAV-style probing (:mod:`tagtune.pipeline.concepts`).

``--exclude FILE`` applies the leakage guard here too.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.errors import ConfigError, DependencyError, InputError, TagtuneError
from tagtune.files.resumable import (
    atomic_write_json,
    atomic_write_text,
    dumps_line,
    ensure_dir,
    link_or_copy,
)
from tagtune.pipeline.dataset import METADATA, SPLITS, read_provenance
from tagtune.report import SILENT, Reporter

FORMATS = ("parquet", "jsonl", "audiocraft", "webdataset", "concepts")
SHARD_BYTES = 500 << 20


@dataclass
class ExportResult:
    out_dir: Path
    files: dict[str, list[Path]]
    rows: dict[str, int]
    excluded: int = 0
    pushed_to: str | None = None
    split_bytes: dict[str, tuple[int, int]] = field(default_factory=dict)  # Parquet: rows and audio bytes
    records: list[dict[str, Any]] = field(default_factory=list)  # Parquet: the rows written (metadata, for the card)


def find_dataset_dir(path: Path) -> Path:
    """Accept the dataset folder itself or a pipeline run folder containing ``dataset/``."""
    path = Path(path)
    for candidate in (path, path / "dataset"):
        if any((candidate / s / METADATA).is_file() for s in SPLITS):
            return candidate
    raise InputError(f"no dataset here (expected <split>/{METADATA} or dataset/<split>/{METADATA})", path,
                     hint="run `tagtune pipeline run` first, or point at its output folder")


def iter_dataset(ds_dir: Path, exclude: Any = None) -> Iterator[tuple[str, dict[str, Any], Path]]:
    """``(split, row, audio file)`` for every row of a dataset folder, checked; excluded rows skipped."""
    from tagtune.files.readers import iter_records

    for split in SPLITS:
        meta = ds_dir / split / METADATA
        if not meta.is_file():
            continue
        for line, rec in iter_records(meta):
            name = rec.get("file_name")
            audio = (ds_dir / split / str(name)).resolve() if isinstance(name, str) else None
            if audio is None or not audio.is_relative_to(ds_dir.resolve()) or not audio.is_file():
                raise InputError(f"audio file {name} is missing", meta, line, "file_name")
            if exclude is not None and not exclude.keep(rec.get("tags") or [], rec.get("caption")):
                continue
            yield split, rec, audio


def export_dataset(path: Path, fmt: str = "parquet", out_dir: Path | None = None, exclude: list[str] | None = None,
                   push: str | None = None, licence_checked: bool = False, shard_bytes: int = SHARD_BYTES,
                   reporter: Reporter = SILENT, concept_options: Mapping[str, Any] | None = None) -> ExportResult:
    """Export the dataset folder at ``path`` (or ``path/dataset``) as ``fmt`` into ``out_dir``.

    ``concept_options`` (``concepts`` only): ``min_examples``, ``random_sets``, ``random_size``, ``seed``.

    Raises:
        InputError: No dataset, a missing audio file. ConfigError: An unknown format, ``--push``
            without Parquet, or a licence the inputs do not allow (without ``licence_checked``).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}'", hint=f"use one of: {', '.join(FORMATS)}")
    if push and fmt != "parquet":
        raise ConfigError("--push uploads the Parquet export", hint="use --format parquet with --push")
    ds_dir = find_dataset_dir(path)
    if push:
        check_licence(ds_dir, licence_checked)
    out = Path(out_dir) if out_dir else ds_dir.parent / f"export-{fmt}"
    if out.resolve().is_relative_to(ds_dir.resolve()):
        raise ConfigError(f"export folder {out} is inside the dataset folder", hint="export next to it, e.g. -o export")
    from tagtune.files.runs import claim_dir

    claim_dir(out, f"dataset export --format {fmt}")  # a folder of yours is refused, an earlier export is updated
    ex = None
    if exclude:
        from tagtune.pipeline.exclude import load_excluder

        ex = load_excluder(exclude)
    if fmt == "concepts":
        from tagtune.pipeline.concepts import export_concepts

        result = export_concepts(ds_dir, out, iter_dataset(ds_dir, ex), reporter, **dict(concept_options or {}))
    else:
        writer = {"parquet": _parquet, "jsonl": _jsonl, "audiocraft": _audiocraft, "webdataset": _webdataset}[fmt]
        result = writer(ds_dir, out, iter_dataset(ds_dir, ex), shard_bytes, reporter)
    result.excluded = ex.total_dropped if ex else 0
    if fmt == "parquet":  # the card of exactly this folder (loaded from the Hub repo when pushed)
        _export_card(ds_dir, out, result, push or str(out), ex.summary() if ex else None)
    if push:
        result.pushed_to = push_to_hub(out, push, shard_bytes)
    return result


def check_licence(ds_dir: Path, licence_checked: bool) -> None:
    """Refuse to publish a dataset whose declared licence is less restrictive than an input's."""
    prov = read_provenance(ds_dir)
    conflicts = _conflicts(prov)
    if conflicts and not licence_checked:
        raise ConfigError(
            f"the declared licence {prov.get('declared_license')} is less restrictive than an input's: {conflicts[0]}"
            + (f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""),
            hint=f"check the inputs' licences (the card's Licences section): set dataset.license "
                 f"(the inputs need {prov.get('inherited_license')}), or pass --licence-checked if you have checked it",
        )


def _conflicts(prov: Mapping[str, Any]) -> list[str]:
    from tagtune.records import licences

    srcs = [licences.Source(s["role"], s["id"], s["what"], licences.licence(s["license"]) if s["license"] else None)
            for s in prov.get("licences", [])]
    return licences.conflicts(str(prov.get("declared_license", "other")), srcs)


# -- Parquet ------------------------------------------------------------------------------------

def _parquet(ds_dir: Path, out: Path, rows: Iterator[tuple[str, dict[str, Any], Path]], shard_bytes: int,
             reporter: Reporter) -> ExportResult:
    """Stream the rows into size-bounded shards per split, then write the card of ``out``."""
    from tagtune.pipeline.parquet import ShardedWriter

    data = ensure_dir(out / "data")
    for stale in data.glob("*.parquet"):  # an earlier export of this folder (it is ours: named by us)
        stale.unlink()
    writers: dict[str, ShardedWriter] = {}
    records: list[dict[str, Any]] = []
    with reporter.progress("parquet", unit="clips") as task:
        for split, rec, audio in rows:
            if split not in writers:
                writers[split] = ShardedWriter(data, split, _row_schema(ds_dir, split), shard_bytes)
            writers[split].add(rec, audio)
            records.append(rec)
            task.advance(1)
    files = {s: w.close() for s, w in writers.items()}
    result = ExportResult(out, files, {s: w.rows for s, w in writers.items()}, records=records)
    result.split_bytes = {s: (w.rows, w.bytes) for s, w in writers.items()}
    return result


def _row_schema(ds_dir: Path, split: str) -> Any:
    import pyarrow.parquet as pq

    return pq.ParquetFile(ds_dir / split / METADATA).schema_arrow


def _export_card(ds_dir: Path, out: Path, result: ExportResult, load_path: str,
                 excluded: dict[str, Any] | None) -> None:
    """The card of an export folder, from exactly the rows written there (the dataset's card with its
    files section and configs rewritten), with the plots, notices and provenance it refers to."""
    from tagtune.pipeline.card import write_card, write_plots
    from tagtune.records.taxonomy import Taxonomy

    prov = read_provenance(ds_dir)
    if excluded:  # the export's own leakage guard
        prov = {**prov, "excluded": excluded}
    taxonomy = Taxonomy(prov["taxonomy"]) if prov.get("taxonomy") else None
    dataset_cfg = prov.get("dataset") or {}
    for name in ("NOTICE.md", "provenance.json"):
        if (ds_dir / name).is_file():
            shutil.copyfile(ds_dir / name, out / name)
    if taxonomy is None or not dataset_cfg:
        return
    plots = write_plots(result.records, taxonomy, out / "plots")
    config_paths = {s: [f"data/{s}-*.parquet"] for s in result.files}
    write_card(out, result.records, taxonomy, dataset_cfg, prov, plots, result.split_bytes, config_paths, load_path)


def push_to_hub(out: Path, repo: str, shard_bytes: int) -> str:
    """Upload a Parquet export with ``datasets``' own push, then the card, plots and notices it names."""
    try:
        import datasets
        from huggingface_hub import HfApi
    except ImportError as exc:
        raise DependencyError("--push needs datasets and huggingface_hub", hint="pip install 'tagtune[hub]'") from exc
    try:
        ds = datasets.load_dataset("parquet", data_dir=str(out / "data"))
        ds.push_to_hub(repo, max_shard_size=shard_bytes)
        HfApi().upload_folder(repo_id=repo, repo_type="dataset", folder_path=str(out),
                              allow_patterns=["README.md", "NOTICE.md", "provenance.json", "plots/*.png"],
                              commit_message="tagtune: dataset card, plots and notices")
    except Exception as exc:  # noqa: BLE001 -- network, auth and Hub errors of many types
        first = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise TagtuneError(f"cannot push to the Hub dataset '{repo}': {first}",
                           hint=f"check your network and `hf auth login`; the export is kept in {out}") from exc
    return f"https://huggingface.co/datasets/{repo}"


# -- JSONL, audiocraft, WebDataset ------------------------------------------------------------------

def _jsonl(ds_dir: Path, out: Path, rows: Iterator[tuple[str, dict[str, Any], Path]], shard_bytes: int,
           reporter: Reporter) -> ExportResult:
    lines: dict[str, list[str]] = {}
    for split, rec, audio in rows:
        name = f"audio/{split}/{audio.name}"
        link_or_copy(audio, out / name)
        lines.setdefault(split, []).append(dumps_line({**rec, "file_name": name}))
    files = {s: [atomic_write_text(out / f"{s}.jsonl", "".join(v))] for s, v in lines.items()}
    return ExportResult(out, files, {s: len(v) for s, v in lines.items()})


AUDIOCRAFT_SPLITS = {"train": "train", "validation": "valid", "test": "evaluate"}


def music_info(rec: Mapping[str, Any]) -> dict[str, Any]:
    """The sidecar audiocraft's ``MusicDataset`` reads: every ``MusicInfo`` field (null when unknown)."""
    def joined(cat: str) -> str | None:
        tags = rec.get(cat) or []
        return ", ".join(tags) if tags else None

    return {"title": rec.get("id"), "artist": None, "key": None, "bpm": rec.get("bpm"), "genre": joined("genre"),
            "moods": list(rec.get("mood") or []), "keywords": list(rec.get("tags") or []),
            "description": rec.get("caption"), "name": rec.get("id"), "instrument": joined("instrument")}


def _audiocraft(ds_dir: Path, out: Path, rows: Iterator[tuple[str, dict[str, Any], Path]], shard_bytes: int,
                reporter: Reporter) -> ExportResult:
    lines: dict[str, list[str]] = {}
    for split, rec, audio in rows:
        name = AUDIOCRAFT_SPLITS.get(split, split)
        clip = (out / "audio" / name / audio.name).resolve()
        link_or_copy(audio, clip)
        atomic_write_json(clip.with_suffix(".json"), music_info(rec))
        lines.setdefault(name, []).append(dumps_line({
            "path": str(clip), "duration": rec.get("duration"), "sample_rate": rec.get("sample_rate"),
            "amplitude": None, "weight": None, "info_path": None}))
    files = {s: [atomic_write_text(out / s / "data.jsonl", "".join(v))] for s, v in lines.items()}
    return ExportResult(out, files, {s: len(v) for s, v in lines.items()})


def wds_key(row_id: str) -> str:
    """A WebDataset key (no dots: the key ends at the first dot of a member's name)."""
    from tagtune.files.ids import safe_id

    return safe_id(row_id).replace(".", "_")


def _webdataset(ds_dir: Path, out: Path, rows: Iterator[tuple[str, dict[str, Any], Path]], shard_bytes: int,
                reporter: Reporter) -> ExportResult:
    from tagtune.pipeline.wds import TarShards

    shards: dict[str, TarShards] = {}
    for split, rec, audio in rows:
        if split not in shards:
            shards[split] = TarShards(out, split, shard_bytes)
        meta = {"prompt": rec.get("caption"), "seconds_total": rec.get("duration"), **rec}
        shards[split].add(wds_key(str(rec["id"])), audio, meta)
    files = {s: t.close() for s, t in shards.items()}
    return ExportResult(out, files, {s: t.rows for s, t in shards.items()})
