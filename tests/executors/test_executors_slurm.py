"""The SLURM executor through submitit, against the stand-in sbatch/srun/sacct/squeue/scancel
(tests/helpers/slurm_standin), and with ``cluster: local`` (submitit's LocalExecutor)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from helpers.slurm_standin import job, submissions
from tagtune.errors import ConfigError, DependencyError
from tagtune.executors import Resources, make_executor, shard_status
from tagtune.executors import markers as mk

pytest.importorskip("submitit")

RES = Resources(gpus=0, cpus=1, memory_gb=2, time_minutes=10)
FAST = {"slurm.poll_seconds": 0.2}


def slurm(executor_config, **updates):
    return make_executor(executor_config("slurm", **{**FAST, **updates}))


def calls(run_dir: Path, stage: str, index: int) -> int:
    path = run_dir / stage / f"calls-{index}.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def sbatch_lines(sub) -> list[str]:
    """The #SBATCH lines of the array script a submission wrote."""
    log = Path(next(iter(sub.logs.values())))
    script = log.parent / f"{sub.arrays[0]}_submission.sh"
    return [line for line in script.read_text().splitlines() if line.startswith("#SBATCH")]


def test_one_throttled_array_per_stage(executor_config, plan, run_dir, standin):
    ex = slurm(executor_config, **{"slurm.array_parallelism": 2, "slurm.partition": "gpu", "slurm.account": "proj",
                                   "slurm.qos": "high", "slurm.setup": ["export TOY_SETUP=1"],
                                   "slurm.additional": {"constraint": "a100", "kill-on-invalid-dep": None}})
    assert ex.remote and ex.detached
    tasks = plan("tta", 4)
    sub = ex.submit(tasks, Resources(gpus=1, cpus=2, memory_gb=4, time_minutes=30))
    assert [s["array"] for s in submissions(standin)] == ["0-3%2"]
    assert sub.job_ids == {i: f"{sub.arrays[0]}_{i}" for i in range(4)}
    lines = sbatch_lines(sub)
    for expected in ("--array=0-3%2", "--requeue", "--gres=gpu:1", "--partition=gpu",
                     "--time=30", "--cpus-per-task=2", "--mem=4GB", "--job-name=tagtune-tta", "--signal=USR2@90",
                     "--account=proj", "--qos=high", "--constraint=a100"):
        assert f"#SBATCH {expected}" in lines
    assert not any("kill-on-invalid-dep" in line for line in lines)  # a null in `additional` drops an option
    assert "export TOY_SETUP=1" in Path(sub.logs[0]).with_name(f"{sub.arrays[0]}_submission.sh").read_text()
    outcomes = ex.wait(sub)
    assert [(o.index, o.state, o.rows) for o in outcomes] == [(i, "done", 3) for i in range(4)]
    assert [o.job_id for o in outcomes] == [sub.job_ids[i] for i in range(4)]
    assert len(list((run_dir / "tta").glob("id-*.txt"))) == 12
    done = [json.loads(mk.done_path(tasks[0].marker_dir, i, 4).read_text()) for i in range(4)]
    assert {d["host"] for d in done} and all(d["log"].endswith(f"{sub.job_ids[d['index']]}_0_log.err") for d in done)
    assert all(calls(run_dir, "tta", i) == 1 for i in range(4))
    assert shard_status(tasks[0].marker_dir, 4, "cfg1").complete


def test_afterok_chains_stages(executor_config, plan, run_dir, standin):
    ex = slurm(executor_config)
    caption = ex.submit(plan("caption", 2, sleep=0.5), RES)
    tta = ex.submit(plan("tta", 2), RES, after=caption)
    assert submissions(standin)[1]["dependency"] == f"afterok:{caption.arrays[0]}"
    assert [o.state for o in ex.wait(tta)] == ["done", "done"]
    folder = run_dir / ".tagtune" / "markers"
    finished = [json.loads(mk.done_path(folder / "caption", i, 2).read_text())["finished_at"] for i in range(2)]
    started = [float((run_dir / "tta" / f"calls-{i}.txt").read_text().split()[1]) for i in range(2)]
    assert min(started) >= max(finished)


def test_a_failed_dependency_cancels_the_next_stage(executor_config, plan, run_dir, standin):
    ex = slurm(executor_config)
    caption = ex.submit(plan("caption", 2, fail=[1]), RES)
    tta = ex.submit(plan("tta", 2), RES, after=caption)
    outcomes = ex.wait(tta)
    assert [o.state for o in outcomes] == ["not run", "not run"]
    assert outcomes[0].error == "not run: the caption tasks it depends on failed"
    assert {t["state"] for t in job(standin, tta.arrays[0])["tasks"].values()} == {"CANCELLED"}
    assert not (run_dir / "tta").exists()


def test_a_large_plan_is_split_into_arrays_below_max_array_size(executor_config, plan, run_dir, standin):
    ex = slurm(executor_config, **{"slurm.max_array_size": 3, "slurm.array_parallelism": 3})
    tasks = plan("verify", 7, ids=7)
    sub = ex.submit(tasks, RES)
    assert [s["array"] for s in submissions(standin)] == ["0-2%3", "0-2%3", "0%1"]
    assert len(sub.arrays) == 3
    assert sub.job_ids[4] == f"{sub.arrays[1]}_1" and sub.job_ids[6] == f"{sub.arrays[2]}_0"
    assert all(o.ok for o in ex.wait(sub))
    assert sorted(p.name for p in (run_dir / "verify").glob("id-*.txt")) == [f"id-{k:04d}.txt" for k in range(7)]
    markers = [json.loads(mk.done_path(tasks[0].marker_dir, i, 7).read_text()) for i in range(7)]
    assert [m["job_id"] for m in markers] == [sub.job_ids[i] for i in range(7)]


def test_a_resubmission_lists_only_the_failed_shard(executor_config, plan, run_dir, standin, monkeypatch):
    monkeypatch.setenv("SLURM_STANDIN_FAIL", "tta:2")
    ex = slurm(executor_config)
    tasks = plan("tta", 4)
    outcomes = ex.wait(ex.submit(tasks, RES))
    assert [o.state for o in outcomes] == ["done", "done", "failed", "done"]
    assert outcomes[2].error.startswith(f"job {outcomes[2].job_id} ended FAILED: stand-in slurm: injected failure")
    assert outcomes[2].log.endswith("_log.err") and not outcomes[2].retryable
    status = shard_status(tasks[0].marker_dir, 4, "cfg1", live=ex.live)
    assert status.todo == [2] and status.failed == [2]  # the task wrote nothing: the driver recorded its failure
    failure = mk.latest_failure(tasks[0].marker_dir, 2, 4)
    assert (failure["recorded_by"], failure["job_id"], failure["log"]) == ("driver", outcomes[2].job_id, outcomes[2].log)
    assert failure["attempt"] == 1 and not failure["retryable"]
    again = ex.submit([tasks[i] for i in status.todo], RES)
    assert submissions(standin)[-1]["array"] == "2%1"
    assert again.job_ids == {2: f"{again.arrays[0]}_2"}
    assert [o.state for o in ex.wait(again)] == ["done"]
    assert shard_status(tasks[0].marker_dir, 4, "cfg1").complete


def test_an_application_error_is_not_retried_and_names_its_log(executor_config, plan, run_dir, standin):
    ex = slurm(executor_config)
    outcomes = ex.wait(ex.submit(plan("caption", 3, fail=[1], oom=[2]), RES))
    assert [o.state for o in outcomes] == ["done", "failed", "failed"]
    bad, oom = outcomes[1], outcomes[2]
    assert (bad.error_type, bad.retryable, bad.attempt) == ("InputError", False, 1)
    assert bad.error.endswith("input.jsonl:3: bad input in shard 1")
    assert "InputError: " in Path(bad.log).read_text()  # the traceback is in the log it names
    assert (oom.error_type, oom.retryable) == ("OutOfMemoryError", False)
    assert calls(run_dir, "caption", 1) == 1 and calls(run_dir, "caption", 2) == 1
    tasks = job(standin, bad.job_id.split("_")[0])["tasks"]
    assert (tasks["1"]["state"], tasks["1"]["restarts"]) == ("FAILED", 0)


def test_node_failure_is_requeued_and_the_shard_finishes(executor_config, plan, run_dir, standin, monkeypatch):
    monkeypatch.setenv("SLURM_STANDIN_NODE_FAIL", "tta:1")
    ex = slurm(executor_config)
    tasks = plan("tta", 2)
    outcomes = ex.wait(ex.submit(tasks, RES))
    assert [o.state for o in outcomes] == ["done", "done"]
    assert outcomes[1].attempt == 2 and outcomes[0].attempt == 1  # SLURM_RESTART_COUNT=1 on the requeued run


def test_preemption_requeues_the_same_call(executor_config, plan, run_dir, standin):
    """submitit's signal (USR2) makes the checkpointable call requeue itself; the shard resumes."""
    ex = slurm(executor_config)
    hold = run_dir / "release"
    sub = ex.submit(plan("tta", 1, hold=str(hold)), RES)
    job_id = sub.job_ids[0]
    deadline = time.time() + 60
    while not (run_dir / "tta" / "calls-0.txt").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # let submitit install its signal handler
    subprocess.run(["scancel", job_id, "--signal", "USR2"], check=True, timeout=30)
    while calls(run_dir, "tta", 0) < 2 and time.time() < deadline:
        time.sleep(0.1)
    hold.touch()
    outcomes = ex.wait(sub)
    assert outcomes[0].ok and outcomes[0].attempt == 2
    assert calls(run_dir, "tta", 0) == 2
    assert job(standin, sub.arrays[0])["tasks"]["0"]["restarts"] == 1


def test_a_node_that_cannot_see_the_run_folder_is_one_line(executor_config, plan, run_dir, standin):
    ex = slurm(executor_config)
    tasks = plan("tta", 1)
    (run_dir / ".tagtune" / "canary.json").unlink()
    outcome = ex.wait(ex.submit(tasks, RES))[0]
    assert outcome.state == "failed"
    assert outcome.error.endswith(f"OutputError: the output folder {run_dir} is not visible from this worker "
                                  f"({socket.gethostname()}): -o must be on storage shared by every node")
    assert outcome.error_type == "OutputError" and not outcome.retryable


def test_queued_jobs_count_as_running_until_they_leave(executor_config, plan, run_dir, standin, monkeypatch):
    monkeypatch.setenv("SLURM_STANDIN_HOLD", "1")
    ex = slurm(executor_config)
    tasks = plan("tta", 3)
    sub = ex.submit(tasks, RES)
    status = shard_status(tasks[0].marker_dir, 3, "cfg1", live=ex.live)
    assert status.running == [0, 1, 2] and status.todo == []
    subprocess.run(["scancel", sub.arrays[0]], check=True, timeout=30)
    assert shard_status(tasks[0].marker_dir, 3, "cfg1", live=ex.live).todo == [0, 1, 2]


def test_cluster_local_runs_submitit_local_processes(executor_config, plan, run_dir):
    ex = slurm(executor_config, **{"slurm.cluster": "local", "slurm.array_parallelism": 2})
    assert ex.remote and not ex.detached
    tasks = plan("tta", 3, fail=[2])
    outcomes = ex.wait(ex.submit(tasks, RES))
    assert [o.state for o in outcomes] == ["done", "done", "failed"]
    assert outcomes[2].error_type == "InputError" and Path(outcomes[2].log).exists()
    done = json.loads(mk.done_path(tasks[0].marker_dir, 0, 3).read_text())
    assert done["job_id"] == outcomes[0].job_id and done["job_id"].isdigit()  # the local job's id
    assert len(list((run_dir / "tta").glob("id-*.txt"))) == 8


def test_a_refused_array_is_one_line_naming_the_settings(executor_config, plan, standin, monkeypatch):
    monkeypatch.setenv("SLURM_STANDIN_PARTITIONS", "gpu,cpu")
    ex = slurm(executor_config, **{"slurm.partition": "gpuu"})
    with pytest.raises(ConfigError) as err:
        ex.submit(plan("tta", 2), RES)
    assert str(err.value).startswith("sbatch refused the tta array: sbatch: error: Batch job submission failed: "
                                     "Invalid partition name specified (hint: check executor.slurm")
    assert err.value.key == "executor.slurm" and submissions(standin) == []


def test_no_sbatch_on_path_is_one_line(executor_config, plan, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DependencyError, match=r"executor.slurm.cluster is slurm, but sbatch is not on PATH"):
        slurm(executor_config).submit(plan("tta", 1), RES)


def test_a_killed_task_is_recorded_as_failed_by_the_driver_with_its_attempt(executor_config, plan, run_dir, standin):
    """A SIGKILLed worker writes nothing: its running marker is replaced by a failed one naming the job and log."""
    ex = slurm(executor_config)
    hold = run_dir / "release"
    tasks = plan("tta generate", 1, hold=str(hold))
    sub = ex.submit(tasks, RES)
    running = mk.running_path(tasks[0].marker_dir, 0, 1)
    deadline = time.time() + 60
    while not running.exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(json.loads(running.read_text())["pid"], signal.SIGKILL)
    (outcome,) = ex.wait(sub)
    assert outcome.state == "failed" and outcome.error.startswith(f"job {sub.job_ids[0]} ended FAILED")
    assert not running.exists()
    failure = mk.latest_failure(tasks[0].marker_dir, 0, 1)
    assert (failure["attempt"], failure["recorded_by"], failure["log"]) == (1, "driver", sub.logs[0])
    hold.touch()
    again = ex.wait(ex.submit(tasks, RES))
    assert again[0].ok and again[0].attempt == 2


def test_stage_names_become_job_and_folder_names_without_spaces(executor_config, plan, run_dir, standin):
    ex = slurm(executor_config)
    sub = ex.submit(plan("verify judge-1", 2), RES)
    assert [s["name"] for s in submissions(standin)] == ["tagtune-verify-judge-1"]
    assert Path(sub.logs[0]).parent == run_dir / ".tagtune" / "slurm" / "verify-judge-1"
    assert all(o.ok for o in ex.wait(sub))
