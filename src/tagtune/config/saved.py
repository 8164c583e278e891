"""The config a run saves beside its outputs, and the hash of the settings that change results.

The compose API has no Hydra run directory, so tagtune makes ``outputs/<task>/<timestamp>/`` (or
the ``-o`` directory) itself, claims it (:func:`tagtune.files.runs.claim_dir`) and saves
``config.yaml`` there on every run: for a typed config, exactly the keys the command read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from tagtune.files.resumable import atomic_write_text
from tagtune.files.runs import claim_dir


def to_yaml(cfg: object) -> str:
    """The config as YAML text, as saved in run directories (a typed config: the keys it reads)."""
    from omegaconf import OmegaConf

    from tagtune.config.typed import to_dict

    return OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg)) if dataclasses.is_dataclass(cfg) else cfg)


def save_config(cfg: object, path: Path) -> Path:
    """Write the resolved config to ``path`` atomically (a directory gets ``config.yaml``)."""
    path = Path(path)
    if path.is_dir() or path.suffix == "":
        path = path / "config.yaml"
    atomic_write_text(path, to_yaml(cfg))
    return path


def _plain(cfg: object) -> dict[str, Any]:
    """A config (typed, DictConfig or dict) as plain containers."""
    if dataclasses.is_dataclass(cfg):
        from tagtune.config.typed import to_dict

        return to_dict(cfg)
    if isinstance(cfg, dict):
        return dict(cfg)
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)


def prepare_run_dir(cfg: object, path: str | Path | None = None) -> Path:
    """Claim the run's output directory (``paths.output_dir`` unless given) and save config.yaml."""
    run_dir = claim_dir(Path(path if path is not None else cfg.paths.output_dir), str(getattr(cfg, "task_name", None) or "tagtune"))
    atomic_write_text(run_dir / "config.yaml", to_yaml(placeless(_plain(cfg), run_dir)))
    return run_dir


def placeless(data: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The config as saved inside its own run folder: without when and where it ran (``paths.run_id``,
    ``paths.output_dir``; a value naming the folder itself is ``.``), so identical runs save identical
    bytes and a moved folder's config stays true."""
    own = {str(run_dir), str(run_dir.expanduser().resolve())}

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return "." if isinstance(value, str) and value in own else value

    data = strip(data)
    if isinstance(data.get("paths"), dict):
        data["paths"] = {k: v for k, v in data["paths"].items() if k not in ("run_id", "output_dir")}
    return data


def sidecar_config(cfg: object, output_file: Path) -> Path:
    """For commands whose output is one file: save the config as ``<file>.config.yaml`` beside it."""
    output_file = Path(output_file)
    return save_config(cfg, output_file.with_name(output_file.name + ".config.yaml"))


def config_hash(cfg: object, drop: tuple[str, ...] = ("paths",)) -> str:
    """A hash of the settings that change results (paths and timestamps excluded)."""
    data = _plain(cfg)
    for key in drop:
        data.pop(key, None)
    blob = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
