"""``tagtune config``: list, show, copy and validate configs (never imports torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tagtune.cli.common import ConfigDirs, Overrides, Preset, examples, out_console

app = typer.Typer(
    help="List, show, copy and validate the Hydra configs and presets.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@app.command(
    "list",
    epilog=examples("tagtune config list", "tagtune config list preset", "tagtune config list model/caption"),
)
def list_cmd(
    group: Annotated[Optional[str], typer.Argument(help="Only this group (or groups under it), e.g. preset or model/tta.")] = None,
    config_dir: ConfigDirs = None,
) -> None:
    """List the main configs, every config group with its options, and the presets of each stage."""
    from rich.table import Table

    from tagtune.config.tree import STAGES, groups, main_configs, stage_of
    from tagtune.errors import ConfigError

    dirs = config_dir or []
    all_groups = groups(dirs)
    console = out_console()
    if group:
        group = group.strip("/")
        chosen = {g: o for g, o in all_groups.items() if g == group or g.startswith(group + "/")}
        if not chosen:
            raise ConfigError(f"no config group '{group}'; groups: {', '.join(all_groups)}")
    else:
        table = Table(title="Main configs", show_lines=False)
        table.add_column("config")
        table.add_column("stage")
        table.add_column("presets (--preset)")
        for name in main_configs(dirs):
            try:
                stage = stage_of(name)
            except ConfigError:
                stage = "?"
            table.add_row(name, stage, ", ".join(all_groups.get(f"preset/{stage}", [])))
        console.print(table)
        chosen = all_groups
    table = Table(title="Config groups" if not group else f"Groups under '{group}'")
    table.add_column("group")
    table.add_column("options")
    for g, opts in chosen.items():
        table.add_row(g, ", ".join(opts))
    console.print(table)
    if not group:
        console.print(
            "Stages and their preset groups: " + ", ".join(f"{s} -> preset/{s}" for s in STAGES)
            + ".  Select an option with group=option, e.g. model=vae/beta_low."
        )


@app.command(
    "show",
    epilog=examples(
        "tagtune config show vae_training trainer.max_epochs=3",
        "tagtune config show caption_inference --preset quick_test",
        "tagtune config show model/tta/musicgen-small",
    ),
)
def show_cmd(
    name: Annotated[str, typer.Argument(help="A main config (vae_training), a group option (model/vae/default) or a YAML path.")],
    overrides: Overrides = None,
    preset: Preset = None,
    config_dir: ConfigDirs = None,
    raw: Annotated[bool, typer.Option("--raw", help="Print the file as written (comments kept) instead of composing.")] = False,
) -> None:
    """Print a composed main config as YAML, or the text of a group option or preset."""
    import sys

    from tagtune.config.compose import compose
    from tagtune.config.saved import to_yaml
    from tagtune.config.tree import find_yaml, main_configs

    dirs = config_dir or []
    is_main = name in main_configs(dirs) or (name.endswith((".yaml", ".yml")) and "/" not in name.replace("\\", "/").lstrip("./"))
    if raw or not is_main:
        if overrides or preset:
            from tagtune.errors import ConfigError

            raise ConfigError(f"'{name}' is not a main config: overrides and --preset apply to main configs only")
        sys.stdout.write(find_yaml(name, dirs).read_text(encoding="utf-8"))
        return
    from tagtune.pipeline.registry import check_main, commands_of, plain

    notes: list[str] = []
    readers = [(c.name, c.schema) for c in commands_of(Path(name).stem)]  # names the key you meant
    cfg = compose(name, overrides or [], preset=preset, config_dirs=dirs, notes=notes, siblings=readers)
    check_main(Path(name).stem, plain(cfg))
    sys.stdout.write("".join(f"# note: {n}\n" for n in dict.fromkeys(notes)) + to_yaml(cfg))


@app.command(
    "cp",
    epilog=examples(
        "tagtune config cp preset/vae/quick_test my_configs/preset/vae/mine.yaml",
        "tagtune vae train --config-dir my_configs --preset mine",
    ),
)
def cp_cmd(
    name: Annotated[str, typer.Argument(help="A main config, group option or preset, e.g. preset/tta/quick_test.")],
    destination: Annotated[Path, typer.Argument(help="File or directory to write.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    config_dir: ConfigDirs = None,
) -> None:
    """Copy a packaged config out for editing; use it back with --config-dir or as a YAML path."""
    from tagtune.config.tree import copy_config

    dest = copy_config(name, destination, config_dir or [], force=force)
    typer.echo(f"copied {name} to {dest}")


@app.command(
    "validate",
    epilog=examples(
        "tagtune config validate my_preset.yaml",
        "tagtune config validate my_configs/preset/vae/fast.yaml --config-dir my_configs",
        "tagtune config validate my_vae_training.yaml",
    ),
)
def validate_cmd(
    path: Annotated[Path, typer.Argument(help="A preset (an overlay of keys) or a whole main config, as a YAML file.")],
    stage: Annotated[Optional[str], typer.Option("--stage", help="The stage a preset is for (default: from its folder, else tried against each).", show_default=False)] = None,
    config_dir: ConfigDirs = None,
) -> None:
    """Check your config or preset: it must compose, and every key must exist with a valid type and range.

    Exit 0 and a line per main config it was checked against; exit 2 with the first bad key named.
    """
    from tagtune.pipeline.registry import validate_file

    for line in validate_file(path, stage, config_dir or []):
        typer.echo(line)
