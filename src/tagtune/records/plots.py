"""PNG plots of tag sets (matplotlib, headless): the one plotting module of tagtune.

Every plot takes one or more *labelled* collections of tag sets as multi-hot matrices
(``{"real": ref, "generated": gen}`` for ``vae evaluate``, ``{"dataset": m}`` for the dataset card),
in taxonomy order, so the same figure compares two sources or describes one. Files are written
atomically and figures closed at once (no figure outlives its plot).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tagtune.files.resumable import atomic_path, ensure_dir
from tagtune.records.taxonomy import Taxonomy, cooccurrence

Sets = Mapping[str, np.ndarray]  # label -> (sets, tags) multi-hot, taxonomy order


def pyplot() -> Any:
    """matplotlib's pyplot on the headless Agg backend (imported on first use: it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    """Write a figure as PNG atomically and close it."""
    ensure_dir(Path(path).parent)
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    pyplot().close(fig)
    return Path(path)


def multi_hot(rows: Sequence[Mapping[str, Any]], taxonomy: Taxonomy) -> np.ndarray:
    """Rows with a ``tags`` list as a multi-hot matrix over the taxonomy (other tags ignored)."""
    return taxonomy.encode_many(row.get("tags") or [] for row in rows)


def _category_spans(taxonomy: Taxonomy) -> list[tuple[str, int, int]]:
    return [(cat, s.start, s.stop) for cat, s in taxonomy.category_slices.items()]


def _colour_of(taxonomy: Taxonomy) -> Callable[[str], str]:
    cats = list(taxonomy.categories)
    return lambda tag: f"C{cats.index(taxonomy.category_of[tag]) % 10}"


def tag_frequency_plot(path: Path, sets: Sets, taxonomy: Taxonomy, top: int = 25) -> Path:
    """The most frequent tags (share of sets), one bar per source, coloured by category for one source;
    with two sources also a scatter of every tag's frequency in one against the other."""
    plt = pyplot()
    freqs = {label: (m.mean(axis=0) if len(m) else np.zeros(len(taxonomy))) for label, m in sets.items()}
    total = sum(freqs.values())
    order = [int(i) for i in np.argsort(-total, kind="stable")[:top] if total[i] > 0]
    pair = len(freqs) == 2
    fig, axes = plt.subplots(1, 2 if pair else 1, figsize=(14 if pair else 8, max(3.0, 0.25 * len(order) + 1.5)),
                             squeeze=False, gridspec_kw={"width_ratios": [1, 1.4]} if pair else None)
    bars = axes[0][-1]
    y = np.arange(len(order))
    width = 0.8 / len(freqs)
    for k, (label, f) in enumerate(freqs.items()):
        colours = [_colour_of(taxonomy)(taxonomy.tags[i]) for i in order] if len(freqs) == 1 else None
        bars.barh(y + (k - (len(freqs) - 1) / 2) * width, f[order], height=width, label=label, color=colours)
    bars.set_yticks(y, [taxonomy.tags[i] for i in order], fontsize=8)
    bars.invert_yaxis()
    bars.set_xlabel("share of sets")
    bars.set_title(f"the {len(order)} most frequent tags")
    if len(freqs) == 1:
        from matplotlib.patches import Patch

        bars.legend(handles=[Patch(color=f"C{i % 10}", label=c) for i, c in enumerate(taxonomy.categories)],
                    loc="lower right")
    if pair:
        bars.legend()
        (a, fa), (b, fb) = freqs.items()
        hi = max(float(fa.max(initial=0)), float(fb.max(initial=0)), 1e-3) * 1.05
        scatter = axes[0][0]
        scatter.scatter(fa, fb, s=12, alpha=0.7)
        scatter.plot([0, hi], [0, hi], color="grey", lw=1, ls="--")
        scatter.set_xlim(0, hi)
        scatter.set_ylim(0, hi)
        scatter.set_xlabel(f"{a}: share of sets with the tag")
        scatter.set_ylabel(f"{b}: share of sets with the tag")
        scatter.set_title("tag frequencies (one dot per tag)")
    fig.tight_layout()
    return save_figure(fig, path)


def cooccurrence_plot(path: Path, sets: Sets, taxonomy: Taxonomy, tag_labels: bool = False) -> Path:
    """Co-occurrence heatmaps side by side (taxonomy order, category borders marked).

    Args:
        tag_labels: Name every tag on the axes (readable up to about 100 tags), the categories
            in the margin; otherwise only the categories are named.
    """
    plt = pyplot()
    mats = {label: cooccurrence(m) for label, m in sets.items()}
    for mat in mats.values():
        np.fill_diagonal(mat, 0)
    vmax = max([float(np.quantile(m, 0.995)) for m in mats.values() if m.size] + [1e-6])
    side = max(6.2, 0.12 * len(taxonomy)) if tag_labels else 6.2
    fig, axes = plt.subplots(1, len(mats), figsize=((side + 0.3) * len(mats), side), squeeze=False)
    spans = _category_spans(taxonomy)
    im = None
    for ax, (label, mat) in zip(axes[0], mats.items()):
        im = ax.imshow(mat, cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
        for _, _, hi in spans[:-1]:
            ax.axhline(hi - 0.5, color="white", lw=0.6)
            ax.axvline(hi - 0.5, color="white", lw=0.6)
        _heatmap_ticks(ax, taxonomy, spans, tag_labels)
        ax.set_title(f"co-occurrence rate, {label}")
    fig.colorbar(im, ax=list(axes[0]), shrink=0.8, label="share of sets with both tags")
    return save_figure(fig, path)


def _heatmap_ticks(ax: Any, taxonomy: Taxonomy, spans: list[tuple[str, int, int]], tag_labels: bool) -> None:
    """Category names at the centre of their block, or every tag with the categories outside them."""
    centres = [(lo + hi) / 2 - 0.5 for _, lo, hi in spans]
    if not tag_labels:
        ax.set_xticks(centres, [c for c, _, _ in spans], fontsize=8, rotation=90)
        ax.set_yticks(centres, [c for c, _, _ in spans], fontsize=8)
        return
    ticks = np.arange(len(taxonomy))
    ax.set_xticks(ticks, taxonomy.tags, fontsize=6, rotation=90)
    ax.set_yticks(ticks, taxonomy.tags, fontsize=6)
    top = ax.secondary_xaxis("top")
    top.set_xticks(centres, [c for c, _, _ in spans], fontsize=8, fontweight="bold")
    top.tick_params(length=0)


def distribution_plot(path: Path, series: Mapping[str, Sequence[float]], xlabel: str, title: str,
                      bins: int = 30) -> Path:
    """Histograms of one measured value (loudness, BPM ...), one series per label on shared bins,
    so groups (e.g. the clips of each tempo tag) can be told apart at a glance."""
    plt = pyplot()
    values = {label: np.asarray(v, dtype=float) for label, v in series.items() if len(v)}
    everything = np.concatenate(list(values.values())) if values else np.zeros(0)
    edges = np.histogram_bin_edges(everything, bins=bins) if everything.size else np.linspace(0, 1, bins + 1)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for label, v in values.items():
        ax.hist(v, bins=edges, alpha=0.55 if len(values) > 1 else 0.85, label=f"{label} (n={len(v)}, median {np.median(v):.1f})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("clips")
    ax.set_title(title)
    if values:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def set_size_plot(path: Path, sets: Sets) -> Path:
    """Histogram of tags per set, one series per source."""
    plt = pyplot()
    sizes = {label: m.sum(axis=1) for label, m in sets.items()}
    top = int(max([float(s.max(initial=0)) for s in sizes.values()] + [0]))
    bins = np.arange(top + 2) - 0.5
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, s in sizes.items():
        ax.hist(s, bins=bins, density=True, alpha=0.6, label=f"{label} (mean {s.mean():.2f})" if len(s) else label)
    ax.set_xlabel("tags per set")
    ax.set_ylabel("share of sets")
    ax.set_title("set sizes")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def category_sizes_plot(path: Path, sets: Sets, taxonomy: Taxonomy) -> Path:
    """Per category, how many of its tags a set holds (one panel per category)."""
    plt = pyplot()
    spans = _category_spans(taxonomy)
    fig, axes = plt.subplots(1, len(spans), figsize=(3 * len(spans), 2.8), squeeze=False)
    for i, (ax, (cat, lo, hi)) in enumerate(zip(axes[0], spans)):
        for label, m in sets.items():
            counts = m[:, lo:hi].sum(axis=1).astype(int)
            xs = np.arange(int(counts.max(initial=0)) + 1)
            ax.bar(xs, np.bincount(counts, minlength=len(xs)), color=f"C{i % 10}", alpha=0.8, label=label)
        ax.set_title(cat)
        ax.set_xlabel("tags per set")
    axes[0][0].set_ylabel("sets")
    return save_figure(fig, path)
