"""``tagtune caption``: captions stage: LoRA fine-tuning, batched resumable inference and evaluation of a caption LLM. (placeholder until issue 4 lands)."""

from __future__ import annotations

import typer

from tagtune.cli.common import ConfigDirs, Overrides, Preset, ShowConfig
from tagtune.errors import NotImplementedYetError

app = typer.Typer(help="Captions stage: LoRA fine-tuning, batched resumable inference and evaluation of a caption LLM. [dim](not implemented yet: issue 4)[/dim]", no_args_is_help=True, rich_markup_mode="rich")


@app.command("finetune", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def finetune(overrides: Overrides = None, preset: Preset = None, config_dir: ConfigDirs = None, show_config: ShowConfig = False) -> None:
    """Fine-tune a LoRA adapter that writes captions for tag sets. Not implemented yet (issue 4): exits 2."""
    raise NotImplementedYetError("`tagtune caption finetune` is not implemented yet (issue 4)")


@app.command("infer", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def infer(overrides: Overrides = None, preset: Preset = None, config_dir: ConfigDirs = None, show_config: ShowConfig = False) -> None:
    """Caption tag sets (batched, resumable, shardable). Not implemented yet (issue 4): exits 2."""
    raise NotImplementedYetError("`tagtune caption infer` is not implemented yet (issue 4)")


@app.command("evaluate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def evaluate(overrides: Overrides = None, preset: Preset = None, config_dir: ConfigDirs = None, show_config: ShowConfig = False) -> None:
    """Score captions: tag coverage, diversity, BLEU/ROUGE/METEOR against references. Not implemented yet (issue 4): exits 2."""
    raise NotImplementedYetError("`tagtune caption evaluate` is not implemented yet (issue 4)")
