"""``tagtune plugins``: every member of every extension family, where it comes from, whether it can load."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tagtune.cli.common import NO_METAVAR, examples, out_console

EPILOG = examples("tagtune plugins", "tagtune plugins exporters", "tagtune plugins --json")


def plugins_cmd(
    family: Annotated[Optional[str], typer.Argument(help="One family: caption_backends, audio_backends, checkers, "
                                                         "backbones, exporters, executors.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", metavar=NO_METAVAR, help="Print JSON for scripts.")] = False,
) -> None:
    """Every member of every family: its name, its class, its origin (built-in or the package that
    registered it under the entry-point group tagtune.<family>) and whether its requirements are installed.

    A member is named in configs by its short name, by package.module:Class, or by its entry point.
    """
    import json

    from tagtune.errors import ConfigError
    from tagtune.pipeline.registry import families
    from tagtune.plugins import members

    chosen = [f for f in families() if family in (None, f.name)]
    if not chosen:
        raise ConfigError(f"unknown family '{family}'", hint="families: " + ", ".join(f.name for f in families()))
    found = [(f, members(f)) for f in chosen]
    if as_json:
        typer.echo(json.dumps({f.name: [{"name": m.name, "target": m.target, "origin": m.origin, "available": m.available,
                                         "missing": list(m.missing), "error": m.error} for m in ms] for f, ms in found},
                              indent=2))
        return
    from rich.table import Table

    table = Table(title="tagtune plugins")
    for column in ("family", "name", "origin", "status", "class"):
        table.add_column(column)
    for f, ms in found:
        for i, m in enumerate(ms):
            status = "ok" if m.available else f"needs {', '.join(m.missing)}" if m.missing else f"broken: {m.error}"
            table.add_row(f"{f.name} ({f.key})" if i == 0 else "", m.name, m.origin, status, m.target)
    out_console().print(table)
