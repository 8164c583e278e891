"""Run directories: where each command writes, with its resolved config and a manifest.

The compose API has no Hydra run directory, so tagtune makes ``outputs/<task>/<timestamp>/``
(or the ``-o`` directory) itself and saves ``config.yaml`` there on every run.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any

from tagtune import __version__
from tagtune.config import save_config
from tagtune.resumable import atomic_write_json, ensure_dir


def prepare_run_dir(cfg: Any, path: str | Path | None = None) -> Path:
    """Create the run's output directory (``paths.output_dir`` unless given) and save config.yaml."""
    run_dir = ensure_dir(Path(path if path is not None else cfg.paths.output_dir).expanduser())
    save_config(cfg, run_dir / "config.yaml")
    return run_dir


def sidecar_config(cfg: Any, output_file: Path) -> Path:
    """For commands whose output is one file: save the config as ``<file>.config.yaml`` beside it."""
    output_file = Path(output_file)
    return save_config(cfg, output_file.with_name(output_file.name + ".config.yaml"))


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def config_hash(cfg: Any, drop: tuple[str, ...] = ("paths",)) -> str:
    """A hash of the settings that change results (paths and timestamps excluded)."""
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else dict(cfg)
    for key in drop:
        data.pop(key, None)
    blob = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def write_manifest(path: Path, **fields: Any) -> Path:
    """A small JSON record of a run: what went in, what came out, how long it took."""
    record = {
        "tagtune_version": __version__,
        "python": platform.python_version(),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **fields,
    }
    return atomic_write_json(Path(path), record)
