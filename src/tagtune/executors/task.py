"""One shard task of a stage: what a worker imports and calls, and where it records that it finished.

Its own module so that the executors' pieces (outcomes, markers, the executors) all depend on it
and it depends on none of them but the marker names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tagtune.executors import markers

__all__ = ["ShardTask", "slug"]


@dataclass(frozen=True)
class ShardTask:
    """Shard ``index`` of ``count`` of a stage: ``target(**kwargs)`` run under ``run_dir``.

    Attributes:
        target: ``module:function``, imported in the worker (so it must be importable there).
        kwargs: JSON-able keyword arguments (checked here, so a bad plan fails before submission).
        run_dir: The run's output folder; it must be on storage every worker sees.
        marker_dir: The stage's marker folder.
        config_hash, input_hash: What the plan was made from; a done marker counts only for them.
    """

    stage: str
    index: int
    count: int
    target: str
    kwargs: dict[str, Any]
    run_dir: str
    marker_dir: str
    config_hash: str
    input_hash: str

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index {self.index} is outside 0..{self.count - 1}")
        module, _, function = self.target.partition(":")
        if not module or not function:
            raise ValueError(f"target {self.target!r} is not 'module:function'")
        try:
            json.dumps(self.kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the kwargs of {self.name} are not JSON-able: {exc}") from None
        object.__setattr__(self, "run_dir", str(self.run_dir))
        object.__setattr__(self, "marker_dir", str(self.marker_dir))

    @property
    def name(self) -> str:
        """``tta shard 3/8``, for messages."""
        return f"{self.stage} shard {self.index}/{self.count}"

    @property
    def tag(self) -> str:
        return markers.tag(self.index, self.count)

    @property
    def slug(self) -> str:
        """The stage as a job name and folder name (``tta generate`` -> ``tta-generate``): schedulers
        and shells handle names without spaces best, and ``SLURM_STANDIN_FAIL`` names stages so."""
        return slug(self.stage)


def slug(stage: str) -> str:
    """``tta generate`` -> ``tta-generate`` (letters, digits, ``._-`` only)."""
    return re.sub(r"[^0-9A-Za-z_.-]+", "-", stage.strip()) or "stage"
