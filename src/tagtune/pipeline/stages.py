"""The pipeline's stages: the rows each reads and writes, its composed command configs, and its steps.

Stages talk only through the hop files of :mod:`tagtune.records.rows`: each :class:`Stage` names
the row type it consumes and the one it produces. Its ``plan`` composes the typed configs of the
stage commands it runs (with the stage's preset and overrides, and the hop files wired in); its
``run`` runs them as steps of shard tasks through the :class:`~tagtune.pipeline.seam.Runner`
(one task each for ``vae``, N for ``caption``, ``tta`` and ``verify``), then its finalizer
merges the shards' parts. The functions are those the stage commands call, so a stage run by the
pipeline writes what the commands write.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagtune.caption import config as caption_config
from tagtune.config.commands import Command, compose_command
from tagtune.config.compose import override_key
from tagtune.config.typed import reads
from tagtune.errors import ConfigError, InputError
from tagtune.pipeline.config import PipelineConfig, StageSection
from tagtune.pipeline.seam import Runner, merge_clips, release_models
from tagtune.records.rows import CaptionRow, ClipRow, DatasetRow, TagSetRow
from tagtune.report import Reporter
from tagtune.tta import config as tta_config
from tagtune.vae import config as vae_config


@dataclass
class StageRun:
    """What a stage produced: its output file (or folder), how many rows, a one-line summary."""

    output: Path
    rows: int
    detail: str


Plan = Callable[[PipelineConfig, Path, "Path | None"], dict[str, Any]]
Run = Callable[[dict[str, Any], Path, Runner, str, Reporter], StageRun]


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    Attributes:
        name: ``vae``, ``caption``, ``tta`` or ``verify`` (also its folder under the run directory).
        consumes: The row type it reads (None: it starts from nothing).
        produces: The row type it writes.
        output: Its output inside the stage folder.
        plan: ``(pipeline config, stage dir, input file) -> {role: typed command config}``.
        run: ``(configs, stage dir, runner, stage hash, reporter) -> StageRun``.
    """

    name: str
    consumes: type[TagSetRow] | None
    produces: type[TagSetRow]
    output: str
    plan: Plan
    run: Run


def free_memory() -> None:
    """Give the next stage the memory of the models the previous one loaded (in this process: a driver
    whose tasks run elsewhere never imported torch, and does not start now)."""
    release_models()
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _compose(command: Command, commands: Sequence[Command], section: StageSection, extra: Sequence[str],
             updates: dict[str, Any], config_dirs: Sequence[str] = ()) -> Any:
    """A stage command's config from the stage's preset and overrides (which serve all of its commands),
    composed with the run's ``--config-dir`` folders (your presets and group options)."""
    overrides = [*section.overrides, *extra]
    for item in overrides:
        key = override_key(item)
        if not any(reads(c.schema, key) for c in commands):
            raise ConfigError(f"override '{item}' of the {command.stage} stage: no {command.stage} command reads "
                              f"'{key}'", key=key, hint=f"see `tagtune config show {command.main}` for the keys")
    return compose_command(command, commands, overrides, section.preset, [Path(d) for d in config_dirs], updates=updates,
                           strict=False)


def _check_done(done: int, owned: int, what: str, path: Path) -> None:
    if done != owned:
        raise InputError(f"{what} {done} of {owned}", path, hint="run the same command again to resume")


# -- tags ----------------------------------------------------------------------------------------

def _plan_vae(cfg: PipelineConfig, folder: Path, _input: Path | None) -> dict[str, Any]:
    model = Path(cfg.vae.model).expanduser().resolve() if cfg.vae.model else folder / "model"
    out: dict[str, Any] = {}
    cmds = vae_config.COMMANDS
    if not cfg.vae.model:
        out["train"] = _compose(vae_config.TRAIN, cmds, cfg.vae, [], {"train.output": str(model), "seed": cfg.seed},
                                cfg.config_dirs)
    out["sample"] = _compose(vae_config.SAMPLE, cmds, cfg.vae, [], {
        "sample.model": str(model), "sample.output": str(folder / "tags.jsonl"), "sample.num_samples": cfg.num_items,
        "seed": cfg.seed}, cfg.config_dirs)
    return out


def _run_vae(cfgs: dict[str, Any], folder: Path, runner: Runner, digest: str, reporter: Reporter) -> StageRun:
    from tagtune.vae.modeldir import WEIGHTS

    if "train" in cfgs and not (Path(cfgs["train"].train.output) / WEIGHTS).is_file():
        runner.step(folder, "train", "vae train", cfgs["train"], 1, digest)  # resumes from its own last.ckpt
        free_memory()
    runner.step(folder, "sample", "vae sample", cfgs["sample"], 1, digest)
    path = Path(cfgs["sample"].sample.output)
    return StageRun(path, cfgs["sample"].sample.num_samples, f"{cfgs['sample'].sample.num_samples} tag sets")


# -- captions ------------------------------------------------------------------------------------

def _plan_caption(cfg: PipelineConfig, folder: Path, tags: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cmds = caption_config.COMMANDS
    adapter = Path(cfg.caption.adapter).expanduser().resolve() if cfg.caption.adapter else None
    if adapter is None and cfg.caption.finetune:
        adapter = folder / "adapter"
        out["finetune"] = _compose(caption_config.FINETUNE, cmds, cfg.caption, cfg.caption.finetune_overrides,
                                   {"finetune.output": str(adapter), "seed": cfg.seed}, cfg.config_dirs)
    updates = {"paths.output_dir": str(folder), "infer.output": str(folder / "captions.jsonl"), "infer.shard": "0/1",
               "infer.limit": None, "seed": cfg.seed}
    if tags is not None:
        updates["infer.input"] = str(tags)
    if adapter is not None:
        updates["model.checkpoint_dir"] = str(adapter)
    out["infer"] = _compose(caption_config.INFER, cmds, cfg.caption, [], updates, cfg.config_dirs)
    return out


def _run_caption(cfgs: dict[str, Any], folder: Path, runner: Runner, digest: str, reporter: Reporter) -> StageRun:
    from tagtune.caption.merge import merge_output
    from tagtune.caption.model import ADAPTER_WEIGHTS

    if "finetune" in cfgs and not (Path(cfgs["finetune"].finetune.output) / ADAPTER_WEIGHTS).is_file():
        runner.step(folder, "finetune", "caption finetune", cfgs["finetune"], 1, digest)
        free_memory()
    step = runner.step(folder, "infer", "caption infer", cfgs["infer"], runner.shards("caption"), digest)
    output = Path(cfgs["infer"].infer.output)
    done = merge_output(output).lines  # the shards' parts folded in (nothing to do for one shard)
    owned = _owned(step)
    _check_done(done, owned if owned is not None else done, "captioned", output)
    return StageRun(output, done, f"{done} captions")


def _owned(step: Any) -> int | None:
    """How many rows the shards of a step owned, summed from their done markers (None: not recorded)."""
    from tagtune.executors import markers

    total = 0
    for task in step.tasks:
        marker = markers.read(markers.done_path(task.marker_dir, task.index, task.count)) or {}
        owned = (marker.get("result") or {}).get("owned")
        if not isinstance(owned, int):
            return None
        total += owned
    return total


# -- audio ---------------------------------------------------------------------------------------

def _plan_tta(cfg: PipelineConfig, folder: Path, captions: Path | None) -> dict[str, Any]:
    updates: dict[str, Any] = {"generate.output": str(folder), "generate.shard": "0/1", "seed": cfg.seed}
    if captions is not None:
        updates["generate.input"] = str(captions)
    return {"generate": _compose(tta_config.GENERATE, tta_config.COMMANDS, cfg.tta, [], updates, cfg.config_dirs)}


def _run_tta(cfgs: dict[str, Any], folder: Path, runner: Runner, digest: str, reporter: Reporter) -> StageRun:
    step = runner.step(folder, "generate", "tta generate", cfgs["generate"], runner.shards("tta"), digest)
    meta = folder / "metadata.jsonl"
    done = merge_clips(folder)
    owned = _owned(step)
    _check_done(done, owned if owned is not None else done, "rendered", meta)
    return StageRun(meta, done, f"{done} clips")


# -- verification --------------------------------------------------------------------------------

def _plan_verify(cfg: PipelineConfig, folder: Path, clips: Path | None) -> dict[str, Any]:
    extra = list(cfg.verify.overrides)
    updates: dict[str, Any] = {"seed": cfg.seed, "generate.output": str(folder), "generate.shard": "0/1"}
    generate = _compose(tta_config.GENERATE, tta_config.COMMANDS, cfg.tta, extra, updates, cfg.config_dirs)
    verify_updates: dict[str, Any] = {"verification.shard": "0/1"}
    if clips is not None:
        verify_updates["verification.input"] = str(clips.parent)
    judge = _compose(tta_config.VERIFY, tta_config.COMMANDS, cfg.tta, extra, verify_updates, cfg.config_dirs)
    return {"verify": judge, "generate": generate, "policy": cfg.verify}


def _run_verify(cfgs: dict[str, Any], folder: Path, runner: Runner, digest: str, reporter: Reporter) -> StageRun:
    from tagtune.pipeline.verify import run_verify_step

    judge = cfgs["verify"]
    result = run_verify_step(judge, cfgs["generate"], cfgs["policy"], Path(judge.verification.input), folder,
                             runner, digest, reporter)
    mean = "-" if result.realisation_final is None else f"{result.realisation_final:.3f}"
    detail = f"{result.kept} clips, mean realisation {mean}"
    if result.rerendered:
        detail += f", {result.rerendered} re-rendered ({result.improved} improved)"
    if result.dropped:
        detail += f", {result.dropped} dropped"
    return StageRun(result.path, result.kept, detail)


STAGES: tuple[Stage, ...] = (
    Stage("vae", None, TagSetRow, "tags.jsonl", _plan_vae, _run_vae),
    Stage("caption", TagSetRow, CaptionRow, "captions.jsonl", _plan_caption, _run_caption),
    Stage("tta", CaptionRow, ClipRow, "metadata.jsonl", _plan_tta, _run_tta),
    Stage("verify", ClipRow, DatasetRow, "metadata.jsonl", _plan_verify, _run_verify),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
