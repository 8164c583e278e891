"""``vae evaluate``'s figures: generated tag sets beside the real ones, drawn by :mod:`tagtune.records.plots`.

Three PNGs: tag frequencies (every tag, generated vs real, plus the most frequent), co-occurrence
heatmaps side by side (taxonomy order, category borders marked) and set-size histograms, for a
quick look at what the metrics summarise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tagtune.records import plots
from tagtune.records.taxonomy import Taxonomy


def write_plots(out_dir: Path, gen: np.ndarray, ref: np.ndarray, taxonomy: Taxonomy) -> list[Path]:
    """Write ``tag_frequencies.png``, ``cooccurrence.png`` and ``set_sizes.png`` into ``out_dir``."""
    sets = {"real": ref, "generated": gen}
    out_dir = Path(out_dir)
    return [plots.tag_frequency_plot(out_dir / "tag_frequencies.png", sets, taxonomy),
            plots.cooccurrence_plot(out_dir / "cooccurrence.png", sets, taxonomy),
            plots.set_size_plot(out_dir / "set_sizes.png", sets)]
