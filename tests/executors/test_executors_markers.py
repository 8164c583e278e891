"""Shard tasks, markers, the canary and the executor family: what every executor relies on."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tagtune.errors import ConfigError, DependencyError, InputError, OutputError, TagtuneError
from tagtune.executors import (
    EXECUTORS,
    ShardsFailed,
    TaskOutcome,
    make_executor,
    raise_for_failures,
    run_task,
    shard_status,
)
from tagtune.executors import markers as mk
from tagtune.executors.base import is_retryable
from tagtune.plugins import load, members


def test_plan_gives_each_shard_its_index_and_checks_kwargs(plan, run_dir):
    tasks = plan("tta", 3)
    assert [t.kwargs["shard"] for t in tasks] == ["0/3", "1/3", "2/3"]
    assert {t.tag for t in tasks} == {"00000-of-00003", "00001-of-00003", "00002-of-00003"}
    with pytest.raises(ValueError, match="not JSON-able"):
        plan("tta", 2, fail={1, 2})  # a set is not JSON
    with pytest.raises(ConfigError, match="executor.shards.tta"):
        plan("tta", 0)


def test_run_task_writes_a_done_marker_atomically_and_it_reads_back(plan, run_dir):
    task = plan("tta", 2)[1]
    marker = run_task(task)
    path = mk.done_path(task.marker_dir, 1, 2)
    assert path.name == "00001-of-00002.json"
    on_disk = json.loads(path.read_text())
    assert on_disk == marker
    assert on_disk["rows"] == 6 and on_disk["job_id"] == "local" and on_disk["attempt"] == 1
    assert on_disk["config_hash"] == "cfg1" and on_disk["input_hash"] == "in1" and on_disk["seconds"] >= 0
    leftovers = [p.name for p in Path(task.marker_dir).rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []  # written under a temporary name, then renamed: nothing else stays
    assert not mk.running_path(task.marker_dir, 1, 2).exists()
    status = shard_status(task.marker_dir, 2, "cfg1")
    assert status.done == [1] and status.missing == [0] and status.todo == [0] and not status.complete


def test_a_failure_writes_an_attempt_marker_and_reraises(plan):
    task = plan("caption", 2, fail=[0])[0]
    for attempt in (1, 2):
        with pytest.raises(InputError, match="bad input in shard 0"):
            run_task(task, log="/logs/x.err")
        failed = json.loads(mk.failed_path(task.marker_dir, 0, 2, attempt).read_text())
        assert failed["attempt"] == attempt and failed["error_type"] == "InputError"
        assert failed["retryable"] is False and failed["log"] == "/logs/x.err"
        assert failed["error"].startswith(str(Path(task.kwargs["out_dir"]) / "input.jsonl") + ":3: bad input in shard 0")
    state = shard_status(task.marker_dir, 2, "cfg1").shards[0]
    assert (state.state, state.attempt, state.log, state.error_type) == ("failed", 2, "/logs/x.err", "InputError")


def test_a_killed_attempt_is_counted_by_its_running_marker(plan):
    task = plan("tta", 1)[0]
    mk.write(mk.running_path(task.marker_dir, 0, 1), {"attempt": 1, "job_id": "7_0", "config_hash": "cfg1"})
    assert run_task(task)["attempt"] == 2
    assert mk.next_attempt(task.marker_dir, 0, 1, restarts=4) == 5


def test_done_counts_only_for_the_same_config_and_count(plan):
    for task in plan("tta", 2):
        run_task(task)
    folder = plan("tta", 2)[0].marker_dir
    assert shard_status(folder, 2, "cfg1").complete
    changed = shard_status(folder, 2, "cfg2")
    assert changed.missing == [0, 1] and changed.stale == (0, 1)
    other = shard_status(folder, 4, "cfg1")
    assert other.other_counts == (2,) and other.done == []
    with pytest.raises(ConfigError, match=r"^executor.shards.tta=4, but the tta shards in .* were planned for 2 \(hint") as err:
        other.require_same_count("tta")
    assert err.value.key == "executor.shards.tta" and "executor.shards.tta=2" in err.value.hint
    shard_status(folder, 2, "cfg1").require_same_count("tta")  # same count: nothing to refuse
    assert shard_status(folder, 2, "cfg1", input_hash="other").missing == [0, 1]


def test_a_plan_of_another_count_is_seen_before_any_shard_finished(plan):
    """Only failed markers and a submission record: the other split may have left parts all the same."""
    task = plan("tta", 3, fail=[0])[0]
    with pytest.raises(InputError):
        run_task(task)
    mk.record_submission(task.marker_dir, executor="slurm", stage="tta", count=5, config_hash="cfg1",
                         jobs={0: ("9_0", None)})
    status = shard_status(task.marker_dir, 2, "cfg1")
    assert status.done == [] and sorted(status.other_counts) == [3, 5]
    with pytest.raises(ConfigError) as err:
        status.require_same_count("tta", key="executor.shards.verify", hint="rerun it with --force verify")
    assert err.value.key == "executor.shards.verify" and err.value.hint == "rerun it with --force verify"
    assert shard_status(task.marker_dir, 3, "cfg1").other_counts == (5,)


def test_running_needs_a_live_job(plan):
    task = plan("tta", 2)[0]
    mk.record_submission(task.marker_dir, executor="slurm", stage="tta", count=2, config_hash="cfg1",
                         jobs={0: ("41_0", "/l/41_0.err"), 1: ("41_1", "/l/41_1.err")})
    assert shard_status(task.marker_dir, 2, "cfg1").missing == [0, 1]  # no live: nothing counts as running
    status = shard_status(task.marker_dir, 2, "cfg1", live=lambda ids: {i for i in ids if i == "41_1"})
    assert status.running == [1] and status.shards[1].log == "/l/41_1.err" and status.todo == [0]


def test_a_worker_that_cannot_see_the_run_folder_fails_in_one_line(plan, run_dir):
    task = plan("tta", 1)[0]
    (run_dir / ".tagtune" / "canary.json").unlink()
    with pytest.raises(OutputError) as err:
        run_task(task)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"the output folder {run_dir} is not visible from this worker (")
    assert message.endswith("): -o must be on storage shared by every node")
    assert not (run_dir / "tta").exists()  # the target never ran


def test_retryable_means_the_environment_failed():
    import errno

    from shard_toys import OutOfMemoryError

    assert not is_retryable(InputError("bad row"))
    assert not is_retryable(OutOfMemoryError("CUDA out of memory"))
    assert not is_retryable(ValueError("a bug"))
    assert is_retryable(OSError(errno.ESTALE, "Stale file handle"))
    assert is_retryable(ConnectionResetError())
    assert not is_retryable(OSError(errno.ENOENT, "No such file"))


def test_raise_for_failures_names_shards_and_logs(plan):
    tasks = plan("tta", 3)
    ok = TaskOutcome.done(tasks[0], {"job_id": "1_0", "attempt": 1})
    raise_for_failures([ok])
    bad = [ok, TaskOutcome.failed(tasks[1], "1_1", "/l/1_1.err", "InputError: bad"),
           TaskOutcome.not_run(tasks[2], "not run: tta shard 1/3 failed")]
    with pytest.raises(ShardsFailed) as err:
        raise_for_failures(bad)
    assert str(err.value).startswith("2 of 3 tta shards did not finish: shard 1/3: InputError: bad (log: /l/1_1.err)")
    alike = [TaskOutcome.failed(t, f"1_{t.index}", f"/l/1_{t.index}.err", "InputError: x.jsonl:2: bad") for t in tasks]
    with pytest.raises(ShardsFailed) as err:
        raise_for_failures(alike)
    assert str(err.value).startswith("3 of 3 tta shards did not finish: shards 0/3, 1/3, 2/3: InputError: x.jsonl:2: "
                                     "bad (log of 0/3: /l/1_0.err) (hint: ")
    original = InputError("the same line as always")
    with pytest.raises(InputError, match="the same line as always"):
        raise_for_failures([TaskOutcome.failed(tasks[0], "local", None, "x", exception=original)])


def test_every_executor_yaml_builds_its_typed_section(executor_config):
    for name in ("local", "slurm", "ray"):
        cfg = executor_config(name)
        assert cfg.name == name and cfg.wait is True
        assert cfg.shards.tta >= cfg.shards.caption >= 1
        assert (cfg.slurm is not None) == (name == "slurm") and (cfg.ray is not None) == (name == "ray")
    assert executor_config("slurm").shards.tta >= 4 * executor_config("slurm").resources.gpus
    with pytest.raises(ConfigError, match=r"executor.slurm.array_parallelism: expected an integer >= 1, got 0"):
        executor_config("slurm", **{"slurm.array_parallelism": 0})
    with pytest.raises(ConfigError, match=r"executor.slurm.cluster: expected one of slurm, local, got 'lcoal'"):
        executor_config("slurm", **{"slurm.cluster": "lcoal"})
    with pytest.raises(ConfigError, match=r"executor.ray: missing"):
        make_executor(executor_config("local", name="ray"))


def test_the_family_loads_builtins_and_names_missing_packages(executor_config, monkeypatch):
    listed = {m.name: m for m in members(EXECUTORS)}
    assert set(listed) == {"local", "slurm", "ray"} and listed["local"].available
    for name, package in (("slurm", "submitit"), ("ray", "ray")):  # the extras may not be installed
        assert listed[name].missing == (() if importlib.util.find_spec(package) else (package,))
    assert type(make_executor(executor_config("local"))).__name__ == "LocalExecutor"
    slurm = load(EXECUTORS, "slurm")
    monkeypatch.setattr(slurm, "requires", ("submitit_not_installed",))
    with pytest.raises(DependencyError) as err:
        load(EXECUTORS, "slurm")
    assert str(err.value) == ("the executor 'slurm' needs submitit_not_installed, which is not installed "
                              "(hint: pip install 'tagtune[slurm]', or choose another executor (executor))")
    with pytest.raises(ConfigError, match=r"unknown executor 'slrum' \(did you mean 'slurm'\?\)"):
        load(EXECUTORS, "slrum")
    assert isinstance(err.value, TagtuneError)


def test_importing_the_package_imports_neither_ray_nor_submitit():
    code = ("import sys, tagtune.executors, tagtune.executors.base, tagtune.executors.local, "
            "tagtune.executors.slurm, tagtune.executors.ray, tagtune.executors.config; "
            "print([m for m in ('ray', 'submitit', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
