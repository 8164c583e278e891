"""Commands and the typed configs they read: one :class:`Command` per ``tagtune`` stage command.

Several commands share a main config (``vae train``, ``vae sample`` and ``vae evaluate`` compose
``vae_training``) and a stage's presets set keys for all of them. Each command still reads only
its own keys: :func:`compose_command` composes the main config and builds the command's config
class from it. Keys only a sibling command reads are checked and dropped (a preset may set
them); a key the user sets on the command line that the command does not read is refused in one
line, before any model loads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagtune.config.compose import compose


@dataclass(frozen=True)
class Command:
    """A stage command: its name (``tta generate``), the main config it composes, its config class."""

    name: str
    main: str
    schema: type

    @property
    def stage(self) -> str:
        return self.name.split()[0]


def siblings_of(command: Command, commands: Sequence[Command]) -> list[tuple[str, type]]:
    """``(name, class)`` of the other commands of the same stage (they share its presets)."""
    return [(c.name, c.schema) for c in commands if c.stage == command.stage and c.name != command.name]


def compose_command(
    command: Command,
    commands: Sequence[Command],
    overrides: Sequence[str] = (),
    preset: str | None = None,
    config_dirs: Sequence[Path] = (),
    updates: Mapping[str, Any] | None = None,
    recorded: Mapping[str, Any] | None = None,
    strict: bool = True,
    notes: list[str] | None = None,
) -> Any:
    """The typed config of ``command``: its main config composed with the preset, overrides and flags.

    Args:
        command: The command to compose for.
        commands: Every command of its stage (the siblings whose keys a preset may set).
        overrides, preset, config_dirs, updates, recorded, strict, notes: As :func:`tagtune.config.compose.compose`.

    Raises:
        ConfigError: One line naming the key at fault (an unread key the user set included).
    """
    return compose(command.main, overrides, preset, config_dirs, updates, recorded, schema=command.schema,
                   command=command.name, siblings=siblings_of(command, commands), strict=strict, notes=notes)
