"""The Ray executor on one embedded cluster (started once per session by the ray_cluster fixture)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tagtune.errors import DependencyError
from tagtune.executors import Resources, make_executor, shard_status
from tagtune.executors import markers as mk

RES = Resources(gpus=0, cpus=1, memory_gb=None, time_minutes=10)


@pytest.fixture
def ray_executor(ray_cluster, executor_config):
    def make(**updates):
        ex = make_executor(executor_config("ray", **{"ray.address": "local", **updates}))
        assert ex.remote and not ex.detached
        return ex

    return make


def test_ray_runs_every_shard_and_records_it(ray_executor, plan, run_dir):
    ex = ray_executor()
    tasks = plan("tta", 3)
    sub = ex.submit(tasks, RES)
    outcomes = ex.wait(sub)
    assert [(o.index, o.state, o.rows) for o in outcomes] == [(0, "done", 4), (1, "done", 4), (2, "done", 4)]
    assert len(list((run_dir / "tta").glob("id-*.txt"))) == 12
    done = json.loads(mk.done_path(tasks[0].marker_dir, 1, 3).read_text())
    assert done["job_id"] == sub.job_ids[1] and done["log"] == sub.logs[1]
    assert shard_status(tasks[0].marker_dir, 3, "cfg1", live=ex.live).complete
    ex.close()


def test_a_worker_killed_on_its_first_attempt_is_retried(ray_executor, plan, run_dir):
    ex = ray_executor(**{"ray.max_retries": 2})
    outcomes = ex.wait(ex.submit(plan("tta", 2, kill_first=[1]), RES))
    assert [o.state for o in outcomes] == ["done", "done"]
    assert outcomes[1].attempt == 2 and outcomes[0].attempt == 1
    assert len((run_dir / "tta" / "calls-1.txt").read_text().splitlines()) == 2


def test_an_application_error_is_final_and_logged(ray_executor, plan, run_dir):
    ex = ray_executor(**{"ray.max_retries": 3})
    outcomes = ex.wait(ex.submit(plan("caption", 2, fail=[0]), RES))
    bad = outcomes[0]
    assert [o.state for o in outcomes] == ["failed", "done"]
    assert (bad.error_type, bad.retryable, bad.attempt) == ("InputError", False, 1)
    assert bad.error.endswith("input.jsonl:3: bad input in shard 0")
    assert "InputError: " in Path(bad.log).read_text()
    assert len((run_dir / "caption" / "calls-0.txt").read_text().splitlines()) == 1


def test_a_gpu_task_on_a_cluster_without_gpus_fails_in_one_line(ray_executor, plan):
    ex = ray_executor()
    start = time.monotonic()
    with pytest.raises(DependencyError) as err:
        ex.submit(plan("tta", 2), Resources(gpus=1, cpus=1, memory_gb=None, time_minutes=10))
    assert time.monotonic() - start < 10
    message = err.value.message
    assert "\n" not in message
    assert message.startswith("no node of the Ray cluster at local (") and message.endswith(
        ") has 1 GPU(s) (cluster: 2 CPU, 0 GPU)")


def test_the_next_stage_does_not_run_after_a_failure(ray_executor, plan, run_dir):
    ex = ray_executor()
    caption = ex.submit(plan("caption", 1, fail=[0]), RES)
    tta = ex.submit(plan("tta", 2), RES, after=caption)
    assert [o.state for o in ex.wait(tta)] == ["not run", "not run"]
    assert not (run_dir / "tta" / "calls-0.txt").exists()
    ok = ex.submit(plan("verify", 1), RES, after=ex.submit(plan("tta", 2), RES))
    assert [o.state for o in ex.wait(ok)] == ["done"]


def test_a_task_past_its_time_limit_is_cancelled(ray_executor, plan, run_dir):
    ex = ray_executor(**{"ray.task_timeout_minutes": 0.03})
    start = time.monotonic()
    outcomes = ex.wait(ex.submit(plan("tta", 1, sleep=60), RES))
    assert time.monotonic() - start < 20
    assert outcomes[0].state == "failed" and outcomes[0].retryable
    assert outcomes[0].error == "timed out after 0.03 minutes (executor.ray.task_timeout_minutes)"


def test_an_address_where_no_cluster_answers_is_one_line():
    """Probed before Ray is asked: Ray retries a wrong address for minutes."""
    from tagtune.executors.ray import check_reachable

    start = time.monotonic()
    with pytest.raises(DependencyError) as err:
        check_reachable("127.0.0.1:1")
    assert time.monotonic() - start < 15
    assert err.value.message.startswith("no Ray cluster answers at 127.0.0.1:1: ") and "\n" not in err.value.message
    assert "executor.ray.address" in err.value.hint
    check_reachable("auto")  # names Ray resolves itself are left to it
