"""``pipeline run --dry-run``: the tasks each stage would run and the GPU-hours they would take.

Planning composes every stage's config (so a config error shows here too) and reads no data: the
item count is ``num_items`` (or the rows of a ``--tags``/``--captions`` file, counted by lines), the
clip length comes from the audio config, and the rates from ``resources/gpu_estimates.yaml``.
"""

from __future__ import annotations

import fnmatch
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagtune.files.readers import resources_dir
from tagtune.pipeline.config import PipelineConfig
from tagtune.pipeline.run import plan_stages
from tagtune.pipeline.stages import STAGES


@dataclass
class PlannedStage:
    """One stage of a planned run: its steps (``name x N``), task count and estimated GPU-hours."""

    name: str
    steps: list[str]
    tasks: int
    gpu_hours: float
    note: str = ""
    sharded: int = 0  # how many of the tasks split the stage's main work
    sharded_hours: float | None = None  # the GPU-hours they split (None: all of gpu_hours; not a fine-tune)

    @property
    def hours_per_task(self) -> float:
        """GPU-hours of one shard task (what ``executor.resources.time_minutes`` must allow for)."""
        hours = self.gpu_hours if self.sharded_hours is None else self.sharded_hours
        return hours / self.sharded if self.sharded else 0.0


@functools.cache
def _rates() -> dict[str, Any]:
    import yaml

    return yaml.safe_load((resources_dir() / "gpu_estimates.yaml").read_text(encoding="utf-8"))


def rate(kind: str, model: str) -> float:
    """GPU seconds per unit of ``kind`` (audio, captions, finetune) for a model name."""
    table = _rates()[kind]
    return float(next((v for pattern, v in table.items() if fnmatch.fnmatch(str(model).lower(), pattern)), 0.0))


def _items(cfg: PipelineConfig) -> int:
    given = cfg.captions or cfg.tags
    if not given:
        return int(cfg.num_items)
    with open(Path(given).expanduser(), "rb") as fh:
        return max(sum(1 for _ in fh) - (1 if str(given).endswith((".csv", ".tsv")) else 0), 0)


def _seconds(generate: Any) -> float:
    """Seconds of audio per clip: ``generation.duration``, else the token count at MusicGen's 50 Hz."""
    return float(generate.generation.duration or generate.generation.max_new_tokens / 50)


def dry_run(cfg: PipelineConfig) -> list[PlannedStage]:
    """The stages ``cfg`` would run, their shard tasks and estimated GPU-hours (nothing is written)."""
    out = Path(cfg.output).expanduser().resolve()
    plan = plan_stages(cfg, out)
    n, shards = _items(cfg), cfg.executor.shards
    planned: list[PlannedStage] = []
    for stage in STAGES:
        if stage not in plan.stages:
            continue
        cfgs = plan.configs[stage.name]
        if stage.name == "vae":
            steps = (["train"] if "train" in cfgs else []) + ["sample"]
            planned.append(PlannedStage("vae", steps, len(steps), 0.0, "minutes; the CPU is fine"))
        elif stage.name == "caption":
            planned.append(_caption(cfgs, n, shards.caption))
        elif stage.name == "tta":
            gen = cfgs["generate"]
            hours = n * _seconds(gen) * rate("audio", gen.model.name) / 3600
            planned.append(PlannedStage("tta", [f"generate x{shards.tta}"], shards.tta, hours,
                                        f"{n} clips x {_seconds(gen):g} s, {gen.model.name}", shards.tta))
        else:
            policy = cfgs["policy"]
            hours = n * float(_rates()["verify"]) / 3600
            note = (f"plus up to {policy.max_attempts - 1} re-render attempt(s) of the clips that miss"
                    if policy.policy == "rerender" else "")
            planned.append(PlannedStage("verify", [f"judge x{shards.verify}"], shards.verify, hours, note, shards.verify))
    return planned


def _caption(cfgs: dict[str, Any], n: int, shards: int) -> PlannedStage:
    """The caption stage: an optional fine-tune (one task), then ``shards`` inference tasks."""
    steps, tune = [], 0.0
    if "finetune" in cfgs:
        ft = cfgs["finetune"]
        pairs = ft.data.limit or 1500
        tune = pairs * max(int(ft.trainer.max_epochs), 1) * rate("finetune", ft.model.name) / 3600
        steps.append("finetune")
    infer = n * rate("captions", cfgs["infer"].model.name) / 3600
    steps.append(f"infer x{shards}")
    note = f"fine-tune {tune:.1f} h + {n} captions {infer:.1f} h" if steps[0] == "finetune" else ""
    return PlannedStage("caption", steps, len(steps) - 1 + shards, tune + infer, note, shards, infer)
