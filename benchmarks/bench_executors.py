"""Executor costs: planning and submitting a large array, and what each executor adds to a small job.

* Plan and submit a 1,000-shard stage through the stand-in ``sbatch`` (tests/helpers/slurm_standin)
  with ``SLURM_STANDIN_HOLD=1``, so nothing runs: planning (no data is read), submitit pickling one
  call per shard, the one ``sbatch``, and the submission record; then reading the status of the
  1,000 shards back (markers plus one ``squeue``).
* A toy 4-shard job (tests/executors/toys/shard_toys.py: one small file per id) run by the local
  executor, by ``slurm`` with ``cluster: local`` (submitit's local processes) and by ``ray`` with
  ``address: local`` (an embedded cluster; its start is timed apart from the job).

Run on demand: ``python benchmarks/bench_executors.py [--quick]`` prints a Markdown section.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOYS = ROOT / "tests" / "executors" / "toys"
sys.path[:0] = [str(ROOT / "tests"), str(TOYS)]
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TOYS), os.environ.get("PYTHONPATH")]))

import yaml  # noqa: E402

from tagtune.config.typed import convert  # noqa: E402
from tagtune.executors import Resources, make_executor, plan_shards, shard_status, write_canary  # noqa: E402
from tagtune.executors.config import ExecutorConfig  # noqa: E402

RES = Resources(gpus=0, cpus=1, memory_gb=None, time_minutes=30)


def _config(option: str, **updates: Any) -> ExecutorConfig:
    data = yaml.safe_load((ROOT / "config" / "executor" / f"{option}.yaml").read_text())
    for key, value in updates.items():
        section, name = key.split(".")
        data[section][name] = value
    return convert(ExecutorConfig, data, "executor")


def _plan(run: Path, stage: str, count: int, **kwargs: Any) -> list:
    return plan_shards(stage, count, "shard_toys:write_ids", {"out_dir": str(run / stage), **kwargs}, run_dir=run,
                       marker_dir=run / ".tagtune" / "markers" / stage, config_hash="bench", input_hash="bench")


def bench_submit(work: Path, shards: int) -> dict[str, Any]:
    """Seconds to plan, submit (held: nothing runs) and read back the status of ``shards`` shards."""
    from helpers.slurm_standin import standin_env, stop_all, submissions

    state = work / "slurm-state"
    saved = {k: os.environ.get(k) for k in (*standin_env(state), "SLURM_STANDIN_HOLD")}
    os.environ.update({**standin_env(state), "SLURM_STANDIN_HOLD": "1"})
    try:
        run = work / "submit"
        write_canary(run)
        ex = make_executor(_config("slurm", **{"slurm.array_parallelism": 8}))
        t0 = time.perf_counter()
        tasks = _plan(run, "tta", shards, ids=10_000_000)  # planning must not depend on the data size
        t1 = time.perf_counter()
        sub = ex.submit(tasks, RES)
        t2 = time.perf_counter()
        status = shard_status(tasks[0].marker_dir, shards, "bench", live=ex.live)
        t3 = time.perf_counter()
        arrays = [s["array"] for s in submissions(state)]
        assert len(status.running) == shards, status
        return {"plan": t1 - t0, "submit": t2 - t1, "status": t3 - t2, "arrays": arrays, "jobs": len(sub.job_ids)}
    finally:
        stop_all(state)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _toy_job(ex: Any, run: Path, stage: str, ids: int) -> float:
    tasks = _plan(run, stage, 4, ids=ids)
    t0 = time.perf_counter()
    outcomes = ex.wait(ex.submit(tasks, RES))
    took = time.perf_counter() - t0
    assert all(o.ok for o in outcomes), outcomes
    return took


def bench_toy(work: Path, ids: int) -> dict[str, float]:
    """Wall seconds of the same 4-shard toy job under each executor (fresh output folders)."""
    import ray

    run = work / "toy"
    write_canary(run)
    out = {"local": _toy_job(make_executor(_config("local")), run, "local", ids)}
    slurm_local = make_executor(_config("slurm", **{"slurm.cluster": "local", "slurm.array_parallelism": 4,
                                                    "slurm.poll_seconds": 0.1}))
    out["slurm (cluster: local)"] = _toy_job(slurm_local, run, "slurm", ids)
    t0 = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    out["ray start"] = time.perf_counter() - t0
    try:
        ray_ex = make_executor(_config("ray", **{"ray.address": "local"}))
        out["ray (address: local), first job"] = _toy_job(ray_ex, run, "ray1", ids)
        out["ray (address: local), warm"] = _toy_job(ray_ex, run, "ray2", ids)
    finally:
        ray.shutdown()
    return out


def run(quick: bool = False) -> str:
    shards, ids = (100, 40) if quick else (1000, 400)
    with tempfile.TemporaryDirectory(prefix="tagtune-bench-exec-") as tmp:
        sub = bench_submit(Path(tmp), shards)
        toy = bench_toy(Path(tmp), ids)
    local = toy["local"]
    lines = [
        "## executors",
        "",
        f"Plan and submit a {shards:,}-shard stage through the stand-in sbatch (held: nothing runs):",
        "",
        "| step | seconds |",
        "|---|---:|",
        f"| plan {shards:,} shard tasks (no data read) | {sub['plan']:.3f} |",
        f"| submit: pickle {sub['jobs']:,} calls, sbatch `--array={sub['arrays'][0]}`, record | {sub['submit']:.3f} |",
        f"| status of {shards:,} shards (markers + one squeue) | {sub['status']:.3f} |",
        "",
        f"A toy job of 4 shards ({ids} ids, one small file each) under each executor:",
        "",
        "| executor | seconds | overhead vs local |",
        "|---|---:|---:|",
    ]
    for name, seconds in toy.items():
        extra = "" if name in ("local", "ray start") else f"{seconds - local:+.2f} s"
        lines.append(f"| {name} | {seconds:.2f} | {extra} |")
    lines += ["", f"Local runs the shards one after another; slurm (cluster: local) starts up to 4 processes (each "
              f"imports Python, submitit and tagtune) and ray runs one task per CPU ({os.cpu_count()} here), so "
              "the overhead can be negative on a warm cluster. \"ray start\" is the embedded cluster's start, paid "
              "once per process."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    start = time.perf_counter()
    print(run(quick="--quick" in sys.argv))
    print(f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)
