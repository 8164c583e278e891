"""Config sections that several stages read: run paths, the Lightning trainer, callbacks, loggers, tag data.

Each is a dataclass whose annotations are its schema (see :mod:`tagtune.config.typed`); the
values come from the YAML files under ``config/`` (``paths/``, ``trainer/``, ``callbacks/``,
``logger/``, ``data/``), which stay the only place defaults are written.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from tagtune.config.typed import Bad, Count, Range, Seed


@dataclass(frozen=True)
class Paths:
    """``paths/``: where runs write (``output_dir`` is ``outputs/<task>/<timestamp>`` unless ``-o``)."""

    root_dir: str
    run_id: str
    output_dir: str
    cache_dir: str


def _lightning_trainer_arg(name: str, value: Any) -> Any:
    """Keys under ``trainer`` that tagtune does not declare go to ``lightning.Trainer`` as they are."""
    import inspect

    import lightning

    params = inspect.signature(lightning.Trainer.__init__).parameters
    if name not in params:
        close = difflib.get_close_matches(name, list(params), n=1)
        raise Bad("not an argument of lightning.Trainer" + (f" (did you mean 'trainer.{close[0]}'?)" if close else ""))
    return value


@dataclass(frozen=True)
class Trainer:
    """``trainer/``: the ``lightning.Trainer`` arguments (any other Trainer argument is passed through)."""

    extra_keys: ClassVar[Callable[[str, Any], Any]] = staticmethod(_lightning_trainer_arg)
    extra_doc: ClassVar[str] = "any other argument of lightning.Trainer"

    accelerator: str
    devices: Any
    precision: Any
    max_epochs: Annotated[int, Range(min=-1)]
    max_steps: Annotated[int, Range(min=-1)]
    min_epochs: Annotated[int, Range(min=0)] | None
    gradient_clip_val: Annotated[float, Range(min=0)] | None
    accumulate_grad_batches: Count
    val_check_interval: Any
    check_val_every_n_epoch: Count | None
    log_every_n_steps: Count
    deterministic: Any
    strategy: Any
    num_nodes: Count
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    enabled: bool
    monitor: str | None
    mode: Literal["min", "max"]
    save_top_k: Annotated[int, Range(min=-1)]
    save_last: bool


@dataclass(frozen=True)
class EarlyStopping:
    enabled: bool
    monitor: str
    mode: Literal["min", "max"]
    patience: Annotated[int, Range(min=0)]
    min_delta: Annotated[float, Range(min=0)]


@dataclass(frozen=True)
class ProgressBar:
    enabled: bool


@dataclass(frozen=True)
class Callbacks:
    """``callbacks/``: checkpointing, early stopping, the progress bar."""

    model_checkpoint: Checkpoint
    early_stopping: EarlyStopping
    progress_bar: ProgressBar


@dataclass(frozen=True)
class Logger:
    """``logger/``: csv (default), wandb or none."""

    name: Literal["csv", "wandb", "none"]
    project: str | None = None
    entity: str | None = None
    offline: bool | None = None
    log_model: bool | None = None


@dataclass(frozen=True)
class TagColumns:
    """Where the tags sit in a file: the reader's part of ``data/`` (every command that reads tag sets)."""

    taxonomy_path: str
    tags_column: str | None
    category_columns: dict[str, str] | None


@dataclass(frozen=True)
class TagData(TagColumns):
    """``data/``: the training tag sets (a file, or a Hub dataset), split and batched."""

    path: str | None
    dataset_name: str | None
    dataset_split: str
    val_fraction: Annotated[float, Range(min=0, max=0.99)]
    test_fraction: Annotated[float, Range(min=0, max=0.99)]
    limit: Count | None
    split_seed: Seed
    batch_size: Count
    num_workers: Annotated[int, Range(min=0)]
