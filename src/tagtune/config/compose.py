"""Composing the packaged Hydra configs into a command's typed config.

Composition goes through Hydra's compose API (the tree is found by :mod:`tagtune.config.tree`),
so there is no Hydra run directory: :mod:`tagtune.config.saved` writes the resolved config into
each run's output directory instead. Hydra's exceptions are turned into one-line
:class:`ConfigError` messages, and the result is checked against the command's config class
(:mod:`tagtune.config.typed`).
"""

from __future__ import annotations

import difflib
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagtune.config import aliases
from tagtune.config.tree import config_dir, groups, main_configs, stage_of
from tagtune.config.yamlcheck import check_user_dirs, check_user_yaml
from tagtune.errors import ConfigError
from tagtune.files.readers import missing_file

if TYPE_CHECKING:  # omegaconf is light, but keep module import free of it for `tagtune --help`
    from omegaconf import DictConfig

# Stages whose commands take --preset, and the main config each command composes.
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


def _one_line(exc: BaseException, overrides: Sequence[str], dirs: Sequence[Path] = (), name: str = "",
              classes: Sequence[type] = ()) -> ConfigError:
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
        key = unknown.group(1)
        from tagtune.config.typed import keys

        known = sorted({k for c in classes for k in keys(c)})
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


_GLOBAL_HEADER = re.compile(r"^#\s*@package\s+_global_\s*$", re.M)
_ANY_PACKAGE = re.compile(r"^#\s*@package\b", re.M)


def _preset_file(stage: str, preset: str, dirs: Sequence[Path]) -> Path | None:
    """The file a preset name or path refers to (None: let Hydra report the unknown name)."""
    as_path = Path(preset)
    if as_path.suffix in (".yaml", ".yml"):
        if not as_path.is_file():
            raise ConfigError(f"preset file {preset}: {missing_file(as_path, 'file')}")
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
    text = path.read_text(encoding="utf-8-sig")  # a BOM (Notepad's) is not part of the first key
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
            raise ConfigError(f"config file {config_name}: {missing_file(as_path, 'file')}")
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
                   dirs: Sequence[Path], schema: type | None = None,
                   siblings: Sequence[tuple[str, type]] = ()) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base=None, config_dir=str(primary)):
            return hydra_compose(config_name=name, overrides=overrides)
    except Exception as exc:  # Hydra raises many types; all are config problems here
        raise _one_line(exc, list(user_overrides), dirs, name, [c for c in [schema] if c] + [c for _, c in siblings]) from exc
    finally:
        GlobalHydra.instance().clear()


def compose(
    config_name: str,
    overrides: Sequence[str] = (),
    preset: str | None = None,
    config_dirs: Sequence[Path] = (),
    updates: Mapping[str, Any] | None = None,
    recorded: Mapping[str, Any] | None = None,
    *,
    schema: type | None = None,
    command: str | None = None,
    siblings: Sequence[tuple[str, type]] = (),
    strict: bool = True,
    notes: list[str] | None = None,
) -> Any:
    """Compose a main config with a preset, Hydra overrides and explicit updates, then validate it.

    Precedence, lowest first: the config's defaults, ``recorded``, the preset, the overrides,
    ``updates`` (values of explicit CLI flags such as ``-o`` or ``-n``). The result is resolved
    (``${now:...}`` is evaluated once, here) and, given the command's ``schema``, built as its typed config.

    Args:
        config_name: A main config name (``vae_training``) or a path to a YAML file.
        overrides: Hydra overrides (``trainer.max_epochs=3``, ``model=vae/beta_low``).
        preset: A preset of the config's stage, or a path to a preset YAML.
        config_dirs: Extra directories searched for configs and presets.
        updates: ``{dotted.key: value}`` set after composition; keys must exist.
        recorded: Settings an earlier run recorded (``tta verify`` judges a folder with the tagmap
            and models it was made with); any preset or override still wins.
        schema: The command's typed config class: the result is an instance of it holding only
            the keys the command reads; a key the user set that it does not read is refused.
        command: The command's name for messages (``caption infer``).
        siblings: ``(command, class)`` of the other commands sharing the main config or its
            stage's presets: keys only they read are checked and dropped, not refused.
        strict: Refuse a key the overrides set that the command does not read (False: the
            pipeline, whose stage overrides serve several commands, checks that itself).
        notes: Receives one line per alias name that was rewritten (``inference.num_samples``).

    Raises:
        ConfigError: For any composition or validation problem, in one line (``key`` set when a
            single key is at fault).
    """
    _check_overrides(overrides)
    dirs = [Path(d).expanduser() for d in config_dirs]
    check_user_dirs(dirs)
    primary, name, dirs = _primary(config_name, dirs)
    notes = notes if notes is not None else []
    overrides = aliases.rewrite(stage_of(name), overrides, notes)
    cfg = _compose_staged(primary, name, overrides, preset, dirs, recorded, schema, siblings)
    data = _finish(cfg, name, updates or {})
    aliases.move(stage_of(name), data, notes)
    if schema is None:  # the whole main config (``config show``); tagtune.pipeline.registry checks it
        from omegaconf import OmegaConf

        return OmegaConf.create(data)
    from tagtune.config.typed import build

    user_keys = ([override_key(o) for o in overrides] if strict else []) + list(updates or {})
    return build(schema, data, command=command, siblings=siblings, user_keys=user_keys, first=list(updates or {}))


def _compose_staged(primary: Path, name: str, overrides: Sequence[str], preset: str | None, dirs: list[Path],
                    recorded: Mapping[str, Any] | None, schema: type | None, siblings: Sequence[tuple[str, type]]) -> Any:
    """Hydra's compose with the preset and recorded settings staged as configs in a temporary folder."""
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
        try:
            cfg = _hydra_compose(primary, name, [*head, *overrides], overrides, dirs, schema, siblings)
        except ConfigError as exc:  # name the user's preset, not tagtune's staged copy of it
            if preset and staged is not None:
                copy = str(staged / "preset" / stage_of(name) / f"user__{Path(preset).stem}.yaml")
                raise ConfigError(exc.message.replace(copy, str(preset)), hint=exc.hint, key=exc.key) from exc
            raise
    return cfg


def override_key(override: str) -> str:
    """The dotted key an override sets (``+trainer.x=1`` -> ``trainer.x``; ``model=vae/beta_low`` -> ``model``)."""
    return override.lstrip("+~").split("=", 1)[0].strip().replace("/", ".")


def _finish(cfg: DictConfig, name: str, updates: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the flag updates and resolve (``${now:...}`` once) into plain containers."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        for key, value in updates.items():
            if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
                raise ConfigError(f"config '{name}' has no key '{key}'", key=key)
            OmegaConf.update(cfg, key, value, merge=False)
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"in config '{name}': {str(exc).splitlines()[0]}") from exc
