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
    ShardStatus,
    ShardTask,
    Submission,
    TaskOutcome,
    make_executor,
    outcome_from_markers,
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
COUNT_KEYS = {"caption infer": "caption", "tta generate": "tta", "tta verify": "verify"}  # executor.shards.<key>
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
    return {"rows": result.written + result.already_done, "owned": result.owned, "resumed": result.already_done}


def _generate(cfg: tta_config.GenerateConfig, reporter: Reporter) -> dict[str, Any]:
    from tagtune.tta.backends.base import load_backend
    from tagtune.tta.generate import generate

    key = config_hash({"model": to_dict(cfg.model), "tagmap": to_dict(cfg.tagmap), "device": cfg.device}, drop=())
    if key not in _backends:
        _backends.clear()  # one audio model in memory at a time
        _backends[key] = _Lazy(lambda: load_backend(cfg.model, cfg.device, cfg.tagmap))
    result = generate(cfg, reporter, backend=_backends[key])
    return {"rows": result.generated + result.skipped, "owned": result.owned, "resumed": result.skipped}


def _verify(cfg: tta_config.VerifyConfig, reporter: Reporter) -> dict[str, Any]:
    from tagtune.tta.verify import verify

    result = verify(cfg, reporter)
    return {"rows": result.scored + result.skipped}


class _Lazy:
    """An audio backend loaded on first use: ``generate`` reads its input first, so a bad prompts file
    fails before minutes of model loading, in every shard task; kept across the re-render steps."""

    def __init__(self, load: Any) -> None:
        self._load, self._backend = load, None

    def __getattr__(self, name: str) -> Any:
        if self._backend is None:
            self._backend = self._load()
        return getattr(self._backend, name)


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

    def plan(self, folder: Path, name: str, command: str, cfg: StageConfig, count: int, stage_hash: str) -> Step:
        """The ``count`` shard tasks of ``command`` on ``cfg`` and what their markers say; reads no data
        (each task finds its own ids by hash in the worker), so a plan of 1,000 shards takes moments.

        Raises:
            ConfigError: The step's folder holds markers of another shard count (``executor.shards.<stage>``).
        """
        marker_dir = Path(folder) / MARKERS / name
        settings = {k: v for k, v in to_dict(cfg).items() if k != "paths"}  # a timestamped default output each run
        digest = config_hash({"stage": stage_hash, "step": name, "config": settings}, drop=())
        tasks = plan_shards(f"{Path(folder).name} {name}", count, "tagtune.pipeline.seam:run_shard",
                            {"command": command, "config": to_dict(cfg)}, run_dir=self.run_dir, marker_dir=marker_dir,
                            config_hash=digest, input_hash="")
        status = shard_status(marker_dir, count, digest, live=self.executor.live)
        stage, key = Path(folder).name, f"executor.shards.{COUNT_KEYS.get(command, Path(folder).name)}"
        status.require_same_count(stage, key, hint=f"set {key}={(status.other_counts or (count,))[0]} to finish "
                                                   f"that plan, or redo the {stage} stage with --force {stage}")
        return Step(name, tasks, status)

    def step(self, folder: Path, name: str, command: str, cfg: StageConfig, count: int, stage_hash: str) -> Step:
        """Run the shard tasks of :meth:`plan` that are not done and wait for them.

        Shards an earlier command submitted that are still queued or running (its driver was killed,
        or ``executor.wait: false``) are not submitted twice: they are waited for, and those that
        end without finishing are submitted again here.

        Raises:
            ConfigError: The step's folder holds markers of another shard count.
            ShardsFailed: A shard failed (one line naming it and its log); finished shards stay done.
        """
        step = self.plan(folder, name, command, cfg, count, stage_hash)
        if step.status.todo:
            step.submission = self.executor.submit([step.tasks[i] for i in step.status.todo], self.cfg.resources)
            raise_for_failures(self.executor.wait(step.submission))
        if step.status.running:
            raise_for_failures(self._await_running(step))
        self.submitted.append(step)
        return step

    def _await_running(self, step: Step) -> list[TaskOutcome]:
        """Wait for the shards of ``step`` that an earlier command left queued or running. A shard that
        failed says why (the first this command hears of it); one that ended without a word (cancelled,
        killed with its node) is submitted again and waited for."""
        import time

        task = step.tasks[0]
        poll = float(self.cfg.slurm.poll_seconds) if self.cfg.slurm else 5.0
        waiting = set(step.status.running)
        while waiting & set((now := shard_status(task.marker_dir, task.count, task.config_hash,
                                                 live=self.executor.live)).running):
            time.sleep(poll)
        outcomes = [o for i in sorted(waiting - set(now.missing)) if (o := outcome_from_markers(step.tasks[i]))]
        if lost := sorted(waiting & set(now.missing)):
            step.submission = self.executor.submit([step.tasks[i] for i in lost], self.cfg.resources)
            outcomes += self.executor.wait(step.submission)
        return outcomes

    def close(self) -> None:
        _local["reporter"] = SILENT
        self.executor.close()
