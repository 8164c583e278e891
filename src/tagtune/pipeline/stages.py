"""The pipeline's stages: what each one reads and writes, its composed configs, and how to run it.

Stages talk only through the hop files of :mod:`tagtune.records.reader`. Each :class:`Stage` declares the
hop it consumes and the one it produces, composes its configs from the pipeline config and the
file it is handed (its input and output keys are the same in every stage: ``<section>.input`` /
``<section>.output``, ``seed``), and runs the same functions as the stage commands, which write
their own configs and return result objects the pipeline reads (no re-counting of files).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagtune.config.compose import compose
from tagtune.errors import InputError
from tagtune.report import Reporter


@dataclass
class StageRun:
    """What a stage produced: its output file (or folder), how many rows, a one-line summary."""

    output: Path
    rows: int
    detail: str


@dataclass
class Stage:
    """One step of the pipeline.

    Attributes:
        name: ``vae``, ``caption``, ``tta`` or ``verify`` (also its folder under the run directory).
        consumes: The hop it reads (``None``, ``tags``, ``captions``, ``clips``).
        produces: The hop it writes (``tags``, ``captions``, ``clips``, ``verified clips``).
        output: Its output inside the stage folder.
        plan: ``(pipeline cfg, stage dir, input file) -> {name: composed config}``.
        run: ``(configs, stage dir, reporter) -> StageRun``.
    """

    name: str
    consumes: str | None
    produces: str
    output: str
    plan: Callable[[Any, Path, Path | None], dict[str, Any]]
    run: Callable[[dict[str, Any], Path, Reporter], StageRun]


def _stage_compose(name: str, section: Any, extra: list[str], updates: dict[str, Any]) -> Any:
    return compose(name, [*section.overrides, *extra], preset=section.preset, updates=updates)


def free_memory() -> None:
    """Give the next stage the memory of the models the previous one loaded."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


# -- tags ----------------------------------------------------------------------------------------

def _plan_vae(cfg: Any, folder: Path, _input: Path | None) -> dict[str, Any]:
    model = Path(cfg.vae.model).expanduser().resolve() if cfg.vae.model else folder / "model"
    out: dict[str, Any] = {}
    if not cfg.vae.model:
        out["train"] = _stage_compose("vae_training", cfg.vae, [], {"train.output": str(model), "seed": cfg.seed})
    out["sample"] = _stage_compose("vae_training", cfg.vae, [], {
        "sample.model": str(model), "sample.output": str(folder / "tags.jsonl"), "sample.num_samples": cfg.num_items,
        "seed": cfg.seed})
    return out


def _run_vae(cfgs: dict[str, Any], folder: Path, reporter: Reporter) -> StageRun:
    from tagtune.vae.modeldir import WEIGHTS
    from tagtune.vae.sample import sample
    from tagtune.vae.train import train

    if "train" in cfgs and not (Path(cfgs["train"].train.output) / WEIGHTS).is_file():
        train(cfgs["train"], reporter)  # resumes from its own last.ckpt after an interruption
        free_memory()
    result = sample(cfgs["sample"], reporter)
    return StageRun(result.path, result.num_samples, f"{result.num_samples} tag sets")


# -- captions ------------------------------------------------------------------------------------

def _plan_caption(cfg: Any, folder: Path, tags: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    adapter = Path(cfg.caption.adapter).expanduser().resolve() if cfg.caption.adapter else None
    if adapter is None and cfg.caption.finetune:
        adapter = folder / "adapter"
        out["finetune"] = _stage_compose("caption_fine_tuning", cfg.caption, list(cfg.caption.finetune_overrides),
                                         {"finetune.output": str(adapter), "seed": cfg.seed})
    updates = {"paths.output_dir": str(folder), "infer.output": str(folder / "captions.jsonl"), "infer.shard": "0/1",
               "infer.limit": None, "seed": cfg.seed}
    if tags is not None:
        updates["infer.input"] = str(tags)
    if adapter is not None:
        updates["model.checkpoint_dir"] = str(adapter)
    out["infer"] = _stage_compose("caption_inference", cfg.caption, [], updates)
    return out


def _run_caption(cfgs: dict[str, Any], folder: Path, reporter: Reporter) -> StageRun:
    from tagtune.caption.infer import infer
    from tagtune.caption.model import ADAPTER_WEIGHTS
    from tagtune.caption.train import finetune

    if "finetune" in cfgs and not (Path(cfgs["finetune"].finetune.output) / ADAPTER_WEIGHTS).is_file():
        finetune(cfgs["finetune"], reporter)
        free_memory()
    result = infer(cfgs["infer"], reporter)
    done = result.written + result.already_done
    if done != result.owned:
        raise InputError(f"captioned {done} of {result.owned} tag sets", result.output, hint="run the same command again to resume")
    return StageRun(Path(result.output), done, f"{done} captions")


# -- audio ---------------------------------------------------------------------------------------

def _plan_tta(cfg: Any, folder: Path, captions: Path | None) -> dict[str, Any]:
    updates = {"generate.output": str(folder), "generate.shard": "0/1", "seed": cfg.seed}
    if captions is not None:
        updates["generate.input"] = str(captions)
    return {"generate": _stage_compose("tta_inference", cfg.tta, [], updates)}


def _run_tta(cfgs: dict[str, Any], folder: Path, reporter: Reporter) -> StageRun:
    from tagtune.tta.generate import generate

    result = generate(cfgs["generate"], reporter)
    done = result.generated + result.skipped
    if done != result.owned:
        raise InputError(f"rendered {done} of {result.owned} captions", result.metadata, hint="run the same command again to resume")
    return StageRun(result.metadata, done, f"{done} clips")


# -- verification --------------------------------------------------------------------------------

def _plan_verify(cfg: Any, folder: Path, clips: Path | None) -> dict[str, Any]:
    updates = {"seed": cfg.seed, "generate.output": str(folder), "generate.shard": "0/1"}
    if clips is not None:
        updates["verification.input"] = str(clips.parent)
    tta = _stage_compose("tta_inference", cfg.tta, list(cfg.verify.overrides), updates)
    from omegaconf import OmegaConf

    return {"verify": tta, "policy": OmegaConf.create({k: cfg.verify[k] for k in ("policy", "min_realisation", "max_attempts")})}


def _run_verify(cfgs: dict[str, Any], folder: Path, reporter: Reporter) -> StageRun:
    from tagtune.pipeline.verify import run_verify_step

    cfg = cfgs["verify"]
    result = run_verify_step(cfg, cfgs["policy"], Path(cfg.verification.input), folder, reporter)
    mean = "-" if result.realisation_final is None else f"{result.realisation_final:.3f}"
    detail = f"{result.kept} clips, mean realisation {mean}"
    if result.rerendered:
        detail += f", {result.rerendered} re-rendered ({result.improved} improved)"
    if result.dropped:
        detail += f", {result.dropped} dropped"
    return StageRun(result.path, result.kept, detail)


STAGES: tuple[Stage, ...] = (
    Stage("vae", None, "tags", "tags.jsonl", _plan_vae, _run_vae),
    Stage("caption", "tags", "captions", "captions.jsonl", _plan_caption, _run_caption),
    Stage("tta", "captions", "clips", "metadata.jsonl", _plan_tta, _run_tta),
    Stage("verify", "clips", "verified clips", "metadata.jsonl", _plan_verify, _run_verify),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
