"""The local executor: every shard task in this process, one after another (tagtune's behaviour
before executors existed). No scheduler and no extra package: it imports neither ray nor submitit."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from tagtune.executors.base import (
    Resources,
    ShardTask,
    Submission,
    TaskOutcome,
    blocked_by,
    first_line,
    is_retryable,
    run_task,
    stage_of,
)
from tagtune.executors.config import ExecutorConfig


class LocalExecutor:
    """Runs tasks in order when they are submitted; the first failure stops the rest.

    Stopping early is deliberate: in one process a failing shard usually fails for a reason its
    siblings share (a bad config, a missing model), and the error reaches the user at once.
    """

    requires: tuple[str, ...] = ()
    extra = None
    remote = False
    detached = False

    def __init__(self, cfg: ExecutorConfig) -> None:
        self.cfg = cfg

    def submit(self, tasks: Sequence[ShardTask], resources: Resources, after: Submission | None = None) -> Submission:
        stage = stage_of(tasks)
        sub = Submission("local", stage, tuple(tasks), {t.index: "local" for t in tasks}, {t.index: None for t in tasks},
                         after=after)
        blocked = blocked_by(after)  # local submissions run when submitted, so ``after`` has its outcomes
        outcomes: list[TaskOutcome] = []
        for task in tasks:
            if blocked:
                outcomes.append(TaskOutcome.not_run(task, blocked))
                continue
            try:
                marker = run_task(task, job_id="local")
            except Exception as exc:
                outcomes.append(TaskOutcome.failed(task, "local", None, first_line(exc), type(exc).__name__,
                                                   is_retryable(exc), exception=exc))
                blocked = f"not run: {task.name} failed"
                continue
            outcomes.append(TaskOutcome.done(task, marker))
        sub.outcomes = outcomes
        return sub

    def wait(self, submission: Submission) -> list[TaskOutcome]:
        return list(submission.outcomes or [])

    def live(self, job_ids: Collection[str]) -> set[str]:
        return set()  # nothing outlives the process that ran it

    def close(self) -> None:
        pass
