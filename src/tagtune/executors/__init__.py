"""Where a stage's shard tasks run: this process, SLURM job arrays (submitit) or Ray Core tasks.

The pipeline plans N shard tasks per sharded stage (:func:`plan_shards`), writes the canary
(:func:`write_canary`), submits them to the executor the ``executor`` config names
(:func:`make_executor`), waits, and reads the markers (:func:`shard_status`) to know what is
left. Importing this package imports neither ray nor submitit: only the executor that uses one
imports it, when it first submits.
"""

from tagtune.executors.base import (
    EXECUTORS,
    Executor,
    Resources,
    ShardsFailed,
    ShardTask,
    Submission,
    TaskOutcome,
    make_executor,
    outcome_from_markers,
    plan_shards,
    raise_for_failures,
    run_task,
    write_canary,
)
from tagtune.executors.markers import ShardState, ShardStatus, shard_status

__all__ = [
    "EXECUTORS",
    "Executor",
    "Resources",
    "ShardState",
    "ShardStatus",
    "ShardTask",
    "ShardsFailed",
    "Submission",
    "TaskOutcome",
    "make_executor",
    "outcome_from_markers",
    "plan_shards",
    "raise_for_failures",
    "run_task",
    "shard_status",
    "write_canary",
]
