"""Stand-in srun, sacct, squeue, scancel and scontrol (see standin.py for the whole picture)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from standin_state import (
    ALIVE,
    NODE,
    all_jobs,
    expand,
    ids_of,
    kill,
    load,
    locked,
    save,
    selected,
    state_dir,
)


def srun(argv: list[str]) -> int:
    """Run the command with ``--output``/``--error`` (patterns expanded) appended to, as srun does."""
    with_value = {"--output", "-o", "--error", "-e", "--ntasks", "-n", "--nodes", "-N", "--cpus-per-task", "-c",
                  "--job-name", "-J", "--gres", "--mem", "--time", "-t", "--partition", "-p"}
    opts: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        key, eq, value = argv[i].partition("=")
        if not eq and key in with_value:
            value, i = argv[i + 1], i + 1
        opts[key] = value
        i += 1
    job = {"job_id": os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID", "0"),
           "array": "SLURM_ARRAY_TASK_ID" in os.environ}
    index = os.environ.get("SLURM_ARRAY_TASK_ID", "0")
    steps = state_dir() / "steps"
    steps.mkdir(exist_ok=True)
    with open(steps / expand("%j", job, index), "w") as fh:  # scancel --signal reaches the step, as in SLURM
        fh.write(f"{os.getpid()}\n")
    for names, fd in ((("--output", "-o"), 1), (("--error", "-e"), 2)):
        target = next((opts[n] for n in names if n in opts), None)
        if target:
            handle = os.open(expand(target, job, index), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(handle, fd)
    os.execvp(argv[i], argv[i:])
    return 127


def sacct(argv: list[str]) -> int:
    state = state_dir()
    print("JobID|State|NodeList")
    for job, index, task in selected(state, ids_of(argv, "-j", "--jobs")):
        name = f"{job['job_id']}_{index}" if job["array"] else job["job_id"]
        print(f"{name}|{task['state']}|{'None assigned' if task['state'] == 'PENDING' else NODE}")
    return 0


def squeue(argv: list[str]) -> int:
    state = state_dir()
    ids = ids_of(argv, "-j", "--jobs")
    known = [i for i in ids if load(state, i.partition("_")[0]) is not None]
    if ids and not known:
        print("slurm_load_jobs error: Invalid job id specified", file=sys.stderr)
        return 1
    fmt = next((a.split("=", 1)[1] for a in argv if a.startswith("--format=")), None)
    fmt = fmt or next((argv[k + 1] for k, a in enumerate(argv) if a == "-o"), "%i %T %j")
    if not ({"-h", "--noheader"} & set(argv)):
        print(fmt.replace("%i", "JOBID").replace("%T", "STATE").replace("%j", "NAME"))
    rows = selected(state, known) if ids else ((j, i, t) for j in all_jobs(state) for i, t in j["tasks"].items())
    for job, index, task in rows:
        if task["state"] in ALIVE:
            name = f"{job['job_id']}_{index}" if job["array"] else job["job_id"]
            print(fmt.replace("%i", name).replace("%T", task["state"]).replace("%j", job["name"])
                  .replace("%A", job["job_id"]).replace("%a", index))
    return 0


def scancel(argv: list[str]) -> int:
    """Cancel jobs or tasks (their processes are killed), or with ``--signal`` only signal them."""
    state = state_dir()
    sig_name, ids, k = None, [], 0
    while k < len(argv):
        arg = argv[k]
        if arg in ("--signal", "-s"):
            sig_name, k = argv[k + 1], k + 1
        elif arg.startswith("--signal="):
            sig_name = arg.split("=", 1)[1]
        elif not arg.startswith("-"):
            ids.append(arg)
        k += 1
    sig = None
    if sig_name:
        sig = int(sig_name) if sig_name.isdigit() else getattr(signal, "SIG" + sig_name.upper().removeprefix("SIG"))
    with locked(state):
        for ident in ids:
            for job, index, task in selected(state, [ident]):
                if sig is not None:
                    if task["state"] == "RUNNING":
                        _signal_steps(state, job, index, task, sig)
                    continue
                if task["state"] in ALIVE:
                    kill(task.get("pid") if task["state"] == "RUNNING" else None, signal.SIGKILL)
                    task["state"] = "CANCELLED"
                    save(state, job)
    return 0


def _signal_steps(state: Path, job: dict[str, Any], index: str, task: dict[str, Any], sig: int) -> None:
    """``scancel --signal`` without ``--batch`` signals the job's steps (what srun started), not its shell."""
    try:
        pids = [int(p) for p in (state / "steps" / expand("%j", job, index)).read_text().split()]
    except OSError:
        pids = []
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    if not pids:
        kill(task.get("pid"), sig)


def scontrol(argv: list[str]) -> int:
    """Only ``scontrol requeue ID``: the task runs again after its process exits (submitit's preemption path)."""
    if argv[:1] != ["requeue"]:
        print(f"stand-in scontrol: unsupported {' '.join(argv)}", file=sys.stderr)
        return 1
    state = state_dir()
    with locked(state):
        for ident in argv[1:]:
            for job, _, task in selected(state, [ident]):
                task["requeue"] = True
                save(state, job)
    return 0
