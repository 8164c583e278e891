"""Completion markers: a small on-disk index of which shard tasks finished, failed or are running.

Why markers and not the scheduler's word: SLURM accounting can be off or lag (``sacct`` errors,
jobs stuck PENDING), Ray forgets a driver's tasks when the driver ends, and a rerun must know what
is finished without asking anyone. A marker is one small JSON file, written atomically by the
worker itself (temporary name, then ``os.replace``), so it exists complete or not at all. Markers
are an index only: each shard's per-id outputs stay the truth, and rerunning a shard on top of
them continues where it stopped.

Layout of a stage's marker folder::

    done/<index:05d>-of-<count:05d>.json                the attempt that returned
    failed/<index:05d>-of-<count:05d>.attempt-<k>.json  attempt k raised (error, type, retryable, log)
    running/<index:05d>-of-<count:05d>.json             an attempt started (removed when it ends)
    submitted/<time>-<job id>.json                      the driver: each index's job id and log
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tagtune.errors import ConfigError
from tagtune.files.resumable import atomic_write_json

State = Literal["done", "failed", "running", "missing"]
Live = Callable[[Collection[str]], Collection[str]]

_DONE = re.compile(r"^(\d+)-of-(\d+)\.json$")
_FAILED = re.compile(r"^(\d+)-of-(\d+)\.attempt-(\d+)\.json$")


def tag(index: int, count: int) -> str:
    """``00003-of-00008``: the file-name stem of shard ``index`` of ``count``."""
    return f"{index:05d}-of-{count:05d}"


def done_path(folder: str | Path, index: int, count: int) -> Path:
    return Path(folder) / "done" / f"{tag(index, count)}.json"


def failed_path(folder: str | Path, index: int, count: int, attempt: int) -> Path:
    return Path(folder) / "failed" / f"{tag(index, count)}.attempt-{attempt}.json"


def running_path(folder: str | Path, index: int, count: int) -> Path:
    return Path(folder) / "running" / f"{tag(index, count)}.json"


def write(path: Path, data: Mapping[str, Any]) -> Path:
    """Write one marker atomically (readers see the whole file or none)."""
    return atomic_write_json(path, dict(data))


def read(path: Path) -> dict[str, Any] | None:
    """A marker's content, or None when it is absent or unreadable (a torn copy is not a marker)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _names(folder: Path) -> list[str]:
    try:
        return [n for n in (p.name for p in folder.iterdir()) if not n.startswith(".")]
    except OSError:
        return []


def failed_attempts(folder: str | Path, index: int, count: int) -> dict[int, Path]:
    """Attempt number -> failed marker of one shard."""
    out: dict[int, Path] = {}
    for name in _names(Path(folder) / "failed"):
        m = _FAILED.match(name)
        if m and int(m[1]) == index and int(m[2]) == count:
            out[int(m[3])] = Path(folder) / "failed" / name
    return out


def latest_failure(folder: str | Path, index: int, count: int) -> dict[str, Any] | None:
    """The failed marker of a shard's last failed attempt, if any."""
    attempts = failed_attempts(folder, index, count)
    return read(attempts[max(attempts)]) if attempts else None


def next_attempt(folder: str | Path, index: int, count: int, restarts: int = 0) -> int:
    """The number of the attempt about to start: one more than any attempt seen so far.

    A killed attempt leaves its running marker and a failed one its failed marker; a scheduler
    restart count (``SLURM_RESTART_COUNT``) covers attempts killed before they wrote anything.
    """
    seen = max(failed_attempts(folder, index, count), default=0)
    running = read(running_path(folder, index, count))
    if running is not None and isinstance(running.get("attempt"), int):
        seen = max(seen, running["attempt"])
    return max(seen, restarts) + 1


def record_submission(folder: str | Path, *, executor: str, stage: str, count: int, config_hash: str,
                      jobs: Mapping[int, tuple[str, str | None]]) -> Path:
    """Record which job runs each index (one file per submission), so a later run can tell a
    queued or running shard from a missing one without the driver that submitted it."""
    first = jobs[min(jobs)][0] if jobs else "none"
    stamp = time.strftime("%Y%m%dT%H%M%S") + f"{time.time_ns() % 1_000_000_000:09d}"
    path = Path(folder) / "submitted" / f"{stamp}-{re.sub(r'[^0-9A-Za-z_.-]', '_', first)}.json"
    return write(path, {"executor": executor, "stage": stage, "count": count, "config_hash": config_hash,
                        "submitted_at": time.time(),
                        "jobs": {str(i): {"job_id": j, "log": log} for i, (j, log) in sorted(jobs.items())}})


@dataclass(frozen=True)
class ShardState:
    """One shard as its markers describe it (``job_id``/``log``/``error`` when known)."""

    index: int
    state: State
    job_id: str | None = None
    log: str | None = None
    error: str | None = None
    error_type: str | None = None
    retryable: bool | None = None
    attempt: int | None = None
    rows: int | None = None


@dataclass(frozen=True)
class ShardStatus:
    """Every shard of a stage, plus what in the folder does not belong to this plan.

    Attributes:
        other_counts: Shard counts N' != N that markers in the folder were written for (most first).
        stale: Indices whose done marker was written under another config or input hash.
    """

    folder: str
    count: int
    shards: tuple[ShardState, ...]
    other_counts: tuple[int, ...] = ()
    stale: tuple[int, ...] = ()

    def _where(self, state: State) -> list[int]:
        return [s.index for s in self.shards if s.state == state]

    @property
    def done(self) -> list[int]:
        return self._where("done")

    @property
    def failed(self) -> list[int]:
        return self._where("failed")

    @property
    def running(self) -> list[int]:
        return self._where("running")

    @property
    def missing(self) -> list[int]:
        return self._where("missing")

    @property
    def todo(self) -> list[int]:
        """The indices to (re)submit: neither done nor queued/running somewhere."""
        return sorted(self.failed + self.missing)

    @property
    def complete(self) -> bool:
        return len(self.done) == self.count

    def require_same_count(self, stage: str, key: str | None = None, hint: str | None = None) -> None:
        """Refuse a marker folder planned for another shard count: the shards of another split own
        other ids, so finishing half of each would redo (or double) work. ``key``: the setting to
        name (default ``executor.shards.<stage>``); ``hint``: how to re-plan in the caller's words."""
        if self.other_counts:
            key = key or f"executor.shards.{stage}"
            found = ", ".join(map(str, self.other_counts))
            raise ConfigError(f"{key}={self.count}, but the {stage} shards in {self.folder} were planned for {found}",
                              key=key, hint=hint or f"set {key}={self.other_counts[0]} to continue that plan, "
                                                    f"or remove {self.folder} to re-plan")


def _done_markers(folder: Path, count: int, config_hash: str, input_hash: str | None
                  ) -> tuple[dict[int, dict[str, Any]], list[int], list[int]]:
    """(index -> valid done marker, other counts seen, stale indices) from one directory listing."""
    done: dict[int, dict[str, Any]] = {}
    others: Counter[int] = Counter()
    stale: list[int] = []
    for name in _names(folder / "done"):
        m = _DONE.match(name)
        if not m:
            continue
        index, n = int(m[1]), int(m[2])
        if n != count:
            others[n] += 1
            continue
        marker = read(folder / "done" / name)
        if marker is None or not 0 <= index < count:
            continue
        same = marker.get("config_hash") == config_hash and (input_hash is None or marker.get("input_hash") == input_hash)
        if same:
            done[index] = marker
        else:
            stale.append(index)
    others.update(_counts_elsewhere(folder, count))
    return done, [n for n, _ in others.most_common()], sorted(stale)


def _counts_elsewhere(folder: Path, count: int) -> Counter[int]:
    """Shard counts other than ``count`` that failed or running markers or submission records were
    written for: a plan that never finished a shard still left parts that a new split would redo."""
    others: Counter[int] = Counter()
    for sub, pattern in (("failed", _FAILED), ("running", _DONE)):
        for name in _names(folder / sub):
            m = pattern.match(name)
            if m and int(m[2]) != count:
                others[int(m[2])] += 1
    for name in _names(folder / "submitted"):
        n = (read(folder / "submitted" / name) or {}).get("count")
        if isinstance(n, int) and n != count:
            others[n] += 1
    return others


def _latest_failures(folder: Path, count: int, config_hash: str) -> dict[int, dict[str, Any]]:
    best: dict[int, tuple[int, str]] = {}
    for name in _names(folder / "failed"):
        m = _FAILED.match(name)
        if m and int(m[2]) == count and int(m[3]) >= best.get(int(m[1]), (0, ""))[0]:
            best[int(m[1])] = (int(m[3]), name)
    out = {}
    for index, (_, name) in best.items():
        marker = read(folder / "failed" / name)
        if marker is not None and marker.get("config_hash") == config_hash:
            out[index] = marker
    return out


def _known_jobs(folder: Path, count: int, config_hash: str) -> dict[int, list[dict[str, Any]]]:
    """Index -> the jobs recorded for it, oldest first (submission records, then running markers)."""
    jobs: dict[int, list[dict[str, Any]]] = {}
    for name in sorted(_names(folder / "submitted")):
        record = read(folder / "submitted" / name)
        if record is None or record.get("count") != count or record.get("config_hash") != config_hash:
            continue
        for index, job in (record.get("jobs") or {}).items():
            jobs.setdefault(int(index), []).append(job)
    for name in _names(folder / "running"):
        m = _DONE.match(name)
        marker = read(folder / "running" / name) if m and int(m[2]) == count else None
        if marker is not None and marker.get("config_hash") == config_hash:
            jobs.setdefault(int(m[1]), []).append(marker)
    return jobs


def shard_status(marker_folder: str | Path, count: int, config_hash: str, live: Live | None = None,
                 input_hash: str | None = None) -> ShardStatus:
    """What the markers say about each of ``count`` shards.

    A done marker counts only when it was written for this ``count`` and ``config_hash`` (and
    ``input_hash`` when given). A shard is *running* when a job recorded for it is still queued
    or running according to ``live`` (an executor's ``live``: job ids -> those still alive);
    without ``live`` nothing counts as running, since a killed worker's running marker stays.

    Args:
        marker_folder: The stage's marker folder.
        count: N, the planned number of shards.
        config_hash: The hash of the stage's settings the plan was made with.
        live: Job ids -> the subset that is still queued or running.
        input_hash: When given, done markers must also carry it.
    """
    folder = Path(marker_folder)
    done, others, stale = _done_markers(folder, count, config_hash, input_hash)
    failures = _latest_failures(folder, count, config_hash)
    jobs = _known_jobs(folder, count, config_hash) if live is not None else {}
    alive = set(live({j["job_id"] for js in jobs.values() for j in js if j.get("job_id")})) if jobs and live else set()
    shards = []
    for i in range(count):
        if i in done:
            m = done[i]
            shards.append(ShardState(i, "done", m.get("job_id"), None, attempt=m.get("attempt"), rows=m.get("rows")))
        elif (job := next((j for j in reversed(jobs.get(i, [])) if j.get("job_id") in alive), None)) is not None:
            shards.append(ShardState(i, "running", job.get("job_id"), job.get("log"), attempt=job.get("attempt")))
        elif i in failures:
            f = failures[i]
            shards.append(ShardState(i, "failed", f.get("job_id"), f.get("log"), f.get("error"), f.get("error_type"),
                                     f.get("retryable"), f.get("attempt")))
        else:
            shards.append(ShardState(i, "missing"))
    return ShardStatus(str(folder), count, tuple(shards), tuple(others), tuple(stale))
