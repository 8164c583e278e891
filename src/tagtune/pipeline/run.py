"""``tagtune pipeline run``: tags -> captions -> audio -> dataset, resumable stage by stage.

The pipeline calls the same functions as the stage commands, each with its own composed config
(the stage's main config + the preset and overrides the pipeline config names), and the stages
talk through files under the output directory::

    DIR/config.yaml            the pipeline config
    DIR/vae/      model/ (unless --vae-model), tags.jsonl, manifest.json
    DIR/caption/  adapter/ (when fine-tuning), captions.jsonl, manifest.json
    DIR/tta/      audio/, metadata.jsonl, manifest.json
    DIR/dataset/  metadata.jsonl, audio/, plots/, README.md

A stage whose manifest says ``complete`` with the same config hash is skipped; a stage without
one is (re)run, and every stage function resumes its own partial work (training from
``last.ckpt``, captions and clips by id). A finished stage whose config changed is reported, not
silently redone: ``--force STAGE`` reruns it and every later stage.
"""

from __future__ import annotations

import gc
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.config import compose
from tagtune.errors import ConfigError, InputError
from tagtune.resumable import ensure_dir, iter_jsonl
from tagtune.runs import config_hash, file_sha256, save_config, write_manifest

STAGES = ("vae", "caption", "tta")


@dataclass
class StageOutcome:
    name: str
    status: str  # ran | skipped | not requested
    seconds: float = 0.0
    detail: str = ""


@dataclass
class PipelineResult:
    output_dir: Path
    stages: list[StageOutcome] = field(default_factory=list)
    dataset: Any = None


def _relative_hash(cfgs: Sequence[Any], out: Path) -> str:
    """Hash of the stage configs with the output directory factored out (moving DIR keeps it)."""
    from omegaconf import OmegaConf

    prefix = str(out)

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        if isinstance(value, str) and value.startswith(prefix):
            return "<DIR>" + value[len(prefix):]
        return value

    parts = []
    for c in cfgs:
        data = OmegaConf.to_container(c, resolve=True)
        data.pop("paths", None)  # output locations and the run timestamp do not change results
        parts.append(strip(data))
    return config_hash({"stages": parts})


def _count_lines(path: Path) -> int:
    return sum(1 for _ in iter_jsonl(path)) if path.is_file() else 0


class _Plan:
    """The composed configs of every stage, built before any work so config errors surface first."""

    def __init__(self, cfg: Any, out: Path, vae_model: str | None, caption_adapter: str | None):
        self.cfg, self.out = cfg, out
        n, seed = int(cfg.num_items), int(cfg.seed)
        if n < 1:
            raise ConfigError(f"num_items must be at least 1, got {n}", hint="e.g. -n 100")
        self.vae_dir, self.cap_dir, self.tta_dir = out / "vae", out / "caption", out / "tta"
        self.external_vae = Path(vae_model).expanduser().resolve() if vae_model else None
        self.model_dir = self.external_vae or self.vae_dir / "model"
        self.tags = self.vae_dir / "tags.jsonl"
        self.captions = self.cap_dir / "captions.jsonl"

        vae = cfg.vae
        self.vae_train = compose("vae_training", list(vae.overrides), preset=vae.preset,
                                 updates={"paths.output_dir": str(self.vae_dir / "model"), "seed": seed})
        self.vae_sample = compose("vae_training", list(vae.overrides), preset=vae.preset, updates={
            "paths.output_dir": str(self.vae_dir), "inference.model_dir": str(self.model_dir),
            "inference.output": str(self.tags), "inference.num_samples": n, "inference.seed": seed,
        })

        cap = cfg.caption
        self.external_adapter = Path(caption_adapter).expanduser().resolve() if caption_adapter else None
        self.finetune_cfg = None
        adapter = self.external_adapter
        if adapter is None and cap.finetune:
            adapter = self.cap_dir / "adapter"
            self.finetune_cfg = compose("caption_fine_tuning", [*cap.overrides, *cap.finetune_overrides], preset=cap.preset,
                                        updates={"paths.output_dir": str(adapter), "seed": seed})
        updates = {"paths.output_dir": str(self.cap_dir), "infer.input": str(self.tags), "infer.output": str(self.captions),
                   "infer.shard": "0/1", "infer.limit": None, "seed": seed}
        if adapter is not None:
            updates["model.checkpoint_dir"] = str(adapter)
        self.adapter = adapter
        self.caption_infer = compose("caption_inference", list(cap.overrides), preset=cap.preset, updates=updates)

        self.tta = compose("tta_inference", list(cfg.tta.overrides), preset=cfg.tta.preset, updates={
            "paths.output_dir": str(self.tta_dir), "data.path": str(self.captions), "output.shard": "0/1", "seed": seed,
        })

    def configs(self, stage: str) -> list[Any]:
        if stage == "vae":
            return [self.vae_sample] if self.external_vae else [self.vae_train, self.vae_sample]
        if stage == "caption":
            return [c for c in (self.finetune_cfg, self.caption_infer) if c is not None]
        return [self.tta]

    def stage_dir(self, stage: str) -> Path:
        return {"vae": self.vae_dir, "caption": self.cap_dir, "tta": self.tta_dir}[stage]


def _manifest(stage_dir: Path) -> dict[str, Any] | None:
    import json

    path = stage_dir / "manifest.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def _run_vae(plan: _Plan) -> str:
    from omegaconf import OmegaConf

    from tagtune.vae.sample import sample
    from tagtune.vae.train import train

    if plan.external_vae is None and not (plan.model_dir / "model.safetensors").is_file():
        last = plan.model_dir / "checkpoints" / "last.ckpt"
        if last.is_file():
            OmegaConf.update(plan.vae_train, "ckpt_path", str(last), merge=False)
        ensure_dir(plan.model_dir)
        save_config(plan.vae_train, plan.model_dir / "config.yaml")
        train(plan.vae_train)
        _free_memory()
    save_config(plan.vae_sample, plan.vae_dir / "config.yaml")
    sample(plan.vae_sample)
    return f"{_count_lines(plan.tags)} tag sets"


def _run_caption(plan: _Plan) -> str:
    from omegaconf import OmegaConf

    from tagtune.caption.infer import infer
    from tagtune.caption.train import finetune

    if plan.finetune_cfg is not None and not (plan.adapter / "adapter_model.safetensors").is_file():
        last = plan.adapter / "checkpoints" / "last.ckpt"
        if last.is_file():
            OmegaConf.update(plan.finetune_cfg, "ckpt_path", str(last), merge=False)
        ensure_dir(plan.adapter)
        finetune(plan.finetune_cfg)
        _free_memory()
    save_config(plan.caption_infer, plan.cap_dir / "config.yaml")
    infer(plan.caption_infer)
    expected, written = _count_lines(plan.tags), _count_lines(plan.captions)
    if written != expected:
        raise InputError(f"captioned {written} of {expected} tag sets", plan.captions, hint="run the same command again to resume")
    return f"{written} captions"


def _run_tta(plan: _Plan) -> str:
    from tagtune.tta.generate import generate

    save_config(plan.tta, plan.tta_dir / "config.yaml")
    generate(plan.tta)
    expected, written = _count_lines(plan.captions), _count_lines(plan.tta_dir / "metadata.jsonl")
    if written != expected:
        raise InputError(f"rendered {written} of {expected} captions", plan.tta_dir / "metadata.jsonl",
                         hint="run the same command again to resume")
    return f"{written} clips"


_RUNNERS = {"vae": _run_vae, "caption": _run_caption, "tta": _run_tta}


def _inputs(plan: _Plan, stage: str) -> dict[str, str]:
    src = {"vae": None, "caption": plan.tags, "tta": plan.captions}[stage]
    return {str(src.relative_to(plan.out)): file_sha256(src)} if src is not None and src.is_file() else {}


def _provenance(plan: _Plan) -> dict[str, Any]:
    return {
        "num_items": int(plan.cfg.num_items),
        "seed": int(plan.cfg.seed),
        "tags": {"model_dir": str(plan.model_dir if plan.external_vae else "vae/model"),
                 "preset": plan.cfg.vae.preset, "overrides": list(plan.cfg.vae.overrides),
                 "sampling": {k: plan.vae_sample.inference.get(k) for k in ("mode", "temperature", "threshold")}},
        "captions": {"model": plan.caption_infer.model.name,
                     "adapter": str(plan.adapter if plan.external_adapter else ("caption/adapter" if plan.adapter else None)),
                     "prompt": plan.caption_infer.prompt.get("format"), "preset": plan.cfg.caption.preset},
        "audio": {"model": plan.tta.model.name, "preset": plan.cfg.tta.preset,
                  "generation": {k: v for k, v in dict(plan.tta.generation).items()}},
    }


def run_pipeline(
    cfg: Any,
    force: Sequence[str] = (),
    vae_model: str | None = None,
    caption_adapter: str | None = None,
    announce: Any = print,
) -> PipelineResult:
    """Run (or resume) the stages named in ``cfg.stages`` and assemble ``DIR/dataset``.

    Args:
        cfg: The composed ``pipeline`` config.
        force: Stages to rerun from scratch (each later stage is rerun too).
        vae_model: Use this trained VAE model directory instead of training one.
        caption_adapter: Use this LoRA adapter instead of fine-tuning one.
        announce: Called with one line per stage event (the CLI prints them).
    """
    out = Path(cfg.paths.output_dir).expanduser().resolve()
    stages = [str(s) for s in cfg.stages]
    unknown = [s for s in [*stages, *force] if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
    forced = set()
    for s in force:
        forced |= set(STAGES[STAGES.index(s):])
    plan = _Plan(cfg, out, vae_model, caption_adapter)
    ensure_dir(out)
    save_config(cfg, out / "config.yaml")
    result = PipelineResult(out)

    for stage in STAGES:
        if stage not in stages:
            result.stages.append(StageOutcome(stage, "not requested"))
            continue
        stage_dir = plan.stage_dir(stage)
        digest = _relative_hash(plan.configs(stage), out)
        manifest = _manifest(stage_dir)
        if stage in forced and stage_dir.exists():
            keep_model = stage == "vae" and plan.external_vae is not None
            announce(f"[{stage}] --force: removing {stage_dir}" + (" (your --vae-model is kept)" if keep_model else ""))
            shutil.rmtree(stage_dir)
            manifest = None
        if manifest is not None and manifest.get("config_hash") != digest:
            state = "finished" if manifest.get("status") == "complete" else "started"
            raise ConfigError(
                f"the {stage} stage in {stage_dir} was {state} with a different config "
                f"(hash {manifest.get('config_hash')}, now {digest})",
                hint=f"rerun that stage and the later ones with --force {stage}, or use another -o",
            )
        if manifest is not None and manifest.get("status") == "complete" and manifest.get("inputs") == _inputs(plan, stage):
            result.stages.append(StageOutcome(stage, "skipped", 0.0, manifest.get("detail", "")))
            announce(f"[{stage}] already complete: skipped ({manifest.get('detail', '')})")
            continue
        if manifest is not None and manifest.get("status") == "complete":
            raise ConfigError(f"the {stage} stage's input changed since it ran", hint=f"rerun it with --force {stage}")
        ensure_dir(stage_dir)
        inputs = _inputs(plan, stage)
        write_manifest(stage_dir / "manifest.json", stage=stage, status="running", config_hash=digest, inputs=inputs)
        announce(f"[{stage}] running" + (" (resuming earlier work)" if manifest is not None else ""))
        start = time.perf_counter()
        detail = _RUNNERS[stage](plan)
        seconds = time.perf_counter() - start
        write_manifest(stage_dir / "manifest.json", stage=stage, status="complete", config_hash=digest, inputs=inputs,
                       detail=detail, seconds=round(seconds, 2))
        result.stages.append(StageOutcome(stage, "ran", seconds, detail))
        announce(f"[{stage}] done in {seconds:.1f} s: {detail}")
        _free_memory()

    tta_manifest = _manifest(plan.tta_dir)
    if tta_manifest is not None and tta_manifest.get("status") == "complete":
        from tagtune.pipeline.dataset import build_dataset
        from tagtune.taxonomy import Taxonomy

        taxonomy = Taxonomy.load(plan.model_dir / "taxonomy.json")
        result.dataset = build_dataset(plan.tta_dir, out / "dataset", taxonomy, cfg.dataset, _provenance(plan))
        announce(f"[dataset] {result.dataset.items} items in {out / 'dataset'}")
    return result
