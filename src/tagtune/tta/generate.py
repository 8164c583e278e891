"""``tagtune tta generate``: render prompts to audio files plus an audiofolder ``metadata.jsonl``.

The run streams its input twice: a first pass validates every prompt and id (so bad input fails
before a model is loaded or a file is written), a second one feeds batches to the model. Only a
batch of audio is held at a time. Each clip is written to a temporary name, read back, renamed,
and only then gets its metadata line (appended by whole lines), so after a kill at any point the
same command resumes:

* line and readable file -> skipped;
* readable file of the expected length but no line (killed between rename and append) -> the
  line is written, nothing is re-rendered;
* line but missing/unreadable file -> the file is rendered again, no second line;
* otherwise -> rendered.

Sharded runs (``--shard I/N``, torchrun, SLURM) take the prompts whose id hash falls in their
residue class and append to their own ``metadata.shard-*.jsonl``; the clips they skip include
those already in a merged ``metadata.jsonl``. An unsharded run first merges any parts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagtune.errors import ConfigError, InputError
from tagtune.ids import stable_hash
from tagtune.resumable import JsonlAppender, ensure_dir, iter_jsonl
from tagtune.tta.merge import AUDIO_DIR, METADATA, MergeReport, merge_dir, metadata_parts, part_name
from tagtune.tta.prompts import Prompt, iter_prompts, scan_prompts

SEEDING_MODES = ("per_sample", "exact")
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
    adopted: int = 0
    repaired: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0
    shard: str = "0/1"
    model: str = ""
    sample_rate: int = 0
    merged: MergeReport | None = None

    @property
    def clips_per_second(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else 0.0


def clip_seed(base_seed: int, clip_id: str) -> int:
    """A clip's own seed: a stable function of the run seed and the clip id (not of the batch)."""
    return stable_hash(f"{int(base_seed)}:{clip_id}") % (2**32)


@dataclass
class _Job:
    prompt: Prompt
    seed: int
    file_name: str
    write_line: bool  # False when the line already exists and only the file is re-rendered


class _Run:
    """State of one generate call: the sink, the backend and the per-setting batch buckets."""

    def __init__(self, cfg: Any, out: Path, sink: JsonlAppender, backend: Any, result: GenerateResult, source: Path):
        from tagtune.tta.model import SamplingParams

        self.cfg, self.out, self.sink, self.backend, self.result, self.source = cfg, out, sink, backend, result, source
        self.params = SamplingParams.from_cfg(cfg.generation)
        self.seeding = str(cfg.generation.get("seeding", "per_sample"))
        self.batch_size = 1 if self.seeding == "exact" else int(cfg.generation.batch_size)
        self.fmt = str(cfg.output.format).lower()
        self.subtype = str(cfg.output.subtype)
        self.buckets: dict[tuple[int, int], list[_Job]] = {}
        self.progress: Any = None
        self.task: Any = None
        self.started = time.perf_counter()
        default = cfg.generation.get("duration")
        if default is not None:
            self.default_steps = self._steps(float(default), None)
            self.default_samples = int(round(float(default) * backend.sample_rate))
        else:
            self.default_steps = int(cfg.generation.max_new_tokens)
            if not 0 < self.default_steps <= backend.max_steps:
                raise ConfigError(f"generation.max_new_tokens must be in 1..{backend.max_steps} for {backend.name}")
            self.default_samples = backend.samples_for_steps(self.default_steps)

    def _steps(self, seconds: float, prompt: Prompt | None) -> int:
        steps = self.backend.steps_for(seconds)
        if steps > self.backend.max_steps:
            longest = (self.backend.max_steps - self.backend.delay) / self.backend.frame_rate
            message = f"duration {seconds:g} s needs {steps} decoder steps; {self.backend.name} allows {self.backend.max_steps} (about {longest:.0f} s)"
            if prompt is None:
                raise ConfigError(f"generation.duration: {message}")
            raise InputError(message, self.source, prompt.line, field=str(self.cfg.data.get("duration_column") or "duration"))
        return steps

    def plan(self, prompt: Prompt) -> tuple[int, int]:
        """(decoder steps, output samples) for a prompt."""
        if prompt.duration is None:
            return self.default_steps, self.default_samples
        return self._steps(prompt.duration, prompt), int(round(prompt.duration * self.backend.sample_rate))

    def line_for(self, job: _Job, frames: int, steps: int) -> dict[str, Any]:
        p = job.prompt
        rec: dict[str, Any] = {
            "file_name": job.file_name, "id": p.id, "text": p.text,
            "duration": round(frames / self.backend.sample_rate, 6), "sample_rate": self.backend.sample_rate,
            "seed": job.seed, "model": self.backend.name,
            "generation": {**self.params.as_dict(), "max_new_tokens": steps, "seeding": self.seeding},
        }
        if p.source_id is not None:
            rec["source_id"] = p.source_id
        rec.update(p.extra)
        return rec

    def add(self, job: _Job) -> None:
        key = self.plan(job.prompt)
        bucket = self.buckets.setdefault(key, [])
        bucket.append(job)
        if len(bucket) >= self.batch_size:
            self.flush(key)
        elif sum(map(len, self.buckets.values())) > _MAX_PENDING_BATCHES * self.batch_size:
            # many different durations: render the fullest group early so waiting prompts stay bounded
            self.flush(max(self.buckets, key=lambda k: len(self.buckets[k])))

    def flush(self, key: tuple[int, int]) -> None:
        from tagtune.progress import rate_text
        from tagtune.tta.audio import normalize, write_clip

        jobs = self.buckets.pop(key, [])
        if not jobs:
            return
        steps, samples = key
        audio = self.backend.generate([j.prompt.text for j in jobs], [j.seed for j in jobs], steps, self.params)
        out_cfg = self.cfg.output
        for job, clip in zip(jobs, audio, strict=True):
            clip = normalize(clip[:, :samples], out_cfg.normalize, out_cfg.peak_db, out_cfg.loudness_db)
            fmt = Path(job.file_name).suffix.lstrip(".") or self.fmt  # a repaired file keeps its recorded format
            info = write_clip(self.out / job.file_name, clip, self.backend.sample_rate, fmt, self.subtype)
            if job.write_line:
                self.sink.append([self.line_for(job, info.frames, steps)])
                self.result.generated += 1
            else:
                self.result.repaired += 1
            self.result.audio_seconds += info.seconds
            self.advance(rate_text(self.result.generated + self.result.repaired, time.perf_counter() - self.started, "clips"))

    def flush_all(self) -> None:
        for key in sorted(self.buckets):
            self.flush(key)

    def advance(self, rate: str | None = None) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, **({"rate": rate} if rate else {}))


def _done_files(out: Path, paths: list[Path]) -> dict[str, str]:
    """id -> file_name of the lines already written (in the given metadata files)."""
    from tagtune.tta.merge import clip_path

    done: dict[str, str] = {}
    for path in paths:
        if path.exists():
            for line, rec in iter_jsonl(path):
                if isinstance(rec.get("id"), str):
                    clip_path(out, rec, path, line)  # refuses a file_name outside DIR
                    done[rec["id"]] = str(rec["file_name"])
    return done


def generate(cfg: Any, prompts: str | Path | None = None, backend: Any = None) -> GenerateResult:
    """Render every prompt of ``data.path`` (or ``prompts``) into ``paths.output_dir``.

    Args:
        cfg: A composed ``tta_inference`` config.
        prompts: The PROMPTS file; defaults to ``cfg.data.path``.
        backend: An already loaded backend (benchmarks, the pipeline); loaded from ``cfg.model``
            when None.

    Returns:
        Counts of what was generated, skipped, adopted and repaired, with timing.

    Raises:
        InputError: Bad prompts (file:line:field), duplicate ids, a merge that finds problems.
        ConfigError: Bad settings. OutputError: an unwritable output directory.
        ModelNotFoundError: The model is not available offline.
    """
    from tagtune.progress import make_progress
    from tagtune.records import resolve_path
    from tagtune.runs import prepare_run_dir
    from tagtune.sharding import resolve_shard
    from tagtune.tta.audio import check_format, probe
    from tagtune.tta.model import SamplingParams, load_backend

    source = prompts if prompts is not None else cfg.data.get("path")
    if source is None or str(source) == "":
        raise ConfigError("no PROMPTS file given", hint="tagtune tta generate PROMPTS.jsonl -o DIR")
    source = resolve_path(source)
    out = Path(str(cfg.paths.output_dir)).expanduser()
    shard = resolve_shard(cfg.output.get("shard"))
    overwrite = bool(cfg.output.get("overwrite", False))
    fmt = str(cfg.output.format).lower()
    check_format(fmt, str(cfg.output.subtype))
    SamplingParams.from_cfg(cfg.generation)
    if str(cfg.generation.get("seeding", "per_sample")) not in SEEDING_MODES:
        raise ConfigError(f"unknown generation.seeding '{cfg.generation.seeding}'", hint="use per_sample or exact")
    if int(cfg.generation.batch_size) < 1:
        raise ConfigError(f"generation.batch_size must be >= 1 (got {cfg.generation.batch_size})")

    scan = scan_prompts(source, cfg.data)  # pass 1: fail on bad input before anything is written
    owned = {i for i in scan.ids if shard.owns(i)}

    ensure_dir(out)
    ensure_dir(out / AUDIO_DIR)
    backend = backend or load_backend(cfg.model)  # before anything in DIR changes: a missing model loses nothing
    prepare_run_dir(cfg, out)
    main = out / METADATA
    result = GenerateResult(output_dir=out, metadata=main, total=scan.total, owned=len(owned), shard=str(shard))
    if shard.is_sharded:
        meta = out / part_name(shard.tag)
        result.metadata = meta
    else:
        meta = main
        if overwrite:
            for part in metadata_parts(out):
                part.unlink(missing_ok=True)
        elif metadata_parts(out):
            result.merged = merge_dir(out)

    with JsonlAppender(meta, key="id", overwrite=overwrite) as sink:
        done = {} if overwrite else _done_files(out, [meta] + ([main] if shard.is_sharded else []))
        result.model, result.sample_rate = backend.name, backend.sample_rate
        run = _Run(cfg, out, sink, backend, result, source)
        base_seed = int(cfg.seed)
        with make_progress("clips") as progress:
            run.progress, run.task = progress, progress.add_task(f"audio {shard}", total=len(owned), rate="- clips/s")
            for prompt in iter_prompts(source, cfg.data):  # pass 2
                if prompt.id not in owned:
                    continue
                file_name = f"{AUDIO_DIR}/{prompt.id}.{fmt}"
                job = _Job(prompt, clip_seed(base_seed, prompt.id), file_name, write_line=True)
                if prompt.id in done:
                    recorded = done[prompt.id]
                    if probe(out / recorded) is not None:
                        result.skipped += 1
                        run.advance()
                        continue
                    job.file_name, job.write_line = recorded, False
                elif not overwrite:
                    info = probe(out / file_name)
                    if info is not None and info.sample_rate == backend.sample_rate and info.channels == backend.channels \
                            and info.frames == run.plan(prompt)[1]:
                        sink.append([run.line_for(job, info.frames, run.plan(prompt)[0])])
                        result.adopted += 1
                        run.advance()
                        continue
                run.add(job)
            run.flush_all()
    result.seconds = time.perf_counter() - run.started
    return result
