"""``tagtune tta verify DIR``: judge every clip's intended tags from its audio.

For each clip of a ``tta generate`` folder the checkers (:mod:`tagtune.tta.checkers`) judge the
tags the clip was asked to carry; ``DIR/verification.jsonl`` gets one line per clip with
``realised_tags``, ``missed_tags``, ``unjudged_tags``, per-tag scores and ``realisation`` (tags
judged present / tags judged; null when no checker could judge any of its tags). The summary
report (JSON, a table in the CLI, a PNG bar chart of per-tag realisation) gives realisation per
category, per tag, per checker and overall.

Resumable like every long job: lines are appended per batch, and a line counts as done only
while its ``input_hash`` (the clip file's content, its tags and categories, the verification
settings) is the current one, so a killed run continues where it stopped, and a clip whose audio
or tags changed since is scored again; ``--force`` scores everything again. Categories come from
the row's category columns (``genre``, ``tempo`` ...), then ``verification.taxonomy`` (default:
the packaged taxonomy), then the ``tagmap`` (its tempo tags are ``tempo``, its instruments
``instrument``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.config.saved import config_hash
from tagtune.errors import ConfigError, InputError
from tagtune.files.resumable import JsonlAppender, atomic_path, atomic_write_json, iter_jsonl
from tagtune.files.runs import file_sha256
from tagtune.records.rows import FIELD_ORDER
from tagtune.report import SILENT, Reporter

VERIFICATION = "verification.jsonl"
REPORT = "verification_report.json"
_NOT_CATEGORIES = set(FIELD_ORDER) | {"realised_tags", "missed_tags", "unjudged_tags", "intended_tags"}


@dataclass
class VerifyResult:
    """What a run did and the summary it wrote (rendered by the CLI, read by the pipeline)."""

    folder: Path
    rows_file: Path
    report_path: Path
    plot_path: Path | None = None
    clips: int = 0
    scored: int = 0
    skipped: int = 0
    redone: int = 0
    seconds: float = 0.0
    checker_seconds: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Item:
    line: int
    id: str
    file_name: str
    path: Path
    tags: list[str]
    categories: dict[str, str | None]
    digest: str
    input_hash: str = ""


def recorded_settings(folder: str | Path | None) -> dict[str, Any] | None:
    """How a folder's clips were meant to sound, from its ``config.yaml``: the tagmap, the
    verification settings and the CLAP model. ``tta verify DIR`` judges with these unless a preset
    or an override says otherwise, so a folder made with ``tagmap=conceptcaps`` or the offline
    tiny CLAP is verified with them."""
    import yaml

    path = Path(folder).expanduser() / "config.yaml" if folder else None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else None
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if not isinstance(data, dict):
        return None
    out: dict[str, Any] = {k: data[k] for k in ("tagmap", "device") if k in data}
    if isinstance(data.get("verification"), dict):
        out["verification"] = {k: v for k, v in data["verification"].items() if k not in ("input", "output", "force")}
    ev = data.get("evaluate")
    if isinstance(ev, dict):
        out["evaluate"] = {k: ev[k] for k in ("clap_model", "revision", "max_seconds") if k in ev}
        if isinstance(ev.get("tiny"), dict) and "seed" in ev["tiny"]:
            out["evaluate"]["tiny"] = {"seed": ev["tiny"]["seed"]}
    return out or None


def _category_map(cfg: Any) -> dict[str, str]:
    """tag -> category from ``verification.taxonomy`` (or the packaged one) and the tagmap."""
    from tagtune.records.taxonomy import Taxonomy

    out: dict[str, str] = {}
    tagmap = cfg.get("tagmap") or {}
    out.update({str(t): "instrument" for t in dict(tagmap.get("instruments") or {})})
    out.update({str(t): "tempo" for t in dict(tagmap.get("tempo_bpm") or {})})
    taxonomy = Taxonomy.load(cfg.verification.taxonomy or "pkg:taxonomy.yaml")
    for category, tags in taxonomy.categories.items():
        out.update({t: category for t in tags})
    return out


def _row_categories(rec: dict[str, Any], tags: list[str], known: dict[str, str]) -> dict[str, str | None]:
    """Each intended tag's category: the row's own category columns first, then the known map."""
    cats: dict[str, str | None] = {t: known.get(t) for t in tags}
    wanted = set(tags)
    for key, value in rec.items():
        if key in _NOT_CATEGORIES or not isinstance(value, list) or not value:
            continue
        if all(isinstance(v, str) and v in wanted for v in value):
            cats.update({v: key for v in value})
    return cats


def _scan(folder: Path, meta: Path, known: dict[str, str]) -> list[_Item]:
    """Pass 1: every listed clip exists and has tags (file:line:field otherwise); hash each file."""
    from tagtune.files.readers import parse_tags
    from tagtune.tta.merge import clip_path

    items: list[_Item] = []
    seen: set[str] = set()
    for line, rec in iter_jsonl(meta):
        path = clip_path(folder, rec, meta, line)
        if not path.is_file():
            raise InputError(f"clip {rec['file_name']} does not exist", meta, line, field="file_name",
                             hint="re-render it with the same `tagtune tta generate`, or remove its line")
        ident = str(rec.get("id", Path(str(rec["file_name"])).stem))
        if ident in seen:
            raise InputError(f"id '{ident}' is listed twice", meta, line, field="id")
        seen.add(ident)
        try:
            tags = parse_tags(rec.get("tags"))
        except ValueError as exc:
            raise InputError(str(exc), meta, line, field="tags") from exc
        digest = file_sha256(path)
        items.append(_Item(line, ident, str(rec["file_name"]), path, tags, _row_categories(rec, tags, known), digest))
    if not items:
        raise InputError("no clips listed", meta)
    return items


def _candidates(items: list[_Item], known: dict[str, str]) -> dict[str, list[str]]:
    """Per category, every tag a CLAP checker ranks a tag against: the taxonomy's and the folder's."""
    out: dict[str, set[str]] = {}
    for tag, category in known.items():
        out.setdefault(category, set()).add(tag)
    for item in items:
        for tag, category in item.categories.items():
            if category is not None:
                out.setdefault(category, set()).add(tag)
    return {c: sorted(tags) for c, tags in sorted(out.items())}


def _settings_digest(cfg: Any, candidates: dict[str, list[str]]) -> str:
    from omegaconf import OmegaConf

    v = cfg.verification
    parts = {k: OmegaConf.to_container(v[k], resolve=True) if hasattr(v[k], "items") or isinstance(v[k], list) else v[k]
             for k in ("checkers", "tempo", "clap", "custom", "max_seconds")}
    parts["tempo_bpm"] = OmegaConf.to_container(cfg.tagmap.tempo_bpm, resolve=True) if "tagmap" in cfg else None
    parts["clap_model"] = [str(cfg.evaluate.clap_model), cfg.evaluate.revision, cfg.evaluate.max_seconds]
    parts["candidates"] = candidates
    return config_hash(parts, drop=())


def _assign(item: _Item, checkers: list[Any]) -> tuple[dict[str, list[Any]], list[str]]:
    """The first claiming checker for each tag; the tags none claims (unjudged)."""
    from tagtune.tta.checkers import TagToJudge

    per: dict[str, list[Any]] = {c.name: [] for c in checkers}
    unjudged: list[str] = []
    for tag in item.tags:
        category = item.categories.get(tag)
        owner = next((c for c in checkers if c.claims(tag, category)), None)
        if owner is None:
            unjudged.append(tag)
        else:
            per[owner.name].append(TagToJudge(tag, category))
    return per, unjudged


def _row(item: _Item, verdicts: dict[str, tuple[str, Any]], unjudged: list[str]) -> dict[str, Any]:
    realised = [t for t in item.tags if t in verdicts and verdicts[t][1].realised]
    missed = [t for t in item.tags if t in verdicts and not verdicts[t][1].realised]
    judged = len(realised) + len(missed)
    scores = {t: {"checker": name, "realised": j.realised, "score": j.score, "category": item.categories.get(t), **j.detail}
              for t, (name, j) in verdicts.items()}
    return {"id": item.id, "file_name": item.file_name, "intended_tags": item.tags, "realised_tags": realised,
            "missed_tags": missed, "unjudged_tags": unjudged,
            "realisation": round(len(realised) / judged, 6) if judged else None,
            "scores": scores, "input_hash": item.input_hash}


def score_batch(items: list[_Item], checkers: list[Any], max_seconds: float | None,
                timings: dict[str, float]) -> list[dict[str, Any]]:
    """Read a batch of clips, let each checker judge the tags it claims, and build their lines."""
    from tagtune.tta.audio import read_mono
    from tagtune.tta.checkers import Clip

    clips = [Clip(it.id, *read_mono(it.path, max_seconds), it.digest) for it in items]
    assigned = [_assign(it, checkers) for it in items]
    verdicts: list[dict[str, tuple[str, Any]]] = [{} for _ in items]
    for checker in checkers:
        wanted = [per[checker.name] for per, _ in assigned]
        if not any(wanted):
            continue
        started = time.perf_counter()
        judged = checker.judge(clips, wanted)
        timings[checker.name] = timings.get(checker.name, 0.0) + time.perf_counter() - started
        for i, result in enumerate(judged):
            asked = {t.tag for t in wanted[i]}
            verdicts[i].update({tag: (checker.name, j) for tag, j in result.items() if tag in asked})
    rows = []
    for item, (per, unjudged), verdict in zip(items, assigned, verdicts, strict=True):
        skipped = [t.tag for ts in per.values() for t in ts if t.tag not in verdict]  # claimed, then not judged
        rows.append(_row(item, verdict, unjudged + skipped))
    return rows


def _batches(items: list[_Item], size: int) -> Iterator[list[_Item]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def verify(cfg: Any, reporter: Reporter = SILENT, checkers: list[Any] | None = None) -> VerifyResult:
    """Judge every clip of ``verification.input``; write ``verification.jsonl`` and the report.

    Args:
        cfg: A composed ``tta_inference`` config.
        reporter: Receives progress and notes.
        checkers: Ready checkers (tests); built from ``verification.checkers`` when None.

    Raises:
        ConfigError: No folder given, an unknown checker. InputError: No metadata, a missing or
            unreadable clip (naming it), a bad tags cell. ModelNotFoundError: CLAP not available.
    """
    from tagtune.tta.checkers import CheckerContext, load_checkers
    from tagtune.tta.evaluate import metadata_of

    v = cfg.verification
    if not v.input:
        raise ConfigError("no DIR to verify", key="verification.input", hint="tagtune tta verify DIR")
    started = time.perf_counter()
    folder = Path(v.input).expanduser()
    meta = metadata_of(folder)
    known = _category_map(cfg)
    items = _scan(folder, meta, known)
    candidates = _candidates(items, known)
    digest = _settings_digest(cfg, candidates)
    for item in items:
        blob = json.dumps([item.digest, item.tags, item.categories, digest], sort_keys=True)
        item.input_hash = hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
    context = CheckerContext(cfg=cfg, folder=folder, candidates=candidates, reporter=reporter)
    checkers = checkers if checkers is not None else load_checkers(v, context)
    result = VerifyResult(folder=folder, rows_file=folder / VERIFICATION,
                          report_path=Path(v.output).expanduser() if v.output else folder / REPORT, clips=len(items))
    from tagtune.files.runs import check_ours, first_line_has, json_has

    check_ours(result.report_path, "tta verify", json_has("by_tag", "overall"))
    check_ours(result.rows_file, "tta verify", first_line_has("input_hash"))
    expected = {it.id: it.input_hash for it in items}
    with JsonlAppender(result.rows_file, key="id", overwrite=bool(v.force),
                       done_when=lambda rec: expected.get(str(rec.get("id"))) == rec.get("input_hash")) as sink:
        result.redone = sink.dropped
        todo = [it for it in items if it.id not in sink.done]
        result.skipped = len(items) - len(todo)
        if result.redone:
            reporter.note(f"{result.redone} earlier verdict(s) no longer match their clip, tags or settings: judging them again")
        with reporter.progress("verify", total=len(items), unit="clips") as task:
            task.advance(result.skipped)
            for batch in _batches(todo, int(v.batch_size)):
                sink.append(score_batch(batch, checkers, v.max_seconds, result.checker_seconds))
                result.scored += len(batch)
                task.advance(len(batch))
    rows = [rec for _, rec in iter_jsonl(result.rows_file) if expected.get(str(rec.get("id"))) == rec.get("input_hash")]
    result.seconds = time.perf_counter() - started
    result.report = summarise(rows, checkers, result)
    atomic_write_json(result.report_path, result.report)
    result.plot_path = plot(result.report, result.report_path.with_suffix(".png"))
    return result


def _rate(realised: int, judged: int) -> float | None:
    return round(realised / judged, 4) if judged else None


def summarise(rows: list[dict[str, Any]], checkers: list[Any], result: VerifyResult) -> dict[str, Any]:
    """Realisation overall, per category, per tag and per checker, from the verification lines."""
    by_tag: dict[str, dict[str, Any]] = {}
    for rec in rows:
        for tag, s in (rec.get("scores") or {}).items():
            entry = by_tag.setdefault(tag, {"category": s.get("category"), "checker": s.get("checker"), "judged": 0,
                                            "realised": 0, "unjudged": 0})
            entry["judged"] += 1
            entry["realised"] += int(bool(s.get("realised")))
        for tag in rec.get("unjudged_tags") or []:
            by_tag.setdefault(tag, {"category": None, "checker": None, "judged": 0, "realised": 0, "unjudged": 0})["unjudged"] += 1
    by_category: dict[str, dict[str, Any]] = {}
    by_checker: dict[str, dict[str, Any]] = {}
    for entry in by_tag.values():
        entry["rate"] = _rate(entry["realised"], entry["judged"])
        if not entry["judged"]:
            continue
        for key, table in ((entry["category"] or "unknown", by_category), (entry["checker"], by_checker)):
            agg = table.setdefault(str(key), {"judged": 0, "realised": 0, "tags": 0})
            agg["judged"] += entry["judged"]
            agg["realised"] += entry["realised"]
            agg["tags"] += 1
    for table in (by_category, by_checker):
        for agg in table.values():
            agg["rate"] = _rate(agg["realised"], agg["judged"])
    fractions = [r["realisation"] for r in rows if r.get("realisation") is not None]
    judged = sum(e["judged"] for e in by_tag.values())
    realised = sum(e["realised"] for e in by_tag.values())
    checker_total = sum(result.checker_seconds.values())
    return {
        "folder": str(result.folder), "clips": len(rows), "clips_judged": len(fractions),
        "overall": {"realisation_mean": round(sum(fractions) / len(fractions), 4) if fractions else None,
                    "tags_judged": judged, "tags_realised": realised, "rate": _rate(realised, judged),
                    "tags_unjudged": sum(e["unjudged"] for e in by_tag.values())},
        "by_category": dict(sorted(by_category.items())), "by_tag": dict(sorted(by_tag.items())),
        "by_checker": {name: {**agg, "seconds": round(result.checker_seconds.get(name, 0.0), 4)} for name, agg in by_checker.items()},
        "checkers": {c.name: (c.describe() if hasattr(c, "describe") else {}) for c in checkers},
        "run": {"scored": result.scored, "skipped": result.skipped, "redone": result.redone,
                "seconds": round(result.seconds, 4), "checker_seconds": round(checker_total, 4),
                "overhead_fraction": round(1 - checker_total / result.seconds, 4) if result.scored and result.seconds > 0 else None},
    }


def plot(report: dict[str, Any], path: Path) -> Path | None:
    """A horizontal bar chart of per-tag realisation (judged tags only), coloured by category."""
    tags = [(t, e) for t, e in report["by_tag"].items() if e["judged"]]
    if not tags:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tags.sort(key=lambda te: (str(te[1]["category"]), te[0]))
    categories = sorted({str(e["category"]) for _, e in tags})
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(categories)}
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.28 * len(tags)))
    ax.barh([f"{t} (n={e['judged']})" for t, e in tags], [e["rate"] for _, e in tags],
            color=[colours[str(e["category"])] for _, e in tags])
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("realisation (clips judged to carry the tag / clips asked for it)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c]) for c in categories]
    ax.legend(handles, categories, loc="lower right", fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
