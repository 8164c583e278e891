"""The typed ``executor`` section (``config/executor/{local,slurm,ray}.yaml``).

Annotations are the schema (:mod:`tagtune.config.typed`); the values and their defaults live only
in the YAML files. The settings of one executor sit in their own sub-section (``executor.slurm``,
``executor.ray``), present only in that executor's YAML, so an override meant for another
executor is refused by name instead of silently ignored. A third-party executor reads
``executor.options``. Light to import: dataclasses and typing only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from tagtune.config.typed import Count, Range
from tagtune.errors import ConfigError

__all__ = ["ExecutorConfig", "RaySettings", "Resources", "Shards", "SlurmSettings", "section"]


@dataclass(frozen=True)
class Resources:
    """What one shard task asks of the scheduler (``executor.resources``)."""

    gpus: Annotated[int, Range(min=0)]
    cpus: Count
    memory_gb: Annotated[float, Range(above=0)] | None
    time_minutes: Count


@dataclass(frozen=True)
class Shards:
    """Shard count N per sharded stage: more shards than GPUs, so a killed task costs a fraction."""

    caption: Count
    tta: Count
    verify: Count


@dataclass(frozen=True)
class SlurmSettings:
    """``executor.slurm``: how the job arrays are written (see config/executor/slurm.yaml)."""

    cluster: Literal["slurm", "local"]
    partition: str | None
    driver_partition: str | None  # executor.wait: false: where the CPU driver job goes (None: partition)
    account: str | None
    qos: str | None
    gres: str | None
    setup: list[str]
    additional: dict[str, Any]
    array_parallelism: Count
    max_array_size: Count
    max_num_timeout: Annotated[int, Range(min=0)]
    poll_seconds: Annotated[float, Range(above=0)]


@dataclass(frozen=True)
class RaySettings:
    """``executor.ray``: which cluster, and how tasks are retried and timed out."""

    address: str
    max_retries: Annotated[int, Range(min=-1)]
    task_timeout_minutes: Annotated[float, Range(above=0)] | None


@dataclass(frozen=True)
class ExecutorConfig:
    """``executor``: where the shard tasks of the sharded stages run."""

    name: str
    shards: Shards
    wait: bool
    resources: Resources
    driver_minutes: Count  # wait: false: the time limit of the one CPU job that runs the pipeline on the cluster
    slurm: SlurmSettings | None = None
    ray: RaySettings | None = None
    options: dict[str, Any] = field(default_factory=dict)


def section(cfg: ExecutorConfig, name: Literal["slurm", "ray"]) -> Any:
    """An executor's own settings, or a one-line error naming the key when its YAML lacks them."""
    value = getattr(cfg, name)
    if value is None:
        raise ConfigError(f"executor.{name}: missing: the {name} executor reads its settings there",
                          key=f"executor.{name}", hint=f"select the whole option with executor={name}")
    return value
