"""Executor costs: what each executor adds to a real pipeline run, and planning/submitting a big array.

* ``tagtune pipeline run --preset quick_test`` (6 items, tiny models) through the real CLI under
  each executor, with 2/4/2 shards for caption/tta/verify: local (in this process, one task after
  another), ``slurm`` with ``cluster: local`` (submitit's LocalExecutor: one process per task),
  ``slurm`` through the stand-in ``sbatch``/``squeue`` of tests/helpers/slurm_standin (detached
  processes, as on a cluster) and ``ray`` with ``address: local`` (an embedded cluster). Every run
  is checked to give the local run's dataset (ids, WAV bytes, rows).
* Planning and submitting the 1,000 shard tasks of the ``tta generate`` step through the pipeline's
  seam (:meth:`tagtune.pipeline.seam.Runner.plan`) and the stand-in ``sbatch`` with
  ``SLURM_STANDIN_HOLD=1`` (nothing runs). Its captions file does not exist: planning reads no data.
* A toy 4-shard job (tests/executors/toys: one small file per id) under each executor: the
  per-task cost without any model import.

Run on demand: ``python benchmarks/bench_executors.py [--quick]`` prints a Markdown section
(``--quick``: 100 shards and the toy job only, seconds).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
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
SHARDS = ["executor.shards.caption=2", "executor.shards.tta=4", "executor.shards.verify=2"]
RUNS = {  # name -> overrides of `pipeline run --preset quick_test`
    "local, 1 shard per stage": [],
    "local, 2/4/2 shards": SHARDS,
    "slurm, cluster: local (submitit LocalExecutor)": ["executor=slurm", "executor.slurm.cluster=local",
                                                       "executor.resources.gpus=0", "executor.slurm.poll_seconds=0.5",
                                                       *SHARDS],
    "slurm, stand-in sbatch (detached processes)": ["executor=slurm", "executor.slurm.poll_seconds=0.5", *SHARDS],
    "ray, address: local (embedded cluster)": ["executor=ray", "executor.ray.address=local",
                                               "executor.resources.gpus=0", "executor.resources.cpus=1", *SHARDS],
}


def _config(option: str, **updates: Any) -> ExecutorConfig:
    data = yaml.safe_load((ROOT / "config" / "executor" / f"{option}.yaml").read_text())
    for key, value in updates.items():
        section, name = key.split(".")
        data[section][name] = value
    return convert(ExecutorConfig, data, "executor")


class _Standin:
    """The stand-in SLURM commands on PATH for the duration of a block (``hold``: run nothing)."""

    def __init__(self, state: Path, hold: bool = False) -> None:
        from helpers.slurm_standin import standin_env

        self.state, self.env = state, {**standin_env(state), **({"SLURM_STANDIN_HOLD": "1"} if hold else {})}

    def __enter__(self) -> dict[str, str]:
        self.saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        return self.env

    def __exit__(self, *exc: object) -> None:
        from helpers.slurm_standin import stop_all

        stop_all(self.state)
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _digest(run: Path) -> str:
    """One hash of a run's dataset: each split's metadata rows and WAV bytes."""
    import pandas as pd

    h = hashlib.sha256()
    for split in ("train", "validation", "test"):
        meta = run / "dataset" / split / "metadata.parquet"
        if meta.is_file():
            for row in sorted(pd.read_parquet(meta).to_dict("records"), key=lambda r: r["id"]):
                h.update(f"{split} {row['id']} {row['caption']} {list(row['tags'])}".encode())
                h.update((meta.parent / row["file_name"]).read_bytes())
    return h.hexdigest()


def bench_pipeline(work: Path) -> dict[str, tuple[float, bool]]:
    """Wall seconds of the same quick_test run under each executor, and whether it equals the local one."""
    out: dict[str, tuple[float, bool]] = {}
    reference = ""
    for k, (name, overrides) in enumerate(RUNS.items()):
        run = work / f"run{k}"
        with _Standin(work / f"slurm-state-{k}") as env:
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "tagtune", "pipeline", "run", "--preset", "quick_test",
                                   "-o", str(run), *overrides], env={**os.environ, **env}, capture_output=True,
                                  text=True, timeout=1800)
            took = time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"{name}: {done.stderr[-2000:]}")
        digest = _digest(run)
        reference = reference or digest
        out[name] = (took, digest == reference)
    return out


def bench_submit(work: Path, shards: int) -> dict[str, Any]:
    """Seconds to plan the ``tta generate`` step of a run as ``shards`` tasks (through the seam, with
    a captions file that does not exist), submit them (held: nothing runs) and read their status."""
    from helpers.slurm_standin import submissions
    from tagtune.config.commands import compose_command
    from tagtune.pipeline.config import COMMANDS, RUN
    from tagtune.pipeline.run import plan_stages
    from tagtune.pipeline.seam import Runner

    run = work / "submit"
    cfg = compose_command(RUN, COMMANDS, ["executor=slurm", "executor.slurm.array_parallelism=64"], "quick_test",
                          updates={"output": str(run), "num_items": 21433})
    generate = plan_stages(cfg, run).configs["tta"]["generate"]
    assert not Path(generate.generate.input).exists()  # the plan must not need it
    with _Standin(work / "slurm-state-submit", hold=True) as env:
        runner = Runner(cfg.executor, run)
        t0 = time.perf_counter()
        step = runner.plan(run / "tta", "generate", "tta generate", generate, shards, "bench")
        t1 = time.perf_counter()
        sub = runner.executor.submit(step.tasks, cfg.executor.resources)
        t2 = time.perf_counter()
        status = shard_status(step.tasks[0].marker_dir, shards, step.tasks[0].config_hash, live=runner.executor.live)
        t3 = time.perf_counter()
        arrays = [s["array"] for s in submissions(env["SLURM_STANDIN_STATE"])]
    assert len(status.running) == shards, status
    return {"plan": t1 - t0, "submit": t2 - t1, "status": t3 - t2, "arrays": arrays, "jobs": len(sub.job_ids)}


def _toy_job(ex: Any, run: Path, stage: str, ids: int) -> float:
    tasks = plan_shards(stage, 4, "shard_toys:write_ids", {"out_dir": str(run / stage), "ids": ids}, run_dir=run,
                        marker_dir=run / ".tagtune" / "markers" / stage, config_hash="bench", input_hash="bench")
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
    out["slurm (cluster: local)"] = _toy_job(slurm_local, run, "slurm-local", ids)
    with _Standin(work / "slurm-state-toy"):
        standin = make_executor(_config("slurm", **{"slurm.poll_seconds": 0.1}))
        out["slurm (stand-in sbatch)"] = _toy_job(standin, run, "slurm-standin", ids)
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


def _section(pipeline: dict[str, tuple[float, bool]], sub: dict[str, Any], toy: dict[str, float], shards: int,
             ids: int) -> list[str]:
    lines = ["## executors", ""]
    if pipeline:
        base = next(iter(pipeline.values()))[0]
        lines += ["`tagtune pipeline run --preset quick_test` (6 items, tiny models), caption/tta/verify in 2/4/2 shard "
                  "tasks except the first row:", "",
                  "| executor | seconds | vs local (1 shard) | same dataset |", "|---|---:|---:|---|"]
        lines += [f"| {name} | {took:.1f} | {took / base:.1f}x | {'yes' if same else 'NO'} |"
                  for name, (took, same) in pipeline.items()]
        lines += ["", "Each remote task is a fresh process that imports torch and loads its tiny model, which is most "
                  "of the overhead at this size; a real stage spends minutes to hours per task.", ""]
    lines += [f"The `tta generate` step of a run planned as {shards:,} shard tasks through the pipeline's seam, and "
              "submitted through the stand-in sbatch (held: nothing runs); the captions file does not exist:", "",
              "| step | seconds |", "|---|---:|",
              f"| plan {shards:,} shard tasks (no data read) | {sub['plan']:.3f} |",
              f"| submit: pickle {sub['jobs']:,} calls, sbatch `--array={sub['arrays'][0]}`"
              + (f" (+{len(sub['arrays']) - 1} more)" if len(sub["arrays"]) > 1 else "") + f", record | {sub['submit']:.3f} |",
              f"| status of {shards:,} shards (markers + one squeue) | {sub['status']:.3f} |", "",
              f"A toy job of 4 shards ({ids} ids, one small file each): the per-task cost without model imports:", "",
              "| executor | seconds | overhead vs local |", "|---|---:|---:|"]
    for name, seconds in toy.items():
        extra = "" if name in ("local", "ray start") else f"{seconds - toy['local']:+.2f} s"
        lines.append(f"| {name} | {seconds:.2f} | {extra} |")
    return lines


def run(quick: bool = False) -> str:
    shards, ids = (100, 40) if quick else (1000, 400)
    with tempfile.TemporaryDirectory(prefix="tagtune-bench-exec-") as tmp:
        work = Path(tmp)
        pipeline = {} if quick else bench_pipeline(work)
        sub = bench_submit(work, shards)
        toy = bench_toy(work, ids)
    return "\n".join(_section(pipeline, sub, toy, shards, ids)) + "\n"


if __name__ == "__main__":
    start = time.perf_counter()
    print(run(quick="--quick" in sys.argv))
    print(f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)
