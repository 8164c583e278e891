"""Options and helpers shared by every command: defined once, used everywhere.

A command's life is always the same: parse flags -> :func:`compose_or_show` (which prints the
config and exits for ``--show-config``) -> call one plain function of a stage -> render.
Explicit flags (``-o``, ``-n`` ...) are applied as config updates after the preset and the
Hydra overrides, so the saved ``config.yaml`` records exactly what ran.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from omegaconf import DictConfig

# Stage commands let unknown tokens through to the overrides, where `compose` names them
# ("unknown option '--x'") instead of Click's generic usage error.
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}

Overrides = Annotated[
    Optional[list[str]],
    typer.Argument(help="Hydra overrides: key=value, group=option, +new.key=value.", show_default=False, metavar="[OVERRIDES]..."),
]
Preset = Annotated[
    Optional[str],
    typer.Option("--preset", "-p", help="A preset of this stage (see `tagtune config list preset`) or a YAML path.", show_default=False),
]
ConfigDirs = Annotated[
    Optional[list[Path]],
    typer.Option("--config-dir", help="Extra directory searched for your own configs and presets (repeatable).", show_default=False),
]
ShowConfig = Annotated[bool, typer.Option("--show-config", help="Print the composed config as YAML and exit.")]
OutputDir = Annotated[
    Optional[Path],
    typer.Option("--output-dir", "-o", help="Output directory (default: outputs/<task>/<timestamp>/).", show_default=False),
]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Random seed.", show_default=False)]


def examples(*lines: str) -> str:
    """An epilog listing example invocations, one per line."""
    body = "\n\n".join(f"  $ {line}" for line in lines)
    return f"[bold]Examples[/bold]\n\n{body}"


def err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def out_console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def split_input(first: str | None, overrides: list[str] | None) -> tuple[str | None, list[str]]:
    """An optional INPUT before the overrides: ``key=value`` that is not a file is an override."""
    rest = list(overrides or [])
    if first is not None and first.startswith("-") and not Path(first).exists():
        from tagtune.errors import ConfigError

        raise ConfigError(f"unknown option '{first}'", hint="run the command with --help for its options")
    if first is not None and "=" in first and not Path(first).exists():
        return None, [first, *rest]
    return first, rest


def compose_or_show(
    config_name: str,
    overrides: list[str] | None,
    preset: str | None,
    config_dirs: list[Path] | None,
    show_config: bool,
    updates: dict[str, Any] | None = None,
) -> DictConfig:
    """Compose the command's config; with ``--show-config`` print it and exit 0."""
    from tagtune.config import compose, to_yaml

    cfg = compose(
        config_name,
        overrides=overrides or [],
        preset=preset,
        config_dirs=config_dirs or [],
        updates={k: v for k, v in (updates or {}).items() if v is not None},
    )
    if show_config:
        sys.stdout.write(to_yaml(cfg))
        raise typer.Exit(0)
    return cfg
