"""How submitted shard tasks ended: outcomes, the markers they are read from, and the one-line
failure a driver raises.

Split from :mod:`tagtune.executors.base` (tasks, the worker's entry point, the executor family);
both are re-exported by :mod:`tagtune.executors`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tagtune.errors import TagtuneError
from tagtune.executors import markers

if TYPE_CHECKING:
    from tagtune.executors.task import ShardTask

__all__ = ["ShardsFailed", "TaskOutcome", "outcome_from_markers", "raise_for_failures", "record_failure"]


@dataclass(frozen=True)
class TaskOutcome:
    """How one submitted task ended (``wait``'s answer).

    ``state`` is ``done``, ``failed`` (``error``/``log`` say why; ``retryable`` whether a rerun
    may help) or ``not run`` (a submission it depended on failed, or an earlier local task did).
    ``exception`` is the original error when the task ran in this process.
    """

    stage: str
    index: int
    count: int
    state: Literal["done", "failed", "not run"]
    job_id: str | None = None
    log: str | None = None
    error: str = ""
    error_type: str = ""
    retryable: bool = False
    attempt: int | None = None
    rows: int | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.state == "done"

    @property
    def name(self) -> str:
        return f"{self.stage} shard {self.index}/{self.count}"

    @classmethod
    def done(cls, task: ShardTask, marker: dict[str, Any]) -> TaskOutcome:
        return cls(task.stage, task.index, task.count, "done", marker.get("job_id"), marker.get("log"),
                   attempt=marker.get("attempt"), rows=marker.get("rows"))

    @classmethod
    def failed(cls, task: ShardTask, job_id: str | None, log: str | None, error: str, error_type: str = "",
               retryable: bool = False, attempt: int | None = None, exception: BaseException | None = None) -> TaskOutcome:
        return cls(task.stage, task.index, task.count, "failed", job_id, log, error, error_type, retryable, attempt,
                   exception=exception)

    @classmethod
    def not_run(cls, task: ShardTask, why: str) -> TaskOutcome:
        return cls(task.stage, task.index, task.count, "not run", error=why)


def outcome_from_markers(task: ShardTask, job_id: str | None = None) -> TaskOutcome | None:
    """The task's end as its markers tell it: a done marker of this plan, or a failed marker
    written by ``job_id`` (an older job's failure says nothing about this one). None: no verdict yet."""
    done = markers.read(markers.done_path(task.marker_dir, task.index, task.count))
    if done is not None and done.get("config_hash") == task.config_hash and done.get("input_hash") == task.input_hash:
        return TaskOutcome.done(task, done)
    failure = markers.latest_failure(task.marker_dir, task.index, task.count)
    if failure is not None and failure.get("config_hash") == task.config_hash and (job_id is None or failure.get("job_id") == job_id):
        return TaskOutcome.failed(task, failure.get("job_id"), failure.get("log"), failure.get("error") or "",
                                  failure.get("error_type") or "", bool(failure.get("retryable")), failure.get("attempt"))
    return None


def record_failure(task: ShardTask, outcome: TaskOutcome) -> None:
    """Write the failed marker of a task that ended without writing one itself (killed, cancelled,
    or failed before tagtune ran in it), so ``pipeline status`` and the next run see the failure
    and its log instead of a shard that merely looks missing. The driver writes it, once per job."""
    if outcome.state != "failed":
        return
    latest = markers.latest_failure(task.marker_dir, task.index, task.count)
    if latest is not None and latest.get("job_id") == outcome.job_id:
        return  # the worker recorded its own failure
    running_path = markers.running_path(task.marker_dir, task.index, task.count)
    running = markers.read(running_path)
    mine = running is not None and running.get("job_id") == outcome.job_id and isinstance(running.get("attempt"), int)
    attempt = running["attempt"] if mine else markers.next_attempt(task.marker_dir, task.index, task.count)
    markers.write(markers.failed_path(task.marker_dir, task.index, task.count, attempt),
                  {"stage": task.stage, "index": task.index, "count": task.count, "config_hash": task.config_hash,
                   "input_hash": task.input_hash, "host": socket.gethostname(), "job_id": outcome.job_id,
                   "attempt": attempt, "log": outcome.log, "error": outcome.error, "error_type": outcome.error_type,
                   "retryable": outcome.retryable, "failed_at": time.time(), "recorded_by": "driver"})
    if mine:
        running_path.unlink(missing_ok=True)


class ShardsFailed(TagtuneError):
    """Shard tasks of a stage failed (the message names them, their errors and logs)."""


def raise_for_failures(outcomes: Sequence[TaskOutcome]) -> None:
    """Raise when any task did not finish: the original error for one in-process failure (so the
    CLI prints what it always printed), else one line naming the failed shards, their error and a
    log. Shards that failed alike (a bad input file fails every shard) are named once together."""
    bad = [o for o in outcomes if not o.ok]
    if not bad:
        return
    failed = [o for o in bad if o.state == "failed"]
    if len(failed) == 1 and failed[0].exception is not None:
        raise failed[0].exception
    alike: dict[str, list[TaskOutcome]] = {}
    for o in failed or bad:
        alike.setdefault(o.error or o.state, []).append(o)
    shown = "; ".join(_group(error, members) for error, members in list(alike.items())[:3])
    more = f"; and {len(alike) - 3} other error(s)" if len(alike) > 3 else ""
    retry = " (retryable: run again)" if failed and all(o.retryable for o in failed) else ""
    raise ShardsFailed(f"{len(bad)} of {len(outcomes)} {bad[0].stage} shards did not finish{retry}: {shown}{more}",
                       hint="fix the cause and run the same command again: finished shards are kept, "
                            "and a rerun shard continues where it stopped")


def _group(error: str, members: list[TaskOutcome]) -> str:
    """``shard 2/4: <error> (log: ...)`` or ``shards 0/4, 1/4 +2: <error> (log of 0/4: ...)``."""
    names = ", ".join(f"{o.index}/{o.count}" for o in members[:4]) + (f" +{len(members) - 4}" if len(members) > 4 else "")
    logged = next((o for o in members if o.log), None)
    where = "" if logged is None else f" (log: {logged.log})" if len(members) == 1 else \
        f" (log of {logged.index}/{logged.count}: {logged.log})"
    return f"shard{'s' if len(members) > 1 else ''} {names}: {error}{where}"
