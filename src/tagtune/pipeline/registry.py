"""Every command with its main config and typed config class, and checking whole config files against them.

A main config (``tta_inference``) serves several commands, each reading a part of it. A whole main
config, or a preset, is valid when every key in it is read by some command of its stage, with a
value that command accepts: :func:`check_main` builds the stage's commands from it. ``tagtune
config show`` and ``config validate`` check through here, and ``scripts/gen_docs.py`` lists, for
every key, the commands that read it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagtune.caption import config as caption_config
from tagtune.config.commands import Command, siblings_of
from tagtune.config.compose import compose
from tagtune.config.tree import STAGES, main_configs, stage_of
from tagtune.config.typed import build, keys
from tagtune.config.yamlcheck import check_user_yaml
from tagtune.errors import ConfigError
from tagtune.files.readers import missing_file
from tagtune.pipeline import config as pipeline_config
from tagtune.plugins import Family
from tagtune.tta import config as tta_config
from tagtune.vae import config as vae_config

if TYPE_CHECKING:
    from omegaconf import DictConfig


def families() -> list[Family]:
    """Every extension family, in the order a dataset is made (``tagtune plugins`` lists them)."""
    from tagtune.caption.backends import CAPTION_BACKENDS
    from tagtune.executors.base import EXECUTORS
    from tagtune.pipeline.exporters.base import EXPORTERS
    from tagtune.tta.backbones import BACKBONES
    from tagtune.tta.backends.base import AUDIO_BACKENDS
    from tagtune.tta.checkers import CHECKERS

    return [CAPTION_BACKENDS, AUDIO_BACKENDS, CHECKERS, BACKBONES, EXPORTERS, EXECUTORS]


COMMANDS: tuple[Command, ...] = (*vae_config.COMMANDS, *caption_config.COMMANDS, *tta_config.COMMANDS,
                                 *pipeline_config.COMMANDS)
BY_NAME = {c.name: c for c in COMMANDS}


def plain(cfg: DictConfig) -> dict[str, Any]:
    """A composed main config (OmegaConf) as plain containers."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)


def commands_of(main: str) -> list[Command]:
    """The commands that compose a main config (a user's ``vae_mine``: its stage's, of the first main config)."""
    own = [c for c in COMMANDS if c.main == main]
    if own:
        return own
    stage = stage_of(main)
    first = next((c.main for c in COMMANDS if c.stage == stage), None)
    return [c for c in COMMANDS if c.main == first]


def check_main(main: str, data: Mapping[str, Any]) -> None:
    """Check a composed main config: each key is read by a command of the stage, with a value it takes.

    Raises:
        ConfigError: The first problem, naming its dotted key.
    """
    own = commands_of(main)
    if own:
        build(own[0].schema, data, command=own[0].name, siblings=siblings_of(own[0], COMMANDS))


def readers(main: str) -> list[tuple[str, list[str]]]:
    """``(dotted key, the commands that read it)`` for every key of a main config's commands (docs)."""
    found: dict[str, list[str]] = {}
    for command in commands_of(main):
        for key in keys(command.schema):
            found.setdefault(key, []).append(command.name)
    return sorted(found.items())


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
        raise ConfigError(f"{path}: {missing_file(path, 'file')}")
    check_user_yaml(path)
    text = path.read_text(encoding="utf-8-sig")
    data = yaml.safe_load(text)
    head = path.stem.split("_", 1)[0]
    if head in STAGES and isinstance(data, Mapping) and "defaults" in data and "_global_" not in text:
        check_main(path.stem, plain(compose(str(path), config_dirs=config_dirs)))
        return [f"ok: {path} is a valid {head} main config"]
    if stage is not None and stage not in STAGES:
        import difflib

        close = difflib.get_close_matches(stage, STAGES, n=1)
        raise ConfigError(f"unknown stage '{stage}' (--stage): the stages are {', '.join(STAGES)}",
                          hint=f"did you mean '{close[0]}'?" if close else None)
    parts = path.resolve().parts
    stage = stage or next((s for s in STAGES if ("preset", s) in zip(parts, parts[1:])), None)
    candidates = [stage] if stage else sorted(STAGES, key=lambda s: -_fit(data, s))
    errors: list[ConfigError] = []
    for st in candidates:
        mains = [m for m in main_configs(config_dirs) if m.split("_", 1)[0] == st or m == st]
        try:
            for main in mains:
                check_main(main, plain(compose(main, preset=str(path), config_dirs=config_dirs)))
        except ConfigError as exc:
            errors.append(exc)
            continue
        return [f"ok: {path} is a valid {st} preset ({', '.join(mains)})"]
    raise errors[0]  # from the stage the preset's keys fit best


def _fit(preset: Any, stage: str) -> int:
    """How many of a preset's top-level keys the stage's commands read (which stage a preset is for)."""
    top = set(preset) if isinstance(preset, Mapping) else set()
    known = {k.split(".")[0] for c in COMMANDS if c.stage == stage for k in keys(c.schema)}
    return len(top & known)
