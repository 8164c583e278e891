"""Options and helpers shared by every command: defined once, used everywhere.

A command's life is always the same: parse flags -> :func:`compose_or_show` (which prints the
config and exits for ``--show-config``) -> call one plain function of a stage with a reporter ->
render its result. Every flag is a config key: it is applied as an update after the preset and
the Hydra overrides (so the saved ``config.yaml`` records exactly what ran) and checked by the
command's typed config (tagtune.config.typed), whose one-line errors name the key; :func:`compose_or_show` adds the flag that
set it. Numeric flags are read as text for that reason: ``-n abc`` is a config error naming
``sample.num_samples (-n)``, not a usage screen.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from tagtune.cli.render import reporter

if TYPE_CHECKING:
    from tagtune.config.commands import Command

# Stage commands let unknown tokens through to the overrides, where `compose` names them
# ("unknown option '--x'") instead of Click's generic usage error.
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
NO_METAVAR = " "  # boolean flags: no "<bool>" after the flag

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
ShowConfig = Annotated[bool, typer.Option("--show-config", help="Print the composed config as YAML and exit.", metavar=NO_METAVAR)]
Output = Annotated[
    Optional[Path],
    typer.Option("--output", "--output-dir", "-o", help="Where the run writes (default: outputs/<task>/<timestamp>/).", show_default=False),
]
Seed = Annotated[Optional[str], typer.Option("--seed", help="Random seed (default: the config's `seed`).", show_default=False, metavar="INT")]
Force = Annotated[bool, typer.Option("--force", help="Start over: remove what tagtune wrote here before, keep everything else.", metavar=NO_METAVAR)]


@functools.cache
def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def config_default(config_name: str, key: str) -> str:
    """A default as written in the packaged YAML (for ``--help``; the config stays the one source).

    Looks in the main config, then in the group option its defaults list selects for the key's
    first part (``generation.batch_size`` -> ``generation/caption/default.yaml``).
    """
    from tagtune.config.tree import config_dir
    from tagtune.config.typed import dig

    root = config_dir()
    main = _yaml(root / f"{config_name}.yaml")
    head, _, rest = key.partition(".")
    for item in main.get("defaults") or []:
        if isinstance(item, dict) and head in item:
            value = dig(_yaml(root / head / f"{item[head]}.yaml"), rest)
            if value is not None:
                return str(value)
    value = dig(main, key)
    return "null" if value is None else str(value)


def examples(*lines: str) -> str:
    """An epilog listing example invocations, one per line."""
    body = "\n\n".join(f"  $ {line}" for line in lines)
    return f"[bold]Examples[/bold]\n\n{body}"


def out_console() -> Any:
    """Results on stdout. Piped into a log or a script, lines are not wrapped, so a long path stays
    whole and can be copied, and tables get 120 columns (``COLUMNS`` wins; ``--json`` is for scripts)."""
    from rich.console import Console

    piped = not sys.stdout.isatty()
    return Console(highlight=False, soft_wrap=piped, width=120 if piped and "COLUMNS" not in os.environ else None)


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
    command: Command | str,
    overrides: list[str] | None,
    preset: str | None,
    config_dirs: list[Path] | None,
    show_config: bool,
    flags: Mapping[str, tuple[str, Any]] | None = None,
    recorded: Mapping[str, Any] | None = None,
    commands: Sequence[Command] = (),
    adjust: Callable[[Any], Any] | None = None,
) -> Any:
    """Compose the command's typed config with its flags; with ``--show-config`` print it and exit 0.

    Args:
        command: The command (its main config and config class); a bare main-config name
            composes the untyped config.
        flags: ``{config key: (flag name, value)}``; flags left unset (None) change nothing.
        recorded: Settings recorded in the folder the command works on (below preset and overrides).
        commands: The stage's commands (whose keys its presets may set).
        adjust: Applied to the composed config before it is shown or returned (the pipeline's
            ``STAGE:key=value`` routing).
    """
    from tagtune.config.commands import compose_command
    from tagtune.config.compose import compose
    from tagtune.config.saved import to_yaml
    from tagtune.errors import ConfigError

    flags = flags or {}
    updates = {key: (str(v) if isinstance(v, Path) else v) for key, (_, v) in flags.items() if v is not None}
    notes: list[str] = []
    try:
        if isinstance(command, str):
            cfg = compose(command, overrides=overrides or [], preset=preset, config_dirs=config_dirs or [],
                          updates=updates, recorded=recorded, notes=notes)
        else:
            cfg = compose_command(command, commands or [command], overrides or [], preset, config_dirs or [], updates,
                                  recorded, notes=notes)
    except ConfigError as exc:
        if exc.key in flags and flags[exc.key][1] is not None:
            raise ConfigError(f"{exc.message} (set by {flags[exc.key][0]})", hint=exc.hint, key=exc.key) from exc
        raise
    if adjust is not None:
        cfg = adjust(cfg)
    if show_config:
        sys.stdout.write("".join(f"# note: {n}\n" for n in dict.fromkeys(notes)) + to_yaml(cfg))
        raise typer.Exit(0)
    for note in dict.fromkeys(notes):
        reporter().note(note)
    return cfg


def listing(values: list[str] | None) -> list[str] | None:
    """A repeatable flag's values as a list (None when the flag was not given)."""
    return list(values) if values else None
