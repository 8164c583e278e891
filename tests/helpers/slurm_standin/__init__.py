"""Stand-in SLURM commands (sbatch, srun, sacct, squeue, scancel, scontrol) for tests and benchmarks.

Put :data:`STANDIN_DIR` first on ``PATH`` and point ``SLURM_STANDIN_STATE`` at a folder
(:func:`standin_env` gives both); submitit's real SLURM executor then runs its arrays as local
processes. See ``standin.py`` for what is simulated and the variables that inject failures.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

STANDIN_DIR = Path(__file__).resolve().parent


def standin_env(state: str | Path) -> dict[str, str]:
    """The variables that make the stand-in commands answer (to set on top of os.environ)."""
    return {"PATH": f"{STANDIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}", "SLURM_STANDIN_STATE": str(state),
            "SLURM_STANDIN_PYTHON": sys.executable}


def submissions(state: str | Path) -> list[dict[str, Any]]:
    """One record per sbatch call: job id, job name, the ``--array`` spec and ``--dependency`` it used."""
    path = Path(state) / "submissions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def job(state: str | Path, job_id: str) -> dict[str, Any]:
    """A job's record: its options and each task's state, restarts and exit code."""
    return json.loads((Path(state) / "jobs" / f"{job_id}.json").read_text())


def stop_all(state: str | Path) -> None:
    """Cancel every job still alive and end the schedulers the stand-in started (test teardown)."""
    jobs = sorted((Path(state) / "jobs").glob("*.json"))
    if not jobs:
        return
    env = {**os.environ, **standin_env(state)}
    subprocess.run([str(STANDIN_DIR / "scancel"), *(p.stem for p in jobs)], env=env, timeout=60, check=False)
    for path in jobs:
        pid = json.loads(path.read_text()).get("scheduler_pid")
        if pid and _is_scheduler(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _is_scheduler(pid: int) -> bool:
    """Whether ``pid`` is still a stand-in scheduler (not a process that reused its number)."""
    try:
        return b"standin.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
