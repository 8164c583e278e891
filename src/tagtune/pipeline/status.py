"""``tagtune pipeline status -o DIR``: where a run stands, stage by stage and shard by shard.

Read from the run folder only: each stage's ``manifest.json`` (complete, running, not started)
and the markers of each of its steps (``<stage>/.tagtune-shards/<step>/``: done, failed with the
error and log, queued or running according to the executor named in ``DIR/config.yaml``,
missing), plus the driver job of an ``executor.wait: false`` run. Nothing is written, and no
stage config is composed, so it answers in a moment for a run of any size.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tagtune.errors import InputError
from tagtune.executors import markers as marker_files
from tagtune.executors import shard_status
from tagtune.pipeline.seam import MARKERS
from tagtune.pipeline.stages import STAGE_NAMES

_MARKER_NAME = re.compile(r"^(\d{5})-of-(\d{5})")


@dataclass
class StepStatus:
    """The shards of one step: counts by state, and the job ids and logs the markers recorded."""

    step: str
    shards: int
    done: int = 0
    running: int = 0
    failed: int = 0
    missing: int = 0
    jobs: list[str] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)  # shard, error, log


@dataclass
class StageStatus:
    stage: str
    state: str  # complete | running | not started; the driver: running | complete | failed | stopped
    detail: str = ""
    steps: list[StepStatus] = field(default_factory=list)


def _latest_plan(folder: Path) -> tuple[int, str] | None:
    """The shard count and config hash of the newest plan whose markers are in ``folder``."""
    found: list[tuple[float, int, str]] = []
    for sub in ("done", "running", "failed", "submitted"):
        for path in (folder / sub).glob("*.json") if (folder / sub).is_dir() else ():
            record = marker_files.read(path) or {}
            m = _MARKER_NAME.match(path.name)
            count = record.get("count") or (int(m[2]) if m else None)
            if isinstance(count, int) and record.get("config_hash"):
                found.append((path.stat().st_mtime, count, str(record["config_hash"])))
    if not found:
        return None
    _, count, digest = max(found)
    return count, digest


def _executor_live(run_dir: Path) -> Any:
    """The ``live`` query of the run's executor (which jobs are still queued or running), if it has one."""
    try:
        saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        from tagtune.config.typed import build
        from tagtune.executors import make_executor
        from tagtune.executors.config import ExecutorConfig

        executor = make_executor(build(ExecutorConfig, saved["executor"]))
    except Exception:  # noqa: BLE001 -- an old config, a missing optional package: report without live states
        return None
    return executor.live


def _step(folder: Path, live: Any) -> StepStatus | None:
    plan = _latest_plan(folder)
    if plan is None:
        return None
    count, digest = plan
    status = shard_status(folder, count, digest, live=live)
    out = StepStatus(folder.name, count, len(status.done), len(status.running), len(status.failed), len(status.missing))
    for shard in status.shards:
        if shard.job_id and shard.job_id not in out.jobs and shard.state in ("running", "failed", "done"):
            out.jobs.append(shard.job_id)
        if shard.state == "failed":
            out.failures.append({"shard": f"{shard.index}/{count}", "error": shard.error, "log": shard.log,
                                 "attempt": shard.attempt})
    return out


def run_status(run_dir: Path) -> list[StageStatus]:
    """Every stage of the run in ``run_dir``: its state and its steps' shards.

    Raises:
        InputError: ``run_dir`` is not a pipeline run folder.
    """
    run_dir = Path(run_dir).expanduser()
    if not (run_dir / "config.yaml").is_file():
        raise InputError("not a pipeline run folder (no config.yaml)", run_dir, hint="pass the -o of `tagtune pipeline run`")
    live = _executor_live(run_dir)
    out = []
    for name in ("pipeline", *STAGE_NAMES):
        folder = run_dir / name if name != "pipeline" else run_dir
        manifest = _read_json(folder / "manifest.json") if name != "pipeline" else None
        state = "complete" if manifest and manifest.get("status") == "complete" else \
            "running" if manifest else "not started"
        folders = [d for d in (folder / MARKERS).glob("*") if d.is_dir() and (name != "pipeline" or d.name == "driver")]
        steps = [s for d in sorted(folders, key=_started) if (s := _step(d, live)) is not None]
        if name == "pipeline":
            if steps:
                out.append(StageStatus("driver", _driver_state(steps[0]), "", steps))
            continue
        out.append(StageStatus(name, state, (manifest or {}).get("detail", ""), steps))
    return out


def _started(folder: Path) -> tuple[float, str]:
    """Steps in the order they ran (train before sample, judge-1 before generate-2): their first marker."""
    times = [p.stat().st_mtime for p in folder.glob("*/*.json")] if folder.is_dir() else []
    return (min(times, default=float("inf")), folder.name)


def _driver_state(step: StepStatus) -> str:
    """The ``executor.wait: false`` driver job: queued or running, complete, failed (its error and log
    are listed), or stopped (it left the queue without a word: cancelled, or killed with its node)."""
    return "running" if step.running else "complete" if step.done else "failed" if step.failed else "stopped"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def as_json(stages: list[StageStatus]) -> str:
    """``--json``: the same facts for scripts."""
    return json.dumps({"stages": [asdict(s) for s in stages]}, indent=2)
