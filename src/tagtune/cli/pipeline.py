"""``tagtune pipeline run``: every stage into one dataset folder, resumable stage by stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tagtune.cli.common import (
    ConfigDirs,
    OutputDir,
    Overrides,
    Preset,
    Seed,
    ShowConfig,
    compose_or_show,
    examples,
    out_console,
)

app = typer.Typer(help="Run the whole chain (tags -> captions -> audio) into a dataset folder.", no_args_is_help=True, rich_markup_mode="rich")

# Overrides written `STAGE:key=value` go to that stage's own config.
_STAGE_PREFIXES = {"vae:": "vae.overrides", "caption:": "caption.overrides", "finetune:": "caption.finetune_overrides", "tta:": "tta.overrides"}


def _route(overrides: list[str]) -> tuple[list[str], dict[str, list[str]]]:
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
        "tagtune pipeline run --preset demo -o demo vae:trainer.max_epochs=50 tta:generation.duration=4",
        "tagtune pipeline run --preset conceptcaps -o cc --vae-model runs/vae --caption-adapter runs/lora --force tta",
    ),
)
def run_cmd(
    overrides: Overrides = None,
    preset: Preset = None,
    output_dir: OutputDir = None,
    num_items: Annotated[Optional[int], typer.Option("--num-items", "-n", help="Tag sets to sample, caption and render.", show_default=False)] = None,
    stages: Annotated[Optional[str], typer.Option("--stages", help="Comma-separated subset of vae,caption,tta.", show_default=False)] = None,
    vae_model: Annotated[Optional[Path], typer.Option("--vae-model", help="Reuse a trained VAE model directory.", show_default=False)] = None,
    caption_adapter: Annotated[Optional[Path], typer.Option("--caption-adapter", help="Reuse a trained LoRA adapter.", show_default=False)] = None,
    force: Annotated[Optional[list[str]], typer.Option("--force", help="Rerun this stage (and the later ones) from scratch; repeatable.", show_default=False)] = None,
    seed: Seed = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Train/sample tags, caption them, render audio and assemble DIR/dataset (metadata.jsonl, audio, card, plots).

    Rerunning the same command resumes: finished stages are skipped, a half-finished one continues.
    Overrides prefixed with vae:, caption:, finetune: or tta: go to that stage's config.
    """
    from tagtune.pipeline.run import run_pipeline

    own, routed = _route(list(overrides or []))
    cfg = compose_or_show(
        "pipeline", own, preset, config_dir, show_config=False,
        updates={"paths.output_dir": str(output_dir) if output_dir else None, "num_items": num_items, "seed": seed,
                 "stages": [s.strip() for s in stages.split(",") if s.strip()] if stages else None},
    )
    from omegaconf import OmegaConf

    for key, items in routed.items():
        OmegaConf.update(cfg, key, [*OmegaConf.select(cfg, key), *items], merge=False)
    if show_config:
        import sys

        sys.stdout.write(OmegaConf.to_yaml(cfg))
        raise typer.Exit(0)
    console = out_console()
    result = run_pipeline(cfg, force=list(force or []), vae_model=str(vae_model) if vae_model else None,
                          caption_adapter=str(caption_adapter) if caption_adapter else None,
                          announce=lambda line: console.print(line, highlight=False, markup=False))
    if result.dataset is not None:
        ds = result.dataset.path
        console.print(f"\nDataset: {ds}  ({result.dataset.items} items: "
                      + ", ".join(f"{k} {v}" for k, v in result.dataset.splits.items()) + ")")
        console.print(f"  card:   {ds / 'README.md'}")
        console.print(f"  load:   pandas.read_json('{ds / 'metadata.jsonl'}', lines=True)   "
                      f"or  datasets.load_dataset('audiofolder', data_dir='{ds}')")
        console.print(f"  export: tagtune dataset export {result.output_dir} --format parquet")
    console.print(f"Run the same command again (with -o {result.output_dir}) to resume after an interruption.")
