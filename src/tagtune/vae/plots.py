"""PNG plots comparing generated and real tag sets (matplotlib, headless).

Three figures: tag frequencies (every tag, generated vs real, plus the tags that differ most),
co-occurrence heatmaps side by side (taxonomy order, category borders marked) and set-size
histograms. They are meant for a quick look at what the metrics summarise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tagtune.records.taxonomy import Taxonomy


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from tagtune.files.resumable import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _category_edges(taxonomy: Taxonomy) -> list[int]:
    edges, start = [], 0
    for tags in taxonomy.categories.values():
        start += len(tags)
        edges.append(start)
    return edges[:-1]


def tag_frequency_plot(path: Path, gen: np.ndarray, ref: np.ndarray, taxonomy: Taxonomy, top: int = 25) -> Path:
    import matplotlib.pyplot as plt

    fg = gen.mean(axis=0) if len(gen) else np.zeros(len(taxonomy))
    fr = ref.mean(axis=0) if len(ref) else np.zeros(len(taxonomy))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [1, 1.4]})
    hi = max(float(fg.max(initial=0)), float(fr.max(initial=0)), 1e-3) * 1.05
    ax1.scatter(fr, fg, s=12, alpha=0.7)
    ax1.plot([0, hi], [0, hi], color="grey", lw=1, ls="--")
    ax1.set_xlim(0, hi)
    ax1.set_ylim(0, hi)
    ax1.set_xlabel("real: share of sets with the tag")
    ax1.set_ylabel("generated: share of sets with the tag")
    ax1.set_title("tag frequencies (one dot per tag)")
    order = np.argsort(-(fr + fg))[:top]
    y = np.arange(len(order))
    ax2.barh(y - 0.2, fr[order], height=0.4, label="real")
    ax2.barh(y + 0.2, fg[order], height=0.4, label="generated")
    ax2.set_yticks(y, [taxonomy.tags[i] for i in order], fontsize=8)
    ax2.invert_yaxis()
    ax2.set_xlabel("share of sets")
    ax2.set_title(f"the {len(order)} most frequent tags")
    ax2.legend()
    fig.tight_layout()
    return _save(fig, path)


def cooccurrence_plot(path: Path, gen: np.ndarray, ref: np.ndarray, taxonomy: Taxonomy) -> Path:
    import matplotlib.pyplot as plt

    from tagtune.vae.metrics import cooccurrence

    cg, cr = cooccurrence(gen), cooccurrence(ref)
    np.fill_diagonal(cg, 0)
    np.fill_diagonal(cr, 0)
    vmax = max(float(np.quantile(cr, 0.995)), float(np.quantile(cg, 0.995)), 1e-6)
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.2))
    for ax, mat, title in ((axes[0], cr, "real"), (axes[1], cg, "generated")):
        im = ax.imshow(mat, cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
        for edge in _category_edges(taxonomy):
            ax.axhline(edge - 0.5, color="white", lw=0.6)
            ax.axvline(edge - 0.5, color="white", lw=0.6)
        centres, start = [], 0
        for tags in taxonomy.categories.values():
            centres.append(start + len(tags) / 2 - 0.5)
            start += len(tags)
        ax.set_xticks(centres, list(taxonomy.categories), fontsize=8)
        ax.set_yticks(centres, list(taxonomy.categories), fontsize=8)
        ax.set_title(f"co-occurrence rate, {title}")
    fig.colorbar(im, ax=axes, shrink=0.8, label="share of sets with both tags")
    return _save(fig, path)


def set_size_plot(path: Path, gen: np.ndarray, ref: np.ndarray) -> Path:
    import matplotlib.pyplot as plt

    sg, sr = gen.sum(axis=1), ref.sum(axis=1)
    top = int(max(sg.max(initial=0), sr.max(initial=0)))
    bins = np.arange(top + 2) - 0.5
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(sr, bins=bins, density=True, alpha=0.6, label=f"real (mean {sr.mean():.2f})" if len(sr) else "real")
    ax.hist(sg, bins=bins, density=True, alpha=0.6, label=f"generated (mean {sg.mean():.2f})" if len(sg) else "generated")
    ax.set_xlabel("tags per set")
    ax.set_ylabel("share of sets")
    ax.set_title("set sizes")
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def write_plots(out_dir: Path, gen: np.ndarray, ref: np.ndarray, taxonomy: Taxonomy) -> list[Path]:
    """Write ``tag_frequencies.png``, ``cooccurrence.png`` and ``set_sizes.png`` into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from tagtune.files.resumable import ensure_dir

    out_dir = ensure_dir(Path(out_dir))
    return [
        tag_frequency_plot(out_dir / "tag_frequencies.png", gen, ref, taxonomy),
        cooccurrence_plot(out_dir / "cooccurrence.png", gen, ref, taxonomy),
        set_size_plot(out_dir / "set_sizes.png", gen, ref),
    ]
