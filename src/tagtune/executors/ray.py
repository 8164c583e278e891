"""The Ray executor: each shard a Ray Core task, on an existing cluster or an embedded one.

``executor.ray.address``: ``auto`` joins the running cluster (also what ``ray job submit`` gives),
``ray://host:port`` a remote one through Ray Client, ``local`` starts an embedded cluster in this
process (one workstation, tests). Independent shard tasks, not a long-lived actor pool: a worker
or node lost mid-shard costs one retry of that shard (``max_retries``; Ray retries system
failures only), while an exception raised by the shard is final (``retry_exceptions=False``).

Two things Ray does not do for us: it waits forever for a resource no node has (so requests are
checked against the cluster first and refused in one line), and it has no task time limit (so
``task_timeout_minutes`` is enforced here, from the start time in the task's running marker).
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from tagtune.errors import DependencyError
from tagtune.executors import markers
from tagtune.executors.base import (
    Resources,
    ShardTask,
    Submission,
    TaskOutcome,
    blocked_by,
    check_canary,
    first_line,
    outcome_from_markers,
    record_failure,
    run_task,
    skip_all,
    stage_of,
)
from tagtune.executors.config import ExecutorConfig, RaySettings, section

_POLL_SECONDS = 1.0


def ray_shard(task: ShardTask, log: str, *after: Any) -> dict[str, Any]:
    """What a Ray task runs: :func:`run_task`, its Python output and traceback kept in ``log``.

    ``after`` are the results of the tasks this one depends on: passing them makes Ray start it
    only once they all succeeded (their values are not used).
    """
    import socket

    import ray

    check_canary(task.run_dir, socket.gethostname())  # before the log is made: no folder on a node's own disk
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        try:
            return run_task(task, job_id=ray.get_runtime_context().get_task_id(), log=log)
        except Exception:
            traceback.print_exc()
            raise


def _fmt(key: str, amount: float) -> str:
    if key == "memory":
        return f"{amount / 1024**3:g} GB of memory"
    return f"{amount:g} {key}(s)"


def check_fits(resources: Resources, address: str) -> None:
    """Refuse in one line a request no live node can ever meet (Ray would queue it forever)."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    needs = {"GPU": resources.gpus, "CPU": resources.cpus}
    if resources.memory_gb is not None:
        needs["memory"] = resources.memory_gb * 1024**3
    for key, need in needs.items():
        if need and not any(node.get(key, 0) >= need for node in nodes):
            total = ray.cluster_resources()
            raise DependencyError(
                f"no node of the Ray cluster at {address} has {_fmt(key, need)} "
                f"(cluster: {total.get('CPU', 0):g} CPU, {total.get('GPU', 0):g} GPU)",
                hint="lower executor.resources, or add nodes that have them to the cluster")


def check_reachable(address: str) -> None:
    """A quick TCP probe of ``host:port`` / ``ray://host:port``: Ray itself retries a wrong address
    for minutes before it gives up."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", "local", or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        raise DependencyError(f"no Ray cluster answers at {address}: {exc.strerror or exc}",
                              hint="check executor.ray.address (the head node's host:port, or ray://host:10001 "
                                   "for Ray Client)") from exc


class RayExecutor:
    """Shard tasks as Ray Core tasks, see the module docstring."""

    requires = ("ray",)
    extra = "ray"
    remote = True
    detached = False  # a driver's tasks end with the driver

    def __init__(self, cfg: ExecutorConfig) -> None:
        self.cfg = cfg
        self.settings: RaySettings = section(cfg, "ray")
        self._started = False
        self._address = ""
        self._live: set[str] = set()

    def _connect(self) -> str:
        """Join (or start) the cluster once; a cluster that does not answer is one line."""
        import ray

        if not ray.is_initialized():
            address = self.settings.address
            check_reachable(address)
            try:
                if address == "local":
                    ray.init(address="local", include_dashboard=False)
                    self._started = True
                else:
                    ray.init(address=address)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise DependencyError(f"no Ray cluster answers at {address}: {first_line(exc)}",
                                      hint="start one (`ray start --head`), run inside `ray job submit`, "
                                           "or set executor.ray.address=local") from exc
        if not self._address:
            self._address = self.settings.address if self.settings.address != "local" else \
                f"local ({ray.get_runtime_context().gcs_address})"
        return self._address

    def submit(self, tasks: Sequence[ShardTask], resources: Resources, after: Submission | None = None) -> Submission:
        stage = stage_of(tasks)
        sub = Submission("ray", stage, tuple(tasks), after=after)
        if not tasks:
            return skip_all(sub, "")
        if why := blocked_by(after):
            return skip_all(sub, why)
        import ray

        check_fits(resources, self._connect())
        options: dict[str, Any] = {"num_cpus": resources.cpus, "num_gpus": resources.gpus,
                                   "max_retries": self.settings.max_retries, "retry_exceptions": False}
        if resources.memory_gb is not None:
            options["memory"] = int(resources.memory_gb * 1024**3)
        remote = ray.remote(ray_shard)
        deps = list((after.handle or {}).values()) if after is not None else []
        refs = {}
        for task in tasks:
            log = str(Path(task.run_dir) / ".tagtune" / "ray" / task.slug / f"{task.tag}.log")
            refs[task.index] = remote.options(name=f"tagtune-{task.slug}-{task.index}", **options).remote(task, log, *deps)
            sub.job_ids[task.index], sub.logs[task.index] = refs[task.index].task_id().hex(), log
        sub.handle = refs
        self._live |= set(sub.job_ids.values())
        markers.record_submission(tasks[0].marker_dir, executor="ray", stage=stage, count=tasks[0].count,
                                  config_hash=tasks[0].config_hash,
                                  jobs={i: (sub.job_ids[i], sub.logs[i]) for i in sub.job_ids})
        return sub

    def wait(self, submission: Submission) -> list[TaskOutcome]:
        if submission.outcomes is not None:
            return list(submission.outcomes)
        import ray

        if submission.after is not None:
            self.wait(submission.after)
        if why := blocked_by(submission.after):
            for ref in (submission.handle or {}).values():
                ray.cancel(ref, force=True)
            skip_all(submission, why)
        else:
            submission.outcomes = self._collect(submission)
            for task, outcome in zip(submission.tasks, submission.outcomes):
                record_failure(task, outcome)
        self._live -= set(submission.job_ids.values())
        return list(submission.outcomes)

    def _collect(self, sub: Submission) -> list[TaskOutcome]:
        import ray

        tasks = {t.index: t for t in sub.tasks}
        index_of = {ref: i for i, ref in sub.handle.items()}
        pending = list(sub.handle.values())
        outcomes: dict[int, TaskOutcome] = {}
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=_POLL_SECONDS, fetch_local=False)
            for ref in ready:
                i = index_of[ref]
                outcomes[i] = self._outcome(tasks[i], ref, sub.job_ids[i], sub.logs[i])
            for ref in self._timed_out(pending, index_of, tasks):
                i = index_of[ref]
                ray.cancel(ref, force=True)
                minutes = self.settings.task_timeout_minutes
                outcomes[i] = TaskOutcome.failed(tasks[i], sub.job_ids[i], sub.logs[i],
                                                 f"timed out after {minutes:g} minutes (executor.ray.task_timeout_minutes)",
                                                 "Timeout", retryable=True)
                pending.remove(ref)
        return [outcomes[t.index] for t in sub.tasks]

    def _timed_out(self, pending: list[Any], index_of: dict[Any, int], tasks: dict[int, ShardTask]) -> list[Any]:
        """Pending tasks whose current attempt started more than the time limit ago."""
        limit = self.settings.task_timeout_minutes
        if limit is None:
            return []
        out = []
        for ref in pending:
            task = tasks[index_of[ref]]
            running = markers.read(markers.running_path(task.marker_dir, task.index, task.count)) or {}
            started = running.get("started_at")
            if running.get("job_id") == ref.task_id().hex() and isinstance(started, (int, float)) \
                    and time.time() - started > limit * 60:
                out.append(ref)
        return out

    @staticmethod
    def _outcome(task: ShardTask, ref: Any, job_id: str, log: str) -> TaskOutcome:
        """A finished task: its marker when the shard ran; Ray's word when a worker or node died."""
        import ray
        from ray.exceptions import RayTaskError, TaskCancelledError

        try:
            marker = ray.get(ref)
        except RayTaskError as exc:
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
            return outcome_from_markers(task, job_id) or TaskOutcome.failed(
                task, job_id, log, first_line(cause), type(cause).__name__, retryable=False)
        except TaskCancelledError:
            return TaskOutcome.failed(task, job_id, log, "cancelled", "TaskCancelledError")
        except ray.exceptions.RayError as exc:  # worker crashed or node died, retries used up
            return TaskOutcome.failed(task, job_id, log, first_line(exc), type(exc).__name__, retryable=True)
        return TaskOutcome.done(task, marker)

    def live(self, job_ids: Collection[str]) -> set[str]:
        return {j for j in job_ids if j in self._live}  # tasks of an earlier driver ended with it

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
