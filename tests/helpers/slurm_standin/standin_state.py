"""The stand-in SLURM's state: one JSON file per job (options, and each task's state), one lock.

Shared by standin.py (sbatch and the schedulers) and standin_commands.py (srun, sacct, squeue,
scancel, scontrol). Standard library only.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ALIVE = {"PENDING", "RUNNING", "REQUEUED", "COMPLETING"}
NODE = "standin-node"


def state_dir() -> Path:
    value = os.environ.get("SLURM_STANDIN_STATE")
    if not value:
        sys.exit("stand-in slurm: set SLURM_STANDIN_STATE to a folder")
    path = Path(value)
    (path / "jobs").mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def locked(state: Path) -> Iterator[None]:
    """One lock for every change of state (the commands and schedulers run concurrently)."""
    with open(state / "lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def load(state: Path, job_id: str | int) -> dict[str, Any] | None:
    try:
        return json.loads((state / "jobs" / f"{job_id}.json").read_text())
    except (OSError, ValueError):
        return None


def save(state: Path, job: dict[str, Any]) -> None:
    path = state / "jobs" / f"{job['job_id']}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(job))
    os.replace(tmp, path)


def all_jobs(state: Path) -> list[dict[str, Any]]:
    return [j for p in sorted((state / "jobs").glob("*.json")) if (j := load(state, p.stem))]


def expand(pattern: str, job: dict[str, Any], index: str) -> str:
    """A file-name pattern of sbatch/srun (``%A_%a_%t_log.err``) for one task."""
    array_id = job["job_id"]
    job_id = f"{array_id}_{index}" if job["array"] else array_id
    return (pattern.replace("%A", array_id).replace("%a", index).replace("%j", job_id)
            .replace("%t", "0").replace("%N", NODE))


def kill(pid: int | None, sig: int) -> None:
    """Signal a task's whole process group (its shell and what it started)."""
    if pid:
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def ids_of(argv: list[str], short: str, long: str) -> list[str]:
    """Job ids given as ``-j 1,2``, ``-j 1 -j 2`` or ``--jobs=1,2``."""
    out: list[str] = []
    for k, arg in enumerate(argv):
        if arg == short or arg == long:
            out += argv[k + 1].split(",")
        elif arg.startswith(long + "="):
            out += arg.split("=", 1)[1].split(",")
    return out


def selected(state: Path, ids: list[str]) -> Iterator[tuple[dict[str, Any], str, dict[str, Any]]]:
    """(job, index, task) for every task the ids name (``123`` all of them, ``123_4`` one)."""
    for ident in ids:
        base, _, index = ident.partition("_")
        job = load(state, base)
        for i, task in (job or {}).get("tasks", {}).items():
            if not index or i == index:
                yield job, i, task
