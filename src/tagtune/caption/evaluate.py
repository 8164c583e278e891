"""``tagtune caption evaluate``: score a file of captions against its tags and, optionally, references.

Reads any JSONL/CSV/Parquet with a tags column and a caption column (the output of ``caption
infer``, or e.g. ConceptCaps' ``seed_llm_captions_validation.csv`` with ``aspect_list`` and
``prediction``). References come from another file (joined on ``id``, or by row order when the
ids do not match and the row counts do) or from a column of the same file.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagtune.caption import metrics as M
from tagtune.errors import ConfigError, InputError
from tagtune.records import is_missing, iter_records, parse_tags, resolve_path
from tagtune.taxonomy import Taxonomy, normalize_tag

TAG_GUESSES = ("tags", "aspect_list", "aspects")
CAPTION_GUESSES = ("caption", "prediction", "text")


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    output: str


@dataclass
class _Row:
    id: str
    line: int
    tags: list[str]
    caption: str
    reference: str | None = None


def _pick(first: Mapping[str, Any], wanted: str | None, guesses: Sequence[str], what: str, flag: str, source: Path) -> str:
    if wanted:
        if wanted not in first:
            raise InputError(f"no {what} column '{wanted}'; available columns: {', '.join(first)}", source, 1,
                             hint=f"choose one with {flag}")
        return wanted
    for g in guesses:
        if g in first:
            return g
    raise InputError(f"cannot find a {what} column (tried {', '.join(guesses)}); available columns: {', '.join(first)}",
                     source, 1, hint=f"name it with {flag}")


def _text(value: Any, source: Path, line: int, column: str) -> str:
    if is_missing(value):
        return ""
    if not isinstance(value, str):
        raise InputError(f"expected text, got {type(value).__name__}", source, line, column)
    return " ".join(value.split())


def read_predictions(path: str | Path, tags_column: str | None, caption_column: str | None,
                     reference_column: str | None = None) -> tuple[list[_Row], dict[str, str | None]]:
    """Rows of (id, tags, caption[, same-file reference]) with the columns actually used."""
    source = resolve_path(path)
    rows: list[_Row] = []
    cols: dict[str, str | None] = {}
    for line, rec in iter_records(source):
        if not cols:
            cols["tags"] = _pick(rec, tags_column, TAG_GUESSES, "tags", "--tags-column", source)
            cols["caption"] = _pick(rec, caption_column, CAPTION_GUESSES, "caption", "--caption-column", source)
            ref = reference_column if reference_column and reference_column in rec and reference_column != cols["caption"] else None
            cols["reference"] = ref
        try:
            tags = [normalize_tag(t) for t in parse_tags(rec.get(cols["tags"]))]
        except ValueError as exc:
            raise InputError(str(exc), source, line, cols["tags"]) from exc
        rid = rec.get("id")
        rows.append(_Row(
            f"row-{line:06d}" if is_missing(rid) else str(rid), line, list(dict.fromkeys(tags)),
            _text(rec.get(cols["caption"]), source, line, cols["caption"]),
            _text(rec.get(cols["reference"]), source, line, cols["reference"]) if cols["reference"] else None,
        ))
    if not rows:
        raise InputError("no rows", source)
    return rows, cols


def attach_references(rows: list[_Row], path: str | Path, column: str) -> str:
    """Fill ``reference`` from another file; returns how rows were matched (``id`` or ``row order``)."""
    source = resolve_path(path)
    refs: list[tuple[str, str]] = []
    for line, rec in iter_records(source):
        if not refs and column not in rec:
            raise InputError(f"no reference column '{column}'; available columns: {', '.join(rec)}", source, 1,
                             hint="choose one with --reference-column")
        rid = rec.get("id")
        refs.append((f"row-{line:06d}" if is_missing(rid) else str(rid), _text(rec.get(column), source, line, column)))
    by_id = dict(refs)
    if all(r.id in by_id for r in rows):
        for r in rows:
            r.reference = by_id[r.id]
        return "id"
    if len(refs) == len(rows):
        for r, (_, text) in zip(rows, refs, strict=True):
            r.reference = text
        return "row order"
    found = sum(r.id in by_id for r in rows)
    raise InputError(
        f"references do not line up: {found} of {len(rows)} prediction ids found, and {len(refs)} reference rows "
        f"vs {len(rows)} predictions", source,
        hint="give references with the same ids, or exactly one reference per prediction in the same order",
    )


def compute_metrics(rows: Sequence[_Row], taxonomy: Taxonomy | None, ev: Mapping[str, Any]) -> dict[str, Any]:
    """Every metric for the rows; reference-based ones only for rows with a non-empty reference."""
    captions = [r.caption for r in rows]
    out: dict[str, Any] = {
        "rows": len(rows),
        "coverage": M.coverage([(r.tags, r.caption) for r in rows], taxonomy.category_of if taxonomy else None),
        "length_words": M.length_stats(captions),
        "distinct": {f"distinct_{n}": M.distinct_n(captions, int(n)) for n in (ev.get("distinct_n") or [1, 2, 3])},
    }
    paired = [(r.caption, r.reference) for r in rows if r.reference]
    if not paired:
        out["references"] = None
        return out
    preds, refs = [p for p, _ in paired], [r for _, r in paired]
    ref: dict[str, Any] = {"pairs": len(paired), "reference_length_words": M.length_stats(refs)}
    if ev.get("bleu", True):
        ref["bleu"] = M.bleu(preds, refs)
    if ev.get("rouge", True):
        ref["rouge_l"] = M.rouge_l(preds, refs)
    ref["meteor"] = M.meteor(preds, refs) if ev.get("meteor", True) else M.unavailable("turned off (evaluation.meteor=false)")
    ref["embedding_similarity"] = (
        M.embedding_similarity(preds, refs) if ev.get("embedding", True)
        else M.unavailable("turned off (evaluation.embedding=false)")
    )
    out["references"] = ref
    return out


def evaluate(cfg: Any) -> EvalResult:
    """Score ``evaluation.predictions`` and write the metrics as JSON.

    Args:
        cfg: A composed ``caption_inference`` config (``evaluation.*`` keys).

    Returns:
        The metrics and the JSON path.
    """
    from tagtune.resumable import atomic_write_json
    from tagtune.runs import prepare_run_dir

    ev = cfg.evaluation
    if not ev.get("predictions"):
        raise ConfigError("no predictions file given", hint="tagtune caption evaluate PREDICTIONS")
    start = time.perf_counter()
    rows, cols = read_predictions(ev.predictions, ev.get("tags_column"), ev.get("caption_column"),
                                  None if ev.get("references") else ev.get("reference_column"))
    join = "same file" if cols.get("reference") else None
    if ev.get("references"):
        join = attach_references(rows, ev.references, str(ev.get("reference_column") or "caption"))
        cols["reference"] = str(ev.get("reference_column") or "caption")
    tax_path = ev.get("taxonomy_path")
    taxonomy = Taxonomy.load(tax_path) if tax_path else None
    metrics = compute_metrics(rows, taxonomy, ev)
    if metrics["references"] is not None:
        metrics["references"]["source"] = str(ev.get("references") or ev.predictions)
        metrics["references"]["matched_by"] = join
    record = {
        "predictions": str(ev.predictions),
        "columns": cols,
        "taxonomy": str(tax_path) if tax_path else None,
        **metrics,
        "seconds": round(time.perf_counter() - start, 3),
    }
    if ev.get("output"):
        out = Path(str(ev.output)).expanduser()
    else:
        out = prepare_run_dir(cfg) / "metrics.json"
    atomic_write_json(out, record)
    return EvalResult(record, str(out))
