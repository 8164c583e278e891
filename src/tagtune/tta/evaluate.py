"""``tagtune tta evaluate``: CLAP score per clip and FAD against reference audio.

The CLAP score of a clip is the cosine similarity of the CLAP embeddings of its caption and its
audio (higher: the audio matches the caption better). FAD is the Frechet distance between
Gaussians fitted to the CLAP *audio* embeddings of the generated clips and of a reference folder
(comparable only with other CLAP-based FADs). Without a reference folder FAD is skipped with a
note. Optional: KLD of AudioSet label distributions (``evaluate.kld.classifier``, :mod:`tagtune.tta.kld`)
and loudness normalisation of every clip before scoring (``evaluate.normalize_lufs``, BS.1770-4),
both recorded in the summary and the manifest. Outputs: a per-clip CSV, a summary JSON and (in the
CLI) a table. Clips are embedded in batches; only the embeddings are kept for FAD.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.errors import ConfigError, InputError, TagtuneError
from tagtune.files.resumable import atomic_write_json, atomic_write_text
from tagtune.files.runs import claim_dir
from tagtune.models.evalmeta import check_audio_embeddings, check_text_embeddings, write_manifest
from tagtune.plugins import resolve
from tagtune.records.reader import read_clips
from tagtune.report import SILENT, Reporter
from tagtune.tta.audio import audio_files, read_mono
from tagtune.tta.backbones import BACKBONES, load_backbone
from tagtune.tta.clap import ClapEmbedder
from tagtune.tta.config import Evaluate, EvaluateConfig
from tagtune.tta.fad import fad_infinity, fixed_n, frechet_distance, gaussian_stats, per_clip
from tagtune.tta.merge import METADATA, clip_path, metadata_parts

_NO_REFERENCE = "skipped: no reference audio (evaluate.reference)"


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
    fads: dict[str, Any] = field(default_factory=dict)  # per backbone: value, n, fad_inf, note ...
    kld: dict[str, Any] | None = None  # evaluate.kld: value (paired), distribution, pairs, classifier, note


def clip_rows(folder: Path, meta: Path) -> Iterator[tuple[int, str, str, str, Path]]:
    """Yield ``(line, id, file_name, caption, path)`` from a metadata file, checking each field."""
    for row in read_clips(meta):
        path = clip_path(folder, {"file_name": row.file_name}, meta, row.line)
        if not path.is_file():
            raise InputError(f"audio file {row.file_name} does not exist", meta, row.line, field="file_name",
                             hint="run the same `tagtune tta generate` again to re-render it")
        yield row.line, row.id, row.file_name, row.caption, path


def metadata_of(folder: Path) -> Path:
    """``DIR/metadata.jsonl``, or a one-line error saying what DIR is instead."""
    meta = folder / METADATA
    if meta.is_file():
        return meta
    if folder.is_dir() and metadata_parts(folder):
        raise InputError(f"no {METADATA} yet, only shard parts", folder, hint=f"run `tagtune tta merge {folder}` first")
    raise InputError(f"no {METADATA}", folder, hint="pass the -o directory of `tagtune tta generate`")


def _reference_files(reference: Path | None) -> list[Path]:
    if reference is None:
        return []
    if not reference.is_dir():
        raise InputError("reference directory does not exist", reference)
    files = audio_files(reference)
    if len(files) < 2:
        raise InputError(f"FAD needs at least 2 reference clips, found {len(files)}", reference,
                         hint="point evaluate.reference at a folder of .wav/.flac files")
    return files


def read_for_scoring(path: Path, ev: Evaluate) -> tuple[Any, int]:
    """A clip as every metric sees it: mono, cut to ``evaluate.max_seconds`` and, with
    ``evaluate.normalize_lufs``, brought to that integrated loudness (a plain gain; no clipping)."""
    audio, rate = read_mono(path, ev.max_seconds)
    if ev.normalize_lufs is not None:
        from tagtune.tta.loudness import to_target

        audio = to_target(audio[None], rate, float(ev.normalize_lufs), None)[0][0]
    return audio, rate


def _score(embedder: Any, folder: Path, meta: Path, ref_files: list[Path], ev: Evaluate,
           reporter: Reporter) -> tuple[list[tuple[str, str, float]], list[Path], Any, Any]:
    """CLAP scores per clip, the clip files, and the audio embeddings of both sides (for FAD)."""
    import numpy as np

    rows: list[tuple[str, str, float]] = []
    gen_emb: list[Any] = []
    ref_emb: list[Any] = []
    items = list(clip_rows(folder, meta))
    if not items:
        raise InputError("no clips listed", meta)
    with reporter.progress("CLAP", total=len(items) + len(ref_files), unit="clips") as task:
        for start in range(0, len(items), ev.batch_size):
            chunk = items[start:start + ev.batch_size]
            t = embedder.embed_texts([text for _, _, _, text, _ in chunk])
            a = embedder.embed_audio([read_for_scoring(path, ev) for *_, path in chunk])
            gen_emb.append(a)
            rows += [(ident, name, float(s)) for (_, ident, name, _, _), s in zip(chunk, np.sum(t * a, axis=1), strict=True)]
            task.advance(len(chunk))
        for start in range(0, len(ref_files), ev.batch_size):
            chunk = ref_files[start:start + ev.batch_size]
            ref_emb.append(embedder.embed_audio([read_for_scoring(p, ev) for p in chunk]))
            task.advance(len(chunk))
    return rows, [path for *_, path in items], np.concatenate(gen_emb), (np.concatenate(ref_emb) if ref_emb else None)


def _clap_fad(gen: Any, ref: Any, ev: Evaluate, seed: int) -> dict[str, Any]:
    """FAD on CLAP audio embeddings (one per clip), with n, FAD-inf over clips and the fixed-n figure."""
    if ref is None:
        return {"value": None, "note": _NO_REFERENCE}
    if len(gen) < 2:
        return {"value": None, "note": "skipped: FAD needs at least 2 generated clips"}
    dim = gen.shape[1]
    ref_mu, ref_sigma = gaussian_stats(ref)
    out: dict[str, Any] = {"value": frechet_distance(*gaussian_stats(gen), ref_mu, ref_sigma), "n": len(gen), "n_reference": len(ref), "unit": "clips",
                           "note": f"CLAP audio embeddings, {len(gen)} vs {len(ref)} clips"}
    if min(len(gen), len(ref)) <= dim:
        out["note"] += f" (fewer clips than the {dim} embedding dims: indicative only)"
    out["fad_inf"] = fad_infinity(gen, ref_mu, ref_sigma, steps=ev.fad.inf_steps, seed=seed)
    if ev.fad.fixed_n:
        out["fixed_n"] = fixed_n(gen, ref, ev.fad.fixed_n, ev.fad.repeats, seed)
    return out


def _backbone_fad(name: str, clips: list[Path], ref_files: list[Path], ev: Evaluate, seed: int,
                  reporter: Reporter) -> tuple[dict[str, Any], list[float | None]]:
    """FAD on a standard backbone's frames (pooled over clips), FAD-inf over frames, per-clip FAD."""
    import numpy as np

    if not ref_files:
        return {"value": None, "note": _NO_REFERENCE}, [None] * len(clips)
    try:
        backbone = load_backbone(name, ev.fad)
    except TagtuneError as exc:
        reporter.note(f"FAD ({name}): unavailable: {exc}")
        return {"value": None, "note": f"unavailable: {exc}"}, [None] * len(clips)
    with reporter.progress(f"FAD {name}", total=len(clips) + len(ref_files), unit="clips") as task:
        def embed(paths: list[Path]) -> list[Any]:
            out = []
            for path in paths:
                out.append(backbone.frames(*read_for_scoring(path, ev)))
                task.advance(1)
            return out

        gen_frames, ref_frames = embed(clips), embed(ref_files)
    gen, ref = np.concatenate(gen_frames), np.concatenate(ref_frames)
    mu, sigma = gaussian_stats(ref)
    result = {"value": frechet_distance(*gaussian_stats(gen), mu, sigma), "n": len(clips), "n_reference": len(ref_files),
              "frames": len(gen), "frames_reference": len(ref), "unit": "frames", "backbone": backbone.name,
              "revision": backbone.revision, "fad_inf": fad_infinity(gen, mu, sigma, steps=ev.fad.inf_steps, seed=seed),
              "note": f"{backbone.name} frames, {len(clips)} vs {len(ref_files)} clips"}
    return result, per_clip(gen_frames, mu, sigma)


def evaluate(cfg: EvaluateConfig, reporter: Reporter = SILENT) -> EvalResult:
    """Score ``evaluate.input``: CLAP per clip, and with ``evaluate.reference`` FAD on CLAP embeddings and
    on each standard backbone (``evaluate.fad.backbones``), each with n, FAD-inf and per-clip scores.

    Raises:
        ConfigError: No directory given, an unknown backbone. InputError: No metadata (or unmerged
            shard parts), a missing or unreadable clip, too few reference clips.
        ModelNotFoundError: The CLAP model is not available offline.
        ModelQualityError: The CLAP model fails the self-test (collapsed embeddings).
    """
    import numpy as np

    ev = cfg.evaluate
    if not ev.input:
        raise ConfigError("no DIR to evaluate", key="evaluate.input", hint="tagtune tta evaluate DIR")
    for name in ev.fad.backbones:  # an unknown name fails now; a missing package or weights: that backbone is skipped
        try:
            resolve(BACKBONES, name)
        except ConfigError as exc:
            raise ConfigError(f"{BACKBONES.key}: {exc.message}", hint=exc.hint, key=exc.key) from None
    if ev.kld.classifier:
        try:
            resolve(BACKBONES, ev.kld.classifier)
        except ConfigError as exc:
            raise ConfigError(f"evaluate.kld.classifier: {exc.message}", hint=exc.hint, key="evaluate.kld.classifier") from None
    folder = Path(ev.input).expanduser()
    meta = metadata_of(folder)
    reference = Path(ev.reference).expanduser() if ev.reference else None
    ref_files = _reference_files(reference)
    out = claim_dir(Path(ev.output).expanduser() if ev.output else folder / "scores", "tta evaluate")
    embedder = ClapEmbedder(ev, cfg.device)
    checks = self_test(embedder, ev)
    started = time.perf_counter()
    rows, clips, gen, ref = _score(embedder, folder, meta, ref_files, ev, reporter)
    kld = _kld(ev, rows, clips, ref_files, reporter)
    scores = np.array([s for *_, s in rows], dtype=np.float64)
    fads = {"clap": _clap_fad(gen, ref, ev, cfg.seed)}
    clip_fads: dict[str, list[float | None]] = {}
    for name in ev.fad.backbones:
        fads[name], clip_fads[name] = _backbone_fad(name, clips, ref_files, ev, cfg.seed, reporter)
    result = EvalResult(audio_dir=folder, output_dir=out, clips=len(rows), clap_model=embedder.name,
                        clap_mean=float(scores.mean()), clap_std=float(scores.std()), fad=fads["clap"]["value"],
                        fad_note=fads["clap"]["note"], reference_clips=len(ref_files),
                        scores_csv=_write_scores(out, rows, clip_fads), summary_json=out / "summary.json", fads=fads,
                        kld=kld)
    atomic_write_json(result.summary_json, {
        "audio_dir": str(folder), "clips": result.clips, "clap_model": embedder.name, "clap_revision": embedder.revision,
        "clap_mean": result.clap_mean, "clap_std": result.clap_std, "clap_min": float(scores.min()),
        "clap_max": float(scores.max()), "fad": fads, "reference_dir": str(reference) if reference else None,
        "reference_clips": len(ref_files), "max_seconds": embedder.max_seconds, "self_test": checks,
        "clap_dtype": str(embedder.dtype).removeprefix("torch."), "normalize_lufs": ev.normalize_lufs,
        **({"kld": kld} if kld is not None else {}), "seconds": round(time.perf_counter() - started, 3),
    })
    _manifest(out, ev, embedder, fads, kld, len(rows), len(ref_files), checks)
    return result


def _kld(ev: Evaluate, rows: list[tuple[str, str, float]], clips: list[Path], ref_files: list[Path],
         reporter: Reporter) -> dict[str, Any] | None:
    """KLD with ``evaluate.kld.classifier`` (None when not asked for)."""
    if not ev.kld.classifier:
        return None
    from tagtune.tta.kld import kld

    generated = [(name, path) for (_, name, _), path in zip(rows, clips, strict=True)]
    return kld(generated, ref_files, ev, lambda p: read_for_scoring(p, ev), reporter)


def self_test(embedder: Any, ev: Evaluate) -> dict[str, float]:
    """The embedding self-test (``evaluate.self_test``): refuse a collapsed CLAP before scoring."""
    if not ev.self_test:
        return {}
    return {"text_mean_cosine": check_text_embeddings(embedder.embed_texts, embedder.name),
            "noise_vs_tone_cosine": check_audio_embeddings(embedder.embed_audio, embedder.name, embedder.sample_rate)}


def _write_scores(out: Path, rows: list[tuple[str, str, float]], clip_fads: dict[str, list[float | None]]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "file_name", "clap", *(f"fad_{name}" for name in clip_fads)])
    for i, (ident, name, s) in enumerate(rows):
        extra = ["" if v[i] is None else f"{v[i]:.6f}" for v in clip_fads.values()]
        writer.writerow([ident, name, f"{s:.6f}", *extra])
    return atomic_write_text(out / "clap_scores.csv", buf.getvalue())


def _manifest(out: Path, ev: Evaluate, embedder: Any, fads: dict[str, Any], kld: dict[str, Any] | None, n: int,
              n_ref: int, checks: dict[str, float]) -> None:
    models = [{"role": "CLAP (score, CLAP-FAD)", "id": embedder.name, "revision": embedder.revision,
               "requested_revision": embedder.requested_revision, "dtype": str(embedder.dtype).removeprefix("torch.")}]
    models += [{"role": f"FAD backbone {k}", "id": v.get("backbone", k), "revision": v.get("revision")}
               for k, v in fads.items() if k != "clap"]
    if kld is not None:
        models.append({"role": "KLD classifier", "id": kld.get("classifier", ev.kld.classifier), "revision": kld.get("revision")})
    metrics = {
        "clap_score": "cosine of L2-normalised CLAP text and audio embeddings (transformers ClapModel), per clip",
        "fad": "Frechet distance of Gaussians fitted to embeddings (scipy sqrtm), CLAP per clip, backbones per frame",
        "fad_inf": "FAD extrapolated to infinite n: least-squares fit of FAD(n) against 1/n over resampled frames (fadtk's)",
        "fixed_n": "FAD on n clips per side, averaged over repeated draws (evaluate.fad.fixed_n)",
        "kld": "KL(reference || generated) of the classifier's label distributions (softmax, mean over 10 s windows), "
               "averaged over clip pairs matched by id; `distribution`: between the two sides' mean distributions",
        "normalize_lufs": "every clip brought to this integrated loudness (ITU-R BS.1770-4, pyloudnorm) before scoring; "
                          "null: scored as written",
    }
    write_manifest(out, "tagtune-audio", {"clips": n, "reference_clips": n_ref}, metrics, models,
                   ["transformers", "torch", "scipy", "numpy", "frechet-audio-distance", "soundfile", "pyloudnorm",
                    "hear21passt"],
                   self_test=checks, fad_backbones=list(fads), normalize_lufs=ev.normalize_lufs,
                   kld_classifier=ev.kld.classifier)
