"""``--format concepts``: concept sets for TCAV-style probing.

For every tag (concept) with examples::

    C/concepts/<concept>/positive/   clips that carry the tag: intended, and realised where the
                                     verify step judged it
    C/concepts/<concept>/negative/   as many clips without it, matched to the positives: each
                                     positive gets the unused clip whose tags *outside the
                                     concept's category* overlap most (Jaccard), so a probe
                                     separates the concept, not the genres or moods around it
    C/concepts/<concept>/pairs.jsonl its counterfactual pairs (base and partner clip, the edit)
    C/random/random_000/ ...         random clip sets (the random concepts of TCAV's significance test)
    C/manifest.jsonl                 one line per concept: positives, negatives, pairs (paths relative to C)
    C/README.md                      this layout, and how to train a linear probe from it

Clips are hard links into the dataset folder where possible (copies otherwise); folder names are
file-name-safe versions of the tags (the manifest has the tag itself). The layout is what TCAV's
activation generators read: one folder of examples per concept, plus ``random_*`` folders.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagtune.files.ids import safe_id
from tagtune.files.resumable import atomic_write_text, dumps_line, link_or_copy
from tagtune.pipeline.exporters.base import ExportOptions, ExportResult, ExportRow
from tagtune.records.taxonomy import Taxonomy
from tagtune.report import Reporter

README = """# Concept sets

Made by `tagtune dataset export --format concepts` from {source}: {concepts} concepts, {randoms} random sets.

- `concepts/<concept>/positive/`: clips that carry the concept (the tag was intended, and realised where verified)
- `concepts/<concept>/negative/`: as many clips without it, matched on the tags of the other categories
- `concepts/<concept>/pairs.jsonl`: counterfactual pairs that differ in this concept alone (`base`, `partner`, `edit`)
- `random/random_NNN/`: random clip sets, for TCAV's significance test against random concepts
- `manifest.jsonl`: one line per concept with every path (relative to this folder)

A linear probe (a CAV) for one concept, from embeddings of your model (`embed` maps a wav path to a vector):

```python
import json, numpy as np
from sklearn.linear_model import LogisticRegression

concept = next(c for c in map(json.loads, open("manifest.jsonl")) if c["concept"] == "piano")
X = np.stack([embed(p) for p in concept["positives"] + concept["negatives"]])
y = np.array([1] * len(concept["positives"]) + [0] * len(concept["negatives"]))
cav = LogisticRegression(max_iter=1000).fit(X, y)
print("probe accuracy", cav.score(X, y), "CAV", cav.coef_[0] / np.linalg.norm(cav.coef_[0]))
```
"""


@dataclass
class _Clip:
    id: str
    tags: list[str]
    audio: Path
    realised: set[str] | None  # None: not verified
    unjudged: set[str]
    pair_id: str | None
    concept: str | None
    edit: str | None

    def carries(self, tag: str) -> bool:
        if tag not in self.tags:
            return False
        return self.realised is None or tag in self.realised or tag in self.unjudged


def _clips(rows: Iterator[ExportRow]) -> list[_Clip]:
    out = []
    for row in rows:
        rec, audio = row.record, row.audio
        verify = (rec.get("provenance") or {}).get("verify") or {}
        realised = rec.get("realised_tags")
        out.append(_Clip(str(rec["id"]), list(rec.get("tags") or []), audio,
                         set(realised) if realised is not None and verify else None,
                         set(verify.get("unjudged_tags") or []), rec.get("pair_id"), rec.get("concept"), rec.get("edit")))
    return sorted(out, key=lambda c: c.id)


def matched_negatives(positives: list[int], candidates: list[int], matrix: Any, context: Any, seed: int) -> list[int]:
    """For each positive (in order), the unused candidate whose context tags overlap most (Jaccard).

    Args:
        matrix: ``(clips, tags)`` multi-hot. context: boolean mask of the tags matched on.
    """
    import numpy as np

    if not positives or not candidates:
        return []
    a = matrix[np.ix_(positives, context)]
    b = matrix[np.ix_(candidates, context)]
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    sim = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    sim = sim + np.random.default_rng(seed).uniform(0, 1e-6, sim.shape)  # seeded tie-break
    used = np.zeros(len(candidates), dtype=bool)
    picked = []
    for row in sim:
        if used.all():
            break
        j = int(np.argmax(np.where(used, -1.0, row)))
        used[j] = True
        picked.append(candidates[j])
    return picked


class ConceptsExporter:
    """Per concept: positives, matched negatives, counterfactual pairs; random sets; a manifest.

    ``options.params``: ``min_examples``, ``random_sets``, ``random_size``, ``seed``.
    """

    name = "concepts"
    publishable = False

    def write(self, ds_dir: Path, out: Path, rows: Iterator[ExportRow], options: ExportOptions,
              reporter: Reporter) -> ExportResult:
        settings = {k: int(v) for k, v in options.params.items() if k in ("min_examples", "random_sets", "random_size", "seed")}
        return export_concepts(ds_dir, out, rows, reporter, **settings)


def export_concepts(ds_dir: Path, out: Path, rows: Iterator[ExportRow], reporter: Reporter,
                    min_examples: int = 1, random_sets: int = 10, random_size: int = 50, seed: int = 0) -> ExportResult:
    """Write the concept sets (see the module docstring)."""
    import numpy as np

    from tagtune.pipeline.dataset import read_provenance

    clips = _clips(rows)
    taxonomy = read_provenance(ds_dir).get("taxonomy")
    category_of = Taxonomy(taxonomy).category_of if taxonomy else {}
    vocab = sorted({t for c in clips for t in c.tags})
    index = {t: i for i, t in enumerate(vocab)}
    matrix = np.zeros((len(clips), len(vocab)), dtype=np.float64)
    for r, clip in enumerate(clips):
        matrix[r, [index[t] for t in clip.tags]] = 1.0
    lines, written = [], 0
    with reporter.progress("concepts", total=len(vocab), unit="concepts") as task:
        for tag in vocab:
            task.advance(1)
            pos = [r for r, c in enumerate(clips) if c.carries(tag)]
            if len(pos) < min_examples:
                continue
            category = category_of.get(tag)
            context = np.array([t != tag and (category is None or category_of.get(t) != category) for t in vocab])
            neg = matched_negatives(pos, [r for r, c in enumerate(clips) if tag not in c.tags], matrix, context,
                                    seed + index[tag])
            pos = pos[:len(neg)]  # equal sizes: as many positives as matched negatives
            if not pos:
                continue
            folder = Path("concepts") / safe_id(tag)
            entry = {"concept": tag, "category": category, "folder": folder.as_posix(),
                     "positives": _place(clips, pos, out, folder / "positive"),
                     "negatives": _place(clips, neg, out, folder / "negative"),
                     "pairs": _pairs(clips, tag, out, folder)}
            atomic_write_text(out / folder / "pairs.jsonl", "".join(dumps_line(p) for p in entry["pairs"]))
            lines.append(dumps_line(entry))
            written += 1
    randoms = _randoms(clips, out, random_sets, random_size, seed)
    manifest = atomic_write_text(out / "manifest.jsonl", "".join(lines))
    atomic_write_text(out / "README.md", README.format(source=ds_dir, concepts=written, randoms=len(randoms)))
    return ExportResult(out, {"concepts": [manifest], "random": randoms}, {"concepts": written, "random": len(randoms)})


def _place(clips: list[_Clip], rows: list[int], out: Path, folder: Path) -> list[str]:
    paths = []
    for r in rows:
        rel = folder / clips[r].audio.name
        link_or_copy(clips[r].audio, out / rel)
        paths.append(rel.as_posix())
    return paths


def _pairs(clips: list[_Clip], tag: str, out: Path, folder: Path) -> list[dict[str, Any]]:
    """The counterfactual pairs whose concept is ``tag``: base and partner clip (linked under pairs/)."""
    by_pair: dict[str, dict[str, _Clip]] = {}
    for c in clips:
        if c.pair_id and c.concept == tag and c.edit:
            by_pair.setdefault(c.pair_id, {})[c.edit] = c
    out_pairs = []
    for pair_id, members in sorted(by_pair.items()):
        partner_edit = next((e for e in ("add", "remove") if e in members), None)
        if "base" not in members or partner_edit is None:
            continue  # a member was left out (leakage guard, verify policy): not a pair any more
        base, partner = members["base"], members[partner_edit]
        paths = _place([base, partner], [0, 1], out, folder / "pairs")
        out_pairs.append({"pair_id": pair_id, "edit": partner_edit, "base": paths[0], "partner": paths[1],
                          "base_id": base.id, "partner_id": partner.id})
    return out_pairs


def _randoms(clips: list[_Clip], out: Path, count: int, size: int, seed: int) -> list[Path]:
    import numpy as np

    rng = np.random.default_rng(seed)
    folders = []
    for k in range(count if clips else 0):
        folder = Path("random") / f"random_{k:03d}"
        pick = sorted(rng.choice(len(clips), size=min(size, len(clips)), replace=False).tolist())
        _place(clips, pick, out, folder)
        folders.append(out / folder)
    return folders
