"""The SLURM executor, through submitit: one job array per stage, or submitit's LocalExecutor.

``executor.slurm.cluster: slurm`` writes one ``sbatch`` array per stage plan whose array task id
is the shard index (``--array=0-31%8``; a resubmission lists only what is left: ``--array=2,7,13``),
split into several arrays when indices reach ``max_array_size`` (SLURM's MaxArraySize, often
1001). Jobs ask for ``--requeue`` and are checkpointable, so submitit requeues them on preemption
and timeout (up to ``max_num_timeout``) and SLURM on node failure; the shard resumes per id. An
error raised by the shard (bad input, CUDA out of memory) fails it once, with its log, and is
not retried. A later submission waits with ``--dependency=afterok:<arrays>``.

``cluster: local`` runs the same jobs as local processes (a workstation): ``array_parallelism``
at a time, each on its own GPUs. Its jobs live only as long as this process waits for them.

Markers decide what finished; ``squeue`` says only whether a job is still queued or running,
and ``sacct`` names the end state of a job that left the queue without a marker.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from tagtune.errors import ConfigError, DependencyError
from tagtune.executors import markers
from tagtune.executors.base import (
    Resources,
    ShardTask,
    Submission,
    TaskOutcome,
    blocked_by,
    job_id_from_env,
    outcome_from_markers,
    record_failure,
    run_task,
    skip_all,
    stage_of,
)
from tagtune.executors.config import ExecutorConfig, SlurmSettings, section
from tagtune.executors.task import slug

# End states after which a fresh attempt may succeed (the machine or the clock failed, not the shard).
RETRYABLE_STATES = {"NODE_FAIL", "BOOT_FAIL", "PREEMPTED", "TIMEOUT", "DEADLINE"}
_ERROR_LINE = re.compile(r"^(\w+\.)*\w*(Error|Exception|Interrupt)\w*: ")


class ShardCall:
    """What a submitit job runs: :func:`run_task` with the job's id and log.

    It has a ``checkpoint`` method, which is how submitit knows to requeue a job at its time
    limit or on preemption; the same call is requeued, since the shard resumes per id.
    """

    def __call__(self, task: ShardTask) -> dict[str, Any]:
        import submitit

        return run_task(task, job_id=job_id_from_env(), log=str(submitit.JobEnvironment().paths.stderr))

    def checkpoint(self, task: ShardTask) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, task)


def array_spec(indices: Sequence[int]) -> str:
    """``0-3``, ``2,7,13``, ``0-2,5-6``: SLURM's array syntax for sorted indices."""
    parts: list[str] = []
    start = prev = None
    for i in sorted(indices):
        if prev is not None and i == prev + 1:
            prev = i
            continue
        if start is not None:
            parts.append(f"{start}-{prev}" if prev != start else f"{start}")
        start = prev = i
    if start is not None:
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ",".join(parts)


def split_arrays(indices: Sequence[int], max_array_size: int) -> list[tuple[int, list[int]]]:
    """``(offset, indices)`` per array: array task ids (index - offset) stay below ``max_array_size``."""
    groups: dict[int, list[int]] = {}
    for i in sorted(indices):
        groups.setdefault(i // max_array_size * max_array_size, []).append(i)
    return sorted(groups.items())


def last_error_line(log: str | None) -> str:
    """The exception line at the end of a job's log ("OutputError: ..."), else its last line."""
    if not log:
        return ""
    try:
        with open(log, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 16384))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if _ERROR_LINE.match(ln)]
    return (errors or lines or [""])[-1][:300]


def squeue(job_ids: Collection[str]) -> set[str] | None:
    """The ids among ``job_ids`` that SLURM still has queued or running; None when squeue failed."""
    arrays = sorted({str(j).split("_")[0] for j in job_ids})
    if not arrays:
        return set()
    try:
        out = subprocess.run(["squeue", "--noheader", "--array", "--format=%i %T", f"--jobs={','.join(arrays)}"],
                             capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return set() if "invalid job id" in out.stderr.lower() else None
    listed = {line.split()[0] for line in out.stdout.splitlines() if line.strip()}
    listed |= {j.split("_")[0] for j in listed}
    return {j for j in job_ids if j in listed}


class SlurmExecutor:
    """Shard tasks as SLURM job arrays (or submitit local processes), see the module docstring."""

    requires = ("submitit",)
    extra = "slurm"
    remote = True

    def __init__(self, cfg: ExecutorConfig) -> None:
        self.cfg = cfg
        self.settings: SlurmSettings = section(cfg, "slurm")
        self.detached = self.settings.cluster == "slurm"
        self._local_live: set[str] = set()

    # -- building submitit executors --------------------------------------------------------------------------

    def _folder(self, tasks: Sequence[ShardTask]) -> Path:
        return Path(tasks[0].run_dir) / ".tagtune" / "slurm" / tasks[0].slug

    def _parameters(self, stage: str, resources: Resources, after: Submission | None) -> dict[str, Any]:
        """AutoExecutor parameters: the generic ones, then the cluster's own (prefixed)."""
        s = self.settings
        params: dict[str, Any] = {"name": f"tagtune-{slug(stage)}", "timeout_min": resources.time_minutes,
                                  "cpus_per_task": resources.cpus}
        if resources.memory_gb is not None:
            params["mem_gb"] = resources.memory_gb
        if s.cluster == "local":
            return {**params, "gpus_per_node": resources.gpus, "local_setup": list(s.setup)}
        extra = {"requeue": True, "kill-on-invalid-dep": "yes", **s.additional}
        params.update(slurm_setup=list(s.setup), slurm_array_parallelism=s.array_parallelism,
                      slurm_additional_parameters={k: v for k, v in extra.items() if v is not None})
        for key in ("partition", "account", "qos"):
            if getattr(s, key) is not None:
                params[f"slurm_{key}"] = getattr(s, key)
        if resources.gpus:
            params["slurm_gres"] = s.gres or f"gpu:{resources.gpus}"
        if after is not None and after.arrays:
            params["slurm_dependency"] = "afterok:" + ":".join(after.arrays)
        return params

    def _auto(self, folder: Path, stage: str, resources: Resources, after: Submission | None) -> Any:
        import submitit

        cluster = self.settings.cluster
        auto = submitit.AutoExecutor(folder=folder, cluster=cluster,
                                     **{f"{cluster}_max_num_timeout": self.settings.max_num_timeout})
        auto.update_parameters(**self._parameters(stage, resources, after))
        return auto

    # -- submit ---------------------------------------------------------------------------------------------------

    def submit(self, tasks: Sequence[ShardTask], resources: Resources, after: Submission | None = None) -> Submission:
        stage = stage_of(tasks)
        sub = Submission("slurm", stage, tuple(tasks), after=after)
        if not tasks:
            return skip_all(sub, "")
        if why := blocked_by(after):
            return skip_all(sub, why)
        if self.settings.cluster == "slurm" and shutil.which("sbatch") is None:
            raise DependencyError("executor.slurm.cluster is slurm, but sbatch is not on PATH (not a SLURM login node?)",
                                  hint="run from a node that submits jobs, or set executor.slurm.cluster=local")
        auto = self._auto(self._folder(tasks), stage, resources, after)
        if self.settings.cluster == "local":
            sub.handle = auto  # local processes start when wait() runs them, array_parallelism at a time
            return sub
        try:
            self._submit_arrays(auto._executor, sub)
        finally:  # arrays sbatch accepted are recorded even when a later one is refused
            if sub.job_ids:
                markers.record_submission(tasks[0].marker_dir, executor="slurm", stage=stage, count=tasks[0].count,
                                          config_hash=tasks[0].config_hash,
                                          jobs={i: (sub.job_ids[i], sub.logs[i]) for i in sub.job_ids})
        return sub

    def _submit_arrays(self, executor: Any, sub: Submission) -> None:
        """One sbatch per array (see :func:`split_arrays`); a refusal by sbatch is one line."""
        by_index = {t.index: t for t in sub.tasks}
        for offset, indices in split_arrays(list(by_index), self.settings.max_array_size):
            try:
                array_id, jobs = _submit_array(executor, [by_index[i] for i in indices], offset,
                                               self.settings.array_parallelism)
            except Exception as exc:
                if type(exc).__name__ != "FailedJobError":
                    raise
                said = [ln for ln in str(exc).splitlines() if ln.strip()] or ["no message"]
                raise ConfigError(f"sbatch refused the {sub.stage} array: {said[-1].strip()}", key="executor.slurm",
                                  hint="check executor.slurm (partition, account, qos, gres, additional) and "
                                       "executor.resources against your site's limits") from exc
            sub.arrays += (array_id,)
            for index, job in jobs.items():
                sub.job_ids[index], sub.logs[index] = job.job_id, str(job.paths.stderr)

    # -- wait -----------------------------------------------------------------------------------------------------

    def wait(self, submission: Submission) -> list[TaskOutcome]:
        if submission.outcomes is not None:
            return list(submission.outcomes)
        if submission.after is not None:
            self.wait(submission.after)
        if why := blocked_by(submission.after):
            self._cancel(submission)
            skip_all(submission, why)
        elif self.settings.cluster == "local":
            submission.outcomes = self._run_local(submission)
        else:
            submission.outcomes = self._poll(submission)
        for task, outcome in zip(submission.tasks, submission.outcomes):
            record_failure(task, outcome)
        return list(submission.outcomes)

    def _poll(self, sub: Submission) -> list[TaskOutcome]:
        """Poll markers and squeue until every task has a verdict.

        A task that left the queue without a marker is given one more poll (markers on network
        file systems appear late) before its end is read from sacct and its log.
        """
        pending = {t.index: t for t in sub.tasks}
        outcomes: dict[int, TaskOutcome] = {}
        gone: dict[int, int] = {}
        while pending:
            alive = squeue([sub.job_ids[i] for i in pending])
            ended = []
            for index, task in list(pending.items()):
                job = sub.job_ids[index]
                left = alive is not None and job not in alive
                outcome = outcome_from_markers(task, job)
                if outcome is not None and (outcome.ok or left):
                    outcomes[index] = outcome
                    del pending[index]
                    continue
                gone[index] = gone.get(index, 0) + 1 if left else 0
                if gone[index] >= 2:
                    ended.append(index)
            states = self._sacct([sub.job_ids[i] for i in ended])
            for i in ended:
                outcomes[i] = _ended(pending.pop(i), sub.job_ids[i], sub.logs.get(i), states.get(sub.job_ids[i], ""))
            if pending:
                time.sleep(self.settings.poll_seconds)
        return [outcomes[t.index] for t in sub.tasks]

    @staticmethod
    def _sacct(job_ids: list[str]) -> dict[str, str]:
        """The end state of each job (``UNKNOWN`` where accounting has none), one sacct call."""
        if not job_ids:
            return {}
        from submitit.slurm.slurm import SlurmJob

        watcher = SlurmJob.watcher
        for job in job_ids:
            watcher.register_job(job)
        watcher.update()
        return {job: watcher.get_state(job, mode="cache").split()[0] for job in job_ids}

    def _cancel(self, sub: Submission) -> None:
        """Cancel jobs whose dependency can never be met (else they would wait in the queue forever)."""
        if sub.arrays:
            subprocess.run(["scancel", *sub.arrays], capture_output=True, timeout=120, stdin=subprocess.DEVNULL)

    def _run_local(self, sub: Submission) -> list[TaskOutcome]:
        """submitit local jobs, ``array_parallelism`` at a time; slot k gets GPUs [k*g, (k+1)*g)."""
        auto, gpus = sub.handle, self.cfg.resources.gpus
        queue = list(sub.tasks)
        running: dict[int, tuple[ShardTask, Any]] = {}
        outcomes: dict[int, TaskOutcome] = {}
        while queue or running:
            for slot in range(self.settings.array_parallelism):
                if slot not in running and queue:
                    task = queue.pop(0)
                    auto._executor.update_parameters(visible_gpus=list(range(slot * gpus, (slot + 1) * gpus)))
                    job = auto.submit(ShardCall(), task)
                    sub.job_ids[task.index], sub.logs[task.index] = job.job_id, str(job.paths.stderr)
                    self._local_live.add(job.job_id)
                    running[slot] = (task, job)
            for slot, (task, job) in list(running.items()):
                if job.done():
                    self._local_live.discard(job.job_id)
                    outcomes[task.index] = outcome_from_markers(task, job.job_id) or _ended(
                        task, job.job_id, str(job.paths.stderr), job.state)
                    del running[slot]
            time.sleep(min(self.settings.poll_seconds, 0.5))
        return [outcomes[t.index] for t in sub.tasks]

    # -- the rest of the protocol ---------------------------------------------------------------------------------

    def live(self, job_ids: Collection[str]) -> set[str]:
        if self.settings.cluster == "local":
            return {j for j in job_ids if j in self._local_live}
        alive = squeue(job_ids)
        return set(job_ids) if alive is None else alive  # squeue down: assume alive rather than resubmit twice

    def close(self) -> None:
        pass


def _ended(task: ShardTask, job_id: str, log: str | None, state: str) -> TaskOutcome:
    """The outcome of a job that ended without writing a marker (killed, cancelled, or failed before
    tagtune ran: a missing module, an output folder the node cannot see)."""
    why = last_error_line(log)
    known = "" if state not in ("UNKNOWN", "") else " (sacct knows no state: is accounting enabled?)"
    raised = _ERROR_LINE.match(why)
    kind = raised.group(0).rstrip(": ").rsplit(".", 1)[-1] if raised else state or "UNKNOWN"
    return TaskOutcome.failed(task, job_id, log, f"job {job_id} ended {state or 'UNKNOWN'}{known}" + (f": {why}" if why else ""),
                              kind, retryable=state in RETRYABLE_STATES)


def _submit_array(executor: Any, tasks: list[ShardTask], offset: int, parallelism: int) -> tuple[str, dict[int, Any]]:
    """One ``sbatch`` array whose task ids are ``index - offset`` (submitit numbers arrays 0..n-1;
    a resubmission must keep the shard's index, so the array is written here with submitit's parts)."""
    import uuid

    from submitit.core import utils
    from submitit.slurm.slurm import SlurmExecutor as SubmititSlurm
    from submitit.slurm.slurm import SlurmJob

    folder = utils.JobPaths.get_first_id_independent_folder(executor.folder)
    folder.mkdir(parents=True, exist_ok=True)
    pickles = {}
    for task in tasks:
        delayed = utils.DelayedSubmission(ShardCall(), task)
        delayed.set_timeout(executor.parameters.get("time", 5), executor.max_num_timeout)
        pickles[task.index] = folder / f"{uuid.uuid4().hex}.pkl"
        delayed.dump(pickles[task.index])
    array_ex = SubmititSlurm(executor.folder, executor.max_num_timeout, python=executor.python)
    array_ex.update_parameters(**executor.parameters)
    array_ex.parameters["map_count"] = len(tasks)
    spec = f"{array_spec([t.index - offset for t in tasks])}%{min(parallelism, len(tasks))}"
    array_ex.parameters["additional_parameters"] = {**(executor.parameters.get("additional_parameters") or {}),
                                                    "array": spec}
    first = array_ex._submit_command(array_ex._submitit_command_str)
    jobs = {t.index: SlurmJob(folder=executor.folder, job_id=f"{first.job_id}_{t.index - offset}") for t in tasks}
    for index, job in jobs.items():
        job.paths.move_temporary_file(pickles[index], "submitted_pickle")
    return first.job_id, jobs
