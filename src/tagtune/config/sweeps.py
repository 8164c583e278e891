"""Expanding a ``sweeps/`` config (a grid of overrides) into ``tagtune`` command lines."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

from tagtune.config.tree import find_yaml
from tagtune.errors import ConfigError


def _fmt(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def expand_sweep(name: str, output_dir: Path | None, extra: list[str], config_dirs: list[Path]) -> list[list[str]]:
    """One argv (without the leading ``tagtune``) per grid combination, each with its own ``-o``."""
    import yaml

    path = find_yaml(name if name.endswith((".yaml", ".yml")) else f"sweeps/{name}", config_dirs)
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    command, grid = spec.get("command"), spec.get("grid")
    if not isinstance(command, str) or not isinstance(grid, dict) or not grid:
        raise ConfigError(f"{path}: a sweep needs `command: <stage> <command>` and a non-empty `grid:` mapping")
    keys = list(grid)
    values = [v if isinstance(v, list) else [v] for v in grid.values()]
    root = Path(output_dir) if output_dir else Path("outputs") / "sweeps" / path.stem
    runs = []
    for combo in itertools.product(*values):
        label = "_".join(f"{k.split('.')[-1]}-{_fmt(v)}" for k, v in zip(keys, combo))
        argv = command.split() + [f"{k}={_fmt(v)}" for k, v in zip(keys, combo)] + ["-o", str(root / label)] + extra
        runs.append(argv)
    return runs


def run_one(argv: list[str]) -> bool:
    """Run one command of a sweep in a fresh process; True when it succeeded."""
    return subprocess.run([sys.executable, "-m", "tagtune", *argv]).returncode == 0
