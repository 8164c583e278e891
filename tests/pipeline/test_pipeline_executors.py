"""`tagtune pipeline run` shard by shard through the executors (issue 20), on the tiny models.

SLURM runs through submitit's real SLURM executor against the stand-in sbatch/srun/sacct/squeue of
tests/helpers/slurm_standin (detached local processes, failures injected with SLURM_STANDIN_FAIL);
Ray through an embedded cluster (``executor.ray.address=local``). Each run is compared with the
local executor's run of the same command and seed: the same ids per split, byte-identical WAVs and
the same rows. Pipeline runs cost seconds to a minute each on two cores, so they are made once per
module (fixtures) and each test asserts one part of the acceptance on them.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers import count_lines, error_line, run_cli, run_tagtune, signal_when, tagtune_argv
from helpers.executor_runs import (
    MARKERS,
    arrays,
    assert_same_dataset,
    captions,
    dataset,
    kill_worker_when,
    recorded,
    shard_files,
    status_json,
    step_of,
)
from helpers.slurm_standin import job as standin_job
from helpers.slurm_standin import standin_env, stop_all, submissions

pytestmark = pytest.mark.slow

QUICK = ("pipeline", "run", "--preset", "quick_test")
SHARDS = ("executor.shards.caption=2", "executor.shards.tta=4", "executor.shards.verify=2")
SLURM = ("executor=slurm", *SHARDS, "executor.slurm.poll_seconds=0.5")
RAY = ("executor=ray", "executor.ray.address=local", "executor.resources.gpus=0", "executor.resources.cpus=1")
# Captions one at a time and enough of them that a shard is still writing when its worker is killed.
SLOW_CAPTIONS = ("--stages", "vae,caption", "-n", "40", "caption:generation.batch_size=1")

# Runs the CLI, then names the cluster packages the process imported (the local executor must import neither).
PROBE = """import json, sys
from tagtune.cli import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 0
print("IMPORTED " + json.dumps(sorted(m for m in ("ray", "submitit") if m in sys.modules)))
sys.exit(code)
"""


# -- runs shared by the tests -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("executors")


@pytest.fixture(scope="module")
def local_run(base: Path) -> SimpleNamespace:
    """The reference: executor=local (the default), in a subprocess that reports what it imported."""
    out = base / "local"
    done = subprocess.run([sys.executable, "-c", PROBE, *QUICK, "-o", str(out)], cwd=base, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    imported = json.loads(next(ln for ln in done.stdout.splitlines() if ln.startswith("IMPORTED "))[9:])
    return SimpleNamespace(out=out, imported=imported)


@pytest.fixture(scope="module")
def slow_captions_ref(base: Path, local_run: SimpleNamespace) -> Path:
    """Local captions of the kill tests (the reference run's VAE model is reused: no training)."""
    out = base / "captions-local"
    done = run_tagtune(*QUICK, *SLOW_CAPTIONS, "--vae-model", local_run.out / "vae" / "model", "-o", out, cwd=base,
                       timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def nowait(base: Path) -> Iterator[SimpleNamespace]:
    """``executor.wait=false`` with SLURM: the command submits one driver job (to a CPU partition) and
    returns; the stand-in runs it (in the background, while the other tests run), and the driver
    submits the shard arrays (to the GPU partition), split at max_array_size=2."""
    pytest.importorskip("submitit")
    state, out = base / "nowait-slurm", base / "nowait"
    env = {**standin_env(state), "SLURM_STANDIN_PARTITIONS": "gpu,cpu"}  # sbatch refuses any other (or none)
    args = (*QUICK, "-o", out, *SLURM, "executor.wait=false", "executor.slurm.max_array_size=2",
            "executor.slurm.partition=gpu", "executor.slurm.driver_partition=cpu")
    start = time.monotonic()
    first = run_tagtune(*args, env=env, cwd=base, timeout=120)
    seconds = time.monotonic() - start
    again = run_tagtune(*args, env=env, cwd=base, timeout=120)
    try:
        yield SimpleNamespace(out=out, state=state, env=env, first=first, again=again, seconds=seconds)
    finally:
        stop_all(state)


@pytest.fixture(scope="module")
def slurm_flow(base: Path) -> Iterator[SimpleNamespace]:
    """One SLURM run told four times, as a user would:

    1. tta shard 2 fails on its first attempt (the stand-in's SLURM_STANDIN_FAIL): exit 2;
    2. the same command with executor.shards.tta=2: refused;
    3. the same command: only tta shard 2 is resubmitted; the driver is SIGKILLed once the verify
       step's array is submitted (its shard 1 then fails, with no driver watching);
    4. the same command: only verify shard 1 is resubmitted, and the dataset is built.
    """
    pytest.importorskip("submitit")
    state, out = base / "flow-slurm", base / "flow"
    env = {**standin_env(state), "SLURM_STANDIN_FAIL": "tta-generate:2,verify-judge-1:1"}
    args = (*QUICK, "-o", out, *SLURM, "executor.wait=true")
    flow = SimpleNamespace(out=out, state=state, env=env)
    try:
        flow.first = run_tagtune(*args, env=env, cwd=base, timeout=300)
        flow.verify_started = (out / "verify").exists()
        flow.status_text = run_cli("pipeline", "status", "-o", out, env=env)
        flow.status = status_json(out, env)
        flow.before_recount = len(submissions(state))
        flow.recount = run_cli(*args, "executor.shards.tta=2", env=env)
        flow.after_recount = len(submissions(state))
        judge = out / "verify" / MARKERS / "judge-1" / "submitted"
        flow.killed = signal_when(tagtune_argv(*args), lambda: recorded(judge), env=env,
                                  cwd=base, timeout=300, log=base / "flow-killed.log")
        flow.status_after_kill = status_json(out, env)
        flow.last = run_tagtune(*args, env=env, cwd=base, timeout=300)
        yield flow
    finally:
        stop_all(state)


# -- the local executor ---------------------------------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_the_local_executor_imports_neither_ray_nor_submitit(local_run):
    assert local_run.imported == []
    generate = local_run.out / "tta" / MARKERS / "generate" / "done" / "00000-of-00001.json"
    assert json.loads(generate.read_text())["job_id"] == "local"  # the seam ran it, as one local task
    assert len(dataset(local_run.out)) == 6


# -- SLURM (the stand-in) -------------------------------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_wait_false_submits_one_driver_job_and_returns(nowait):
    assert nowait.first.returncode == 0, nowait.first.stderr
    said = " ".join(nowait.first.stdout.split())
    found = re.search(r"submitted the run as driver job (\d+_0) \(log: (\S+)\)", said)
    assert found, said
    assert f"tagtune pipeline status -o {nowait.out}" in said
    assert nowait.seconds < 60  # it returned without waiting for the stages
    assert arrays(nowait.state, "pipeline-driver") == ["0%1"]
    script = Path(found[2]).with_name(f"{found[1].split('_')[0]}_submission.sh").read_text()
    assert "#SBATCH --partition=cpu" in script and "--gres" not in script and "#SBATCH --cpus-per-task=1" in script
    # the same command while the driver is queued or running names it instead of starting another
    assert nowait.again.returncode == 0, nowait.again.stderr
    assert f"already submitted: driver job {found[1]} is queued or running" in " ".join(nowait.again.stdout.split())
    assert len(arrays(nowait.state, "pipeline-driver")) == 1


@pytest.mark.timeout(420)
def test_a_failed_shard_fails_the_command_in_one_line_naming_stage_shard_and_log(slurm_flow):
    first = slurm_flow.first
    assert first.returncode == 2
    line = error_line(first.stderr, "1 of 4 tta generate shards did not finish", "shard 2/4", only=False)
    log = Path(re.search(r"\(log: (\S+?)\)", line)[1])
    assert log.parent == slurm_flow.out / ".tagtune" / "slurm" / "tta-generate" and log.name.endswith("_2_0_log.err")
    assert "injected failure of tagtune-tta-generate task 2" in log.read_text()
    assert not slurm_flow.verify_started


@pytest.mark.timeout(60)
def test_status_shows_the_failed_shard_and_its_log(slurm_flow):
    code, text, err = slurm_flow.status_text
    assert code == 0, err
    assert re.search(r"failed: tta generate shard 2/4: job \d+_2 ended FAILED.*\(log: \S+_2_0_log\.err\)",
                     " ".join(text.split()))
    status = slurm_flow.status
    assert [status[s]["state"] for s in ("vae", "caption", "tta", "verify")] == ["complete", "complete", "running",
                                                                              "not started"]
    generate = step_of(status, "tta", "generate")
    assert (generate["shards"], generate["done"], generate["failed"], generate["missing"]) == (4, 3, 1, 0)
    (failure,) = generate["failures"]
    assert failure["shard"] == "2/4" and failure["log"].endswith("_2_0_log.err") and failure["attempt"] == 1
    assert step_of(status, "caption", "infer")["done"] == 2


@pytest.mark.timeout(60)
def test_a_changed_shard_count_is_refused_in_one_line(slurm_flow):
    code, _, err = slurm_flow.recount
    assert code == 2
    error_line(err, "executor.shards.tta=2", "planned for 4", "executor.shards.tta=4", "--force tta", only=False)
    assert slurm_flow.after_recount == slurm_flow.before_recount  # nothing was submitted


@pytest.mark.timeout(420)
def test_the_same_command_resubmits_only_unfinished_shards_even_after_the_driver_was_killed(slurm_flow):
    state = slurm_flow.state
    assert slurm_flow.killed == -signal.SIGKILL, "the driver finished before it could be killed"
    assert slurm_flow.last.returncode == 0, slurm_flow.last.stderr[-3000:]
    assert arrays(state, "vae-train") == ["0%1"] and arrays(state, "vae-sample") == ["0%1"]
    assert arrays(state, "caption-infer") == ["0-1%2"]
    assert arrays(state, "tta-generate") == ["0-3%4", "2%1"]  # the rerun listed only the failed shard
    assert arrays(state, "verify-judge-1") == ["0-1%2", "1%1"]  # shard 0 ran on; shard 1 failed unwatched
    generate = slurm_flow.out / "tta" / MARKERS / "generate" / "done"
    assert json.loads((generate / "00002-of-00004.json").read_text())["attempt"] == 2
    killed = step_of(slurm_flow.status_after_kill, "verify", "judge-1")
    assert killed["done"] + killed["running"] + killed["missing"] == 2
    final = status_json(slurm_flow.out, slurm_flow.env)
    assert all(final[s]["state"] == "complete" for s in ("vae", "caption", "tta", "verify"))


@pytest.mark.timeout(420)
def test_a_slurm_run_gives_the_local_dataset(slurm_flow, local_run):
    assert slurm_flow.last.returncode == 0, slurm_flow.last.stderr[-3000:]
    assert_same_dataset(slurm_flow.out, local_run.out)


@pytest.mark.timeout(300)
def test_a_task_killed_mid_shard_resumes_per_id_on_resubmit(base, slow_captions_ref, local_run):
    pytest.importorskip("submitit")
    state, out = base / "kill-slurm", base / "kill-slurm-run"
    env = standin_env(state)
    args = (*QUICK, *SLOW_CAPTIONS, "--vae-model", local_run.out / "vae" / "model", "-o", out,
            "executor=slurm", "executor.shards.caption=2", "executor.slurm.poll_seconds=0.5")
    part = out / "caption" / "captions.shard-00000-of-00002.jsonl"
    shard = shard_files(out / "caption", "infer", 0, 2)
    try:
        code, killed = kill_worker_when(tagtune_argv(*args), env, shard.running,
                                        lambda: not shard.done.exists() and count_lines(part) >= 2, base / "kill.log")
        written = count_lines(part)
        assert killed and 2 <= written < 20, f"killed after {written} of its 20 lines"
        assert code == 2
        error_line((base / "kill.log").read_text(), "1 of 2 caption infer shards did not finish: shard 0/2: job ",
                   " ended FAILED", "(log: ", only=False)
        assert step_of(status_json(out, env), "caption", "infer")["failures"][0]["shard"] == "0/2"
        again = run_tagtune(*args, env=env, cwd=base, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
    finally:
        stop_all(state)
    assert arrays(state, "caption-infer") == ["0-1%2", "0%1"]
    done = json.loads(shard.done.read_text())
    assert done["attempt"] == 2 and done["result"]["resumed"] >= written  # ids written before the kill were kept
    assert captions(out) == captions(slow_captions_ref)


@pytest.mark.timeout(60)
def test_a_worker_that_cannot_see_the_output_folder_fails_in_one_line(tmp_path):
    """The canary: the driver writes it before submitting; a task whose -o it cannot find (a node-local
    path, another mount) stops before any work, in one line naming -o."""
    from tagtune.config.typed import convert
    from tagtune.executors import plan_shards, run_task
    from tagtune.executors.base import CANARY
    from tagtune.executors.config import ExecutorConfig
    from tagtune.pipeline.seam import Runner

    run = tmp_path / "run"
    (task,) = plan_shards("tta generate", 1, "tagtune.pipeline.seam:run_shard", {"command": "tta generate", "config": {}},
                          run_dir=run, marker_dir=run / "tta" / MARKERS / "generate", config_hash="c", input_hash="")
    with pytest.raises(Exception) as err:
        run_task(task)
    assert type(err.value).__name__ == "OutputError"
    assert str(err.value) == (f"the output folder {run} is not visible from this worker ({socket.gethostname()}): "
                              "-o must be on storage shared by every node")
    assert not (run / "tta").exists()  # nothing written, not even a marker
    import yaml

    local = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "executor" / "local.yaml").read_text())
    Runner(convert(ExecutorConfig, local, "executor"), run)
    assert (run / CANARY).is_file()
    with pytest.raises(Exception) as past:  # now the canary lets the task through to its (empty) config
        run_task(task)
    assert type(past.value).__name__ != "OutputError"


@pytest.mark.timeout(180)
def test_an_application_error_is_not_retried(base):
    """A bad captions file fails every tta shard with the same InputError: once, no requeue."""
    pytest.importorskip("submitit")
    state, out = base / "apperr-slurm", base / "apperr"
    bad = base / "bad-captions.jsonl"
    bad.write_text('{"id": "a", "tags": ["rock"], "caption": "a rock piece"}\n{"id": "b", "caption": \n')
    try:
        done = run_tagtune(*QUICK, "--captions", bad, "-o", out, "executor=slurm", "executor.shards.tta=2",
                           "executor.slurm.poll_seconds=0.5", env=standin_env(state), cwd=base, timeout=150)
    finally:
        stop_all(state)
    assert done.returncode == 2
    error_line(done.stderr, "2 of 2 tta generate shards did not finish: shards 0/2, 1/2: ",
               f"{bad}:2: invalid JSON", "(log of 0/2: ", only=False)
    assert arrays(state, "tta-generate") == ["0-1%2"]
    (record,) = [s for s in submissions(state) if s["name"] == "tagtune-tta-generate"]
    tasks = standin_job(state, record["job_id"])["tasks"]
    assert {(t["state"], t["restarts"]) for t in tasks.values()} == {("FAILED", 0)}
    failed = sorted(p.name for p in (out / "tta" / MARKERS / "generate" / "failed").iterdir())
    assert failed == ["00000-of-00002.attempt-1.json", "00001-of-00002.attempt-1.json"]
    marker = json.loads((out / "tta" / MARKERS / "generate" / "failed" / failed[0]).read_text())
    assert (marker["error_type"], marker["retryable"]) == ("InputError", False)


@pytest.mark.timeout(600)
def test_wait_false_is_followed_by_status_and_equals_the_local_run(nowait, local_run):
    deadline = time.monotonic() + 420
    while True:
        status = status_json(nowait.out, nowait.env)  # parses at every moment of the run
        driver = step_of(status, "driver", "driver")
        if not driver["running"] or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert driver["done"] == 1 and status["driver"]["state"] == "complete", driver
    assert all(status[s]["state"] == "complete" for s in ("vae", "caption", "tta", "verify"))
    assert arrays(nowait.state, "tta-generate") == ["0-1%2", "0-1%2"]  # 4 shards, max_array_size=2
    markers = [json.loads(p.read_text()) for p in sorted((nowait.out / "tta" / MARKERS / "generate" / "done").iterdir())]
    first, second = (s["job_id"] for s in submissions(nowait.state) if s["name"] == "tagtune-tta-generate")
    assert [m["job_id"] for m in markers] == [f"{first}_0", f"{first}_1", f"{second}_0", f"{second}_1"]
    scripts = (nowait.out / ".tagtune" / "slurm" / "tta-generate").glob("*_submission.sh")
    assert all("#SBATCH --partition=gpu" in p.read_text() for p in scripts)
    assert arrays(nowait.state, "pipeline-driver") == ["0%1"]
    assert_same_dataset(nowait.out, local_run.out)


# -- Ray (an embedded cluster) -------------------------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_a_ray_run_gives_the_local_dataset_even_when_a_worker_dies_mid_shard(base, local_run):
    """caption shard 0's worker is SIGKILLed once its task has started: Ray runs it again (attempt 2)."""
    pytest.importorskip("ray")
    out = base / "ray"
    shard = shard_files(out / "caption", "infer", 0, 2)
    code, killed = kill_worker_when(tagtune_argv(*QUICK, "-o", out, *RAY, *SHARDS, "executor.ray.max_retries=2"), {},
                                    shard.running, lambda: shard.running.is_file() and not shard.done.exists(),
                                    base / "ray.log")
    assert killed and code == 0, (base / "ray.log").read_text()[-3000:]
    assert json.loads(shard.done.read_text())["attempt"] == 2
    marker = json.loads(shard_files(out / "tta", "generate", 3, 4).done.read_text())
    assert marker["job_id"] != "local" and marker["log"].endswith("/.tagtune/ray/tta-generate/00003-of-00004.log")
    assert_same_dataset(out, local_run.out)


@pytest.mark.timeout(120)
def test_a_gpu_task_on_a_cluster_without_gpus_fails_in_one_line_within_seconds(base):
    pytest.importorskip("ray")
    start = time.monotonic()
    done = run_tagtune(*QUICK, "-o", base / "ray-gpu", "executor=ray", "executor.ray.address=local",
                       "executor.resources.gpus=1", "executor.resources.cpus=1", cwd=base, timeout=110)
    assert time.monotonic() - start < 90  # (Ray alone would wait for a GPU forever)
    assert done.returncode == 2
    error_line(done.stderr, "no node of the Ray cluster at local (", "has 1 GPU(s) (cluster: ", " 0 GPU)", only=False)


# -- planning ------------------------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_dry_run_plans_conceptcaps_without_data_models_or_a_gpu(tmp_path):
    from tagtune.config.commands import compose_command
    from tagtune.pipeline.config import COMMANDS, RUN
    from tagtune.pipeline.plan import dry_run

    env = {"CONCEPTCAPS_DIR": str(tmp_path / "no-data-here"), "COLUMNS": "160"}
    args = ("--preset", "conceptcaps", "-n", "21433", "-o", tmp_path / "cc", "--dry-run", "executor.shards.tta=64")
    code, out, err = run_cli("pipeline", "run", *args, "executor=slurm", env=env)
    assert code == 0, err
    text = " ".join(out.split())
    assert "Plan: slurm executor, 21433 items" in text
    assert re.search(r"tta │ generate x64 │ 64 │ 1\d\d\.\d │ 2\.\d\d h │ 21433 clips x 30 s, facebook/musicgen-large",
                     text), text
    assert "caption │ finetune, infer x8 │ 9 │" in text and "verify │ judge x8 │ 8 │" in text
    assert "note:" not in text  # 64 shards fit the 240-minute task limit
    assert not (tmp_path / "cc").exists()  # a plan writes nothing
    cfg = compose_command(RUN, COMMANDS, ["executor.shards.tta=64"], "conceptcaps",
                          updates={"output": str(tmp_path / "cc"), "num_items": 21433})
    planned = {p.name: p for p in dry_run(cfg)}
    assert planned["tta"].tasks == 64 and "musicgen-large" in planned["tta"].note
    assert 105 <= planned["tta"].gpu_hours <= 180  # 21433 x 30 s of MusicGen-large
    assert planned["tta"].hours_per_task == pytest.approx(planned["tta"].gpu_hours / 64)
    assert planned["caption"].gpu_hours < 0.1 * planned["tta"].gpu_hours
    code, out, _ = run_cli("pipeline", "run", *args[:-1], "executor.shards.tta=16", "executor=slurm", env=env)
    assert code == 0 and "note: a tta task needs about 8.9 GPU-hours, more than executor.resources.time_minutes (240)" \
        in " ".join(out.split())
