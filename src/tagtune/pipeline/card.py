"""The dataset card (README.md) and its plots: sizes, tag and category distributions, provenance."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tagtune.resumable import atomic_path, atomic_write_text, ensure_dir
from tagtune.taxonomy import Taxonomy


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def write_plots(rows: Sequence[Mapping[str, Any]], taxonomy: Taxonomy, out_dir: Path, top: int = 30) -> list[Path]:
    """tag_frequency.png, category_sizes.png and set_size.png under ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ensure_dir(out_dir)
    counts = Counter(t for r in rows for t in r["tags"])
    paths = []

    common = counts.most_common(top)
    fig, ax = plt.subplots(figsize=(8, max(3, 0.25 * len(common))))
    if common:
        labels, values = zip(*reversed(common))
        colors = [f"C{list(taxonomy.categories).index(taxonomy.category_of[t]) % 10}" for t in labels]
        ax.barh(labels, values, color=colors)
        from matplotlib.patches import Patch

        cats = list(taxonomy.categories)
        ax.legend(handles=[Patch(color=f"C{i % 10}", label=c) for i, c in enumerate(cats)], loc="lower right")
    ax.set_xlabel("items")
    ax.set_title(f"Most frequent tags (top {top}, coloured by category)")
    paths.append(_save(fig, out_dir / "tag_frequency.png"))
    plt.close(fig)

    cats = list(taxonomy.categories)
    fig, axes = plt.subplots(1, len(cats), figsize=(3 * len(cats), 2.8), squeeze=False)
    for ax, cat in zip(axes[0], cats):
        sizes = Counter(len(r.get(cat, [])) for r in rows)
        xs = list(range(max(sizes) + 1)) if sizes else [0]
        ax.bar(xs, [sizes.get(x, 0) for x in xs], color="C0")
        ax.set_title(cat)
        ax.set_xlabel("tags per item")
    axes[0][0].set_ylabel("items")
    paths.append(_save(fig, out_dir / "category_sizes.png"))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3))
    sizes = Counter(len(r["tags"]) for r in rows)
    xs = list(range(max(sizes) + 1)) if sizes else [0]
    ax.bar(xs, [sizes.get(x, 0) for x in xs], color="C2")
    ax.set_xlabel("tags per item")
    ax.set_ylabel("items")
    ax.set_title("Tag-set size")
    paths.append(_save(fig, out_dir / "set_size.png"))
    plt.close(fig)
    return paths


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def write_card(
    out_dir: Path,
    rows: Sequence[Mapping[str, Any]],
    taxonomy: Taxonomy,
    dataset_cfg: Mapping[str, Any],
    provenance: Mapping[str, Any],
    plots: Sequence[Path],
) -> Path:
    """README.md with Hugging Face card metadata, statistics, provenance and loading snippets."""
    n = len(rows)
    name = dataset_cfg.get("name") or "tagtune-dataset"
    license_ = dataset_cfg.get("license") or "other"
    attribution = dataset_cfg.get("attribution") or "TODO: credit the sources of your taxonomy, tag data and captions."
    split_counts = Counter(r["split"] for r in rows)
    size_bucket = "n<1K" if n < 1000 else "1K<n<10K" if n < 10_000 else "10K<n<100K" if n < 100_000 else "n>100K"
    durations = [float(r.get("duration", 0)) for r in rows]
    set_sizes = [len(r["tags"]) for r in rows]
    counts = Counter(t for r in rows for t in r["tags"])

    lines = [
        "---",
        f"license: {license_}",
        "task_categories:",
        "- text-to-audio",
        "language:",
        "- en",
        "tags:",
        "- music",
        "- concept-labelled",
        "- tagtune",
        "size_categories:",
        f"- {size_bucket}",
        "---",
        "",
        f"# {name}",
        "",
        f"A concept-labelled text-to-music dataset of **{n} clips** ({sum(durations) / 60:.1f} minutes of audio), "
        "made with [tagtune](https://github.com/tagtune/tagtune): tag sets sampled from a beta-VAE over the "
        f"taxonomy below ({len(taxonomy.categories)} categories, {len(taxonomy)} tags), captions written by an LLM "
        "from each tag set, audio rendered from each caption by MusicGen.",
        "",
        "## Files",
        "",
        "- `metadata.jsonl`: one line per clip: `id`, `file_name`, `split`, `tags` (all tags), "
        + ", ".join(f"`{c}`" for c in taxonomy.categories)
        + " (tags per category), `caption`, `duration`, `sample_rate`, `provenance` (per stage: model, revision, seed, settings)",
        "- `audio/`: the clips",
        "- `plots/`: " + ", ".join(f"`{p.name}`" for p in plots),
        "",
        "## Splits",
        "",
        *_table(["split", "clips", "share"], [[s, c, f"{c / n:.1%}"] for s, c in split_counts.items()]),
        "",
        f"Assigned by a seeded hash of the id (seed {dataset_cfg.get('split_seed')}), so the split of a clip is reproducible.",
        "",
        "## Statistics",
        "",
        f"- tags per clip: mean {sum(set_sizes) / n:.2f}, min {min(set_sizes)}, max {max(set_sizes)}",
        f"- clip duration: mean {sum(durations) / n:.2f} s, min {min(durations):.2f} s, max {max(durations):.2f} s",
        f"- distinct tags used: {len(counts)} of {len(taxonomy)}",
        "",
    ]
    for cat in taxonomy.categories:
        cat_counts = Counter(t for r in rows for t in r.get(cat, []))
        with_cat = sum(1 for r in rows if r.get(cat))
        lines += [f"### {cat}", "", f"{with_cat} clips ({with_cat / n:.0%}) carry at least one `{cat}` tag.", ""]
        top = cat_counts.most_common(10)
        if top:
            lines += _table(["tag", "clips", "share"], [[t, c, f"{c / n:.1%}"] for t, c in top]) + [""]
    lines += ["![most frequent tags](plots/tag_frequency.png)", "", "![tags per category](plots/category_sizes.png)", "",
              "![tag-set size](plots/set_size.png)", ""]
    lines += ["## How it was made", "", "```json", json.dumps(provenance, indent=2, default=str), "```", "",
              "The composed config of every stage is saved next to its outputs (`<stage>/config.yaml`).", ""]
    lines += [
        "## Loading",
        "",
        "```python",
        "import pandas as pd",
        f'meta = pd.read_json("{out_dir.name}/metadata.jsonl", lines=True)   # captions, tags, splits, file names',
        "",
        "# Hugging Face datasets (audio decoding needs `pip install torchcodec` with datasets >= 4)",
        "from datasets import load_dataset",
        f'ds = load_dataset("audiofolder", data_dir="{out_dir.name}")["train"]   # every clip, with a `split` column',
        'train = ds.filter(lambda row: row["split"] == "train")',
        "```",
        "",
        "Or write one Parquet file per split: `tagtune dataset export DIR --format parquet`.",
        "",
        "## License and attribution",
        "",
        f"- License: {license_}",
        f"- Attribution: {attribution}",
        "- The audio is machine-generated; check the licenses of the models you used before publishing.",
        "",
    ]
    return atomic_write_text(out_dir / "README.md", "\n".join(lines))
