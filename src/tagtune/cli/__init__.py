"""The ``tagtune`` command line: a thin Typer shell over the stage functions.

Only typer and the standard library are imported at module level, so ``tagtune --help``
answers without loading torch, transformers, lightning or peft. ``main`` is the single error
boundary: tagtune's own errors print one line and exit 2; ``-v``/``--verbose`` anywhere on the
command line (or ``TAGTUNE_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from tagtune import __version__
from tagtune.cli import caption, config_cmd, dataset, pipeline, plugins, sweep, tta, vae
from tagtune.cli.common import examples

app = typer.Typer(
    name="tagtune",
    help=(
        "Build concept-labelled text-to-music datasets: [bold]tags[/bold] (beta-VAE) -> "
        "[bold]captions[/bold] (LoRA-tuned LLM) -> [bold]audio[/bold] (MusicGen), with evaluation at every stage.\n\n"
        "Every stage command composes the packaged Hydra configs and accepts trailing overrides "
        "(trainer.max_epochs=100 data.batch_size=64), --preset NAME, --config-dir DIR and --show-config. "
        "Add -v anywhere for tracebacks."
    ),
    epilog=examples(
        "tagtune pipeline run --preset demo -o demo",
        "tagtune vae train trainer.max_epochs=50 -o runs/vae",
        "tagtune config list",
        "tagtune config show caption_fine_tuning --preset quick_test",
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tagtune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """tagtune command line."""


app.add_typer(vae.app, name="vae")
app.add_typer(caption.app, name="caption")
app.add_typer(tta.app, name="tta")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(dataset.app, name="dataset")
app.add_typer(config_cmd.app, name="config")
app.add_typer(sweep.app, name="sweep")
app.command("plugins", epilog=plugins.EPILOG)(plugins.plugins_cmd)


def _pop_verbose(argv: list[str]) -> tuple[list[str], bool]:
    """Remove -v/--verbose from anywhere before a ``--``."""
    out, verbose, passthrough = [], False, False
    for arg in argv:
        if arg == "--":
            passthrough = True
        if not passthrough and arg in ("-v", "--verbose"):
            verbose = True
            continue
        out.append(arg)
    return out, verbose


def _raise_interrupted(signum: int, frame: Any) -> None:
    from tagtune.errors import Interrupted

    raise Interrupted()


def _fail(message: str, code: int, verbose: bool) -> None:
    from tagtune.cli import render

    if render.current() is not None:
        render.current().stop()
    if verbose:
        import traceback

        traceback.print_exc()
    sys.stderr.write(message.rstrip() + "\n")
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``tagtune`` console script: the single error boundary.

    tagtune's own errors print ``error: <message> (hint: ...)`` and exit 2; Ctrl-C prints what was
    kept and how to resume and exits 130 (a SIGINT handler raises :class:`~tagtune.errors.Interrupted`,
    which neither Typer nor Lightning turn into a silent exit).
    """
    import logging
    import signal

    from tagtune.cli import render
    from tagtune.errors import Interrupted, TagtuneError

    # bitsandbytes (pulled in by peft) warns on every CPU import about an optional kernel package;
    # it changes nothing for tagtune, so keep stderr for messages that matter.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    args, verbose = _pop_verbose(list(sys.argv[1:] if argv is None else argv))
    verbose = verbose or os.environ.get("TAGTUNE_DEBUG", "") not in ("", "0")
    if verbose:
        os.environ["TAGTUNE_DEBUG"] = "1"
    render._REPORTER = None  # a fresh reporter per invocation (tests call main() many times)
    previous = signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        app(args=args, prog_name="tagtune")
    except TagtuneError as exc:
        _fail(f"error: {exc}", exc.exit_code, verbose)
    except (Interrupted, KeyboardInterrupt):
        reporter = render.current()
        line = reporter.interrupted_line() if reporter is not None else render.interrupted_line()
        _fail(line, 130, verbose)
    finally:
        signal.signal(signal.SIGINT, previous)
