"""Finding, listing and composing the packaged Hydra configs.

The YAML tree ships inside the wheel as ``tagtune/config``; in a source checkout or an editable
install it is the repository's top-level ``config/``. It is always found relative to this file,
never through the current directory. Composition goes through Hydra's compose API, so there is
no Hydra run directory: :func:`save_config` writes the resolved config into each run's output
directory instead. Hydra's exceptions are turned into one-line :class:`ConfigError` messages.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagtune.errors import ConfigError

if TYPE_CHECKING:  # omegaconf is light, but keep module import free of it for `tagtune --help`
    from omegaconf import DictConfig

# Stages whose commands take --preset, and the main config each command composes.
STAGES = ("vae", "caption", "tta", "pipeline")
_IGNORED_DIRS = {"__pycache__"}


def config_dir() -> Path:
    """The directory holding the packaged config tree (wheel or source checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "config", here.parent.parent / "config"):
        if (candidate / "vae_training.yaml").is_file():
            return candidate
    raise ConfigError(
        f"the packaged configs are missing (looked in {here / 'config'})",
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
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


def _searchpath_override(dirs: Sequence[Path]) -> str:
    items = []
    for d in dirs:
        d = Path(d).expanduser().resolve()
        if not d.is_dir():
            raise ConfigError(f"--config-dir {d} is not a directory")
        items.append(f"file://{d}")
    return "hydra.searchpath=[" + ",".join(items) + "]"


def _culprit_override(overrides: Sequence[str]) -> str | None:
    """Find which override fails to parse (Hydra's message does not say)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for o in overrides:
        try:
            parser.parse_overrides([o])
        except Exception:
            return o
    return None


def _one_line(exc: BaseException, overrides: Sequence[str], dirs: Sequence[Path] = ()) -> ConfigError:
    """Condense a Hydra / OmegaConf exception into one readable ConfigError."""
    from hydra.errors import MissingConfigException, OverrideParseException

    text = str(exc)
    if not text.strip() and exc.__cause__ is not None:  # Hydra sometimes wraps an OmegaConf error
        text = str(exc.__cause__)
    text = text.split("\nConfig search path:")[0]
    if isinstance(exc, OverrideParseException):
        bad = _culprit_override(overrides)
        first = text.strip().splitlines()[0] if text.strip() else "syntax error"
        return ConfigError(
            f"cannot parse override '{bad}': {first}" if bad else f"cannot parse overrides: {first}",
            hint="overrides look like key=value, +new_key=value or group=option",
        )
    if isinstance(exc, MissingConfigException) or "Could not find" in text or "Could not load" in text:
        m = re.search(r"Could not (?:find|load) '([^']+)'", text)
        opts = re.findall(r"^\t(\S+)$", text, flags=re.M)
        missing = m.group(1) if m else "config"
        msg = f"could not find '{missing}'"
        group = missing.rsplit("/", 1)[0]
        opts = opts or groups(dirs).get(group, [])
        if opts:
            msg += f"; available options in '{group}': {', '.join(opts)}"
        elif "primary config" in text or not m:
            msg = text.strip().splitlines()[0]
        return ConfigError(msg, hint="see `tagtune config list`")
    if "Could not override" in text or "Could not append" in text or "Could not delete" in text:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return ConfigError(" ".join(lines[:2]), hint="see `tagtune config show NAME` for valid keys")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return ConfigError("; ".join(lines[:3]) or type(exc).__name__)


def _preset_override(stage: str, preset: str, tmp: Path) -> tuple[str, Path | None]:
    """``+preset/<stage>=<name>``; a preset given as a file path is staged into a temp search dir."""
    as_path = Path(preset)
    if as_path.suffix in (".yaml", ".yml"):
        if not as_path.is_file():
            raise ConfigError(f"preset file {preset} does not exist")
        target = tmp / "preset" / stage
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(as_path, target / as_path.name)
        return f"+preset/{stage}={as_path.stem}", tmp
    return f"+preset/{stage}={preset}", None


def compose(
    config_name: str,
    overrides: Sequence[str] = (),
    preset: str | None = None,
    config_dirs: Sequence[Path] = (),
    updates: Mapping[str, Any] | None = None,
    resolve: bool = True,
) -> DictConfig:
    """Compose a main config with a preset, Hydra overrides and explicit updates.

    Precedence, lowest first: the config's defaults, the preset, the overrides, ``updates``
    (values of explicit CLI flags such as ``-o`` or ``-n``).

    Args:
        config_name: A main config name (``vae_training``) or a path to a YAML file.
        overrides: Hydra overrides (``trainer.max_epochs=3``, ``model=vae/beta_low``).
        preset: A preset of the config's stage, or a path to a preset YAML.
        config_dirs: Extra directories searched for configs and presets.
        updates: ``{dotted.key: value}`` set after composition; keys must exist.
        resolve: Resolve interpolations (``${now:...}`` is evaluated once, here).

    Raises:
        ConfigError: For any composition problem, in one line.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    for item in overrides:  # commands pass unknown flags through to the overrides
        if item.startswith("-"):
            raise ConfigError(
                f"unknown option '{item}'",
                hint="run the command with --help for its options; config overrides look like key=value",
            )
    dirs = [Path(d).expanduser() for d in config_dirs]
    name = config_name
    primary = config_dir()
    as_path = Path(config_name)
    if as_path.suffix in (".yaml", ".yml"):
        if not as_path.is_file():
            raise ConfigError(f"config file {config_name} does not exist")
        primary, name = as_path.parent.resolve(), as_path.stem
    elif not (primary / f"{name}.yaml").is_file():
        owner = next((d for d in dirs if (d / f"{name}.yaml").is_file()), None)
        if owner is None:
            raise ConfigError(
                f"no main config named '{name}'; available: {', '.join(main_configs(dirs))}",
                hint="see `tagtune config list`",
            )
        primary = owner.resolve()
    if primary != config_dir():  # a user's main config still sees the packaged groups
        dirs = [d for d in dirs if d.resolve() != primary] + [config_dir()]

    with tempfile.TemporaryDirectory(prefix="tagtune-cfg-") as tmpdir:
        all_overrides: list[str] = []
        if preset:
            preset_override, staged = _preset_override(stage_of(name), preset, Path(tmpdir))
            if staged is not None:
                dirs.append(staged)
        if dirs:
            all_overrides.append(_searchpath_override(dirs))
        if preset:
            all_overrides.append(preset_override)
        all_overrides.extend(overrides)

        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(version_base=None, config_dir=str(primary)):
                cfg = hydra_compose(config_name=name, overrides=all_overrides)
        except Exception as exc:  # Hydra raises many types; all are config problems here
            raise _one_line(exc, list(overrides), dirs) from exc
        finally:
            GlobalHydra.instance().clear()

    try:
        for key, value in (updates or {}).items():
            if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
                raise ConfigError(f"config '{name}' has no key '{key}'")
            OmegaConf.update(cfg, key, value, merge=False)
        if resolve:
            OmegaConf.resolve(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"in config '{name}': {str(exc).splitlines()[0]}") from exc
    return cfg


def to_yaml(cfg: Any) -> str:
    """The config as YAML text, as saved in run directories."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(cfg)


def save_config(cfg: Any, path: Path) -> Path:
    """Write the resolved config to ``path`` atomically (a directory gets ``config.yaml``)."""
    from tagtune.resumable import atomic_write_text

    path = Path(path)
    if path.is_dir() or path.suffix == "":
        path = path / "config.yaml"
    atomic_write_text(path, to_yaml(cfg))
    return path


def load_config(path: Path) -> DictConfig:
    """Read a saved ``config.yaml`` (e.g. from a model directory)."""
    from omegaconf import OmegaConf

    try:
        cfg = OmegaConf.load(path)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist") from exc
    except Exception as exc:
        raise ConfigError(f"{path}: not a readable YAML config ({str(exc).splitlines()[0]})") from exc
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return cfg  # type: ignore[return-value]
