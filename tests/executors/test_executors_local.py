"""The local executor: tasks run in this process, in order, when submitted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagtune.errors import InputError
from tagtune.executors import Resources, make_executor, raise_for_failures, shard_status

RES = Resources(gpus=0, cpus=1, memory_gb=None, time_minutes=5)


def written(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("id-*.txt"))


def test_local_runs_every_task_and_records_it(executor_config, plan, run_dir):
    ex = make_executor(executor_config("local"))
    assert ex.remote is False and ex.detached is False
    tasks = plan("tta", 3)
    sub = ex.submit(tasks, RES)
    outcomes = ex.wait(sub)
    assert [(o.index, o.state, o.rows, o.job_id) for o in outcomes] == [(0, "done", 4, "local"), (1, "done", 4, "local"),
                                                                       (2, "done", 4, "local")]
    assert written(run_dir / "tta") == [f"id-{k:04d}.txt" for k in range(12)]
    assert shard_status(tasks[0].marker_dir, 3, "cfg1").complete
    assert ex.live(["local"]) == set()


def test_local_stops_at_the_first_failure_and_keeps_its_error(executor_config, plan, run_dir):
    ex = make_executor(executor_config("local"))
    outcomes = ex.wait(ex.submit(plan("caption", 3, fail=[1]), RES))
    assert [o.state for o in outcomes] == ["done", "failed", "not run"]
    assert outcomes[1].error_type == "InputError" and outcomes[1].retryable is False
    assert outcomes[2].error == "not run: caption shard 1/3 failed"
    assert not (run_dir / "caption" / "calls-2.txt").exists()
    with pytest.raises(InputError, match="bad input in shard 1"):
        raise_for_failures(outcomes)  # the CLI prints the same line it always did


def test_local_after_a_failed_submission_runs_nothing(executor_config, plan, run_dir):
    ex = make_executor(executor_config("local"))
    first = ex.submit(plan("caption", 1, fail=[0]), RES)
    second = ex.submit(plan("tta", 2), RES, after=first)
    assert [o.state for o in ex.wait(second)] == ["not run", "not run"]
    assert not (run_dir / "tta").exists()
    third = ex.submit(plan("verify", 1), RES, after=ex.submit(plan("tta", 2), RES))
    assert [o.state for o in ex.wait(third)] == ["done"]


def test_a_rerun_of_a_done_shard_only_finishes_it(executor_config, plan, run_dir):
    ex = make_executor(executor_config("local"))
    tasks = plan("tta", 2)
    ex.wait(ex.submit(tasks, RES))
    (run_dir / "tta" / "id-0003.txt").unlink()
    ex.wait(ex.submit(tasks[1:], RES))
    assert len(written(run_dir / "tta")) == 12
    assert len((run_dir / "tta" / "calls-1.txt").read_text().splitlines()) == 2
