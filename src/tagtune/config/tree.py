"""The packaged config tree: where it is, what it holds (main configs, groups, presets), copying out.

The YAML tree ships inside the wheel as ``tagtune/configs``; in a source checkout or an editable
install it is the repository's top-level ``config/``. It is always found relative to this file,
never through the current directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tagtune.errors import ConfigError
from tagtune.files.resumable import atomic_write_bytes

STAGES = ("vae", "caption", "tta", "pipeline")
_IGNORED_DIRS = {"__pycache__"}


def config_dir() -> Path:
    """The directory holding the packaged config tree (wheel or source checkout)."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "configs", package.parent.parent / "config"):
        if (candidate / "vae_training.yaml").is_file():
            return candidate
    raise ConfigError(
        f"the packaged configs are missing (looked in {package / 'configs'})",
        hint="reinstall tagtune: pip install --force-reinstall tagtune",
    )


def stage_of(config_name: str) -> str:
    """The stage a main config belongs to, read from its name (``caption_inference`` -> ``caption``)."""
    head = Path(config_name).stem.split("_", 1)[0]
    if head not in STAGES:
        raise ConfigError(
            f"cannot tell the stage of config '{config_name}': its name must start with one of "
            + ", ".join(f"'{s}_'" for s in STAGES)
        )
    return head


def main_configs(extra_dirs: Sequence[Path] = ()) -> list[str]:
    """Names of the main configs: the YAML files at the top of the tree (and of each extra dir)."""
    names = {p.stem for p in config_dir().glob("*.yaml")}
    for d in extra_dirs:
        names |= {p.stem for p in Path(d).glob("*.yaml")}
    return sorted(names)


def groups(extra_dirs: Sequence[Path] = ()) -> dict[str, list[str]]:
    """Every config group (``model/vae``, ``preset/tta``, ``trainer`` ...) and its options, by scanning."""
    found: dict[str, set[str]] = {}
    for root in (config_dir(), *map(Path, extra_dirs)):
        for path in root.rglob("*.yaml"):
            rel = path.relative_to(root)
            if len(rel.parts) < 2 or _IGNORED_DIRS & set(rel.parts):
                continue
            found.setdefault(rel.parent.as_posix(), set()).add(path.stem)
    return {g: sorted(opts) for g, opts in sorted(found.items())}


def presets(stage: str, extra_dirs: Sequence[Path] = ()) -> list[str]:
    """The presets of one stage (options of ``preset/<stage>``)."""
    return groups(extra_dirs).get(f"preset/{stage}", [])


def find_yaml(name: str, extra_dirs: Sequence[Path] = ()) -> Path:
    """Locate a main config (``vae_training``), a group option (``model/vae/default``) or a file path."""
    as_path = Path(name)
    if as_path.suffix in (".yaml", ".yml") and as_path.is_file():
        return as_path
    rel = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
    for root in (config_dir(), *map(Path, extra_dirs)):
        if (root / rel).is_file():
            return root / rel
    known = main_configs(extra_dirs) + [f"{g}/{o}" for g, opts in groups(extra_dirs).items() for o in opts]
    close = [k for k in known if Path(name).name in k][:8]
    raise ConfigError(
        f"no config named '{name}'" + (f"; did you mean: {', '.join(close)}" if close else ""),
        hint="see `tagtune config list`",
    )


def copy_config(name: str, dest: Path, extra_dirs: Sequence[Path] = (), force: bool = False) -> Path:
    """Copy a packaged config out for editing (like ``tune cp``); returns the written path."""
    src = find_yaml(name, extra_dirs)
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / src.name
    if dest.exists() and not force:
        raise ConfigError(f"{dest} already exists", hint="pass --force to overwrite it")
    return atomic_write_bytes(dest, src.read_bytes())
