"""``tagtune tta evaluate``: CLAP score per clip and FAD against reference audio.

The CLAP score of a clip is the cosine similarity of the CLAP embeddings of its text and its
audio (higher: the audio matches the caption better). FAD is the Frechet distance between
Gaussians fitted to the CLAP *audio* embeddings of the generated clips and of a reference folder
(VGGish is the classic embedding for FAD; it is not available offline, so CLAP's audio tower
stands in, and FAD values are comparable only with other CLAP-based FADs). Without a reference
folder FAD is skipped with a note. Outputs: a per-clip CSV, a summary JSON and (in the CLI) a
table. Metadata is streamed in batches; only the embeddings are kept for FAD.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagtune.errors import ConfigError, InputError
from tagtune.resumable import atomic_write_json, atomic_write_text, ensure_dir, iter_jsonl
from tagtune.tta.merge import METADATA, clip_path, metadata_parts


@dataclass
class EvalResult:
    """Scores of one evaluated directory."""

    audio_dir: Path
    output_dir: Path
    clips: int
    clap_model: str
    clap_mean: float
    clap_std: float
    fad: float | None
    fad_note: str
    reference_clips: int
    scores_csv: Path
    summary_json: Path


def _batches(items: list[Any], size: int) -> Any:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _clip_rows(folder: Path, meta: Path) -> Any:
    """Yield ``(line, id, file_name, text, path)`` from a metadata file, checking each field."""
    for line, rec in iter_jsonl(meta):
        path = clip_path(folder, rec, meta, line)
        name = rec["file_name"]
        text = rec.get("text", rec.get("caption"))
        if not isinstance(text, str) or not text.strip():
            raise InputError("no prompt text", meta, line, field="text")
        if not path.is_file():
            raise InputError(f"audio file {name} does not exist", meta, line, field="file_name",
                             hint="run the same `tagtune tta generate` again to re-render it")
        yield line, str(rec.get("id", Path(name).stem)), name, text, path


def evaluate(cfg: Any) -> EvalResult:
    """Score ``evaluation.audio_dir`` with CLAP (and FAD when ``evaluation.reference_dir`` is set).

    Raises:
        ConfigError: No directory given. InputError: No metadata (or unmerged shard parts), a
            missing or unreadable clip, too few reference clips.
        ModelNotFoundError: The CLAP model is not available offline.
    """
    import numpy as np

    from tagtune.progress import make_progress, rate_text
    from tagtune.tta.audio import audio_files, read_mono
    from tagtune.tta.clap import ClapEmbedder
    from tagtune.tta.fad import fad

    ev = cfg.evaluation
    if not ev.get("audio_dir"):
        raise ConfigError("no DIR to evaluate", hint="tagtune tta evaluate DIR")
    folder = Path(str(ev.audio_dir)).expanduser()
    meta = folder / METADATA
    if not meta.is_file():
        if folder.is_dir() and metadata_parts(folder):
            raise InputError(f"no {METADATA} yet, only shard parts", folder, hint=f"run `tagtune tta merge {folder}` first")
        raise InputError(f"no {METADATA}", folder, hint="pass the -o directory of `tagtune tta generate`")
    reference = Path(str(ev.reference_dir)).expanduser() if ev.get("reference_dir") else None
    ref_files: list[Path] = []
    if reference is not None:
        if not reference.is_dir():
            raise InputError("reference directory does not exist", reference)
        ref_files = audio_files(reference)
        if len(ref_files) < 2:
            raise InputError(f"FAD needs at least 2 reference clips, found {len(ref_files)}", reference,
                             hint="point --reference-dir at a folder of .wav/.flac files")
    out = ensure_dir(Path(str(ev.output_dir)).expanduser() if ev.get("output_dir") else folder / "scores")
    total = sum(1 for _ in iter_jsonl(meta))
    if total == 0:
        raise InputError("no clips listed", meta)
    batch = max(1, int(ev.batch_size))
    max_seconds = float(ev.max_seconds) if ev.get("max_seconds") else None

    embedder = ClapEmbedder(ev)
    rows: list[tuple[str, str, float]] = []
    audio_emb: list[Any] = []
    import time

    start = time.perf_counter()
    with make_progress("clips") as progress:
        task = progress.add_task("CLAP", total=total + len(ref_files), rate="- clips/s")
        pending: list[tuple[int, str, str, str, Path]] = []

        def score(chunk: list[tuple[int, str, str, str, Path]]) -> None:
            clips = [read_mono(path, max_seconds) for *_, path in chunk]
            t = embedder.embed_texts([text for _, _, _, text, _ in chunk])
            a = embedder.embed_audio(clips)
            audio_emb.append(a)
            for (_, ident, name, _, _), s in zip(chunk, np.sum(t * a, axis=1), strict=True):
                rows.append((ident, name, float(s)))
            progress.update(task, advance=len(chunk), rate=rate_text(len(rows), time.perf_counter() - start, "clips"))

        for item in _clip_rows(folder, meta):
            pending.append(item)
            if len(pending) == batch:
                score(pending)
                pending = []
        if pending:
            score(pending)
        ref_emb: list[Any] = []
        for chunk in _batches(ref_files, batch):
            ref_emb.append(embedder.embed_audio([read_mono(p, max_seconds) for p in chunk]))
            progress.update(task, advance=len(chunk))

    scores = np.array([s for *_, s in rows], dtype=np.float64)
    fad_value: float | None = None
    if reference is None:
        fad_note = "skipped: pass --reference-dir with real audio"
    else:
        gen, ref = np.concatenate(audio_emb), np.concatenate(ref_emb)
        if len(gen) < 2:
            fad_note = "skipped: FAD needs at least 2 generated clips"
        else:
            fad_value = fad(gen, ref)
            dim = gen.shape[1]
            fad_note = f"CLAP audio embeddings, {len(gen)} vs {len(ref)} clips"
            if min(len(gen), len(ref)) <= dim:
                fad_note += f" (fewer clips than the {dim} embedding dims: indicative only)"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "file_name", "clap"])
    for ident, name, s in rows:
        writer.writerow([ident, name, f"{s:.6f}"])
    scores_csv = atomic_write_text(out / "clap_scores.csv", buf.getvalue())
    result = EvalResult(
        audio_dir=folder, output_dir=out, clips=len(rows), clap_model=embedder.name,
        clap_mean=float(scores.mean()), clap_std=float(scores.std()), fad=fad_value, fad_note=fad_note,
        reference_clips=len(ref_files), scores_csv=scores_csv, summary_json=out / "summary.json",
    )
    atomic_write_json(result.summary_json, {
        "audio_dir": str(folder), "clips": result.clips, "clap_model": result.clap_model,
        "clap_mean": result.clap_mean, "clap_std": result.clap_std,
        "clap_min": float(scores.min()), "clap_max": float(scores.max()),
        "fad": fad_value, "fad_embedding": "clap-audio", "fad_note": fad_note,
        "reference_dir": str(reference) if reference else None, "reference_clips": len(ref_files),
        "max_seconds": embedder.max_seconds,
    })
    return result
