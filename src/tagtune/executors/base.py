"""Shard tasks, the worker's entry point, and the executor family that decides where tasks run.

A stage (caption, tta, verify) becomes N shard tasks plus a finalizer. Shard i of N calls a plain
module-level function named by string (``tagtune.pipeline.seam:run_shard``) with JSON-able keyword
arguments; the function is idempotent and resumes per id, so running a shard twice only finishes
it. An executor runs such tasks somewhere (this process, a SLURM array, a Ray cluster); the worker
records each attempt's end in a marker (:mod:`tagtune.executors.markers`), and the markers, not
the scheduler, decide what is done. Nothing here imports stage code, ray or submitit.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import socket
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tagtune.errors import ConfigError, OutputError, TagtuneError
from tagtune.executors import markers
from tagtune.executors.config import ExecutorConfig, Resources
from tagtune.executors.markers import ShardStatus, shard_status
from tagtune.executors.outcomes import (
    ShardsFailed,
    TaskOutcome,
    outcome_from_markers,
    raise_for_failures,
    record_failure,
)
from tagtune.executors.task import ShardTask
from tagtune.files.resumable import atomic_write_json
from tagtune.plugins import Family, load

__all__ = ["EXECUTORS", "Executor", "Resources", "ShardStatus", "ShardTask", "ShardsFailed", "Submission",
           "TaskOutcome", "is_retryable", "make_executor", "outcome_from_markers", "plan_shards", "raise_for_failures",
           "record_failure", "run_task", "shard_status", "write_canary"]

CANARY = Path(".tagtune") / "canary.json"


def plan_shards(stage: str, count: int, target: str, kwargs: dict[str, Any], *, run_dir: str | Path,
                marker_dir: str | Path, config_hash: str, input_hash: str, shard_key: str = "shard") -> list[ShardTask]:
    """The ``count`` tasks of a stage: each gets ``kwargs`` plus ``{shard_key: "I/N"}``.

    Planning reads no data: the shard a row belongs to is decided in the worker (by its id's
    hash, :mod:`tagtune.files.sharding`), so a plan costs the same for 10 rows or 10 million.
    """
    if count < 1:
        raise ConfigError(f"executor.shards.{stage}: expected an integer >= 1, got {count}", key=f"executor.shards.{stage}")
    return [ShardTask(stage, i, count, target, {**kwargs, shard_key: f"{i}/{count}"}, str(run_dir), str(marker_dir),
                      config_hash, input_hash) for i in range(count)]


def write_canary(run_dir: str | Path) -> Path:
    """Written by the driver before submitting: a worker that cannot see it is on other storage."""
    return atomic_write_json(Path(run_dir) / CANARY, {"host": socket.gethostname(), "pid": os.getpid(),
                                                      "written_at": time.time()})


def check_canary(run_dir: str | Path, host: str) -> None:
    """Fail in one line when the run folder is not the driver's (a node-local path on a cluster)."""
    if not (Path(run_dir) / CANARY).is_file():
        raise OutputError(f"the output folder {run_dir} is not visible from this worker ({host}): "
                          "-o must be on storage shared by every node")


_TRANSIENT_ERRNOS = {errno.EIO, errno.ESTALE, errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED,
                     errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EAGAIN}


def is_retryable(exc: BaseException) -> bool:
    """Whether the same shard may succeed when run again: the environment failed, not the shard.

    A tagtune error (bad input or config), an out-of-memory error (CUDA or host) or a bug fails
    the same way every time, so it is not retried; a flaky file system or network, or a job
    stopped for its time limit, is.
    """
    names = {c.__name__ for c in type(exc).__mro__}
    if isinstance(exc, (TagtuneError, MemoryError)) or "OutOfMemoryError" in names:
        return False
    if "UncompletedJobError" in names or isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    return isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def job_id_from_env() -> str:
    """The scheduler's id of this worker: a SLURM array task, a SLURM job, a submitit local job, or "local"."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or env.get("SUBMITIT_LOCAL_JOB_ID") or "local"


def _restarts() -> int:
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def _call(task: ShardTask) -> Any:
    module, _, name = task.target.partition(":")
    function: Any = importlib.import_module(module)
    for part in name.split("."):
        function = getattr(function, part)
    return function(**task.kwargs)


def run_task(task: ShardTask, job_id: str | None = None, log: str | None = None) -> dict[str, Any]:
    """What a worker runs: check the run folder is shared, call the target, write its marker.

    Returns the done marker. On failure writes ``failed/<tag>.attempt-<k>.json`` (first line of
    the error, its type, whether a rerun may help, the log) and re-raises. An interrupt (a
    BaseException such as SIGINT or a scheduler's requeue exit) writes nothing: it is no verdict
    on the shard, and the next attempt counts it through the running marker it leaves.
    """
    host = socket.gethostname()
    check_canary(task.run_dir, host)
    job_id = job_id or job_id_from_env()
    attempt = markers.next_attempt(task.marker_dir, task.index, task.count, _restarts())
    common = {"stage": task.stage, "index": task.index, "count": task.count, "config_hash": task.config_hash,
              "input_hash": task.input_hash, "host": host, "job_id": job_id, "attempt": attempt, "log": log}
    running = markers.running_path(task.marker_dir, task.index, task.count)
    markers.write(running, {**common, "pid": os.getpid(), "started_at": time.time()})
    start = time.monotonic()
    try:
        result = _call(task)
    except Exception as exc:
        markers.write(markers.failed_path(task.marker_dir, task.index, task.count, attempt),
                      {**common, "error": first_line(exc), "error_type": type(exc).__name__,
                       "retryable": is_retryable(exc), "seconds": round(time.monotonic() - start, 3),
                       "failed_at": time.time()})
        running.unlink(missing_ok=True)
        raise
    rows = result.get("rows") if isinstance(result, dict) else None
    done = {**common, "rows": rows if isinstance(rows, int) else None, "seconds": round(time.monotonic() - start, 3),
            "finished_at": time.time(), "result": _jsonable(result)}
    markers.write(markers.done_path(task.marker_dir, task.index, task.count), done)
    running.unlink(missing_ok=True)
    return done


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)[:500]
    return value


@dataclass
class Submission:
    """Tasks handed to an executor: each index's job id and log, and what others may depend on.

    ``arrays`` are the scheduler-level ids a later submission waits for (SLURM array job ids);
    ``handle`` holds the executor's live objects (Ray object refs, submitit jobs) and is only
    meaningful in the process that submitted.
    """

    executor: str
    stage: str
    tasks: tuple[ShardTask, ...]
    job_ids: dict[int, str] = field(default_factory=dict)
    logs: dict[int, str | None] = field(default_factory=dict)
    arrays: tuple[str, ...] = ()
    after: Submission | None = None
    handle: Any = None
    outcomes: list[TaskOutcome] | None = None


def stage_of(tasks: Sequence[ShardTask]) -> str:
    """The one stage a submission is for (one plan per submission keeps markers and logs apart)."""
    plans = {(t.stage, t.count, t.config_hash, t.marker_dir) for t in tasks}
    if len(plans) > 1:
        raise ValueError(f"one submission takes the tasks of one stage plan, got {len(plans)}")
    return tasks[0].stage if tasks else ""


def blocked_by(after: Submission | None) -> str:
    """Why tasks that depend on ``after`` must not run ("" when they may): a task of it did not
    finish (the ``afterok`` rule of SLURM, kept by every executor). ``after`` must have been waited."""
    if after is None or after.outcomes is None or all(o.ok for o in after.outcomes):
        return ""
    return f"not run: the {after.stage} tasks it depends on failed"


def skip_all(submission: Submission, why: str) -> Submission:
    """Mark every task of a submission as not run (``why`` says because of what)."""
    submission.outcomes = [TaskOutcome.not_run(t, why) for t in submission.tasks]
    return submission


class Executor(Protocol):
    """Runs shard tasks somewhere and reports how each ended.

    Members are classes built as ``Member(cfg)`` from the typed ``executor`` section
    (:class:`tagtune.executors.config.ExecutorConfig`); building connects to nothing (the first
    ``submit`` does). Besides ``requires``/``extra`` (see :mod:`tagtune.plugins`) a member says:

    * ``remote``: tasks run in other processes, so targets must be importable there and the run
      folder must be on storage they share;
    * ``detached``: submitted tasks keep running when this process exits, so ``executor.wait:
      false`` (submit, exit, rerun later to finish) makes sense.
    """

    remote: bool
    detached: bool

    def submit(self, tasks: Sequence[ShardTask], resources: Resources, after: Submission | None = None) -> Submission:
        """Start (or queue) the tasks of one stage plan; ``after``: run only once all of its tasks succeeded."""
        ...

    def wait(self, submission: Submission) -> list[TaskOutcome]:
        """Block until every task of the submission ended; one outcome per task, in task order."""
        ...

    def live(self, job_ids: Collection[str]) -> set[str]:
        """The job ids, among these, that are still queued or running (for :func:`shard_status`)."""
        ...

    def close(self) -> None:
        """Release what the executor started (an embedded Ray cluster); submitted jobs are kept."""
        ...


EXECUTORS = Family(
    name="executors",
    what="executor",
    protocol=Executor,
    builtins={"local": "tagtune.executors.local:LocalExecutor",
              "slurm": "tagtune.executors.slurm:SlurmExecutor",
              "ray": "tagtune.executors.ray:RayExecutor"},
    key="executor",
)


def make_executor(cfg: ExecutorConfig) -> Executor:
    """The executor ``cfg.name`` names, built from its settings (its packages checked first)."""
    return load(EXECUTORS, cfg.name)(cfg)
