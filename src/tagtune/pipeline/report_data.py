"""What ``tagtune dataset report`` shows, computed from a dataset folder (no HTML here).

Rows are read once and kept light (:class:`Clip`: the fields the page shows, not the whole
provenance), so a 20k-row dataset fits in memory many times over. The gallery is a seeded sample
per concept: the same seed gives the same clips, and a page never grows with the dataset.
"""

from __future__ import annotations

import functools
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.errors import InputError
from tagtune.files.readers import iter_records, parse_tags
from tagtune.pipeline.dataset import METADATA, SPLITS, read_provenance
from tagtune.records.licences import Source
from tagtune.records.taxonomy import Taxonomy
from tagtune.report import SILENT, Reporter

MEASURES = ("loudness_lufs", "bpm", "bpm_confidence", "key_estimate")  # added by the loudness/tempo analysis when it ran
_PATH = re.compile(r"(?<![\w.:/])(?:~|[A-Za-z]:)?[/\\][^\s,'\"\]\)}]+")


@functools.lru_cache(maxsize=4096)  # rows repeat the same few model ids
def public(value: Any) -> str:
    """Text safe to publish: every absolute path in it shortened to its last part (a page, like the
    card, never names a path of the machine it was made on)."""
    return _PATH.sub(lambda m: Source("", m.group(0), "", None).display or "<local path>", str(value))


@dataclass
class Clip:
    """One row as the page needs it."""

    id: str
    split: str
    audio: Path  # absolute
    meta: Path
    line: int
    caption: str
    tags: list[str]
    realised: set[str] | None  # None: the verify step did not judge this row
    unjudged: set[str]
    duration: float | None = None
    realisation: float | None = None
    pair_id: str | None = None
    concept: str | None = None
    edit: str | None = None
    measures: dict[str, Any] = field(default_factory=dict)

    def verdict(self, tag: str) -> str:
        """``heard``, ``missed`` or ``unjudged`` (no checker could judge it, or no verify step)."""
        if self.realised is None or tag in self.unjudged:
            return "unjudged"
        return "heard" if tag in self.realised else "missed"

    def as_row(self) -> dict[str, Any]:
        """The row shape :func:`tagtune.pipeline.card.realisation_per_tag` reads."""
        verify = {"unjudged_tags": sorted(self.unjudged)} if self.realised is not None else None
        return {"tags": self.tags, "realised_tags": sorted(self.realised or ()), "provenance": {"verify": verify}}


@dataclass
class ReportData:
    ds_dir: Path
    provenance: dict[str, Any]
    taxonomy: Taxonomy
    clips: list[Clip]
    models: list[tuple[str, str, str, int]]  # stage, model, revision or fingerprint, clips


def _text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and value != value) else str(value)


def _tags(rec: Mapping[str, Any], key: str, meta: Path, line: int) -> list[str]:
    try:
        return parse_tags(rec.get(key))
    except ValueError as exc:
        raise InputError(str(exc), meta, line, key) from exc


def _clip(split: str, meta: Path, line: int, rec: Mapping[str, Any]) -> Clip:
    name = rec.get("file_name")
    if not isinstance(name, str) or not name:
        raise InputError("no audio file named", meta, line, "file_name")
    verify = (rec.get("provenance") or {}).get("verify") or None
    judged = verify is not None or rec.get("realised_tags") is not None
    duration = rec.get("duration")
    return Clip(
        id=str(rec.get("id")), split=split, audio=(meta.parent / name).absolute(), meta=meta, line=line,
        caption=str(rec.get("caption") or ""), tags=_tags(rec, "tags", meta, line),
        realised=set(_tags(rec, "realised_tags", meta, line)) if judged else None,
        unjudged=set(_tags(verify or {}, "unjudged_tags", meta, line)),
        duration=float(duration) if isinstance(duration, (int, float)) else None,
        realisation=float(rec["realisation"]) if isinstance(rec.get("realisation"), (int, float)) else None,
        pair_id=_text(rec.get("pair_id")), concept=_text(rec.get("concept")), edit=_text(rec.get("edit")),
        measures={k: rec[k] for k in MEASURES if _text(rec.get(k)) is not None},
    )


def _models(records: Iterable[Mapping[str, Any]]) -> Counter[tuple[str, str, str]]:
    """(stage, model, revision) of each row's provenance, counted: one line per model that made clips."""
    seen: Counter[tuple[str, str, str]] = Counter()
    for rec in records:
        for stage, entry in (rec.get("provenance") or {}).items():
            if isinstance(entry, Mapping) and entry.get("model"):
                rev = entry.get("revision") or entry.get("fingerprint") or "-"
                seen[(stage, public(entry["model"]), public(rev))] += 1
    return seen


def taxonomy_of(provenance: Mapping[str, Any], clips: Iterable[Clip]) -> Taxonomy:
    """The run's taxonomy as provenance.json records it, else one category of the tags the rows use."""
    recorded = provenance.get("taxonomy")
    if isinstance(recorded, Mapping) and recorded:
        return Taxonomy(recorded, source="provenance.json")
    tags = sorted({t for c in clips for t in c.tags})
    return Taxonomy({"tags": tags or ["none"]}, source="the rows")


def _row_count(metas: list[Path]) -> int | None:
    """Rows in the Parquet files, from their footers (for the progress bar; None when unreadable)."""
    import pyarrow.parquet as pq

    try:
        return sum(pq.ParquetFile(m).metadata.num_rows for m in metas)
    except Exception:  # noqa: BLE001 -- the reader below names the broken file
        return None


def load(ds_dir: Path, reporter: Reporter = SILENT) -> ReportData:
    """Read every split's rows (a broken file is an InputError naming it) and the provenance."""
    clips: list[Clip] = []
    models: Counter[tuple[str, str, str]] = Counter()
    metas = [ds_dir / split / METADATA for split in SPLITS if (ds_dir / split / METADATA).is_file()]
    with reporter.progress("reading rows", total=_row_count(metas), unit="rows") as task:
        for meta in metas:
            split = meta.parent.name
            for line, rec in iter_records(meta):
                clips.append(_clip(split, meta, line, rec))
                models.update(_models([rec]))
                task.advance()
    if not clips:
        raise InputError("the dataset has no rows", ds_dir, hint="rebuild it with `tagtune pipeline run`")
    provenance = read_provenance(ds_dir)
    rank = {stage: i for i, stage in enumerate(("tags", "caption", "audio"))}
    rows = [(s, m, r, n) for (s, m, r), n in sorted(models.items(), key=lambda kv: (rank.get(kv[0][0], 9), kv[0]))]
    return ReportData(ds_dir, provenance, taxonomy_of(provenance, clips), clips, rows)


@dataclass
class Concept:
    """One tag's gallery: counterfactual pairs (with the tag, without it) and single clips."""

    tag: str
    category: str
    count: int
    pairs: list[tuple[Clip, Clip]]
    singles: list[Clip]

    @property
    def shown(self) -> list[Clip]:
        return [c for pair in self.pairs for c in pair] + self.singles


def _pairs_by_concept(clips: list[Clip]) -> dict[str, list[tuple[Clip, Clip]]]:
    """Complete pairs per concept, ordered (member with the concept, member without)."""
    members: dict[str, list[Clip]] = {}
    for c in clips:
        if c.pair_id and c.concept:
            members.setdefault(c.pair_id, []).append(c)
    out: dict[str, list[tuple[Clip, Clip]]] = {}
    for pid in sorted(members):
        group = members[pid]
        with_c = [c for c in group if c.concept in c.tags]
        without = [c for c in group if c.concept not in c.tags]
        if with_c and without:
            out.setdefault(with_c[0].concept or "", []).append((with_c[0], without[0]))
    return out


def gallery(data: ReportData, per_concept: int, seed: int) -> list[Concept]:
    """Per tag in taxonomy order (then tags outside it), a seeded sample of ``per_concept`` clips;
    counterfactual pairs of the tag come first (about half the clips), single clips fill the rest."""
    by_tag: dict[str, list[Clip]] = {}
    for c in sorted(data.clips, key=lambda c: (c.id, c.split)):
        for tag in c.tags:
            by_tag.setdefault(tag, []).append(c)
    pairs = _pairs_by_concept(data.clips)
    order = [t for t in data.taxonomy.tags if t in by_tag] + sorted(t for t in by_tag if t not in data.taxonomy.index)
    out = []
    for tag in order:
        rng = random.Random(f"{seed}:{tag}")
        own = pairs.get(tag, [])
        chosen = rng.sample(own, min(len(own), max(1, per_concept // 2)))
        taken = {id(c) for p in chosen for c in p}
        rest = [c for c in by_tag[tag] if id(c) not in taken]
        k = min(len(rest), per_concept - 2 * len(chosen)) if chosen else min(len(rest), per_concept)
        singles = rng.sample(rest, max(k, 0))
        out.append(Concept(tag, data.taxonomy.category_of.get(tag, "other"), len(by_tag[tag]), chosen, singles))
    return out
