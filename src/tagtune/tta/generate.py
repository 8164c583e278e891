"""``tagtune tta generate``: render prompts to audio files plus an audiofolder ``metadata.jsonl``.

The run streams its input twice: a first pass validates every prompt and id (so bad input fails
before a model is loaded or a file is written), a second one feeds batches to the model. Only a
batch of audio is held at a time. Each clip is written to a temporary name, read back, renamed,
and only then gets its metadata line (a :class:`~tagtune.records.rows.ClipRow`, appended by whole
lines). A line counts as done only while it still matches: its file reads back with the length
the line records, and the hash of what shaped the clip (caption, duration, model, settings, seed)
equals the current one. Lines that no longer match are dropped and their clips rendered again,
so after a kill at any point, or after the captions changed, the same command resumes and the
folder never mixes old and new content.

Locks before deletes, and the model before files: a second run into a folder that one is
rendering is refused in one line before anything changes (``--overwrite`` deletes only while holding
the locks), and nothing is created in ``-o`` until the model has loaded.

Sharded runs (``--shard I/N``, torchrun, SLURM) take the prompts whose id hash falls in their
residue class and append to their own ``metadata.shard-*.jsonl``; the clips they skip include
those already in a merged ``metadata.jsonl``. An unsharded run first merges any parts.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tagtune import __version__
from tagtune.config.saved import prepare_run_dir
from tagtune.errors import ConfigError, InputError
from tagtune.files.readers import resolve_path
from tagtune.files.resumable import JsonlAppender, ensure_dir
from tagtune.files.runs import check_claimable, claim_dir
from tagtune.files.sharding import Shard, resolve_shard
from tagtune.models.device import torch_threads
from tagtune.models.sampling import seed_for_row
from tagtune.records.reader import read_clips
from tagtune.records.rows import CaptionRow, ClipRow
from tagtune.report import SILENT, Reporter, Task
from tagtune.tta.audio import check_format, normalize_clip, probe, write_clip
from tagtune.tta.backends.base import AudioBackend, SamplingParams, backend_class
from tagtune.tta.config import GenerateConfig
from tagtune.tta.merge import (
    METADATA,
    MergeReport,
    clip_path,
    locked,
    merge_dir,
    metadata_parts,
    part_name,
    remove_locked,
)
from tagtune.tta.prompts import AUDIO_DIR, clip_name, iter_prompts, scan_prompts

_CLIP_FIELDS = frozenset(f.name for f in fields(ClipRow))  # what a render measures anew (loudness_lufs ...)
_MAX_PENDING_BATCHES = 16  # prompts waiting for a full batch of their length, in batches


@dataclass
class GenerateResult:
    """What a run did (rendered by the CLI, read by the pipeline)."""

    output_dir: Path
    metadata: Path
    total: int = 0
    owned: int = 0
    generated: int = 0
    skipped: int = 0
    redone: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0
    shard: str = "0/1"
    model: str = ""
    sample_rate: int = 0
    merged: MergeReport | None = None

    @property
    def clips_per_second(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else 0.0


def _seed(cfg: GenerateConfig, row: CaptionRow) -> int:
    """A clip's own seed (its pair's, for counterfactual pairs): not a function of the batch."""
    return seed_for_row(cfg.seed, row, bits=32)


class _Run:
    """State of one generate call: settings, the sink, the backend and the per-length batch buckets."""

    def __init__(self, cfg: GenerateConfig, backend: AudioBackend, result: GenerateResult, source: Path):
        self.cfg, self.backend, self.result, self.source = cfg, backend, result, source
        self.sink: JsonlAppender | None = None
        self.out = Path(cfg.generate.output).expanduser()
        self.params = SamplingParams.from_cfg(cfg.generation)
        self.batch_size = 1 if cfg.generation.seeding == "exact" else cfg.generation.batch_size
        self.buckets: dict[tuple[int, int], list[CaptionRow]] = {}
        self.task: Task | None = None
        self.settings = {**self.params.as_dict(), "seeding": cfg.generation.seeding}
        self.identity = {"model": backend.name, "revision": backend.revision, "tagtune_version": __version__}
        default = cfg.generation.duration
        if default is not None:
            self.default_plan = (self._steps(default, None), int(round(default * backend.sample_rate)))
        else:
            steps = cfg.generation.max_new_tokens
            if steps > backend.max_steps:
                raise ConfigError(f"generation.max_new_tokens must be at most {backend.max_steps} for {backend.name}",
                                  key="generation.max_new_tokens")
            self.default_plan = (steps, backend.samples_for_steps(steps))

    def _steps(self, seconds: float, row: CaptionRow | None) -> int:
        steps = self.backend.steps_for(seconds)
        if steps > self.backend.max_steps:
            longest = (self.backend.max_steps - self.backend.delay) / self.backend.frame_rate
            message = f"duration {seconds:g} s needs {steps} decoder steps; {self.backend.name} allows {self.backend.max_steps} (about {longest:.0f} s)"
            if row is None:
                raise ConfigError(f"generation.duration: {message}", key="generation.duration")
            raise InputError(message, self.source, row.line, field=self.cfg.data.duration_column or "duration")
        return steps

    def plan(self, row: CaptionRow) -> tuple[int, int]:
        """(decoder steps, output samples) for a prompt."""
        if row.duration is None:
            return self.default_plan
        return self._steps(row.duration, row), int(round(row.duration * self.backend.sample_rate))

    def input_hash(self, row: CaptionRow) -> str:
        """What shapes a clip: its caption or tags (the backend's ``shaped_by``), length, model, settings and
        seed (changed -> render again)."""
        shaped_by = row.tags if self.backend.shaped_by == "tags" else row.caption
        g = self.cfg.generate
        shaping = [shaped_by, self.plan(row), self.identity["model"], self.identity["revision"], self.settings,
                   _seed(self.cfg, row), g.normalize, g.subtype]
        if g.normalize == "loudness":  # BS.1770 targets (the RMS rule before them hashed without these: re-rendered)
            shaping.append({"lufs": g.loudness_db, "true_peak_db": g.true_peak_db, "by": "bs1770"})
        blob = json.dumps(shaping, sort_keys=True)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def record(self, row: CaptionRow, file_name: str, frames: int, steps: int, loudness: dict[str, Any]) -> dict[str, Any]:
        seed = _seed(self.cfg, row)
        audio = {**self.identity, "seed": seed, "generation": {**self.settings, "max_new_tokens": steps},
                 "input_hash": self.input_hash(row), "loudness": loudness, **self.backend.provenance(row, seed)}
        clip = ClipRow(id=row.id, tags=row.tags, caption=row.caption, reference_caption=row.reference_caption,
                       pair_id=row.pair_id, concept=row.concept, edit=row.edit,
                       extra={k: v for k, v in row.extra.items() if k not in _CLIP_FIELDS},  # a stale measurement stays out
                       provenance={**row.provenance, "audio": audio}, file_name=file_name,
                       duration=round(frames / self.backend.sample_rate, 6), sample_rate=self.backend.sample_rate,
                       loudness_lufs=loudness.get("lufs"))
        return clip.to_record()

    def add(self, row: CaptionRow) -> None:
        key = self.plan(row)
        bucket = self.buckets.setdefault(key, [])
        bucket.append(row)
        if len(bucket) >= self.batch_size:
            self.flush(key)
        elif sum(map(len, self.buckets.values())) > _MAX_PENDING_BATCHES * self.batch_size:
            # many different durations: render the fullest group early so waiting prompts stay bounded
            self.flush(max(self.buckets, key=lambda k: len(self.buckets[k])))

    def flush(self, key: tuple[int, int]) -> None:
        rows = self.buckets.pop(key, [])
        if not rows:
            return
        steps, samples = key
        audio = self.backend.generate(rows, [_seed(self.cfg, r) for r in rows], steps, self.params)
        g = self.cfg.generate
        rate = self.backend.sample_rate
        for row, clip in zip(rows, audio, strict=True):
            clip, done = normalize_clip(clip[:, :samples], g.normalize, g.peak_db, g.loudness_db, rate, g.true_peak_db)
            name = clip_name(row.id, g.format)
            info = write_clip(self.out / name, clip, rate, g.format, g.subtype)
            self.sink.append([self.record(row, name, info.frames, steps, _loudness(clip, rate, done))])
            self.result.generated += 1
            self.result.audio_seconds += info.seconds
            self.task.advance(1)

    def flush_all(self) -> None:
        for key in sorted(self.buckets):
            self.flush(key)


def _loudness(clip: Any, rate: int, done: dict[str, Any]) -> dict[str, Any]:
    """``provenance.audio.loudness``: the written clip's integrated loudness and true peak as measured,
    how it was measured, and what normalisation did (``generate.normalize``: target, gain, ceiling)."""
    from tagtune.tta.loudness import METHOD, measure

    m = measure(clip, rate)
    return {"lufs": m.lufs, "true_peak_db": m.true_peak_db, "method": METHOD if m.gated else f"{METHOD}, ungated (< 0.4 s)",
            **{k: v for k, v in done.items() if k != "gated"}}


def _still_valid(out: Path, expected: dict[str, str]) -> Callable[[dict[str, Any]], bool]:
    """``done_when`` for the metadata: the line's file reads back at its recorded length and, for a
    row of this input, its input hash is the one the row has now."""
    def check(rec: dict[str, Any]) -> bool:
        audio = (rec.get("provenance") or {}).get("audio") or {}
        ident = str(rec.get("id"))
        if ident in expected and expected[ident] != audio.get("input_hash"):
            return False  # the row changed since (lines of rows not in this input are left alone)
        try:
            info = probe(clip_path(out, rec, out / METADATA, 0))
        except InputError:
            return False
        return info is not None and info.frames == int(round(float(rec.get("duration", 0)) * info.sample_rate))

    return check


def _resolve(cfg: GenerateConfig) -> tuple[Path, Path, Shard]:
    """The prompts file, the output folder and this worker's shard; every setting checked before any work."""
    if not cfg.generate.input:
        raise ConfigError("no PROMPTS file given", key="generate.input", hint="tagtune tta generate PROMPTS.jsonl -o DIR")
    check_format(cfg.generate.format, cfg.generate.subtype)
    SamplingParams.from_cfg(cfg.generation)
    return resolve_path(cfg.generate.input), Path(cfg.generate.output).expanduser(), resolve_shard(cfg.generate.shard)


def generate(cfg: GenerateConfig, reporter: Reporter = SILENT, backend: AudioBackend | None = None) -> GenerateResult:
    """Render every prompt of ``generate.input`` into ``generate.output``.

    Args:
        cfg: The ``tta generate`` config.
        reporter: Receives progress and notes.
        backend: An already loaded backend (benchmarks, tests, the pipeline's re-renders); built from
            ``cfg.model`` when None.

    Raises:
        InputError: Bad prompts (file:line:field), duplicate ids, a merge that finds problems.
        ConfigError: Bad settings, an unknown backend. OutputError: an unwritable output directory.
        ModelNotFoundError: The model is not available offline. DependencyError: the backend's packages are missing.
    """
    source, out, shard = _resolve(cfg)
    make = backend_class(cfg.model) if backend is None else None  # an unknown backend fails before any work
    scan = scan_prompts(source, cfg.data, cfg.generate.limit)  # pass 1: fail on bad input before anything is written
    owned = {i for i in scan.ids if shard.owns(i)}
    check_claimable(out)  # a non-empty folder tagtune did not make is refused: no user file is touched
    meta = out / (part_name(shard.tag) if shard.is_sharded else METADATA)
    with locked(_replaced(cfg, out, meta, shard), _BUSY):  # a busy output: one line now, before the model loads
        pass
    if make is not None:  # loaded before anything is created or changed: a model that cannot load leaves nothing
        backend = make(cfg.model, cfg.device, cfg.tagmap)
    result = GenerateResult(output_dir=out, metadata=meta, total=scan.total, owned=len(owned), shard=str(shard),
                            model=backend.name, sample_rate=backend.sample_rate)
    run = _Run(cfg, backend, result, source)  # settings that do not fit the model fail here, before any file
    expected = {row.id: run.input_hash(row) for row in iter_prompts(source, cfg.data, cfg.generate.limit) if row.id in owned}
    claim_dir(out, "tta generate")
    ensure_dir(out / AUDIO_DIR)
    if cfg.generate.overwrite:  # under the locks of all it deletes: a run still writing one is refused, nothing is lost
        remove_locked(_replaced(cfg, out, meta, shard), _BUSY)
    elif not shard.is_sharded and metadata_parts(out):
        result.merged = merge_dir(out)
    started = time.perf_counter()
    with torch_threads(backend.threads):
        _render(run, out, meta, shard, owned, expected, reporter)
    result.seconds = time.perf_counter() - started
    return result


_BUSY = "wait for the other `tagtune tta generate` writing this folder (give each worker its own --shard I/N)"


def _replaced(cfg: GenerateConfig, out: Path, meta: Path, shard: Shard) -> list[Path]:
    """The files this run appends to or, with ``--overwrite``, deletes (an unsharded one: the shard parts too)."""
    return [meta, *([] if shard.is_sharded or not cfg.generate.overwrite else metadata_parts(out))]


def _render(run: _Run, out: Path, meta: Path, shard: Shard, owned: set[str], expected: dict[str, str],
            reporter: Reporter) -> None:
    cfg, result = run.cfg, run.result
    valid = _still_valid(out, expected)
    with JsonlAppender(meta, key="id", done_when=valid) as sink:  # locks before it drops a stale line
        prepare_run_dir(cfg, out)  # under the lock: a run refused as a second writer leaves the first's config.yaml
        done = set(sink.done) | (_main_done(out, valid) if shard.is_sharded else set())
        result.redone = sink.dropped
        if result.redone:
            reporter.note(f"{result.redone} earlier clip(s) no longer match their prompt, settings or file: rendering them again")
        run.sink = sink
        with reporter.progress(f"audio {shard}" if shard.is_sharded else "audio", total=len(owned), unit="clips") as task:
            run.task = task
            for row in iter_prompts(run.source, cfg.data, cfg.generate.limit):  # pass 2
                if row.id not in owned:
                    continue
                if row.id in done:
                    result.skipped += 1
                    task.advance(1)
                    continue
                run.add(row)
            run.flush_all()


def _main_done(out: Path, valid: Callable[[dict[str, Any]], bool]) -> set[str]:
    """Ids already in a merged ``metadata.jsonl`` (a sharded run does not render them again)."""
    main = out / METADATA
    return {row.id for row in read_clips(main) if valid(row.to_record())} if main.exists() else set()
