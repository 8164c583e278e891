"""``tagtune dataset export``: one Parquet or JSONL file per split, optionally pushed to the Hub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tagtune.errors import DependencyError, InputError, TagtuneError
from tagtune.resumable import atomic_path, ensure_dir, iter_jsonl


@dataclass
class ExportResult:
    out_dir: Path
    files: dict[str, Path]
    rows: dict[str, int]
    pushed_to: str | None = None


def find_dataset_dir(path: Path) -> Path:
    """Accept the dataset folder itself or a pipeline run folder containing ``dataset/``."""
    path = Path(path)
    for candidate in (path, path / "dataset"):
        if (candidate / "metadata.jsonl").is_file():
            return candidate
    raise InputError("no dataset here (expected metadata.jsonl or dataset/metadata.jsonl)", path,
                     hint="run `tagtune pipeline run` first, or point at its output folder")


def export_dataset(
    path: Path, fmt: str = "parquet", out_dir: Path | None = None, embed_audio: bool = False, push_to_hub: str | None = None
) -> ExportResult:
    """Write ``<split>.<fmt>`` files with every metadata column plus ``audio``.

    ``audio`` holds the absolute path of each clip, or with ``embed_audio`` a struct
    ``{"bytes", "path"}`` (the layout of the ``datasets`` Audio feature).
    """
    import pandas as pd

    if fmt not in ("parquet", "jsonl"):
        raise InputError(f"unknown export format '{fmt}'", hint="use --format parquet or --format jsonl")
    ds_dir = find_dataset_dir(path)
    rows = []
    meta = ds_dir / "metadata.jsonl"
    for line, rec in iter_jsonl(meta):
        if "split" not in rec or "file_name" not in rec:
            raise InputError("missing 'split' or 'file_name'", meta, line)
        audio = (ds_dir / rec["file_name"]).resolve()
        if not audio.is_file():
            raise InputError(f"audio file {audio} is missing", meta, line, "file_name")
        if embed_audio:
            if fmt == "jsonl":
                raise InputError("--embed-audio needs --format parquet (JSON cannot hold bytes)")
            rec["audio"] = {"bytes": audio.read_bytes(), "path": audio.name}
        else:
            rec["audio"] = str(audio)
        rows.append(rec)
    out_dir = ensure_dir(Path(out_dir) if out_dir else ds_dir.parent / "export")
    frame = pd.DataFrame(rows)
    files: dict[str, Path] = {}
    counts: dict[str, int] = {}
    for split, part in frame.groupby("split", sort=False):
        target = out_dir / f"{split}.{fmt}"
        with atomic_path(target) as tmp:
            part = part.reset_index(drop=True)
            if fmt == "parquet":
                part.to_parquet(tmp, index=False)
            else:
                part.to_json(tmp, orient="records", lines=True, force_ascii=False)
        files[str(split)] = target
        counts[str(split)] = len(part)
    pushed = _push(out_dir, push_to_hub, ds_dir) if push_to_hub else None
    return ExportResult(out_dir, files, counts, pushed)


def _push(out_dir: Path, repo: str, ds_dir: Path) -> str:
    try:
        from huggingface_hub import HfApi
    except ImportError as exc:
        raise DependencyError("--push-to-hub needs huggingface_hub", hint="pip install 'tagtune[hub]'") from exc
    card = ds_dir / "README.md"
    try:
        api = HfApi()
        api.create_repo(repo, repo_type="dataset", exist_ok=True)
        if card.is_file():
            api.upload_file(path_or_fileobj=str(card), path_in_repo="README.md", repo_id=repo, repo_type="dataset")
        api.upload_folder(folder_path=str(out_dir), path_in_repo="data", repo_id=repo, repo_type="dataset")
    except Exception as exc:
        first = " ".join(str(exc).split())[:160]
        raise TagtuneError(
            f"cannot push to the Hub dataset '{repo}': {first}",
            hint="check your network and `hf auth login`; the exported files are kept in " + str(out_dir),
        ) from exc
    return f"https://huggingface.co/datasets/{repo}"
