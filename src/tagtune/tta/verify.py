"""``tagtune tta verify DIR``: judge every clip's intended tags from its audio.

For each clip of a ``tta generate`` folder the checkers (:mod:`tagtune.tta.checkers`) judge the
tags the clip was asked to carry; ``DIR/verification.jsonl`` gets one line per clip with
``realised_tags``, ``missed_tags``, ``unjudged_tags``, per-tag scores and ``realisation`` (tags
judged present / tags judged; null when no checker could judge any of its tags) and the clip's
``facts`` (measured BPM and key, whatever its tags: :mod:`tagtune.tta.facts`). The summary
report (:mod:`tagtune.tta.verify_report`: JSON, a table in the CLI, a PNG bar chart) gives
realisation per category, per tag, per checker and overall.

Resumable like every long job: lines are appended per batch, and a line counts as done only
while its ``input_hash`` (the clip file's content, its tags and categories, the verification
settings) is the current one, so a killed run continues where it stopped, and a clip whose audio
or tags changed since is scored again; ``--force`` scores everything again. One writer per file:
``--force`` and the dropping of stale lines take the locks of what they delete first, so a second
run while one appends is refused in one line and the first's lines survive. Unplayable clips
(:mod:`tagtune.tta.judging`) get a line saying why; clips without tags are counted and warned about,
and a folder without any is one line. Categories come from
the row's category columns (``genre``, ``tempo`` ...), then ``verification.taxonomy`` (default:
the packaged taxonomy), then the ``tagmap`` (its tempo tags are ``tempo``, its instruments
``instrument``).

Sharded like ``tta generate`` (``--shard I/N``, torchrun, SLURM): a shard judges the clips whose
id hash falls in its class (the clips its generate shard rendered) and appends to its own
``verification.shard-*.jsonl``; it writes no report. The next unsharded run is the finalizer: it
folds the parts into ``verification.jsonl`` (one line per clip, in metadata order), judges what
no shard did and writes the report.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from tagtune.config.saved import config_hash
from tagtune.config.typed import reads, to_dict
from tagtune.errors import ConfigError, InputError, OutputError
from tagtune.files.resumable import (
    JsonlAppender,
    atomic_path,
    atomic_write_json,
    dumps_line,
    iter_jsonl,
    repair_tail,
)
from tagtune.files.runs import check_ours, file_sha256, first_line_has, json_has
from tagtune.files.sharding import Shard, resolve_shard
from tagtune.records.reader import read_clips
from tagtune.records.rows import FIELD_ORDER
from tagtune.records.taxonomy import Taxonomy
from tagtune.report import SILENT, Reporter
from tagtune.tta.checkers import Checker, CheckerContext, checker_classes, load_checkers
from tagtune.tta.config import VerifyConfig
from tagtune.tta.evaluate import metadata_of
from tagtune.tta.facts import Facts
from tagtune.tta.judging import Item, batches, score_batch
from tagtune.tta.merge import clip_path, locked, remove_locked
from tagtune.tta.verify_report import VerifyResult, plot, summarise

__all__ = ["REPORT", "VERIFICATION", "VerifyResult", "fold_parts", "recorded_settings", "score_batch", "summarise",
           "verdict_parts", "verify"]

VERIFICATION = "verification.jsonl"
REPORT = "verification_report.json"
PART_GLOB = "verification.shard-*-of-*.jsonl"
_NOT_CATEGORIES = set(FIELD_ORDER) | {"realised_tags", "missed_tags", "unjudged_tags", "intended_tags"}
_NOT_RECORDED = ("input", "output", "force", "shard")  # where and how a run works, not how clips are judged


def part_name(shard_tag: str) -> str:
    """``verification.shard-00001-of-00008.jsonl`` for a shard's tag."""
    return f"verification.{shard_tag}.jsonl"


def verdict_parts(folder: Path) -> list[Path]:
    """The verification parts of sharded runs in ``folder``, in shard order."""
    return sorted(Path(folder).glob(PART_GLOB))


def recorded_settings(folder: str | Path | None) -> dict[str, Any] | None:
    """How a folder's clips were meant to sound, from its ``config.yaml``: the tagmap, the
    verification settings and the CLAP model. ``tta verify DIR`` judges with these unless a preset
    or an override says otherwise, so a folder made with ``tagmap=conceptcaps`` or the offline
    tiny CLAP is verified with them. Recorded keys ``tta verify`` does not read are dropped."""
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
        out["verification"] = {k: v for k, v in data["verification"].items() if k not in _NOT_RECORDED}
    ev = data.get("evaluate")
    if isinstance(ev, dict):
        out["evaluate"] = {k: ev[k] for k in ("clap_model", "revision", "max_seconds", "dtype") if k in ev}
        if isinstance(ev.get("tiny"), dict) and "seed" in ev["tiny"]:
            out["evaluate"]["tiny"] = {"seed": ev["tiny"]["seed"]}
    return _read_by_verify(out) or None


def _read_by_verify(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``data`` without the keys ``tta verify`` does not read (settings an older tagtune recorded)."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if reads(VerifyConfig, key):
            out[name] = _read_by_verify(value, key) if isinstance(value, dict) else value
    return out


def _category_map(cfg: VerifyConfig) -> dict[str, str]:
    """tag -> category from ``verification.taxonomy`` (or the packaged one) and the tagmap."""
    out: dict[str, str] = {}
    out.update({t: "instrument" for t in cfg.tagmap.instruments})
    out.update({t: "tempo" for t in cfg.tagmap.tempo_bpm})
    taxonomy = Taxonomy.load(cfg.verification.taxonomy or "pkg:taxonomy.yaml")
    for category, tags in taxonomy.categories.items():
        out.update({t: category for t in tags})
    return out


def _row_categories(columns: dict[str, Any], tags: list[str], known: dict[str, str]) -> dict[str, str | None]:
    """Each intended tag's category: the row's own category columns first, then the known map."""
    cats: dict[str, str | None] = {t: known.get(t) for t in tags}
    wanted = set(tags)
    for key, value in columns.items():
        if key in _NOT_CATEGORIES or not isinstance(value, list) or not value:
            continue
        if all(isinstance(v, str) and v in wanted for v in value):
            cats.update({v: key for v in value})
    return cats


def _scan(folder: Path, meta: Path, known: dict[str, str], shard: Shard) -> list[Item]:
    """Pass 1: every listed clip has readable tags; this shard's clips exist (file:line:field otherwise) and are hashed."""
    items: list[Item] = []
    for row in read_clips(meta, need_caption=False):
        path = clip_path(folder, {"file_name": row.file_name}, meta, row.line)
        item = Item(row.line, row.id, row.file_name, path, list(row.tags), _row_categories(row.extra, row.tags, known),
                    row.duration)
        if shard.owns(row.id):
            if not path.is_file():
                raise InputError(f"clip {row.file_name} does not exist", meta, row.line, field="file_name",
                                 hint="re-render it with the same `tagtune tta generate`, or remove its line")
            item.digest = file_sha256(path)
        items.append(item)
    return items


def _candidates(items: list[Item], known: dict[str, str]) -> dict[str, list[str]]:
    """Per category, every tag a CLAP checker ranks a tag against: the taxonomy's and the folder's."""
    out: dict[str, set[str]] = {}
    for tag, category in known.items():
        out.setdefault(category, set()).add(tag)
    for item in items:
        for tag, category in item.categories.items():
            if category is not None:
                out.setdefault(category, set()).add(tag)
    return {c: sorted(tags) for c, tags in sorted(out.items())}


def _settings_digest(cfg: VerifyConfig, candidates: dict[str, list[str]]) -> str:
    v = cfg.verification
    parts: dict[str, Any] = {k: to_dict(getattr(v, k)) for k in ("tempo", "clap", "custom", "max_seconds")}
    parts["checkers"] = str(v.checkers)  # as text, as earlier versions hashed it: their verdicts stay current
    parts["tempo_bpm"] = to_dict(cfg.tagmap.tempo_bpm)
    parts["clap_model"] = [cfg.evaluate.clap_model, cfg.evaluate.revision, cfg.evaluate.max_seconds]
    if v.facts:  # with facts: [] a folder judged before facts existed keeps its verdicts
        parts["facts"] = [sorted(set(v.facts)), to_dict(v.key) if "key" in v.facts else None]
    parts["candidates"] = candidates
    return config_hash(parts, drop=())


def fold_parts(folder: Path, order: list[str], expected: dict[str, str]) -> int:
    """Fold the shard parts of ``folder`` into ``verification.jsonl``; returns the part lines read.

    Per id one line survives: a current one (its ``input_hash`` is ``expected``) over a stale one,
    a part's over ``verification.jsonl``'s (newer). Lines are written in metadata ``order`` (ids not
    in it last), atomically, and the parts are removed only after that: a killed fold loses nothing.
    """
    parts = verdict_parts(folder)
    if not parts:
        return 0
    main = folder / VERIFICATION
    best: dict[str, dict[str, Any]] = {}
    read = 0
    with locked([main, *parts], _BUSY):
        for path in [p for p in (main, *parts) if p.exists()]:
            repair_tail(path)
            for _, rec in iter_jsonl(path):
                ident = str(rec.get("id"))
                read += path != main
                if ident not in best or expected.get(ident) == rec.get("input_hash"):
                    best[ident] = rec
        rank = {ident: i for i, ident in enumerate(order)}
        lines = sorted(best.values(), key=lambda rec: rank.get(str(rec.get("id")), len(rank)))
        with atomic_path(main) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(dumps_line(rec) for rec in lines)
        for part in parts:  # still locked: a shard cannot have started on one
            part.unlink(missing_ok=True)
    return read


_BUSY = "wait for the other `tagtune tta verify` of this folder to finish (or, sharded, for every shard), then run again"


def _check_tags(items: list[Item], meta: Path, reporter: Reporter) -> None:
    """A folder whose clips have no tags has nothing to verify (one line); a few such clips are counted
    and named in a warning (their lines say nothing was judged), the others are verified."""
    bare = [it for it in items if not it.tags]
    if len(bare) == len(items):
        raise InputError("no clip has tags: nothing to verify", meta, field="tags",
                         hint="tta verify judges each clip's intended tags (its `tags` list); a folder rendered from "
                              "plain prompts has none: score it with `tagtune tta evaluate` instead")
    if bare:
        lines = ", ".join(f":{it.line}" for it in bare[:5]) + (f" and {len(bare) - 5} more" if len(bare) > 5 else "")
        reporter.warn(f"{len(bare)} of {len(items)} clip(s) have no tags ({meta.name}{lines}): nothing to judge in "
                      "them (counted as clips without intended tags); verifying the others")


def _check_writable(folder: Path, rows: Path) -> None:
    """``tta verify`` writes its per-clip lines into the folder it judges (``-o`` moves only the report)."""
    for path in (folder, rows):
        if path.exists() and not os.access(path, os.W_OK):
            raise OutputError(f"{path}: not writable: tta verify writes its per-clip verdicts ({rows.name}) into the "
                              "folder it judges", hint=f"make {folder} writable, or verify a writable copy of it "
                                                       "(-o moves only the summary report)")


def _warn_unplayable(report: dict[str, Any], reporter: Reporter) -> None:
    found = report.get("unplayable") or []
    if found:
        shown = "; ".join(f"{u['file_name']}: {u['reason']}" for u in found[:3])
        more = f"; and {len(found) - 3} more" if len(found) > 3 else ""
        reporter.warn(f"{len(found)} clip(s) unplayable, their tags counted as missed ({shown}{more})")


def _current_ids(path: Path, expected: dict[str, str]) -> set[str]:
    """Ids whose line in ``path`` is current (a sharded run skips the clips the merged file has judged)."""
    return {str(rec.get("id")) for _, rec in iter_jsonl(path) if expected.get(str(rec.get("id"))) == rec.get("input_hash")} \
        if path.exists() else set()


def verify(cfg: VerifyConfig, reporter: Reporter = SILENT, checkers: list[Checker] | None = None) -> VerifyResult:
    """Judge the clips of ``verification.input`` (this shard's, when sharded); write the verdicts and,
    unsharded, the report.

    Args:
        cfg: The ``tta verify`` config.
        reporter: Receives progress and notes.
        checkers: Ready checkers (tests); built from ``verification.checkers`` when None.

    Raises:
        ConfigError: No folder given, an unknown checker. InputError: No metadata, a missing or
            unreadable clip (naming it), a bad tags cell. ModelNotFoundError: CLAP not available.
    """
    v = cfg.verification
    if not v.input:
        raise ConfigError("no DIR to verify", key="verification.input", hint="tagtune tta verify DIR")
    shard = resolve_shard(v.shard)
    classes = checker_classes(v) if checkers is None else None  # an unknown checker fails before any clip is read
    started = time.perf_counter()
    folder = Path(v.input).expanduser()
    known = _category_map(cfg)
    meta = metadata_of(folder)
    items = _scan(folder, meta, known, shard)
    _check_tags(items, meta, reporter)
    candidates = _candidates(items, known)
    digest = _settings_digest(cfg, candidates)
    owned = [it for it in items if shard.owns(it.id)]
    for item in owned:
        blob = json.dumps([item.digest, item.tags, item.categories, digest], sort_keys=True)
        item.input_hash = hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
    context = CheckerContext(cfg=cfg, folder=folder, candidates=candidates, reporter=reporter)
    checkers = checkers if checkers is not None else load_checkers(v, context, classes)
    result = VerifyResult(folder=folder, rows_file=folder / (part_name(shard.tag) if shard.is_sharded else VERIFICATION),
                          report_path=Path(v.output).expanduser() if v.output else folder / REPORT, clips=len(owned),
                          shard=str(shard))
    _check_writable(folder, result.rows_file)
    if not shard.is_sharded:
        check_ours(result.report_path, "tta verify", json_has("by_tag", "overall"))
    check_ours(result.rows_file, "tta verify", first_line_has("input_hash"))
    expected = {it.id: it.input_hash for it in owned}
    elsewhere: set[str] = set()
    if shard.is_sharded and not v.force:
        elsewhere = _current_ids(folder / VERIFICATION, expected)
    if v.force:  # the locks first: a run still writing these is refused, never deleted under
        remove_locked([result.rows_file, *([] if shard.is_sharded else verdict_parts(folder))], _BUSY)
    elif not shard.is_sharded:
        result.merged = fold_parts(folder, [it.id for it in items], expected)
    _judge(result, owned, elsewhere, checkers, cfg, shard, reporter)
    result.seconds = time.perf_counter() - started
    if shard.is_sharded:
        return result  # the unsharded run after the shards writes the report
    rows = [rec for _, rec in iter_jsonl(result.rows_file) if expected.get(str(rec.get("id"))) == rec.get("input_hash")]
    result.report = summarise(rows, checkers, result)
    _warn_unplayable(result.report, reporter)
    atomic_write_json(result.report_path, result.report)
    result.plot_path = plot(result.report, result.report_path.with_suffix(".png"))
    return result


def _judge(result: VerifyResult, owned: list[Item], elsewhere: set[str], checkers: list[Checker], cfg: VerifyConfig,
           shard: Shard, reporter: Reporter) -> None:
    """Append a verdict line for every owned clip not judged yet (in this file or, for a shard, the merged one)."""
    v = cfg.verification
    expected = {it.id: it.input_hash for it in owned}
    with JsonlAppender(result.rows_file, key="id",  # it locks before it drops a stale line
                       done_when=lambda rec: expected.get(str(rec.get("id"))) == rec.get("input_hash")) as sink:
        result.redone = sink.dropped
        todo = [it for it in owned if it.id not in sink.done and it.id not in elsewhere]
        result.skipped = len(owned) - len(todo)
        if result.redone:
            reporter.note(f"{result.redone} earlier verdict(s) no longer match their clip, tags or settings: judging them again")
        label = f"verify {shard}" if shard.is_sharded else "verify"
        with reporter.progress(label, total=len(owned), unit="clips") as task:
            task.advance(result.skipped)
            for batch in batches(todo, v.batch_size):
                sink.append(score_batch(batch, checkers, v.max_seconds, result.checker_seconds,
                                        Facts.from_settings(v)))
                result.scored += len(batch)
                task.advance(len(batch))
