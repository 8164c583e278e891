"""``tagtune tta evaluate``: CLAP score per clip and FAD against reference audio.

The CLAP score of a clip is the cosine similarity of the CLAP embeddings of its caption and its
audio (higher: the audio matches the caption better). FAD is the Frechet distance between
Gaussians fitted to the CLAP *audio* embeddings of the generated clips and of a reference folder
(comparable only with other CLAP-based FADs). Without a reference folder FAD is skipped with a
note. Outputs: a per-clip CSV, a summary JSON and (in the CLI) a table. Clips are embedded in
batches; only the embeddings are kept for FAD.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagtune.errors import ConfigError, InputError
from tagtune.report import SILENT, Reporter
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


def clip_rows(folder: Path, meta: Path) -> Iterator[tuple[int, str, str, str, Path]]:
    """Yield ``(line, id, file_name, caption, path)`` from a metadata file, checking each field."""
    for line, rec in iter_jsonl(meta):
        path = clip_path(folder, rec, meta, line)
        name = rec["file_name"]
        text = rec.get("caption", rec.get("text"))
        if not isinstance(text, str) or not text.strip():
            raise InputError("no caption", meta, line, field="caption")
        if not path.is_file():
            raise InputError(f"audio file {name} does not exist", meta, line, field="file_name",
                             hint="run the same `tagtune tta generate` again to re-render it")
        yield line, str(rec.get("id", Path(name).stem)), name, text, path


def metadata_of(folder: Path) -> Path:
    """``DIR/metadata.jsonl``, or a one-line error saying what DIR is instead."""
    meta = folder / METADATA
    if meta.is_file():
        return meta
    if folder.is_dir() and metadata_parts(folder):
        raise InputError(f"no {METADATA} yet, only shard parts", folder, hint=f"run `tagtune tta merge {folder}` first")
    raise InputError(f"no {METADATA}", folder, hint="pass the -o directory of `tagtune tta generate`")


def _reference_files(reference: Path | None) -> list[Path]:
    from tagtune.tta.audio import audio_files

    if reference is None:
        return []
    if not reference.is_dir():
        raise InputError("reference directory does not exist", reference)
    files = audio_files(reference)
    if len(files) < 2:
        raise InputError(f"FAD needs at least 2 reference clips, found {len(files)}", reference,
                         hint="point --reference at a folder of .wav/.flac files")
    return files


def _score(embedder: Any, folder: Path, meta: Path, ref_files: list[Path], ev: Any,
           reporter: Reporter) -> tuple[list[tuple[str, str, float]], Any, Any]:
    """CLAP scores per clip, and the audio embeddings of both sides (for FAD)."""
    import numpy as np

    from tagtune.tta.audio import read_mono

    rows: list[tuple[str, str, float]] = []
    gen_emb: list[Any] = []
    ref_emb: list[Any] = []
    total = sum(1 for _ in iter_jsonl(meta))
    if total == 0:
        raise InputError("no clips listed", meta)
    with reporter.progress("CLAP", total=total + len(ref_files), unit="clips") as task:
        items = list(clip_rows(folder, meta))
        for start in range(0, len(items), ev.batch_size):
            chunk = items[start:start + ev.batch_size]
            t = embedder.embed_texts([text for _, _, _, text, _ in chunk])
            a = embedder.embed_audio([read_mono(path, ev.max_seconds) for *_, path in chunk])
            gen_emb.append(a)
            rows += [(ident, name, float(s)) for (_, ident, name, _, _), s in zip(chunk, np.sum(t * a, axis=1), strict=True)]
            task.advance(len(chunk))
        for start in range(0, len(ref_files), ev.batch_size):
            chunk = ref_files[start:start + ev.batch_size]
            ref_emb.append(embedder.embed_audio([read_mono(p, ev.max_seconds) for p in chunk]))
            task.advance(len(chunk))
    return rows, np.concatenate(gen_emb), (np.concatenate(ref_emb) if ref_emb else None)


def _fad(gen: Any, ref: Any) -> tuple[float | None, str]:
    from tagtune.tta.fad import fad

    if ref is None:
        return None, "skipped: pass --reference with real audio"
    if len(gen) < 2:
        return None, "skipped: FAD needs at least 2 generated clips"
    dim = gen.shape[1]
    note = f"CLAP audio embeddings, {len(gen)} vs {len(ref)} clips"
    if min(len(gen), len(ref)) <= dim:
        note += f" (fewer clips than the {dim} embedding dims: indicative only)"
    return fad(gen, ref), note


def evaluate(cfg: Any, reporter: Reporter = SILENT) -> EvalResult:
    """Score ``evaluate.input`` with CLAP (and FAD when ``evaluate.reference`` is set).

    Raises:
        ConfigError: No directory given. InputError: No metadata (or unmerged shard parts), a
            missing or unreadable clip, too few reference clips.
        ModelNotFoundError: The CLAP model is not available offline.
    """
    import numpy as np

    from tagtune.tta.clap import ClapEmbedder

    ev = cfg.evaluate
    if not ev.input:
        raise ConfigError("no DIR to evaluate", key="evaluate.input", hint="tagtune tta evaluate DIR")
    folder = Path(ev.input).expanduser()
    meta = metadata_of(folder)
    reference = Path(ev.reference).expanduser() if ev.reference else None
    ref_files = _reference_files(reference)
    out = ensure_dir(Path(ev.output).expanduser() if ev.output else folder / "scores")
    embedder = ClapEmbedder(ev, cfg.device)
    started = time.perf_counter()
    rows, gen, ref = _score(embedder, folder, meta, ref_files, ev, reporter)
    scores = np.array([s for *_, s in rows], dtype=np.float64)
    fad_value, fad_note = _fad(gen, ref)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "file_name", "clap"])
    writer.writerows([ident, name, f"{s:.6f}"] for ident, name, s in rows)
    result = EvalResult(audio_dir=folder, output_dir=out, clips=len(rows), clap_model=embedder.name,
                        clap_mean=float(scores.mean()), clap_std=float(scores.std()), fad=fad_value, fad_note=fad_note,
                        reference_clips=len(ref_files), scores_csv=atomic_write_text(out / "clap_scores.csv", buf.getvalue()),
                        summary_json=out / "summary.json")
    atomic_write_json(result.summary_json, {
        "audio_dir": str(folder), "clips": result.clips, "clap_model": result.clap_model, "clap_mean": result.clap_mean,
        "clap_std": result.clap_std, "clap_min": float(scores.min()), "clap_max": float(scores.max()), "fad": fad_value,
        "fad_embedding": "clap-audio", "fad_note": fad_note, "reference_dir": str(reference) if reference else None,
        "reference_clips": len(ref_files), "max_seconds": embedder.max_seconds,
        "seconds": round(time.perf_counter() - started, 3),
    })
    return result
