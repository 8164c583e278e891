"""Stand-in SLURM commands for tests: sbatch, srun, sacct, squeue, scancel and scontrol on one machine.

Enough of SLURM for submitit's real SLURM executor (and tagtune's) to run end to end without a
cluster: ``sbatch`` records the job and starts a detached scheduler process (stdin/stdout
detached, or submitit would block reading the pipe) that waits for ``--dependency=afterok:ID[:ID]``
and runs the array tasks ``--array=LIST%N`` as local processes, N at a time, with the ``SLURM_*``
variables a real task sees. States live in a folder (``SLURM_STANDIN_STATE``); ``sacct`` answers
in the ``--parsable2`` format submitit reads. Standard library only, so any python3 runs it.
This file holds sbatch and the schedulers; standin_commands.py the other commands, and
standin_state.py the job records they share.

Environment:
    SLURM_STANDIN_STATE        the state folder (required)
    SLURM_STANDIN_FAIL         "stage:index,...": array tasks that exit 1 on their first attempt
                               (stage: the job name without its "tagtune-" prefix)
    SLURM_STANDIN_NODE_FAIL    the same, but the first attempt ends NODE_FAIL (requeued if --requeue)
    SLURM_STANDIN_HOLD         "1": record submissions, run nothing (benchmarks of submission alone)
    SLURM_STANDIN_PARTITIONS   "a,b": sbatch refuses any other --partition, as SLURM does
    SLURM_STANDIN_MAX_SECONDS  a job's scheduler gives up after this long (default 600)
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from standin_commands import sacct, scancel, scontrol, squeue, srun
from standin_state import ALIVE, NODE, expand, kill, load, locked, save, state_dir


def parse_array(spec: str) -> tuple[list[int], int | None]:
    """``0-3%2`` -> ([0, 1, 2, 3], 2); ``2,7,13`` -> ([2, 7, 13], None)."""
    body, _, throttle = spec.partition("%")
    out: list[int] = []
    for part in body.split(","):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out, int(throttle) if throttle else None


def sbatch_options(script: Path, argv: list[str]) -> dict[str, str]:
    """``#SBATCH`` lines of the script, then command-line options (which win)."""
    tokens: list[str] = []
    for line in script.read_text().splitlines():
        if line.startswith("#SBATCH"):
            tokens += shlex.split(line[len("#SBATCH"):])
    tokens += argv
    opts: dict[str, str] = {}
    for token in tokens:
        if token.startswith("--"):
            key, eq, value = token[2:].partition("=")
            opts[key] = value if eq else "true"
    return opts


def sbatch(argv: list[str]) -> int:
    state = state_dir()
    script = Path(argv[-1]).resolve()
    opts = sbatch_options(script, argv[:-1])
    partitions = [p for p in os.environ.get("SLURM_STANDIN_PARTITIONS", "").split(",") if p]
    if partitions and opts.get("partition") not in partitions:
        print(f"sbatch: error: invalid partition specified: {opts.get('partition')}", file=sys.stderr)
        print("sbatch: error: Batch job submission failed: Invalid partition name specified", file=sys.stderr)
        return 1
    indices, throttle = parse_array(opts["array"]) if "array" in opts else ([0], None)
    deps = []
    for clause in filter(None, opts.get("dependency", "").split(",")):
        kind, *ids = clause.split(":")
        deps += [{"kind": kind, "job_id": i} for i in ids]
    with locked(state):
        counter = state / "next_id"
        job_id = int(counter.read_text()) if counter.exists() else 100
        counter.write_text(str(job_id + 1))
        # sbatch keeps a copy of the script, as SLURM does: submitit renames its submission file
        # right after sbatch returns, before a detached task may have started
        copy = state / f"script-{job_id}.sh"
        copy.write_bytes(script.read_bytes())
        job = {"job_id": str(job_id), "name": opts.get("job-name", "sbatch"), "script": str(copy),
               "array": "array" in opts, "throttle": throttle, "dependency": deps, "cwd": os.getcwd(),
               "kill_on_invalid_dep": opts.get("kill-on-invalid-dep", "no") in ("yes", "true"),
               "requeue": "requeue" in opts, "output": opts.get("output", "slurm-%j.out"),
               "error": opts.get("error", opts.get("output", "slurm-%j.out")),
               "tasks": {str(i): {"state": "PENDING", "restarts": 0} for i in indices}}
        save(state, job)
        with open(state / "submissions.jsonl", "a") as fh:
            fh.write(json.dumps({"job_id": str(job_id), "name": job["name"], "array": opts.get("array"),
                                 "dependency": opts.get("dependency"), "time": time.time()}) + "\n")
    if os.environ.get("SLURM_STANDIN_HOLD") != "1":
        with open(state / f"scheduler-{job_id}.log", "a") as log:
            proc = subprocess.Popen([sys.executable, __file__, "schedule", str(job_id)], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=log, start_new_session=True, close_fds=True)
        with locked(state):
            job = load(state, job_id) or job
            job["scheduler_pid"] = proc.pid
            save(state, job)
    print(f"Submitted batch job {job_id}")
    return 0


def _dependencies(state: Path, job: dict[str, Any]) -> str:
    """``ok``, ``wait`` or ``never``: whether the job's dependencies are met."""
    for dep in job["dependency"]:
        other = load(state, dep["job_id"])
        states = [t["state"] for t in (other or {}).get("tasks", {}).values()]
        if other is None or any(s in ALIVE for s in states):
            return "wait" if other is not None else "never"
        if dep["kind"] == "afterok" and any(s != "COMPLETED" for s in states):
            return "never"
    return "ok"


def _first_attempt(state: Path, name: str, index: str, variable: str) -> bool:
    """Whether ``stage:index`` is listed in ``variable`` and this is its first attempt."""
    stage = name.removeprefix("tagtune-")
    listed = {s.strip() for s in os.environ.get(variable, "").split(",") if s.strip()}
    if f"{stage}:{index}" not in listed:
        return False
    marker = state / "injected" / f"{variable}-{stage}-{index}"
    if marker.exists():
        return False
    marker.parent.mkdir(exist_ok=True)
    marker.touch()
    return True


def _task_env(job: dict[str, Any], index: str, restarts: int) -> dict[str, str]:
    env = dict(os.environ)
    indices = sorted(int(i) for i in job["tasks"])
    env.update(SLURM_JOB_ID=job["job_id"], SLURM_JOB_NAME=job["name"], SLURM_JOB_NODELIST=NODE,
               SLURMD_NODENAME=NODE, SLURM_NODEID="0", SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NTASKS="1",
               SLURM_JOB_NUM_NODES="1", SLURM_RESTART_COUNT=str(restarts), SLURM_SUBMIT_DIR=job["cwd"])
    if job["array"]:
        env.update(SLURM_ARRAY_JOB_ID=job["job_id"], SLURM_ARRAY_TASK_ID=index,
                   SLURM_ARRAY_TASK_COUNT=str(len(indices)), SLURM_ARRAY_TASK_MIN=str(indices[0]),
                   SLURM_ARRAY_TASK_MAX=str(indices[-1]))
    return env


def _start(state: Path, job_id: str, index: str) -> tuple[subprocess.Popen | None, bool]:
    """Start one task: (process, requeue it) -- no process for a cancelled or injected-failure task."""
    with locked(state):
        job = load(state, job_id)
        task = job["tasks"][index]
        if task["state"] != "PENDING":
            return None, False
        err = Path(expand(job["error"], job, index))
        if _first_attempt(state, job["name"], index, "SLURM_STANDIN_FAIL"):
            with open(err, "a") as fh:
                fh.write(f"stand-in slurm: injected failure of {job['name']} task {index}\n")
            task.update(state="FAILED", exit=1)
            save(state, job)
            return None, False
        if _first_attempt(state, job["name"], index, "SLURM_STANDIN_NODE_FAIL"):
            task.update(state="PENDING" if job["requeue"] else "NODE_FAIL", restarts=task["restarts"] + job["requeue"])
            save(state, job)
            return None, job["requeue"]
        out = Path(expand(job["output"], job, index))
        with open(out, "a") as stdout, open(err, "a") as stderr:
            proc = subprocess.Popen(["bash", job["script"]], env=_task_env(job, index, task["restarts"]), cwd=job["cwd"],
                                    stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True)
        task.update(state="RUNNING", pid=proc.pid)
        save(state, job)
        return proc, False


def _reap(state: Path, job_id: str, index: str, code: int) -> bool:
    """Record a finished task; True when it was requeued (scontrol requeue) and must run again."""
    with locked(state):
        job = load(state, job_id)
        task = job["tasks"][index]
        if task["state"] == "CANCELLED":
            return False
        if task.pop("requeue", False):
            task.update(state="PENDING", restarts=task["restarts"] + 1)
        else:
            task.update(state="COMPLETED" if code == 0 else "FAILED", exit=code)
        save(state, job)
        return task["state"] == "PENDING"


def _mark(state: Path, job_id: str, new: str, only: set[str]) -> None:
    with locked(state):
        job = load(state, job_id)
        for task in job["tasks"].values():
            if task["state"] in only:
                task["state"] = new
        save(state, job)


def schedule(job_id: str) -> int:
    """The detached process behind one sbatch: dependencies, then the tasks, N at a time."""
    state = state_dir()
    deadline = time.time() + float(os.environ.get("SLURM_STANDIN_MAX_SECONDS", "600"))
    job = load(state, job_id)
    while (verdict := _dependencies(state, job)) == "wait" and time.time() < deadline:
        time.sleep(0.05)
    if verdict != "ok":
        if verdict == "never" and job["kill_on_invalid_dep"]:
            _mark(state, job_id, "CANCELLED", {"PENDING"})
        return 0
    queue = list(job["tasks"])
    running: dict[str, subprocess.Popen] = {}
    while (queue or running) and time.time() < deadline:
        for index, proc in list(running.items()):
            if proc.poll() is not None:
                del running[index]
                if _reap(state, job_id, index, proc.returncode):
                    queue.append(index)
        while queue and len(running) < (job["throttle"] or len(job["tasks"])):
            index = queue.pop(0)
            proc, again = _start(state, job_id, index)
            if proc is not None:
                running[index] = proc
            elif again:
                queue.append(index)
        time.sleep(0.05)
    for proc in running.values():
        kill(proc.pid, signal.SIGKILL)
    _mark(state, job_id, "TIMEOUT", {"PENDING", "RUNNING"})
    return 0


COMMANDS = {"sbatch": sbatch, "srun": srun, "sacct": sacct, "squeue": squeue, "scancel": scancel,
            "scontrol": scontrol, "schedule": lambda argv: schedule(argv[0])}


if __name__ == "__main__":
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
