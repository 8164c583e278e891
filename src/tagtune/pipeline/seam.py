"""The stage seam: what one shard task of a stage runs, and how the driver runs a step's tasks.

A stage of the pipeline is a few *steps* (``train``, ``infer``, ``generate``, ``judge-1`` ...). A
step is N shard tasks that each call :func:`run_shard` with a stage command's typed config (as a
plain dict, so any executor can ship it) and its shard ``I/N``, followed by a finalizer that the
driver runs once every shard is done (a merge). :func:`run_shard` is module-level so a SLURM or
Ray worker can import it; it rebuilds the typed config, sets the shard key and calls the same
function the CLI calls, so a task run by any executor writes what ``tagtune <stage> <command>
--shard I/N`` writes. Shard ownership is the id hash of :mod:`tagtune.files.sharding`.

Completion markers (:mod:`tagtune.executors`) live in ``<stage>/.tagtune-shards/<step>/``: a rerun
submits only the shards without a done marker, and each of those resumes per id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.caption import config as caption_config
from tagtune.config.saved import config_hash
from tagtune.config.typed import build, replace, to_dict
from tagtune.executors import (
    ShardsFailed,
    ShardStatus,
    ShardTask,
    Submission,
    make_executor,
    plan_shards,
    raise_for_failures,
    shard_status,
    write_canary,
)
from tagtune.executors.config import ExecutorConfig
from tagtune.report import SILENT, Reporter
from tagtune.tta import config as tta_config
from tagtune.vae import config as vae_config

StageConfig = (vae_config.TrainConfig | vae_config.SampleConfig | caption_config.FinetuneConfig
               | caption_config.InferConfig | tta_config.GenerateConfig | tta_config.VerifyConfig)
COMMANDS = {c.name: c for c in (*vae_config.COMMANDS, *caption_config.COMMANDS, *tta_config.COMMANDS)}
SHARD_KEYS = {"caption infer": "infer.shard", "tta generate": "generate.shard", "tta verify": "verification.shard"}
MARKERS = ".tagtune-shards"

_local = {"reporter": SILENT}  # tasks run in this process report to the driver's reporter
_backends: dict[str, Any] = {}  # audio models loaded in this process, reused across a run's attempts


def run_shard(command: str, config: dict[str, Any], shard: str = "0/1") -> dict[str, Any]:
    """One shard task: ``command``'s function on ``config`` for shard ``I/N``; returns ``{"rows": n}``."""
    cfg = build(COMMANDS[command].schema, config)
    if command in SHARD_KEYS:
        cfg = replace(cfg, {SHARD_KEYS[command]: shard})
    return _RUN[command](cfg, _local["reporter"])


def _train(cfg: vae_config.TrainConfig, reporter: Reporter) -> dict[str, Any]:
    from tagtune.vae.train import train

    return {"rows": train(cfg, reporter).metrics["dataset"].get("train")}


def _sample(cfg: vae_config.SampleConfig, reporter: Reporter) -> dict[str, Any]:
    from tagtune.vae.sample import sample

    return {"rows": sample(cfg, reporter).num_samples}


def _finetune(cfg: caption_config.FinetuneConfig, reporter: Reporter) -> dict[str, Any]:
    from tagtune.caption.train import finetune

    finetune(cfg, reporter)
    return {"rows": None}


def _infer(cfg: caption_config.InferConfig, reporter: Reporter) -> dict[str, Any]:
    from tagtune.caption.infer import infer

    result = infer(cfg, reporter)
    return {"rows": result.written + result.already_done, "owned": result.owned}


def _generate(cfg: tta_config.GenerateConfig, reporter: Reporter) -> dict[str, Any]:
    from tagtune.tta.backends.base import load_backend
    from tagtune.tta.generate import generate

    key = config_hash({"model": to_dict(cfg.model), "tagmap": to_dict(cfg.tagmap), "device": cfg.device}, drop=())
    if key not in _backends:
        _backends.clear()  # one audio model in memory at a time
        _backends[key] = load_backend(cfg.model, cfg.device, cfg.tagmap)
    result = generate(cfg, reporter, backend=_backends[key])
    return {"rows": result.generated + result.skipped, "owned": result.owned}


def _verify(cfg: tta_config.VerifyConfig, reporter: Reporter) -> dict[str, Any]:
    from tagtune.tta.verify import verify

    result = verify(cfg, reporter)
    return {"rows": result.scored + result.skipped}


_RUN = {"vae train": _train, "vae sample": _sample, "caption finetune": _finetune, "caption infer": _infer,
        "tta generate": _generate, "tta verify": _verify}


def merge_clips(folder: Path) -> int:
    """The finalizer of a render step: fold the shards' parts into ``metadata.jsonl``; returns its clips."""
    from tagtune.tta.merge import merge_dir

    return merge_dir(folder).lines


def release_models() -> None:
    """Drop the audio models this process holds (the next stage gets their memory)."""
    _backends.clear()


@dataclass
class Step:
    """One step's plan: its tasks, where their markers are, and what the markers said before submitting."""

    name: str
    tasks: list[ShardTask]
    status: ShardStatus
    submission: Submission | None = None


@dataclass
class Runner:
    """Runs the steps of the stages through one executor (``executor.*``), shard by shard: each step's
    tasks are submitted and waited for, and its finalizer runs here, in the driver."""

    cfg: ExecutorConfig
    run_dir: Path
    reporter: Reporter = SILENT
    executor: Any = None
    submitted: list[Step] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.executor = make_executor(self.cfg)
        write_canary(self.run_dir)
        if not self.executor.remote:
            _local["reporter"] = self.reporter

    @property
    def waits(self) -> bool:
        """Whether this process waits for the tasks (False: ``executor.wait: false`` on an executor whose
        jobs outlive it, so the run is submitted as a driver job instead)."""
        return bool(self.cfg.wait) or not self.executor.detached

    def shards(self, stage: str) -> int:
        """N for a sharded stage (``executor.shards.<stage>``)."""
        return int(getattr(self.cfg.shards, stage))

    def step(self, folder: Path, name: str, command: str, cfg: StageConfig, count: int, stage_hash: str) -> Step:
        """Run ``count`` shard tasks of ``command`` on ``cfg`` and wait for them; shards already done are skipped.

        Raises:
            ConfigError: The step's folder holds markers of another shard count.
            ShardsFailed: A shard failed (one line naming it and its log); finished shards stay done.
        """
        marker_dir = Path(folder) / MARKERS / name
        digest = config_hash({"stage": stage_hash, "step": name, "config": to_dict(cfg)}, drop=("paths",))
        tasks = plan_shards(f"{Path(folder).name} {name}", count, "tagtune.pipeline.seam:run_shard",
                            {"command": command, "config": to_dict(cfg)}, run_dir=self.run_dir, marker_dir=marker_dir,
                            config_hash=digest, input_hash="")
        status = shard_status(marker_dir, count, digest, live=self.executor.live)
        status.require_same_count(Path(folder).name)
        step = Step(name, tasks, status)
        if status.todo:
            step.submission = self.executor.submit([tasks[i] for i in status.todo], self.cfg.resources)
            raise_for_failures(self.executor.wait(step.submission))
        if status.running:  # submitted by an earlier run of this command: wait for their markers
            self._await_running(marker_dir, count, digest, status)
        self.submitted.append(step)
        return step

    def _await_running(self, marker_dir: Path, count: int, digest: str, status: ShardStatus) -> None:
        import time

        poll = float(getattr(self.cfg.slurm, "poll_seconds", 10.0) if self.cfg.slurm else 5.0)
        while True:
            now = shard_status(marker_dir, count, digest, live=self.executor.live)
            if not now.running:
                break
            time.sleep(poll)
        if now.todo:
            bad = ", ".join(f"shard {s.index}/{count}" + (f" (log: {s.log})" if s.log else "")
                            for s in now.shards if s.index in now.todo)
            raise ShardsFailed(f"{len(now.todo)} {Path(marker_dir).parent.parent.name} shard(s) submitted earlier did not "
                               f"finish: {bad}", hint="run the same command again to resubmit them")

    def close(self) -> None:
        _local["reporter"] = SILENT
        self.executor.close()
