"""``tagtune pipeline run | status``: every stage into one dataset folder, here or on a cluster, and where a run stands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from tagtune.cli.common import (
    NO_METAVAR,
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

if TYPE_CHECKING:
    from tagtune.pipeline.config import PipelineConfig
    from tagtune.pipeline.run import PipelineResult

app = typer.Typer(help="Run the whole chain (tags -> captions -> audio) into a dataset folder, here or on a cluster.",
                  no_args_is_help=True, rich_markup_mode="rich")


@app.command(
    "run",
    epilog=examples(
        "tagtune pipeline run --preset demo -o demo",
        "tagtune pipeline run --preset quick_test --tags my_tags.jsonl -o ds",
        "tagtune pipeline run --preset demo -o demo vae:trainer.max_epochs=50 tta:generation.duration=4",
        "tagtune pipeline run --preset conceptcaps -o /shared/cc executor=slurm executor.slurm.partition=gpu executor.shards.tta=64",
        "tagtune pipeline run --preset conceptcaps -o cc --dry-run executor.shards.tta=32",
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
    executor: Annotated[Optional[str], typer.Option("--executor", help="Where shard tasks run: local, slurm, ray (same as executor=NAME).", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", metavar=NO_METAVAR, help="Print the tasks per stage and the estimated GPU-hours; run nothing.")] = False,
    seed: Seed = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Train/sample tags, caption them, render audio and assemble DIR/dataset (metadata, audio, card, plots).

    Rerunning the same command resumes: finished stages are skipped, a half-finished one continues
    (on a cluster: only the shards without a completion marker are submitted again). Overrides
    prefixed with vae:, caption:, finetune: or tta: go to that stage's config.
    """
    from tagtune.pipeline.config import COMMANDS, RUN
    from tagtune.pipeline.run import split_stage_overrides, with_stage_overrides

    own, routed = split_stage_overrides(list(overrides or []))
    if executor:
        own = [f"executor={executor}", *own]
    cfg = compose_or_show(
        RUN, own, preset, config_dir, show_config, commands=COMMANDS,
        flags={"output": ("-o", output), "num_items": ("-n", num_items), "seed": ("--seed", seed),
               "stages": ("--stages", [s.strip() for s in stages.split(",") if s.strip()] if stages else None),
               "tags": ("--tags", tags), "captions": ("--captions", captions), "vae.model": ("--vae-model", vae_model),
               "caption.adapter": ("--caption-adapter", caption_adapter),
               "dataset.exclude": ("--exclude", [str(p) for p in exclude] if exclude else None),
               "config_dirs": ("--config-dir", [str(Path(d).expanduser().resolve()) for d in config_dir] if config_dir else None)},
        adjust=lambda c: with_stage_overrides(c, routed),
    )
    if dry_run:
        _print_plan(cfg)
        return
    from tagtune.pipeline.run import run_pipeline

    _print_result(run_pipeline(cfg, force=list(force or []), reporter=reporter()))


def _print_result(result: PipelineResult) -> None:
    """The submitted driver job, or the dataset with how to load and export it."""
    from tagtune.pipeline.dataset import load_lines

    console = out_console()
    if result.driver is not None:
        job, log = result.driver.job_ids.get(0), result.driver.logs.get(0)
        if result.driver_running:
            console.print(f"the run is already submitted: driver job {job} is queued or running (log: {log})",
                          soft_wrap=True)
        else:
            console.print(f"submitted the run as driver job {job} (log: {log}); it submits each stage's shard tasks "
                          "and waits for them", soft_wrap=True)
        console.print(f"  follow it:  tagtune pipeline status -o {result.output_dir}", soft_wrap=True)
        return
    if result.dataset is not None:
        ds = result.dataset.path
        console.print(f"Dataset: {ds}  ({result.dataset.items} items: "
                      + ", ".join(f"{k} {v}" for k, v in result.dataset.splits.items()) + ")")
        console.print(f"  card:   {ds / 'README.md'}")
        for i, line in enumerate(load_lines(ds)):
            console.print(f"  {'load:' if i == 0 else '':<7} {line}", soft_wrap=True)
        console.print(f"  export: tagtune dataset export {result.output_dir} --format parquet")


def _print_plan(cfg: PipelineConfig) -> None:
    from rich.table import Table

    from tagtune.pipeline.plan import dry_run

    planned = dry_run(cfg)
    table = Table(title=f"Plan: {cfg.executor.name} executor, {cfg.num_items} items (estimates, see docs/pipeline.md)")
    for column in ("stage", "steps", "tasks", "GPU-hours", "per task", "note"):
        table.add_column(column, justify="right" if column in ("tasks", "GPU-hours", "per task") else "left")
    for p in planned:
        table.add_row(p.name, ", ".join(p.steps), str(p.tasks), f"{p.gpu_hours:.1f}",
                      f"{p.hours_per_task:.2f} h" if p.sharded else "", p.note)
    table.add_row("total", "", str(sum(p.tasks for p in planned)), f"{sum(p.gpu_hours for p in planned):.1f}", "", "")
    console = out_console()
    console.print(table)
    limit = cfg.executor.resources.time_minutes / 60  # SLURM's per-task limit (local and Ray tasks have none)
    for p in planned:
        if cfg.executor.slurm is not None and p.hours_per_task > limit:
            console.print(f"note: a {p.name} task needs about {p.hours_per_task:.1f} GPU-hours, more than "
                          f"executor.resources.time_minutes ({cfg.executor.resources.time_minutes}): raise "
                          f"executor.shards.{p.name} or the time limit (a task stopped at its limit is requeued and "
                          "continues, but each requeue waits in the queue again)", soft_wrap=True)


@app.command(
    "status",
    epilog=examples("tagtune pipeline status -o cc", "tagtune pipeline status -o cc --json | jq '.stages[].state'"),
)
def status_cmd(
    output: Annotated[Path, typer.Option("--output", "--output-dir", "-o", help="The run folder (the -o of `pipeline run`).")],
    as_json: Annotated[bool, typer.Option("--json", metavar=NO_METAVAR, help="Print JSON for scripts.")] = False,
) -> None:
    """Per stage: complete / running / not started, and per step its shards done, running, failed, missing,
    with job ids and the logs of failed shards. Reads the run folder only; exit 0."""
    from tagtune.pipeline.status import as_json as to_json
    from tagtune.pipeline.status import run_status

    stages = run_status(output)
    if as_json:
        typer.echo(to_json(stages))
        return
    from rich.table import Table

    table = Table(title=f"Run {output}")
    for column in ("stage", "state", "step", "done", "running", "failed", "missing", "jobs"):
        table.add_column(column, justify="right" if column in ("done", "running", "failed", "missing") else "left")
    for s in stages:
        rows = s.steps or [None]
        for i, step in enumerate(rows):
            cells = [s.stage if i == 0 else "", s.state if i == 0 else ""]
            cells += ["-", "", "", "", "", ""] if step is None else [
                f"{step.step} (x{step.shards})", str(step.done), str(step.running), str(step.failed), str(step.missing),
                ", ".join(step.jobs[:3]) + (f" +{len(step.jobs) - 3}" if len(step.jobs) > 3 else "")]
            table.add_row(*cells)
    console = out_console()
    console.print(table)
    for s in stages:
        for step in s.steps:
            for f in step.failures:
                console.print(f"failed: {s.stage} {step.step} shard {f['shard']}: {f['error']}"
                              + (f" (log: {f['log']})" if f.get("log") else ""), soft_wrap=True)
