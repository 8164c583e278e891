"""Finding, listing and composing the packaged Hydra configs.

The YAML tree ships inside the wheel as ``tagtune/config``; in a source checkout or an editable
install it is the repository's top-level ``config/``. It is always found relative to this file,
never through the current directory. Composition goes through Hydra's compose API, so there is
no Hydra run directory: :func:`save_config` writes the resolved config into each run's output
directory instead. Hydra's exceptions are turned into one-line :class:`ConfigError` messages.
"""

from __future__ import annotations

import difflib
import re
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
    from tagtune.resumable import atomic_write_bytes

    return atomic_write_bytes(dest, src.read_bytes())


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


def _one_line(exc: BaseException, overrides: Sequence[str], dirs: Sequence[Path] = (), name: str = "") -> ConfigError:
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
    unknown = re.search(r"Could not override '([^']+)'", text)
    if unknown and name:  # Hydra suggests "+key=..."; the schema knows the key that was meant
        from tagtune.config_schema import describe

        key = unknown.group(1)
        known = [k for k, _ in describe(name)]
        if key in known:  # a mapping that starts empty (sample.quotas, dataset.input_licenses): its entries are new keys
            return ConfigError(f"cannot set '{key}' to a mapping with new entries this way", key=key,
                               hint=f"add each entry with +{key}.NAME=VALUE")
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        return ConfigError(f"unknown config key '{key}': nothing reads it", key=key,
                           hint=f"did you mean '{close[0]}'?" if close else "see `tagtune config show NAME` for the valid keys")
    if "Could not override" in text or "Could not append" in text or "Could not delete" in text:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return ConfigError(" ".join(lines[:2]), hint="see `tagtune config show NAME` for valid keys")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return ConfigError("; ".join(lines[:3]) or type(exc).__name__)


_USER_YAML_MAX_BYTES = 1 << 20
_USER_YAML_MAX_NODES = 100_000


def check_user_yaml(path: Path) -> None:
    """Refuse a user YAML that is huge or expands into a huge tree (a "billion laughs" of aliases).

    PyYAML keeps aliases as shared nodes; OmegaConf copies them out, so a few lines of nested
    aliases can expand to billions of values. The expanded size is counted on the node graph.
    """
    import yaml

    path = Path(path)
    if path.stat().st_size > _USER_YAML_MAX_BYTES:
        raise ConfigError(f"{path}: config file is larger than {_USER_YAML_MAX_BYTES >> 20} MiB")
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())[:160]})") from exc
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # a cycle counts once
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(v) for v in node.value)
        sizes[id(node)] = min(total, _USER_YAML_MAX_NODES + 1)
        return sizes[id(node)]

    if root is not None and size(root) > _USER_YAML_MAX_NODES:
        raise ConfigError(f"{path}: YAML aliases expand to more than {_USER_YAML_MAX_NODES:,} values",
                          hint="remove the nested anchors (&) and aliases (*)")


def _check_user_dirs(dirs: Sequence[Path]) -> None:
    for d in dirs:
        for path in sorted(Path(d).rglob("*.y*ml"))[:2000]:
            if path.suffix in (".yaml", ".yml") and path.is_file():
                check_user_yaml(path)


_GLOBAL_HEADER = re.compile(r"^#\s*@package\s+_global_\s*$", re.M)
_ANY_PACKAGE = re.compile(r"^#\s*@package\b", re.M)


def _preset_file(stage: str, preset: str, dirs: Sequence[Path]) -> Path | None:
    """The file a preset name or path refers to (None: let Hydra report the unknown name)."""
    as_path = Path(preset)
    if as_path.suffix in (".yaml", ".yml"):
        if not as_path.is_file():
            raise ConfigError(f"preset file {preset} does not exist")
        return as_path
    for root in (config_dir(), *dirs):
        candidate = Path(root) / "preset" / stage / f"{preset}.yaml"
        if candidate.is_file():
            return candidate
    return None


def _preset_override(stage: str, preset: str, dirs: Sequence[Path], tmp: Path) -> tuple[str, Path | None]:
    """``+preset/<stage>=<name>``; a preset file given by path, or one without the global package
    header, is staged (with the header) into a temporary search dir so it applies as an overlay."""
    import yaml

    path = _preset_file(stage, preset, dirs)
    if path is None:
        return f"+preset/{stage}={preset}", None
    check_user_yaml(path)  # a YAML syntax error (or an alias bomb) is one line naming the file
    text = path.read_text(encoding="utf-8")
    body = yaml.safe_load(text)
    if body is not None and not isinstance(body, Mapping):
        raise ConfigError(
            f"preset {path} is a YAML {type(body).__name__}, not a mapping of config keys",
            hint=f"start from `tagtune config cp preset/{stage}/quick_test my_preset.yaml`",
        )
    if _ANY_PACKAGE.search(text) and not _GLOBAL_HEADER.search(text):
        raise ConfigError(f"preset {path} declares a package other than _global_",
                          hint="start the file with the line: # @package _global_")
    if _GLOBAL_HEADER.search(text) and path.is_relative_to(config_dir()):
        return f"+preset/{stage}={preset}", None
    target = tmp / "preset" / stage
    target.mkdir(parents=True, exist_ok=True)
    name = f"user__{path.stem}"
    header = "" if _GLOBAL_HEADER.search(text) else "# @package _global_\n"
    (target / f"{name}.yaml").write_text(header + text, encoding="utf-8")
    return f"+preset/{stage}={name}", tmp


def _stage_recorded(stage: str, recorded: Mapping[str, Any], tmp: Path) -> Path:
    """Write recorded settings as a global preset in a temporary search dir (see ``compose``)."""
    import yaml

    target = tmp / "preset" / stage
    target.mkdir(parents=True, exist_ok=True)
    (target / "recorded__.yaml").write_text("# @package _global_\n" + yaml.safe_dump(dict(recorded)), encoding="utf-8")
    return tmp


def _check_overrides(overrides: Sequence[str]) -> None:
    for item in overrides:  # commands pass unknown flags through to the overrides
        if item.startswith("-"):
            raise ConfigError(
                f"unknown option '{item}'",
                hint="run the command with --help for its options; config overrides look like key=value",
            )
        key = item.lstrip("+~").split("=", 1)[0]
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            raise ConfigError(
                f"override '{item}': hydra.* settings have no effect in tagtune (it composes configs "
                "without Hydra's runner: no Hydra run directory, logging or multirun)",
                hint="choose the run directory with -o DIR (or paths.output_dir=DIR)",
            )


def _primary(config_name: str, dirs: list[Path]) -> tuple[Path, str, list[Path]]:
    """The directory holding the main config, its name, and the search dirs to add."""
    name, primary = config_name, config_dir()
    as_path = Path(config_name)
    if as_path.suffix in (".yaml", ".yml"):
        if not as_path.is_file():
            raise ConfigError(f"config file {config_name} does not exist")
        check_user_yaml(as_path)
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
    return primary, name, dirs


def _hydra_compose(primary: Path, name: str, overrides: list[str], user_overrides: Sequence[str],
                   dirs: Sequence[Path]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base=None, config_dir=str(primary)):
            return hydra_compose(config_name=name, overrides=overrides)
    except Exception as exc:  # Hydra raises many types; all are config problems here
        raise _one_line(exc, list(user_overrides), dirs, name) from exc
    finally:
        GlobalHydra.instance().clear()


def compose(
    config_name: str,
    overrides: Sequence[str] = (),
    preset: str | None = None,
    config_dirs: Sequence[Path] = (),
    updates: Mapping[str, Any] | None = None,
    recorded: Mapping[str, Any] | None = None,
) -> DictConfig:
    """Compose a main config with a preset, Hydra overrides and explicit updates, then validate it.

    Precedence, lowest first: the config's defaults, ``recorded``, the preset, the overrides,
    ``updates`` (values of explicit CLI flags such as ``-o`` or ``-n``). The result is resolved
    (``${now:...}`` is evaluated once, here) and checked against :mod:`tagtune.config_schema`.

    Args:
        config_name: A main config name (``vae_training``) or a path to a YAML file.
        overrides: Hydra overrides (``trainer.max_epochs=3``, ``model=vae/beta_low``).
        preset: A preset of the config's stage, or a path to a preset YAML.
        config_dirs: Extra directories searched for configs and presets.
        updates: ``{dotted.key: value}`` set after composition; keys must exist.
        recorded: Settings an earlier run recorded (``tta verify`` judges a folder with the tagmap
            and models it was made with); any preset or override still wins.

    Raises:
        ConfigError: For any composition or validation problem, in one line (``key`` set when a
            single key is at fault).
    """
    _check_overrides(overrides)
    dirs = [Path(d).expanduser() for d in config_dirs]
    _check_user_dirs(dirs)
    primary, name, dirs = _primary(config_name, dirs)
    with tempfile.TemporaryDirectory(prefix="tagtune-cfg-") as tmpdir:
        head: list[str] = []
        if recorded:
            dirs = dirs + [_stage_recorded(stage_of(name), recorded, Path(tmpdir))]
        if preset:
            preset_override, staged = _preset_override(stage_of(name), preset, dirs, Path(tmpdir))
            dirs = dirs + ([staged] if staged is not None else [])
        if dirs:
            head.append(_searchpath_override(dirs))
        if recorded:
            head.append(f"+preset/{stage_of(name)}=recorded__")
        if preset:
            head.append(preset_override)
        cfg = _hydra_compose(primary, name, [*head, *overrides], overrides, dirs)
    return _finish(cfg, name, updates or {})


def _finish(cfg: DictConfig, name: str, updates: Mapping[str, Any]) -> DictConfig:
    """Apply the flag updates, resolve, validate and convert (``"5"`` from a flag becomes 5)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from tagtune.config_schema import validate

    try:
        for key, value in updates.items():
            if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
                raise ConfigError(f"config '{name}' has no key '{key}'", key=key)
            OmegaConf.update(cfg, key, value, merge=False)
        data = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"in config '{name}': {str(exc).splitlines()[0]}") from exc
    return OmegaConf.create(validate(name, data, first=list(updates)))


def validate_file(path: Path, stage: str | None = None, config_dirs: Sequence[Path] = ()) -> list[str]:
    """Check a user's preset or main config; returns one line per main config it composed with.

    A file whose name starts with a stage (``vae_mine.yaml``) and that has a defaults list is a main
    config; anything else is a preset, checked against the main configs of its stage (``--stage``,
    else the ``preset/<stage>/`` folder it sits in, else every stage: it must fit one of them).

    Raises:
        ConfigError: The first problem (a bad key is named).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist")
    check_user_yaml(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    head = path.stem.split("_", 1)[0]
    if head in STAGES and isinstance(data, Mapping) and "defaults" in data and "_global_" not in path.read_text(encoding="utf-8"):
        compose(str(path), config_dirs=config_dirs)
        return [f"ok: {path} is a valid {head} main config"]
    parts = path.resolve().parts
    stage = stage or next((s for s in STAGES if ("preset", s) in zip(parts, parts[1:])), None)
    candidates = [stage] if stage else sorted(STAGES, key=lambda s: -_fit(data, s))
    errors: list[ConfigError] = []
    for st in candidates:
        mains = [m for m in main_configs(config_dirs) if m.split("_", 1)[0] == st or m == st]
        try:
            for main in mains:
                compose(main, preset=str(path), config_dirs=config_dirs)
        except ConfigError as exc:
            errors.append(exc)
            continue
        return [f"ok: {path} is a valid {st} preset ({', '.join(mains)})"]
    raise errors[0]  # from the stage the preset's keys fit best


def _fit(preset: Any, stage: str) -> int:
    """How many of a preset's top-level keys the stage's main configs know (which stage it is for)."""
    from tagtune.config_schema import SCHEMAS

    keys = set(preset) if isinstance(preset, Mapping) else set()
    known = {k for name, spec in SCHEMAS.items() if name.split("_", 1)[0] == stage for k in spec.fields}
    return len(keys & known)


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
