"""The pipeline's verify step: judge every clip's tags and apply the policy.

``keep`` annotates each row with what the audio realises. ``rerender`` renders the rows below
``verify.min_realisation`` again with the next seed of a deterministic schedule (attempt ``k``
uses base seed :func:`attempt_seed`; each clip's own seed derives from it as in any render), up
to ``verify.max_attempts`` renders, and keeps each row's best attempt (ties: the earlier one).
``drop`` leaves the rows below the minimum out. The members of a counterfactual pair (same
``pair_id``) are judged, re-rendered and kept or dropped together, so they keep sharing a seed.

Layout::

    DIR/verify/attempts/<k>/   prompts.jsonl, audio/, metadata.jsonl, verification.jsonl (k >= 2)
    DIR/verify/audio/          links to each row's chosen clip
    DIR/verify/metadata.jsonl  the chosen rows with realised_tags, realisation, the measured bpm and key (with
                               their confidences) and provenance.verify (estimators, the checkers' models)
    DIR/verify/summary.json    policy, counts (re-rendered, improved, dropped), realisation tables

Every attempt is an ordinary ``tta generate`` + ``tta verify`` folder, so a killed step resumes
inside its attempt; the chosen rows are recomputed from the attempts' files on every run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.config.saved import save_config
from tagtune.config.typed import replace
from tagtune.files.resumable import (
    atomic_path,
    atomic_write_json,
    dumps_line,
    ensure_dir,
    iter_jsonl,
    link_or_copy,
)
from tagtune.files.runs import claim_dir
from tagtune.models.sampling import row_seed
from tagtune.pipeline.config import VerifyStep
from tagtune.pipeline.seam import Runner, merge_clips
from tagtune.records.reader import read_clips
from tagtune.records.rows import ClipRow
from tagtune.report import Reporter
from tagtune.tta.config import GenerateConfig, VerifyConfig

_FACTS = {"bpm": "bpm", "bpm_confidence": "bpm_confidence", "key": "key_estimate", "key_confidence": "key_confidence"}  # verdict fact -> row field


def attempt_seed(seed: int, attempt: int) -> int:
    """The base seed of render ``attempt`` (1: the run's own seed)."""
    return int(seed) if attempt == 1 else row_seed(int(seed), f"verify-attempt-{attempt}", bits=32)


@dataclass
class _Attempt:
    number: int
    folder: Path
    seed: int
    rows: dict[str, ClipRow]
    verdicts: dict[str, dict[str, Any]]
    judged_by: dict[str, dict[str, Any]] = field(default_factory=dict)  # checker -> model and revision


@dataclass
class VerifyStepSummary:
    """What the step did (read by the pipeline and the dataset card)."""

    path: Path
    rows: int = 0
    kept: int = 0
    dropped: int = 0
    rerendered: int = 0
    improved: int = 0
    below_minimum: int = 0
    attempts: int = 1
    realisation_first: float | None = None
    realisation_final: float | None = None
    judged_by: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


def _judge(cfg: VerifyConfig, clips: Path, number: int, seed: int, out: Path, runner: Runner, digest: str,
           reporter: Reporter) -> _Attempt:
    """Judge a render folder (``executor.shards.verify`` shard tasks, then the unsharded finalizer that
    folds their parts and writes the report) and read its rows and verdicts back."""
    from tagtune.tta.verify import REPORT, VERIFICATION

    judge = replace(cfg, {"verification.input": str(clips), "verification.output": None, "verification.force": False,
                          "verification.shard": "0/1"})
    count = runner.shards("verify")
    runner.step(out, f"judge-{number}", "tta verify", judge, count, digest)
    if count > 1:  # the finalizer, as one task (it reads every clip): folds the parts, judges nothing left, writes the report
        runner.step(out, f"judge-{number}-report", "tta verify", judge, 1, digest)
    rows = {row.id: row for row in read_clips(clips / "metadata.jsonl")}
    verdicts = {str(rec["id"]): rec for _, rec in iter_jsonl(clips / VERIFICATION)}
    return _Attempt(number, clips, seed, rows, verdicts, _judged_by(clips / REPORT))


def _judged_by(report: Path) -> dict[str, dict[str, Any]]:
    """The checkers that ran a model, with the model and its resolved revision (the CLAP commit), from the report."""
    import json

    try:
        checkers = json.loads(report.read_text(encoding="utf-8")).get("checkers") or {}
    except (OSError, ValueError):
        return {}
    return {name: {"model": d["model"], "revision": d.get("revision")} for name, d in checkers.items()
            if isinstance(d, dict) and d.get("model")}


def _group(row: ClipRow) -> str:
    return row.pair_id or row.id


def _score(attempt: _Attempt, ids: list[str]) -> float | None:
    """A group's realisation in an attempt: the mean over its judged members (None: nothing judged)."""
    values = [attempt.verdicts[i].get("realisation") for i in ids if i in attempt.verdicts]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _fails(attempt: _Attempt, ids: list[str], minimum: float) -> bool:
    values = [attempt.verdicts.get(i, {}).get("realisation") for i in ids]
    return any(v is not None and v < minimum for v in values)


def _rerender(gen: GenerateConfig, judge: VerifyConfig, out: Path, number: int, rows: list[ClipRow], runner: Runner,
              digest: str, reporter: Reporter) -> _Attempt:
    """Render ``rows`` again into ``attempts/<number>`` with that attempt's seed, then judge them."""
    folder = claim_dir(out / "attempts" / str(number), f"pipeline verify (attempt {number})")
    prompts = folder / "prompts.jsonl"
    with atomic_path(prompts) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            provenance = {k: v for k, v in row.provenance.items() if k not in ("audio", "verify")}
            fh.write(dumps_line(dataclasses.replace(row, provenance=provenance, loudness_lufs=None).to_record()))
    seed = attempt_seed(gen.seed, number)
    cfg = replace(gen, {"generate.input": str(prompts), "generate.output": str(folder), "generate.shard": "0/1",
                        "generate.limit": None, "generate.overwrite": False, "seed": seed})
    runner.step(out, f"generate-{number}", "tta generate", cfg, runner.shards("tta"), digest)
    merge_clips(folder)
    return _judge(judge, folder, number, seed, out, runner, digest, reporter)


def run_verify_step(judge: VerifyConfig, gen: GenerateConfig, policy: VerifyStep, clips_dir: Path, out: Path,
                    runner: Runner, digest: str, reporter: Reporter) -> VerifyStepSummary:
    """Judge ``clips_dir`` (the audio stage's folder), apply ``policy`` and write ``out``.

    Args:
        judge: The ``tta verify`` config of the audio stage (checkers, CLAP model, tagmap).
        gen: The ``tta generate`` config of the audio stage (how clips are rendered again).
        policy: The pipeline's ``verify`` section (``policy``, ``min_realisation``, ``max_attempts``).
        clips_dir: The audio stage's folder. out: This step's folder.
        runner: Runs the judge and render steps' shard tasks. digest: The stage's config hash.
    """
    save_config(gen, ensure_dir(out) / "config.yaml")  # `tta verify DIR/verify` judges with the same settings
    minimum = float(policy.min_realisation)
    first = _judge(judge, Path(clips_dir), 1, attempt_seed(gen.seed, 1), out, runner, digest, reporter)
    groups: dict[str, list[str]] = {}
    for row in first.rows.values():
        groups.setdefault(_group(row), []).append(row.id)
    attempts, best = [first], {g: first for g in groups}
    rendered: dict[str, list[_Attempt]] = {i: [first] for i in first.rows}
    for number in range(2, int(policy.max_attempts) + 1 if policy.policy == "rerender" else 2):
        failing = [g for g, ids in groups.items() if _fails(best[g], ids, minimum)]
        if not failing:
            break
        reporter.note(f"attempt {number}: rendering {sum(len(groups[g]) for g in failing)} clip(s) below "
                      f"realisation {minimum} again")
        attempt = _rerender(gen, judge, out, number, [first.rows[i] for g in failing for i in groups[g]], runner,
                            digest, reporter)
        attempts.append(attempt)
        for g in failing:
            for i in groups[g]:
                rendered[i].append(attempt)
            now, then = _score(attempt, groups[g]), _score(best[g], groups[g])
            if now is not None and (then is None or now > then):
                best[g] = attempt
    return _assemble(first, groups, best, rendered, policy, out, len(attempts))


def _assemble(first: _Attempt, groups: dict[str, list[str]], best: dict[str, _Attempt],
              rendered: dict[str, list[_Attempt]], policy: VerifyStep, out: Path, attempts: int) -> VerifyStepSummary:
    from tagtune.tta.merge import clip_path

    minimum = float(policy.min_realisation)
    summary = VerifyStepSummary(path=out / "metadata.jsonl", attempts=attempts)
    lines, chosen_verdicts = [], []
    for row in first.rows.values():
        g = _group(row)
        chosen = best[g]
        summary.rows += 1
        summary.rerendered += int(len(rendered[row.id]) > 1)
        if _fails(chosen, groups[g], minimum):
            summary.below_minimum += 1
            if policy.policy == "drop":
                summary.dropped += 1
                continue
        picked, verdict = chosen.rows[row.id], chosen.verdicts[row.id]
        summary.improved += int(chosen.number > 1)
        source = clip_path(chosen.folder, {"file_name": picked.file_name}, chosen.folder / "metadata.jsonl", 0)
        link_or_copy(source, ensure_dir(out / "audio") / source.name)
        history = [{"attempt": a.number, "seed": a.rows[row.id].provenance.get("audio", {}).get("seed"),
                    "realisation": a.verdicts.get(row.id, {}).get("realisation")} for a in rendered[row.id]]
        facts = verdict.get("facts") or {}
        provenance = {**picked.provenance, "verify": {
            "policy": str(policy.policy), "min_realisation": minimum, "chosen_attempt": chosen.number,
            "seed": picked.provenance.get("audio", {}).get("seed"), "attempts": history,
            "missed_tags": verdict.get("missed_tags", []), "unjudged_tags": verdict.get("unjudged_tags", []),
            **({"facts_by": verdict["facts_by"]} if verdict.get("facts_by") else {}),
            **({"judged_by": chosen.judged_by} if chosen.judged_by else {})}}
        final = dataclasses.replace(picked, file_name=f"audio/{source.name}", provenance=provenance,
                                    realised_tags=verdict.get("realised_tags"), realisation=verdict.get("realisation"),
                                    **{field: facts.get(k) for k, field in _FACTS.items()})
        summary.judged_by.update(chosen.judged_by)
        lines.append(dumps_line(final.to_record()))
        chosen_verdicts.append(verdict)
        summary.kept += 1
    with atomic_path(out / "metadata.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(lines)
    _summarise(summary, first, chosen_verdicts, policy, out)
    return summary


def _summarise(summary: VerifyStepSummary, first: _Attempt, chosen: list[dict[str, Any]], policy: VerifyStep,
               out: Path) -> None:
    from tagtune.tta.verify import VerifyResult, summarise

    def mean(verdicts: list[dict[str, Any]]) -> float | None:
        values = [v["realisation"] for v in verdicts if v.get("realisation") is not None]
        return round(sum(values) / len(values), 4) if values else None

    summary.realisation_first = mean(list(first.verdicts.values()))
    summary.realisation_final = mean(chosen)
    summary.report = summarise(chosen, [], VerifyResult(folder=out, rows_file=out / "metadata.jsonl", report_path=out))
    record = {k: v for k, v in dataclasses.asdict(summary).items() if k != "path"}
    atomic_write_json(out / "summary.json", {"policy": str(policy.policy), "min_realisation": float(policy.min_realisation),
                                             "max_attempts": int(policy.max_attempts), **record})
