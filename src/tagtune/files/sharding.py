"""Deterministic work splitting across processes, GPUs and nodes.

A shard owns the items whose stable id hash falls in its residue class, so the split does not
depend on input order, batch size or how many items were already done, and the union of all
shards is exactly the unsharded work. The shard comes from ``--shard I/N`` or, when that is not
given, from the launcher's environment (torchrun, then a SLURM array, then SLURM tasks).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from tagtune.errors import ConfigError
from tagtune.files.ids import stable_hash


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1
    source: str = "default"

    def owns(self, item_id: str) -> bool:
        return self.count == 1 or stable_hash(str(item_id)) % self.count == self.index

    @property
    def is_sharded(self) -> bool:
        return self.count > 1

    @property
    def tag(self) -> str:
        """File-name suffix for this shard's outputs, e.g. ``shard-00001-of-00008``."""
        return f"shard-{self.index:05d}-of-{self.count:05d}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(spec: str | None) -> Shard:
    """Parse ``I/N`` (0 <= I < N)."""
    if spec is None or str(spec).strip() == "":
        return Shard()
    text = str(spec).strip()
    try:
        left, right = text.split("/")
        index, count = int(left), int(right)
    except ValueError:
        raise ConfigError(f"bad --shard '{spec}': expected I/N such as 0/4", hint="I counts from 0 to N-1") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"bad --shard '{spec}': need 0 <= I < N and N >= 1", hint="e.g. --shard 3/8")
    return Shard(index, count, "--shard")


def _int_env(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer") from None


def shard_from_env(env: Mapping[str, str] | None = None) -> Shard:
    """The shard implied by torchrun (RANK/WORLD_SIZE) or SLURM, else the whole job."""
    env = os.environ if env is None else env
    rank, world = _int_env(env, "RANK"), _int_env(env, "WORLD_SIZE")
    if rank is not None and world is not None and world > 1:
        return Shard(rank, world, "torchrun")
    task, task_count = _int_env(env, "SLURM_ARRAY_TASK_ID"), _int_env(env, "SLURM_ARRAY_TASK_COUNT")
    if task is not None and task_count is not None and task_count > 1:
        first = _int_env(env, "SLURM_ARRAY_TASK_MIN") or 0
        return Shard(task - first, task_count, "slurm-array")
    procid, ntasks = _int_env(env, "SLURM_PROCID"), _int_env(env, "SLURM_NTASKS")
    if procid is not None and ntasks is not None and ntasks > 1:
        return Shard(procid, ntasks, "slurm-tasks")
    return Shard()


def resolve_shard(spec: str | None, env: Mapping[str, str] | None = None) -> Shard:
    """``--shard`` when given, else the launcher's environment."""
    shard = parse_shard(spec) if spec else shard_from_env(env)
    if not 0 <= shard.index < shard.count:
        raise ConfigError(f"shard {shard.index}/{shard.count} from {shard.source} is out of range")
    return shard


def local_device_index(env: Mapping[str, str] | None = None) -> int:
    """The GPU a worker should use: LOCAL_RANK (torchrun) or SLURM_LOCALID, else 0."""
    env = os.environ if env is None else env
    for name in ("LOCAL_RANK", "SLURM_LOCALID"):
        value = _int_env(env, name)
        if value is not None:
            return value
    return 0
