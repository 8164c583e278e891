"""``tagtune dataset export``: the dataset folder in the formats trainers and the Hub read.

Each format writes into its own folder ``E`` (never inside the dataset folder, where ``datasets``
would mistake it for data) and is a member of the ``exporters`` family
(:mod:`tagtune.pipeline.exporters`): ``parquet`` (embedded ``Audio`` feature and the card; what
``--push REPO`` uploads, refused when the declared licence is less restrictive than an input's
unless ``--licence-checked``), ``jsonl``, ``audiocraft``, ``webdataset``, ``concepts``, or a format
of yours. Rows are read and checked here once, for every format; ``--exclude FILE`` applies the
leakage guard.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tagtune.errors import ConfigError, DependencyError, InputError, OutputError, TagtuneError
from tagtune.files.readers import iter_records
from tagtune.files.resumable import output_error
from tagtune.files.runs import MARKER, claim_dir
from tagtune.pipeline.dataset import METADATA, SPLITS, read_provenance
from tagtune.pipeline.exporters.base import (
    EXPORTERS,
    Exporter,
    ExportOptions,
    ExportResult,
    ExportRow,
)
from tagtune.plugins import load
from tagtune.records import licences
from tagtune.report import SILENT, Reporter

SHARD_BYTES = 500 << 20
MIN_SHARD_BYTES = 1 << 20  # smaller shards make one file per clip: never what a trainer or the Hub wants


def find_dataset_dir(path: Path) -> Path:
    """Accept the dataset folder itself or a pipeline run folder containing ``dataset/``."""
    path = Path(path)
    for candidate in (path, path / "dataset"):
        if any((candidate / s / METADATA).is_file() for s in SPLITS):
            return candidate
    raise InputError(f"no dataset here (expected <split>/{METADATA} or dataset/<split>/{METADATA})", path,
                     hint="run `tagtune pipeline run` first, or point at its output folder")


def _rows(ds_dir: Path) -> Iterator[tuple[str, Path, int, dict[str, Any], Path]]:
    """``(split, metadata file, line, row, audio file)`` of every row; a missing clip is an InputError."""
    root = ds_dir.resolve()
    for split in SPLITS:
        meta = ds_dir / split / METADATA
        if not meta.is_file():
            continue
        for line, rec in iter_records(meta):
            name = rec.get("file_name")
            audio = Path(os.path.abspath(ds_dir / split / str(name))) if isinstance(name, str) else None
            if audio is None or not audio.is_relative_to(root) or not audio.is_file():  # links may point anywhere
                raise InputError(f"audio file {name} is missing", meta, line, "file_name")
            yield split, meta, line, rec, audio


def check_dataset(ds_dir: Path) -> int:
    """Check a dataset folder before anything of it is published; returns its row count.

    Ids are unique across splits, and each clip is readable and as long as its row says (within
    one sample frame): a row copied into another split, or a clip truncated since the build,
    stops the export in one line before a file is written.

    Raises:
        InputError: ``file:line: field`` of the first row that fails a check.
    """
    seen: dict[str, str] = {}
    for split, meta, line, rec, audio in _rows(ds_dir):
        rid = str(rec.get("id"))
        if rid in seen:
            raise InputError(f"id '{rid}' is in both {seen[rid]} and {split}: a row may be in one split only",
                             meta, line, "id", hint="rebuild the dataset folder with `tagtune pipeline run`")
        seen[rid] = split
        _check_clip(audio, rec, meta, line)
    return len(seen)


def iter_dataset(ds_dir: Path, exclude: Any = None) -> Iterator[ExportRow]:
    """Every row of a dataset folder with its audio file; rows the leakage guard excludes are skipped."""
    for split, _, _, rec, audio in _rows(ds_dir):
        if exclude is not None and not exclude.keep(rec.get("tags") or [], rec.get("caption")):
            continue
        yield ExportRow(split, rec, audio)


def _check_clip(audio: Path, rec: dict[str, Any], meta: Path, line: int) -> None:
    """The clip opens and holds the duration its row states (one sample frame of slack)."""
    import soundfile as sf

    try:
        info = sf.info(str(audio))
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise InputError(f"audio file {audio.name} is not readable audio ({' '.join(str(exc).split())[:120]})",
                         meta, line, "file_name") from exc
    stated = rec.get("duration")
    if isinstance(stated, (int, float)) and abs(info.frames - stated * info.samplerate) > 1:
        raise InputError(f"audio file {audio.name} holds {info.frames / info.samplerate:.3f} s but its row says "
                         f"{float(stated):.3f} s", meta, line, "duration",
                         hint="the clip was changed after the dataset was built: rebuild it with `tagtune pipeline run`")


def _first_or_fail(rows: Iterator[ExportRow], excluded: Any) -> Iterator[ExportRow]:
    """The rows, refusing in one line before anything is written when there are none to export."""
    first = next(rows, None)
    if first is None:
        why = f": the leakage guard left out all {excluded.total_dropped} rows" if excluded is not None else ""
        raise InputError(f"no rows to export{why}", hint="check the --exclude files: nothing would be published")
    yield first
    yield from rows


def export_dataset(path: Path, fmt: str = "parquet", out_dir: Path | None = None, exclude: list[str] | None = None,
                   push: str | None = None, licence_checked: bool = False, shard_bytes: int = SHARD_BYTES,
                   reporter: Reporter = SILENT, params: Mapping[str, Any] | None = None) -> ExportResult:
    """Export the dataset folder at ``path`` (or ``path/dataset``) as ``fmt`` into ``out_dir``.

    Args:
        fmt: An export format: a built-in name, ``package.module:Class`` or an entry point of ``tagtune.exporters``.
        params: Format-specific settings (``concepts``: ``min_examples``, ``random_sets``, ``random_size``, ``seed``).

    Raises:
        InputError: No dataset, a missing audio file. ConfigError: An unknown format, ``--push``
            of a format that cannot be published, or a licence the inputs do not allow (without
            ``licence_checked``).
    """
    exporter: Exporter = load(EXPORTERS, fmt)()
    if shard_bytes < MIN_SHARD_BYTES:
        raise ConfigError(f"--shard-mb must be at least {MIN_SHARD_BYTES >> 20} (got {shard_bytes / (1 << 20):g})",
                          hint="shards of a few hundred MB suit the Hub and trainers (default 500)")
    if push and not exporter.publishable:
        raise ConfigError(f"--push uploads a publishable export; {fmt} is not one", hint="use --format parquet with --push")
    ds_dir = find_dataset_dir(path)
    if push:
        check_licence(ds_dir, licence_checked)
    out = Path(out_dir) if out_dir else ds_dir.parent / f"export-{exporter.name}"
    if out.resolve().is_relative_to(ds_dir.resolve()):
        raise ConfigError(f"export folder {out} is inside the dataset folder", hint="export next to it, e.g. -o export")
    _check_one_format(out, exporter.name)
    check_dataset(ds_dir)
    claim_dir(out, f"dataset export --format {exporter.name}")  # a folder of yours is refused, an earlier export is updated
    ex = None
    if exclude:
        from tagtune.pipeline.exclude import load_excluder

        ex = load_excluder(exclude)
    options = ExportOptions(shard_bytes, {**(params or {}), "card_load_path": push, "excluder": ex})
    try:
        result = exporter.write(ds_dir, out, _first_or_fail(iter_dataset(ds_dir, ex), ex), options, reporter)
    except OSError as exc:  # a full disk, a folder that turned read-only: one line, no half-written shard left
        for tmp in out.rglob("*.tmp"):
            tmp.unlink(missing_ok=True)
        raise output_error(out, exc) from exc
    result.excluded = ex.total_dropped if ex else 0
    if push:
        result.pushed_to = push_to_hub(out, push)
    return result


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``--option KEY=VALUE`` settings for an export format (values read as YAML: 3, true, [a, b], text)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--option '{item}': expected KEY=VALUE", hint="e.g. --option separator=';'")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _check_one_format(out: Path, name: str) -> None:
    """An export folder holds one format: refuse to write another format's files beside it."""
    try:
        made_by = json.loads((out / MARKER).read_text(encoding="utf-8")).get("command", "")
    except (OSError, ValueError, AttributeError):
        return
    prefix = "dataset export --format "
    if isinstance(made_by, str) and made_by.startswith(prefix) and made_by[len(prefix):] != name:
        raise OutputError(f"{out} holds a {made_by[len(prefix):]} export: a {name} export would mix formats",
                          hint="export each format into its own folder (-o)")


def check_licence(ds_dir: Path, licence_checked: bool) -> None:
    """Refuse to publish a dataset whose declared licence is less restrictive than an input's, or one
    with an input whose licence nobody knows (unless the user says they checked)."""
    if licence_checked:
        return
    prov = read_provenance(ds_dir)
    srcs = [licences.Source.from_dict(s) for s in prov.get("licences", [])]
    unknown = licences.unknown(srcs)
    if unknown:
        raise ConfigError(f"the licence of an input is unknown ({unknown[0]}"
                          + (f", and {len(unknown) - 1} more" if len(unknown) > 1 else "") + ")",
                          hint="check it and declare it in dataset.input_licenses, or pass --licence-checked if you have checked it")
    conflicts = licences.conflicts(str(prov.get("declared_license", "other")), srcs)
    if conflicts:
        raise ConfigError(
            f"the declared licence {prov.get('declared_license')} is less restrictive than an input's: {conflicts[0]}"
            + (f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""),
            hint=f"check the inputs' licences (the card's Licences section): set dataset.license "
                 f"(the inputs need {prov.get('inherited_license')}), or pass --licence-checked if you have checked it",
        )


def push_to_hub(out: Path, repo: str) -> str:
    """Upload an export folder as it is (data shards, card, plots, notices) in one commit."""
    try:
        from huggingface_hub import HfApi
    except ImportError as exc:
        raise DependencyError("--push needs huggingface_hub", hint="pip install 'tagtune[hub]'") from exc
    try:
        api = HfApi()
        api.create_repo(repo, repo_type="dataset", exist_ok=True)
        api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=str(out),
                          allow_patterns=["data/*.parquet", "README.md", "NOTICE.md", "provenance.json", "plots/*.png"],
                          commit_message="tagtune: dataset export")
    except Exception as exc:  # noqa: BLE001 -- network, auth and Hub errors of many types
        first = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise TagtuneError(f"cannot push to the Hub dataset '{repo}': {first}",
                           hint=f"check your network and `hf auth login`; the export is kept in {out}") from exc
    return f"https://huggingface.co/datasets/{repo}"
