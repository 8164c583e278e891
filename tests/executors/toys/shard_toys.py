"""Toy shard targets for the executor tests (imported by name in workers: this folder is put on
PYTHONPATH by tests/executors/conftest.py). Not tagtune stages: small functions with the same
contract -- idempotent, resumable per id, returning ``{"rows": ...}``."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tagtune.errors import InputError


class OutOfMemoryError(RuntimeError):
    """Named like torch's CUDA out-of-memory error (which executors must not retry)."""


def write_ids(out_dir: str, shard: str, ids: int = 12, fail: tuple[int, ...] = (), oom: tuple[int, ...] = (),
              kill_first: tuple[int, ...] = (), sleep: float = 0.0, hold: str | None = None) -> dict:
    """Write one file per id this shard owns (id k belongs to shard k % N), skipping finished ids.

    Every call appends a line to ``calls-<index>.txt`` (so tests count attempts). ``fail``: shards
    that raise a tagtune InputError; ``oom``: shards that raise an OutOfMemoryError; ``kill_first``:
    shards that SIGKILL their own process on their first call; ``hold``: a file to wait for before
    working (for signal tests); ``sleep``: seconds to spend.
    """
    index, count = (int(x) for x in shard.split("/"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    calls = out / f"calls-{index}.txt"
    first = not calls.exists()
    with open(calls, "a") as fh:
        fh.write(f"{os.getpid()} {time.time()}\n")
    if index in fail:
        raise InputError(f"bad input in shard {index}", path=out / "input.jsonl", line=3)
    if index in oom:
        raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    if index in kill_first and first:
        os.kill(os.getpid(), signal.SIGKILL)
    while hold is not None and not Path(hold).exists():
        time.sleep(0.05)
    time.sleep(sleep)
    owned = [k for k in range(ids) if k % count == index]
    for k in owned:
        path = out / f"id-{k:04d}.txt"
        if not path.exists():
            path.write_text(f"{k} written by shard {index}/{count}\n")
    return {"rows": len(owned)}
