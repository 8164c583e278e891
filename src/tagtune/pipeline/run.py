"""``tagtune pipeline run``: tags -> captions -> audio -> dataset, resumable stage by stage.

The pipeline wires the stages of :mod:`tagtune.pipeline.stages` through their hop files under the
run directory, and can start from a user's own file at any hop (``--tags FILE`` skips the tags
stage, ``--captions FILE`` skips tags and captions)::

    DIR/config.yaml            the pipeline config
    DIR/vae/      model/ (unless --vae-model), tags.jsonl, manifest.json
    DIR/caption/  adapter/ (when fine-tuning), captions.jsonl, manifest.json
    DIR/tta/      audio/, metadata.jsonl, verification.jsonl, manifest.json
    DIR/verify/   attempts/ (re-renders), audio/, metadata.jsonl (with realised_tags), summary.json
    DIR/dataset/  the dataset folder (see tagtune.pipeline.dataset)

Every stage's configs are composed before any work, so a config error costs nothing. A stage
whose manifest says ``complete`` with the same config hash and input is skipped; a stage without
one is (re)run, and every stage function resumes its own partial work (training from its
``last.ckpt``, captions and clips by id). A finished stage whose config or input changed is
reported, not silently redone: ``--force STAGE`` reruns it and every later stage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tagtune.caption import config as caption_config
from tagtune.config.commands import compose_command
from tagtune.config.saved import config_hash, save_config
from tagtune.config.typed import build, replace, to_dict
from tagtune.errors import ConfigError
from tagtune.executors import ShardTask, Submission, make_executor, plan_shards, shard_status
from tagtune.files.resumable import locked
from tagtune.files.runs import (
    MARKER,
    claim_dir,
    file_sha256,
    files_under,
    remove_written,
    write_manifest,
)
from tagtune.pipeline.config import PipelineConfig
from tagtune.pipeline.seam import MARKERS, Runner
from tagtune.pipeline.stages import STAGE_NAMES, STAGES, Stage, free_memory
from tagtune.records.rows import CaptionRow, TagSetRow
from tagtune.records.taxonomy import Taxonomy
from tagtune.report import SILENT, Reporter


@dataclass
class StageOutcome:
    name: str
    status: str  # ran | skipped | not requested | from your file
    seconds: float = 0.0
    detail: str = ""


@dataclass
class PipelineResult:
    output_dir: Path
    stages: list[StageOutcome] = field(default_factory=list)
    dataset: Any = None
    driver: Submission | None = None  # executor.wait=false: the job that runs the pipeline on the cluster
    driver_running: bool = False  # the driver was submitted by an earlier command and is still queued or running


def _relative_hash(cfgs: Sequence[Any], out: Path) -> str:
    """Hash of the stage configs with locations factored out: the run directory (moving DIR keeps
    the hash) and each config's own timestamped default output (``paths.output_dir``)."""
    def strip(value: Any, prefixes: dict[str, str]) -> Any:
        if isinstance(value, dict):
            return {k: strip(v, prefixes) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v, prefixes) for v in value]
        if isinstance(value, str):
            for prefix, name in prefixes.items():
                if value.startswith(prefix):
                    return name + value[len(prefix):]
        return value

    parts = []
    for c in cfgs:
        data = to_dict(c)
        paths = data.pop("paths", None) or {}  # output locations and the run timestamp do not change results
        parts.append(strip(data, {str(out): "<DIR>", str(paths.get("output_dir")): "<RUN_DIR>"}))
    return config_hash({"stages": parts})


def _manifest(stage_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((stage_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass
class _Plan:
    """Which stages run, the file each one reads, their composed configs, and the user's start file."""

    out: Path
    stages: list[Stage]
    inputs: dict[str, Path | None]
    configs: dict[str, dict[str, Any]]
    replaced: dict[str, Path]  # stage name -> the user's file that stands in for its output


def plan_stages(cfg: PipelineConfig, out: Path) -> _Plan:
    """Compose every stage's configs up front (config errors before any work), wiring hop to hop."""
    given = {TagSetRow: ("tags", cfg.tags), CaptionRow: ("captions", cfg.captions)}
    starts = {kind: Path(p).expanduser().resolve() for kind, (_, p) in given.items() if p}
    for kind, path in starts.items():
        if not path.is_file():
            hop = given[kind][0]
            raise ConfigError(f"the {hop} file {path} " + ("is a directory, not a file" if path.is_dir() else "does not exist"),
                              key=hop)
    produced = [s.produces for s in STAGES]
    last_given = max((produced.index(h) for h in starts), default=-1)
    replaced = {s.name: starts.get(CaptionRow, starts.get(TagSetRow)) for s in STAGES[:last_given + 1]}
    stages = [s for s in STAGES if s.name in set(cfg.stages) and s.name not in replaced]
    inputs: dict[str, Path | None] = {}
    configs: dict[str, dict[str, Any]] = {}
    previous: dict[type, Path] = dict(starts)
    for stage in STAGES:
        folder = out / stage.name
        inputs[stage.name] = previous.get(stage.consumes) if stage.consumes else None
        if stage in stages:
            configs[stage.name] = stage.plan(cfg, folder, inputs[stage.name])
        previous.setdefault(stage.produces, folder / stage.output)
    return _Plan(out, stages, inputs, configs, replaced)


def run_pipeline(cfg: PipelineConfig, force: Sequence[str] = (), reporter: Reporter = SILENT) -> PipelineResult:
    """Run (or resume) the stages named in ``cfg.stages`` and assemble ``DIR/dataset``.

    Each stage's shard tasks run through the executor ``cfg.executor`` names (in this process by
    default); with ``executor.wait: false`` on an executor whose jobs outlive this process (SLURM),
    the whole run is submitted as one driver job that does this on the cluster, and the result says
    which job to watch (``tagtune pipeline status``).

    Args:
        cfg: The ``pipeline run`` config (``output``, ``tags`` / ``captions`` start files,
            ``vae.model`` / ``caption.adapter`` to reuse trained ones).
        force: Stages to rerun from scratch (each later stage is rerun too).
        reporter: Receives progress (one labelled line per stage) and notes.
    """
    out = Path(cfg.output).expanduser().resolve()
    unknown = [s for s in force if s not in STAGE_NAMES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGE_NAMES)}")
    forced = {name for s in force for name in STAGE_NAMES[STAGE_NAMES.index(s):]}
    plan = plan_stages(cfg, out)
    claim_dir(out, "pipeline run")
    result = PipelineResult(out)
    if not cfg.executor.wait and (running := running_driver(cfg, out)) is not None:
        result.driver, result.driver_running = running, True  # submitted before and still queued or running
        return result
    with locked(out / ".tagtune-pipeline.lock", hint="another `tagtune pipeline run` is writing this folder; wait for it"):
        save_config(cfg, out / "config.yaml")
        runner = Runner(cfg.executor, out, reporter)
        try:
            if not runner.waits:
                result.driver = submit_driver(cfg, force, runner)
                return result
            with reporter.progress("pipeline", total=len(plan.stages), unit="stages") as overall:
                for stage in STAGES:
                    result.stages.append(_stage(plan, stage, stage.name in forced, runner, reporter))
                    overall.update(completed=sum(o.status in ("ran", "skipped") for o in result.stages))
        finally:
            runner.close()
        result.dataset = _dataset(cfg, plan, reporter)
    return result


def _stage(plan: _Plan, stage: Stage, forced: bool, runner: Runner, reporter: Reporter) -> StageOutcome:
    if stage.name in plan.replaced:
        return StageOutcome(stage.name, "from your file", detail=str(plan.replaced[stage.name]))
    if stage not in plan.stages:
        return StageOutcome(stage.name, "not requested")
    folder = plan.out / stage.name
    cfgs = plan.configs[stage.name]
    digest = _relative_hash(list(cfgs.values()), plan.out)
    source = plan.inputs[stage.name]
    inputs = {str(source): file_sha256(source)} if source is not None and source.is_file() else {}
    manifest = _manifest(folder)
    if forced and folder.exists():
        _remove_stage(folder, manifest, stage.name, reporter)
        manifest = None
    if manifest is not None and manifest.get("config_hash") != digest:
        state = "finished" if manifest.get("status") == "complete" else "started"
        raise ConfigError(f"the {stage.name} stage in {folder} was {state} with a different config "
                          f"(hash {manifest.get('config_hash')}, now {digest})",
                          hint=f"rerun that stage and the later ones with --force {stage.name}, or use another -o")
    if manifest is not None and manifest.get("status") == "complete":
        if manifest.get("inputs") != inputs:
            raise ConfigError(f"the {stage.name} stage's input changed since it ran", hint=f"rerun it with --force {stage.name}")
        reporter.note(f"[{stage.name}] already complete: skipped ({manifest.get('detail', '')})")
        return StageOutcome(stage.name, "skipped", 0.0, manifest.get("detail", ""))
    preexisting = sorted(manifest.get("preexisting", [])) if manifest else sorted(files_under(folder) - {MARKER})
    claim_dir(folder, f"pipeline run ({stage.name})")
    write_manifest(folder / "manifest.json", stage=stage.name, status="running", config_hash=digest, inputs=inputs,
                   preexisting=preexisting)
    reporter.note(f"[{stage.name}] running" + (" (resuming earlier work)" if manifest is not None else ""))
    start = time.perf_counter()
    run = stage.run(cfgs, folder, runner, digest, reporter.child(stage.name))
    seconds = time.perf_counter() - start
    write_manifest(folder / "manifest.json", stage=stage.name, status="complete", config_hash=digest, inputs=inputs,
                   detail=run.detail, rows=run.rows, output=str(run.output.relative_to(plan.out)), seconds=round(seconds, 2),
                   preexisting=preexisting, written=sorted(files_under(folder) - set(preexisting) - {MARKER}))
    reporter.note(f"[{stage.name}] done in {seconds:.1f} s: {run.detail}")
    free_memory()
    return StageOutcome(stage.name, "ran", seconds, run.detail)


def _remove_stage(folder: Path, manifest: dict[str, Any] | None, name: str, reporter: Reporter) -> None:
    """``--force STAGE``: remove what the stage wrote; files that were there before it ran stay."""
    here = files_under(folder)
    if manifest is None:  # no manifest: nothing here is known to be the stage's
        keep = here
    elif manifest.get("status") == "complete" and "written" in manifest:
        keep = here - set(manifest["written"]) - {"manifest.json"}  # what it wrote goes; what you added since stays
    else:  # interrupted: everything but what was there before it started
        keep = set(manifest.get("preexisting", []))
    keep |= {MARKER}
    removed, kept = remove_written(folder, keep)
    kept = [k for k in kept if not any(part.startswith(".") for part in k.split("/"))]  # not tagtune's own caches
    reporter.note(f"[{name}] --force: removed {removed} file(s) it wrote in {folder}"
                  + (f"; kept {len(kept)} file(s) it did not write ({', '.join(kept[:3])})" if kept else ""))


def _taxonomy(cfg: PipelineConfig, plan: _Plan) -> Taxonomy:
    """The tag taxonomy of the run: the VAE model's, else the caption stage's ``data.taxonomy_path``."""
    from tagtune.vae.modeldir import read_taxonomy

    if "vae" in plan.configs:
        return read_taxonomy(plan.configs["vae"]["sample"].sample.model)
    infer = plan.configs.get("caption", {}).get("infer")
    if infer is None:
        infer = compose_command(caption_config.INFER, caption_config.COMMANDS, list(cfg.caption.overrides),
                                cfg.caption.preset, strict=False)
    return Taxonomy.load(infer.data.taxonomy_path)


def _dataset(cfg: PipelineConfig, plan: _Plan, reporter: Reporter) -> Any:
    from tagtune.pipeline.dataset import build_dataset

    source = next((plan.out / name for name in ("verify", "tta") if name in {s.name for s in plan.stages}), None)
    manifest = _manifest(source) if source is not None else None
    if manifest is None or manifest.get("status") != "complete":
        return None
    run = _run_info(cfg, plan)
    if source.name == "verify":
        step = json.loads((source / "summary.json").read_text(encoding="utf-8"))
        checkers = plan.configs["verify"]["verify"].verification.checkers
        run["verification"] = {**{k: v for k, v in step.items() if k != "report"}, "checkers": list(checkers)}
    summary = build_dataset(source, plan.out / "dataset", _taxonomy(cfg, plan), to_dict(cfg.dataset), run, reporter)
    reporter.note(f"[dataset] {summary.items} items in {summary.path}")
    return summary


def _inputs(cfg: PipelineConfig, plan: _Plan) -> dict[str, str | None]:
    """``{role: model id or data path}`` of the run, for the licence table."""
    vae, cap, tta = plan.configs.get("vae", {}), plan.configs.get("caption", {}), plan.configs.get("tta", {})
    tag_data = None
    if "train" in vae:
        tag_data = vae["train"].data.path or vae["train"].data.dataset_name
    elif cfg.vae.model and (Path(cfg.vae.model) / "config.yaml").is_file():
        recorded = yaml.safe_load((Path(cfg.vae.model) / "config.yaml").read_text(encoding="utf-8")) or {}
        tag_data = (recorded.get("data") or {}).get("path")
    return {
        "tag_data": tag_data or (str(plan.replaced.get("vae")) if "vae" in plan.replaced else None),
        "tag_model": "tagtune:vae" if vae else None,
        "caption_data": cap["finetune"].data.path if "finetune" in cap else None,
        "caption_model": cap["infer"].model.name if "infer" in cap else (str(plan.replaced["caption"]) if "caption" in plan.replaced else None),
        "audio_model": tta["generate"].model.name if "generate" in tta else None,
    }


def _run_info(cfg: PipelineConfig, plan: _Plan) -> dict[str, Any]:
    """The run-level provenance (each row carries its own per-stage provenance)."""
    from tagtune import __version__

    out: dict[str, Any] = {"tagtune_version": __version__, "num_items": cfg.num_items, "seed": cfg.seed,
                           "started_from": {stage: str(p) for stage, p in plan.replaced.items()},
                           "inputs": _inputs(cfg, plan), "stages": {}}
    for stage, cfgs in plan.configs.items():
        section = getattr(cfg, stage)
        out["stages"][stage] = {"preset": getattr(section, "preset", None), "overrides": list(section.overrides)}
        for name, c in cfgs.items():
            out["stages"][stage][name] = {k: to_dict(getattr(c, k)) for k in ("model", "generation") if hasattr(c, k)}
    return out


def _driver_task(cfg: PipelineConfig, force: Sequence[str]) -> ShardTask:
    """The one task of ``executor.wait: false``: :func:`drive` on the same config, waiting."""
    waiting = replace(cfg, {"executor.wait": True})
    out = Path(cfg.output).expanduser().resolve()
    (task,) = plan_shards("pipeline driver", 1, "tagtune.pipeline.run:drive",
                          {"config": to_dict(waiting), "force": list(force)}, run_dir=out,
                          marker_dir=out / MARKERS / "driver", config_hash=config_hash(waiting), input_hash="")
    return task


def running_driver(cfg: PipelineConfig, out: Path) -> Submission | None:
    """The driver job an earlier ``executor.wait: false`` command submitted, when it is still queued or
    running (the same command again reports it instead of starting a second driver on the folder)."""
    folder = out / MARKERS / "driver"
    if not folder.is_dir():
        return None
    task = _driver_task(cfg, [])
    state = shard_status(folder, 1, task.config_hash, live=make_executor(cfg.executor).live).shards[0]
    if state.state != "running":
        return None
    return Submission(cfg.executor.name, task.stage, (task,), {0: state.job_id or "?"}, {0: state.log})


def submit_driver(cfg: PipelineConfig, force: Sequence[str], runner: Runner) -> Submission:
    """``executor.wait: false``: submit the run itself as one CPU job (:func:`drive`) that submits each
    step's shard tasks from the cluster and waits for them, then returns; ``pipeline status`` follows it."""
    resources = replace(cfg.executor.resources, {"gpus": 0, "cpus": 1, "time_minutes": cfg.executor.driver_minutes})
    executor = runner.executor
    slurm = cfg.executor.slurm
    if slurm is not None and slurm.driver_partition:  # GPU partitions often refuse a job that asks for no GPU
        executor = make_executor(replace(cfg.executor, {"slurm.partition": slurm.driver_partition}))
    return executor.submit([_driver_task(cfg, force)], resources)


def drive(config: dict[str, Any], force: list[str], shard: str = "0/1") -> dict[str, Any]:
    """The driver job of ``executor.wait: false``: the same run, waiting for each step on the cluster."""
    result = run_pipeline(build(PipelineConfig, config), force)
    return {"rows": result.dataset.items if result.dataset is not None else None}


STAGE_PREFIXES = {"vae:": "vae.overrides", "caption:": "caption.overrides", "finetune:": "caption.finetune_overrides",
                  "tta:": "tta.overrides"}


def split_stage_overrides(overrides: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """``STAGE:key=value`` overrides (for that stage's own configs) apart from the pipeline's own."""
    own, routed = [], {}
    for item in overrides:
        prefix = next((p for p in STAGE_PREFIXES if item.startswith(p)), None)
        if prefix is None:
            own.append(item)
        else:
            routed.setdefault(STAGE_PREFIXES[prefix], []).append(item[len(prefix):])
    return own, routed


def with_stage_overrides(cfg: PipelineConfig, routed: dict[str, list[str]]) -> PipelineConfig:
    """The config with routed ``STAGE:`` overrides appended to each stage section's own."""
    current = to_dict(cfg)
    updates = {}
    for key, items in routed.items():
        section, name = key.split(".")
        updates[key] = [*current[section][name], *items]
    return replace(cfg, updates) if updates else cfg
