"""The summary of ``tagtune tta verify``: realisation per category, tag and checker, and a per-tag chart.

Built from the verification lines alone (the pipeline's verify step summarises the lines it
chose with the same function), so a report can be rebuilt from ``verification.jsonl``. The tags
of an unplayable clip (``unplayable: true``) that a checker claims count as judged and not realised
per tag, category and overall, but not in their checker's row (it measured nothing); the report lists those clips with their
reason (``unplayable``) and counts the clips without intended tags (``clips_without_tags``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.tta.checkers import Checker
from tagtune.tta.facts import summary as facts_summary


@dataclass
class VerifyResult:
    """What a run did and the summary it wrote (rendered by the CLI, read by the pipeline)."""

    folder: Path
    rows_file: Path
    report_path: Path
    plot_path: Path | None = None
    shard: str = "0/1"
    merged: int = 0  # lines folded in from the parts of sharded runs
    clips: int = 0
    scored: int = 0
    skipped: int = 0
    redone: int = 0
    seconds: float = 0.0
    checker_seconds: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)



def _rate(realised: int, judged: int) -> float | None:
    return round(realised / judged, 4) if judged else None


def _by_tag(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per tag: clips judged (an unplayable clip's tags among them, counted apart), realised, unjudged."""
    by_tag: dict[str, dict[str, Any]] = {}

    def entry(tag: str) -> dict[str, Any]:
        return by_tag.setdefault(tag, {"category": None, "checker": None, "judged": 0, "realised": 0, "unjudged": 0,
                                       "unplayable": 0})

    for rec in rows:
        for tag, s in (rec.get("scores") or {}).items():
            e = entry(tag)
            e["category"] = e["category"] or s.get("category")
            e["checker"] = e["checker"] or s.get("checker")
            e["judged"] += 1
            e["realised"] += int(bool(s.get("realised")))
            e["unplayable"] += int(bool(s.get("unplayable")))
        for tag in rec.get("unjudged_tags") or []:
            entry(tag)["unjudged"] += 1
    return by_tag


def summarise(rows: list[dict[str, Any]], checkers: list[Checker], result: VerifyResult) -> dict[str, Any]:
    """Realisation overall, per category, per tag and per checker, from the verification lines."""
    by_tag = _by_tag(rows)
    by_category: dict[str, dict[str, Any]] = {}
    by_checker: dict[str, dict[str, Any]] = {}
    for entry in by_tag.values():
        entry["rate"] = _rate(entry["realised"], entry["judged"])
        measured = entry["judged"] - entry["unplayable"]  # what the checker itself judged
        for key, table, judged, realised in ((entry["category"] or "unknown", by_category, entry["judged"], entry["realised"]),
                                             (entry["checker"], by_checker, measured, entry["realised"])):
            if judged and key is not None:
                agg = table.setdefault(str(key), {"judged": 0, "realised": 0, "tags": 0})
                agg["judged"] += judged
                agg["realised"] += realised
                agg["tags"] += 1
    for table in (by_category, by_checker):
        for agg in table.values():
            agg["rate"] = _rate(agg["realised"], agg["judged"])
    fractions = [r["realisation"] for r in rows if r.get("realisation") is not None]
    judged = sum(e["judged"] for e in by_tag.values())
    realised = sum(e["realised"] for e in by_tag.values())
    checker_total = sum(result.checker_seconds.values())
    unplayable = [{"id": r.get("id"), "file_name": r.get("file_name"), "reason": r.get("reason")} for r in rows if r.get("unplayable")]
    return {
        "folder": str(result.folder), "clips": len(rows), "clips_judged": len(fractions),
        "clips_unplayable": len(unplayable), "clips_without_tags": sum(1 for r in rows if not r.get("intended_tags")),
        "unplayable": unplayable,
        "overall": {"realisation_mean": round(sum(fractions) / len(fractions), 4) if fractions else None,
                    "tags_judged": judged, "tags_realised": realised, "rate": _rate(realised, judged),
                    "tags_unjudged": sum(e["unjudged"] for e in by_tag.values())},
        "by_category": dict(sorted(by_category.items())), "by_tag": dict(sorted(by_tag.items())),
        "by_checker": {name: {**agg, "seconds": round(result.checker_seconds.get(name, 0.0), 4)} for name, agg in by_checker.items()},
        "checkers": {c.name: (c.describe() if hasattr(c, "describe") else {}) for c in checkers},
        "facts": facts_summary(rows),
        "run": {"scored": result.scored, "skipped": result.skipped, "redone": result.redone,
                "seconds": round(result.seconds, 4), "checker_seconds": round(checker_total, 4),
                "overhead_fraction": round(1 - checker_total / result.seconds, 4) if result.scored and result.seconds > 0 else None},
    }


def plot(report: dict[str, Any], path: Path) -> Path | None:
    """A horizontal bar chart of per-tag realisation (judged tags only), coloured by category."""
    tags = [(t, e) for t, e in report["by_tag"].items() if e["judged"]]
    if not tags:
        return None
    from tagtune.records.plots import pyplot, save_figure

    plt = pyplot()
    tags.sort(key=lambda te: (str(te[1]["category"]), te[0]))
    categories = sorted({str(e["category"]) for _, e in tags})
    colours = {c: f"C{i % 10}" for i, c in enumerate(categories)}
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.28 * len(tags)))
    ax.barh([f"{t} (n={e['judged']})" for t, e in tags], [e["rate"] for _, e in tags],
            color=[colours[str(e["category"])] for _, e in tags])
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("realisation (clips judged to carry the tag / clips asked for it)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c]) for c in categories]
    ax.legend(handles, categories, loc="lower right", fontsize="small")
    fig.tight_layout()
    return save_figure(fig, path)
