"""KLD for ``tagtune tta evaluate``: how far generated clips' label distributions are from the reference's.

MusicGen's tables report, beside FAD and CLAP, the KL divergence between the AudioSet label
distributions a pretrained classifier (PaSST) gives a reference clip and the clip generated from the
same prompt. tagtune computes it that way:

* **paired** (``value``, MusicGen's protocol): a reference file pairs with the generated clip of the
  same name stem (the clip's id: ``audio/<id>.wav`` and ``<reference>/<id>.wav``). For each pair,
  ``KL(p_ref || p_gen) = sum p_ref (log p_ref - log(p_gen + 1e-6))``, averaged over the pairs; ``kld_qp``
  is the reverse direction, also averaged. Clips without a partner are left out (and counted).
* **distribution** (``distribution``): KL between the mean label distribution of all reference clips
  and that of all generated clips, for folders whose clips have no partners (e.g. a reference set
  rendered from other prompts). It is a different, smaller number; do not set it beside MusicGen's.

Each clip's distribution is the classifier's softmax over its labels, averaged over its 10 s
windows (:meth:`tagtune.tta.backbones.Classifier.probabilities`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tagtune.errors import TagtuneError
from tagtune.report import Reporter
from tagtune.tta.backbones import load_backbone
from tagtune.tta.config import Evaluate

EPSILON = 1e-6  # added to the generated side's probabilities (as audiocraft's KLD does), so an empty label is finite


def kl(p: Any, q: Any) -> float:
    """``KL(p || q)`` of two label distributions, with :data:`EPSILON` added to ``q``."""
    import numpy as np

    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(q + EPSILON)), 0.0)
    return float(terms.sum())


def kld(generated: list[tuple[str, Path]], reference: list[Path], ev: Evaluate,
        read: Callable[[Path], tuple[Any, int]], reporter: Reporter) -> dict[str, Any]:
    """KLD of ``generated`` (``(file name, path)``) against the ``reference`` files, with the classifier of
    ``evaluate.kld.classifier``: paired by name stem, and between the two sides' mean distributions."""
    import numpy as np

    name = ev.kld.classifier
    if not reference:
        return {"value": None, "note": "skipped: no reference audio (evaluate.reference)"}
    try:
        model = load_backbone(str(name), ev.fad)
    except TagtuneError as exc:
        reporter.note(f"KLD ({name}): unavailable: {exc}")
        return {"value": None, "note": f"unavailable: {exc}"}
    if not hasattr(model, "probabilities"):
        return {"value": None, "note": f"unavailable: the backbone '{name}' gives no label probabilities"}
    with reporter.progress(f"KLD {name}", total=len(generated) + len(reference), unit="clips") as task:
        def dist(path: Path) -> Any:
            out = model.probabilities(*read(path))
            task.advance(1)
            return out

        gen = {Path(file).stem: dist(path) for file, path in generated}
        ref = {path.stem: dist(path) for path in reference}
    gen = {k: v for k, v in gen.items() if v is not None}
    ref = {k: v for k, v in ref.items() if v is not None}
    pairs = sorted(set(gen) & set(ref))
    out: dict[str, Any] = {"classifier": model.name, "revision": model.revision, "n": len(gen), "n_reference": len(ref),
                           "pairs": len(pairs), "unpaired": len(gen) - len(pairs)}
    if gen and ref:
        out["distribution"] = kl(np.mean(list(ref.values()), axis=0), np.mean(list(gen.values()), axis=0))
    if pairs:
        out["value"] = float(np.mean([kl(ref[k], gen[k]) for k in pairs]))
        out["kld_qp"] = float(np.mean([kl(gen[k], ref[k]) for k in pairs]))
        out["note"] = f"{model.name} label distributions, KL(reference || generated) over {len(pairs)} clip pairs"
    else:
        out["value"] = None
        out["note"] = ("no reference file shares a generated clip's name (pairs match by id): only the distribution-level "
                       "KLD is reported")
    return out
