"""``tagtune pipeline run``: every stage into one dataset folder, resumable stage by stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tagtune.cli.common import (
    ConfigDirs,
    Output,
    Overrides,
    Preset,
    Seed,
    ShowConfig,
    compose_or_show,
    config_default,
    examples,
    out_console,
)
from tagtune.cli.render import reporter

app = typer.Typer(help="Run the whole chain (tags -> captions -> audio) into a dataset folder.", no_args_is_help=True, rich_markup_mode="rich")

# Overrides written `STAGE:key=value` go to that stage's own config.
_STAGE_PREFIXES = {"vae:": "vae.overrides", "caption:": "caption.overrides", "finetune:": "caption.finetune_overrides", "tta:": "tta.overrides"}


def _route(overrides: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Split ``STAGE:key=value`` overrides (for a stage's config) from the pipeline's own."""
    own, routed = [], {}
    for item in overrides:
        for prefix, key in _STAGE_PREFIXES.items():
            if item.startswith(prefix):
                routed.setdefault(key, []).append(item[len(prefix):])
                break
        else:
            own.append(item)
    return own, routed


@app.command(
    "run",
    epilog=examples(
        "tagtune pipeline run --preset demo -o demo",
        "tagtune pipeline run --preset quick_test -n 10 -o /tmp/ds",
        "tagtune pipeline run --preset quick_test --tags my_tags.jsonl -o ds",
        "tagtune pipeline run --preset demo -o demo vae:trainer.max_epochs=50 tta:generation.duration=4",
        "tagtune pipeline run --preset conceptcaps -o cc --vae-model runs/vae --caption-adapter runs/lora --force tta",
    ),
)
def run_cmd(
    overrides: Overrides = None,
    preset: Preset = None,
    output: Output = None,
    num_items: Annotated[Optional[str], typer.Option("--num-items", "-n", metavar="INT", help=f"Tag sets to sample, caption and render \\[default: {config_default('pipeline', 'num_items')}].", show_default=False)] = None,
    stages: Annotated[Optional[str], typer.Option("--stages", help="Comma-separated subset of vae,caption,tta,verify.", show_default=False)] = None,
    tags: Annotated[Optional[Path], typer.Option("--tags", help="Start from your own tag sets (any tag-set file; the vae stage is skipped).", show_default=False)] = None,
    captions: Annotated[Optional[Path], typer.Option("--captions", help="Start from your own captions (vae and caption stages are skipped).", show_default=False)] = None,
    vae_model: Annotated[Optional[Path], typer.Option("--vae-model", help="Reuse a trained VAE model directory.", show_default=False)] = None,
    caption_adapter: Annotated[Optional[Path], typer.Option("--caption-adapter", help="Reuse a trained LoRA adapter.", show_default=False)] = None,
    force: Annotated[Optional[list[str]], typer.Option("--force", help="Rerun this stage (and the later ones) from scratch; repeatable.", show_default=False)] = None,
    exclude: Annotated[Optional[list[Path]], typer.Option("--exclude", help="Tag sets / captions of an evaluation set to keep out of the dataset (repeatable).", show_default=False)] = None,
    seed: Seed = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Train/sample tags, caption them, render audio and assemble DIR/dataset (metadata, audio, card, plots).

    Rerunning the same command resumes: finished stages are skipped, a half-finished one continues.
    Overrides prefixed with vae:, caption:, finetune: or tta: go to that stage's config.
    """
    own, routed = _route(list(overrides or []))
    cfg = compose_or_show(
        "pipeline", own, preset, config_dir, show_config=False,
        flags={"output": ("-o", output), "num_items": ("-n", num_items), "seed": ("--seed", seed),
               "stages": ("--stages", [s.strip() for s in stages.split(",") if s.strip()] if stages else None),
               "tags": ("--tags", tags), "captions": ("--captions", captions), "vae.model": ("--vae-model", vae_model),
               "caption.adapter": ("--caption-adapter", caption_adapter),
               "dataset.exclude": ("--exclude", [str(p) for p in exclude] if exclude else None)},
    )
    from omegaconf import OmegaConf

    for key, items in routed.items():
        OmegaConf.update(cfg, key, [*OmegaConf.select(cfg, key), *items], merge=False)
    if show_config:
        import sys

        sys.stdout.write(OmegaConf.to_yaml(cfg))
        raise typer.Exit(0)
    from tagtune.pipeline.dataset import load_lines
    from tagtune.pipeline.run import run_pipeline

    result = run_pipeline(cfg, force=list(force or []), reporter=reporter())
    console = out_console()
    if result.dataset is not None:
        ds = result.dataset.path
        console.print(f"Dataset: {ds}  ({result.dataset.items} items: "
                      + ", ".join(f"{k} {v}" for k, v in result.dataset.splits.items()) + ")")
        console.print(f"  card:   {ds / 'README.md'}")
        for i, line in enumerate(load_lines(ds)):
            console.print(f"  {'load:' if i == 0 else '':<7} {line}", soft_wrap=True)
        console.print(f"  export: tagtune dataset export {result.output_dir} --format parquet")
