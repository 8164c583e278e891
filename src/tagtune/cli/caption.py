"""``tagtune caption``: LoRA fine-tuning, batched resumable inference, merging and evaluation of the caption LLM.

Each command composes its typed config (:mod:`tagtune.caption.config`; every flag sets one config
key), calls one function of :mod:`tagtune.caption` with the rich reporter and prints a short
summary; torch, transformers and peft are only imported inside those calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from tagtune.caption.config import COMMANDS, EVALUATE, FINETUNE, INFER, MERGE
from tagtune.cli.common import (
    NO_METAVAR,
    PASS_THROUGH,
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
    split_input,
)
from tagtune.cli.render import number, reporter
from tagtune.errors import ConfigError

app = typer.Typer(
    help="Captions stage: LoRA fine-tuning, batched resumable inference, merging and evaluation of a caption LLM.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


Adapter = Annotated[
    Optional[Path],
    typer.Option("--adapter", help="LoRA adapter directory (the -o of `caption finetune`); sets model.checkpoint_dir.", show_default=False),
]


@app.command(
    "finetune",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune caption finetune --preset quick_test -o runs/lora-tiny",
        "tagtune caption finetune model=caption/mistral_7b_instruct prompt=mistral lora=high_rank -o runs/lora",
        "tagtune caption finetune data.path=pairs.csv data.tags_column=aspect_list trainer.max_epochs=3",
        "tagtune caption finetune --preset quick_test finetune.resume=runs/lora-tiny/checkpoints/last.ckpt -o runs/lora-tiny",
    ),
)
def finetune(
    overrides: Overrides = None,
    preset: Preset = None,
    output: Output = None,
    seed: Seed = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Fine-tune a LoRA adapter that writes a caption for a tag set (QLoRA 4-bit on CUDA).

    The output directory holds the PEFT adapter (safetensors), the tokenizer, config.yaml and metrics.json (training loss, validation loss and perplexity, sample captions). Rerun the same command after an interruption: training continues from its last checkpoint.
    """
    cfg = compose_or_show(FINETUNE, overrides, preset, config_dir, show_config,
                          flags={"finetune.output": ("-o", output), "seed": ("--seed", seed)}, commands=COMMANDS)
    from tagtune.caption.train import finetune as run

    res = run(cfg, reporter())
    console = out_console()
    first, last = res.train_loss_first, res.train_loss_last
    drop = f" ({100 * (last - first) / first:+.1f}%)" if first and last is not None else ""
    console.print(f"[bold]adapter[/bold] {res.output_dir}")
    console.print(f"examples: {res.train_examples} train, {res.val_examples} validation; {res.steps} steps, {res.epochs} epochs, {res.seconds:.1f} s")
    console.print(f"train loss: {number(first, 3)} -> {number(last, 3)}{drop}")
    if res.val_examples:
        console.print(f"validation loss: {number(res.val_loss, 3)} (best {number(res.best_val_loss, 3)}), "
                      f"perplexity {number(res.val_perplexity, 1)}")
    else:
        vf = cfg.data.val_fraction
        console.print(f"validation: none (data.val_fraction={vf:g}{'' if vf == 0 else ' left no examples'}): "
                      "no validation loss, perplexity or best checkpoint")


@app.command(
    "infer",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune caption infer --preset quick_test",
        "tagtune caption infer tags.jsonl --adapter runs/lora -o captions.jsonl --batch-size 16",
        "tagtune caption infer tags.csv data.tags_column=aspect_list generation=caption/best --limit 100",
        "tagtune caption infer tags.jsonl --adapter runs/lora -o caps.jsonl --shard 0/4",
    ),
)
def infer(
    input: Annotated[Optional[str], typer.Argument(help="Tag sets: JSONL of `vae sample`, or CSV/JSONL/Parquet with a tags column. Default: packaged demo tag sets.", show_default=False)] = None,
    overrides: Overrides = None,
    adapter: Adapter = None,
    preset: Preset = None,
    output: Annotated[Optional[Path], typer.Option("--output", "--output-dir", "-o", help="Output JSONL \\[default: <output_dir>/captions.jsonl].", show_default=False)] = None,
    limit: Annotated[Optional[str], typer.Option("--limit", metavar="INT", help="Caption only the first N input rows.", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", metavar=NO_METAVAR, help="Start over instead of resuming an existing output.")] = False,
    shard: Annotated[Optional[str], typer.Option("--shard", help="I/N: caption this worker's share (writes <stem>.shard-0000I-of-0000N.jsonl).", show_default=False)] = None,
    batch_size: Annotated[Optional[str], typer.Option("--batch-size", "-b", metavar="INT", help=f"Prompts generated together \\[default: {config_default('caption_inference', 'generation.batch_size')}].", show_default=False)] = None,
    seed: Seed = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Caption tag sets with the (LoRA-tuned) LLM: batched, resumable, shardable.

    Every output line keeps the input's fields (id, tags, your own columns) and adds caption and provenance. A rerun skips ids already captioned; --overwrite starts over. A sharded run writes a part beside the output: `caption merge` combines the parts, and so does the next run without --shard.
    """
    source, rest = split_input(input, overrides)
    cfg = compose_or_show(
        INFER, rest, preset, config_dir, show_config,
        flags={
            "infer.input": ("INPUT", source), "model.checkpoint_dir": ("--adapter", adapter), "infer.output": ("-o", output),
            "infer.limit": ("--limit", limit), "infer.overwrite": ("--overwrite", True if overwrite else None),
            "infer.shard": ("--shard", shard), "generation.batch_size": ("--batch-size", batch_size), "seed": ("--seed", seed),
        },
        commands=COMMANDS,
    )
    from tagtune.caption.infer import infer as run

    res = run(cfg, reporter())
    console = out_console()
    if res.merged is not None and res.merged.merged:
        console.print(f"merged {len(res.merged.parts)} shard part(s) into {res.merged.output}", soft_wrap=True)
    if res.written == 0:
        console.print(f"nothing to do: all {res.owned} ids of this shard are already in {res.output}" if res.owned
                      else f"no input ids belong to shard {res.shard}; {res.output} left as it was")
        return
    resumed = f", {res.already_done} already there" if res.already_done else ""
    console.print(f"[bold]captions[/bold] {res.output}")
    console.print(f"wrote {res.written} caption{'s' if res.written != 1 else ''}{resumed} ({res.captions_per_s:.2f} captions/s, model load {res.load_seconds:.1f} s)")
    if res.empty:
        reporter().warn(f"{res.empty} captions came out empty after cleaning (try generation.min_new_tokens=8)")


@app.command(
    "merge",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune caption merge runs/caps          # after `caption infer ... -o runs/caps/captions.jsonl --shard I/4`",
        "tagtune caption merge .",
    ),
)
def merge(
    folder: Annotated[Optional[str], typer.Argument(metavar="DIR", help="The folder holding the shard parts: <name>.shard-0000I-of-0000N.jsonl, beside the output of the sharded runs.", show_default=False)] = None,
    overrides: Overrides = None,
    preset: Preset = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Combine the shard parts of sharded `caption infer` runs into their output (atomic), with checks.

    Lines come in the order of the input the runs captioned, so the result equals an unsharded run's. Duplicate ids and parts written with different settings exit 2 without changing anything; parts are deleted once the merged file is in place.
    """
    folder, rest = split_input(folder, overrides)
    if folder is None and not show_config:
        raise ConfigError("no DIR given", hint="tagtune caption merge DIR")
    cfg = compose_or_show(MERGE, rest, preset, config_dir, show_config, flags={"paths.output_dir": ("DIR", folder)},
                          commands=COMMANDS)
    from tagtune.caption.merge import merge_dir

    reports = merge_dir(cfg.paths.output_dir)
    console = out_console()
    if not reports:
        console.print(f"nothing to merge: no shard parts (<name>.shard-0000I-of-0000N.jsonl) in {folder}", soft_wrap=True)
    for report in reports:
        console.print(f"merged {len(report.parts)} part(s) into {report.output}: {report.lines} caption(s)"
                      + (f", {report.replaced} line(s) replaced by newer shard lines" if report.replaced else "")
                      + (f", {report.deduplicated} identical duplicate line(s) dropped" if report.deduplicated else ""),
                      soft_wrap=True)
        if report.order != "input":
            reporter().note(f"lines kept in the parts' order: {report.order}")
        if report.missing:
            reporter().warn(f"no part {', '.join(report.missing)} in {folder}: the tag sets of "
                            f"{'that shard' if len(report.missing) == 1 else 'those shards'} are not in {report.output.name} "
                            "unless an earlier merge put them there")


@app.command(
    "evaluate",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune caption evaluate captions.jsonl -o metrics.json",
        "tagtune caption evaluate seed_llm_captions_validation.csv --caption-column prediction --taxonomy taxonomy.json",
        "tagtune caption evaluate captions.jsonl --reference refs.csv --reference-column caption",
        "tagtune caption evaluate captions.jsonl --reference-column reference_caption evaluate.embedding=false",
    ),
)
def evaluate(
    predictions: Annotated[str, typer.Argument(help="Captions to score: JSONL/CSV/Parquet with a tags column and a caption column.", show_default=False)],
    overrides: Overrides = None,
    tags_column: Annotated[Optional[str], typer.Option("--tags-column", help="Column holding the tags (default: tags, else aspect_list).", show_default=False)] = None,
    caption_column: Annotated[Optional[str], typer.Option("--caption-column", help="Column holding the caption (default: caption, else text, else prediction).", show_default=False)] = None,
    reference: Annotated[Optional[str], typer.Option("--reference", "--references", help="File with reference captions, joined on id or by row order.", show_default=False)] = None,
    reference_column: Annotated[Optional[str], typer.Option("--reference-column", help="Reference caption column (of --reference, else of PREDICTIONS).", show_default=False)] = None,
    train: Annotated[Optional[str], typer.Option("--train", help="Training captions, for LP-MusicCaps' novelty measures.", show_default=False)] = None,
    taxonomy: Annotated[Optional[str], typer.Option("--taxonomy", help="Taxonomy (JSON/YAML) for per-category coverage.", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "--output-dir", "-o", help="Metrics JSON \\[default: <output_dir>/metrics.json].", show_default=False)] = None,
    preset: Preset = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Score captions: tag coverage (overall and per category), length, distinct-n, lint; with references the
    LP-MusicCaps protocol (BLEU-1..4, METEOR, ROUGE-L, BERTScore-F1, MAUVE); with --train the novelty measures.
    An eval_manifest.json beside the metrics names every implementation, version and model."""
    source, rest = split_input(predictions, overrides)
    cfg = compose_or_show(
        EVALUATE, rest, preset, config_dir, show_config,
        flags={
            "evaluate.input": ("PREDICTIONS", source), "evaluate.tags_column": ("--tags-column", tags_column),
            "evaluate.caption_column": ("--caption-column", caption_column), "evaluate.reference": ("--reference", reference),
            "evaluate.reference_column": ("--reference-column", reference_column), "evaluate.train": ("--train", train),
            "evaluate.taxonomy_path": ("--taxonomy", taxonomy), "evaluate.output": ("-o", output),
        },
        commands=COMMANDS,
    )
    from tagtune.caption.evaluate import evaluate as run

    res = run(cfg, reporter())
    _render_metrics(res.metrics)
    out_console().print(f"metrics written to {res.output}")


def _render_metrics(m: dict[str, Any]) -> None:
    from rich.table import Table

    console = out_console()
    table = Table(title=f"Caption metrics: {m['predictions']} ({m['rows']} captions)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    cov = m["coverage"]
    tagged = cov.get("rows_with_tags", m["rows"])
    if 0 < tagged < m["rows"]:
        table.add_row("rows with tags (coverage is over these)", f"{tagged} of {m['rows']}")
    table.add_row("tag coverage (mean per caption)", number(cov["mean"], 3))
    table.add_row("tag coverage (all tags)", number(cov["micro"], 3))
    table.add_row("captions mentioning every tag", number(cov["full"], 3))
    length = m["length_words"]
    table.add_row("length, words (mean ± std)", f"{length['mean']:.1f} ± {length['std']:.1f}")
    table.add_row("length, words (min / median / max)", f"{length['min']} / {length['median']:.0f} / {length['max']}")
    if length["empty"]:
        table.add_row("empty captions", str(length["empty"]))
    for name, value in m["distinct"].items():
        table.add_row(name.replace("_", "-"), number(value, 3))
    ref = m.get("references")
    if ref:
        table.add_row(f"references ({ref['pairs']} pairs, by {ref['matched_by']}, {ref['protocol']} protocol)", "")
        if ref.get("unmatched"):
            table.add_row("  predictions with no reference", f"{ref['unmatched']} (not scored)")
        labels = {"bleu_1": "BLEU-1", "bleu_2": "BLEU-2", "bleu_3": "BLEU-3", "bleu_4": "BLEU-4", "meteor": "METEOR",
                  "rouge_l": "ROUGE-L", "bertscore_f1": "BERTScore-F1", "mauve": "MAUVE",
                  "embedding_similarity": "embedding similarity"}
        for key, label in labels.items():
            if key in ref:
                table.add_row(f"  {label}", number(ref[key], 4))
    else:
        table.add_row("reference metrics", "no references (use --reference or --reference-column)")
    for key, value in (m.get("novelty") or {}).items():
        table.add_row(f"novelty: {key.replace('_', ' ')}", number(value, 3))
    if m.get("lint"):
        bad = ", ".join(f"{k} {v}" for k, v in m["lint"]["counts"].items() if v) or "none"
        table.add_row("lint: clean captions", f"{m['lint']['clean']:.1%}")
        table.add_row("lint: flagged", bad)
    console.print(table)
    if isinstance(cov["mean"], str):  # not measurable: the reason, not an empty table
        console.print(f"tag coverage per category: {cov['mean']}")
        return
    cats = Table(title="Tag coverage per category")
    cats.add_column("category")
    cats.add_column("coverage", justify="right")
    cats.add_column("tags", justify="right")
    for cat, row in cov["per_category"].items():
        cats.add_row(cat, number(row["coverage"], 3), str(row["tags"]))
    console.print(cats)
