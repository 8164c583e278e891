"""``tagtune vae sample``: draw new tag sets from a trained model into a JSONL file.

The sets come from :func:`tagtune.vae.sampler.generate_sets` (modes, priors, constraints, and the
taxonomy's rules, which no set breaks). The output is the tag-set file of ``docs/schema.md``
(:class:`tagtune.records.rows.TagSetRow`, with the sampling settings and the model's fingerprint under
``provenance.tags``), written to a temporary name and renamed; the same model, settings and seed
give the same bytes.

Plain sampling streams (any number of sets in bounded memory) and, when the constraints are too
strict for the draw budget, keeps the sets drawn so far. Two options hold the sets in memory and
write nothing unless they succeed: balanced sampling (``sample.min_per_tag``, ``sample.quotas``, see
:mod:`tagtune.vae.balance`), whose top-up sets carry ``provenance.tags.quota``, and
counterfactual pairs (``sample.counterfactual``, see :mod:`tagtune.vae.pairs`), written after the
other sets with ``pair_id``, ``concept`` and ``edit``.

Settings that would do nothing, or something else than asked, are said before any drawing:
``sample.concepts`` without pairs is refused (the flag would be ignored), and quotas that need many
more sets than ``sample.num_samples`` get a warning naming about how many sets will be written
(:func:`tagtune.vae.balance.expected_total`). A warning rather than a refusal: a floor per tag is
what was asked, and the output keeps it; the warning comes before the wait and the big file.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tagtune import __version__
from tagtune.config.saved import sidecar_config
from tagtune.errors import ConfigError
from tagtune.files.resumable import atomic_path, atomic_write_json, dumps_line
from tagtune.files.runs import check_ours, first_line_has
from tagtune.models.device import torch_threads
from tagtune.models.sampling import row_seed
from tagtune.records.rows import TagSetRow
from tagtune.records.taxonomy import Rules, Taxonomy
from tagtune.report import SILENT, Reporter
from tagtune.vae.balance import (
    balance,
    check_reachable,
    expected_total,
    parse_quotas,
    training_counts,
    unreachable,
)
from tagtune.vae.config import SampleConfig, VaeSample
from tagtune.vae.constraints import ConstraintError, Constraints, parse_constraints
from tagtune.vae.modeldir import LoadedModel, load_model_dir
from tagtune.vae.pairs import draw_pairs, parse_concepts
from tagtune.vae.sampler import DrawStats, generate_sets


@dataclass
class SampleResult:
    """What ``sample`` wrote and how it went."""

    path: Path
    num_samples: int
    draws: int
    rounds: int
    seconds: float
    mean_set_size: float
    unique_share: float
    params: dict[str, Any]
    balance: dict[str, Any] | None = None
    pairs: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def sampling_provenance(cfg: SampleConfig, loaded: LoadedModel) -> dict[str, Any]:
    """``provenance.tags`` of every row: which model (by fingerprint) and which settings."""
    s = cfg.sample
    return {"model": loaded.path.name, "fingerprint": loaded.fingerprint, "mode": s.mode, "prior": s.prior,
            "temperature": s.temperature, "threshold": s.threshold, "seed": cfg.seed, "tagtune_version": __version__}


class _Drawer:
    """Draws sets with the run's settings; top-ups and pairs get their own seeds (by tag and round)."""

    def __init__(self, loaded: LoadedModel, cfg: SampleConfig, cons: Constraints):
        self.loaded, self.cfg, self.cons, self.stats = loaded, cfg, cons, DrawStats()

    def sets(self, n: int, seed: int, cons: Constraints | None = None) -> Iterator[list[list[int]]]:
        """Batches of ``n`` accepted sets (each call has its own draw budget; totals add up in ``stats``)."""
        s, stats = self.cfg.sample, DrawStats()
        try:
            yield from generate_sets(self.loaded, n, mode=s.mode, prior=s.prior, temperature=s.temperature,
                                     threshold=s.threshold, seed=seed, constraints=cons or self.cons, dedupe=s.dedupe,
                                     batch_size=s.batch_size, max_attempts=s.max_attempts, stats=stats)
        finally:
            self.stats.draws += stats.draws
            self.stats.rounds += stats.rounds
            self.stats.accepted += stats.accepted

    def holding(self, tag: int, n: int, round_: int = 0) -> list[list[int]]:
        """``n`` sets that hold taxonomy tag ``tag`` (one ConstraintError naming it when out of budget)."""
        name = self.loaded.taxonomy.tags[tag]
        if tag in self.cons.forbid:
            raise ConstraintError(f"'{name}' is forbidden (sample.forbid) but has a quota or is a concept")
        cons = replace(self.cons, require=sorted({*self.cons.require, tag}))
        seed = row_seed(self.cfg.seed, f"tag:{name}:{round_}", bits=32)
        try:
            return [idx for batch in self.sets(n, seed, cons) for idx in batch]
        except ConstraintError as exc:
            raise ConstraintError(f"cannot draw enough sets holding '{name}': {exc.message}", hint=exc.hint) from exc


def sample(cfg: SampleConfig, reporter: Reporter = SILENT) -> SampleResult:
    """Sample ``sample.num_samples`` sets (and ``sample.counterfactual`` pairs) from ``sample.model``.

    Raises:
        ConfigError: No model directory; an unknown tag or category in the constraints or quotas.
        ModelNotFoundError: Missing/corrupt model directory or a taxonomy that does not match it.
        ConstraintError: The constraints could not be met often enough (what plain sampling drew is
            kept); a quota or a concept that cannot be met (nothing is written).
    """
    s = cfg.sample
    if not s.model:
        raise ConfigError("no model directory", key="sample.model", hint="pass a directory written by `tagtune vae train`")
    if s.num_samples == 0 and not s.counterfactual:
        raise ConfigError("sample.num_samples is 0 and no counterfactual pairs are asked for: nothing to sample",
                          key="sample.num_samples",
                          hint="set sample.num_samples for sets, or sample.counterfactual for pairs")
    if s.concepts and not s.counterfactual:
        raise ConfigError("sample.concepts (--concept) is set but sample.counterfactual (--counterfactual) is 0: "
                          "concepts choose the tags counterfactual pairs differ in, and no pairs are asked for",
                          key="sample.concepts", hint="add --counterfactual N for N pairs, or leave out --concept")
    loaded = load_model_dir(s.model, taxonomy=Taxonomy.load(s.taxonomy_path) if s.taxonomy_path else None)
    if not s.rules:
        loaded.taxonomy = loaded.taxonomy.with_rules(Rules())
    cons = parse_constraints(s, loaded.taxonomy)
    quotas = parse_quotas(s.min_per_tag, s.quotas, loaded.taxonomy)
    skipped: list[str] = []
    if quotas and s.skip_absent:
        skipped, why = unreachable(loaded, quotas, s.min_tag_probability)
        if skipped:
            reporter.warn(f"{len(skipped)} tag(s) left out of the quotas: each {why} ({', '.join(skipped[:8])})")
        quotas = {t: k for t, k in quotas.items() if t not in skipped}
    elif quotas:
        check_reachable(loaded, quotas, s.min_tag_probability)
    concepts = _concepts(s, loaded, cons, reporter) if s.counterfactual else []
    out = Path(s.output or Path(s.model) / "samples.jsonl").expanduser()
    if quotas:
        _warn_growth(s, quotas, loaded, reporter)
    check_ours(out, "vae sample", first_line_has("provenance", "tags"))  # an earlier sample is replaced; your file is not
    params = sampling_provenance(cfg, loaded)
    started = time.perf_counter()
    drawer = _Drawer(loaded, cfg, cons)
    with torch_threads(1):  # one thread: the same float sums on every machine size, so the same bytes
        if quotas or s.counterfactual:
            result = _held(out, drawer, quotas, concepts, params, reporter, skipped)
        else:
            result = _streamed(out, drawer, params, reporter)
    sidecar_config(cfg, out)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _concepts(s: VaeSample, loaded: LoadedModel, cons: Constraints, reporter: Reporter) -> list[str]:
    """The pairs' concepts, checked before anything is drawn; a note when the defaults leave tags out."""
    seen = training_counts(loaded)
    concepts = parse_concepts(s.concepts, loaded.taxonomy, seen, cons)
    if not s.concepts:
        held = [t for t in loaded.taxonomy.tags if seen is None or seen.get(t, 0) > 0]
        left = [t for t in held if t not in concepts]
        if left:
            reporter.note(f"counterfactual pairs on {len(concepts)} concept(s); left out, as the constraints fix them: "
                          f"{', '.join(left[:6])}{' ...' if len(left) > 6 else ''}")
    if not concepts:
        raise ConfigError("no tag is free to differ within a counterfactual pair: the constraints fix every one",
                          key="sample.concepts", hint="name the concepts (--concept TAG) or relax --require/--forbid")
    return concepts


def _warn_growth(s: VaeSample, quotas: dict[str, int], loaded: LoadedModel, reporter: Reporter) -> None:
    """Say before drawing when the quotas make the output much larger than ``sample.num_samples``."""
    total = expected_total(quotas, loaded, s.num_samples)
    if total is None or total <= 1.25 * s.num_samples:
        return  # about the count asked for (or an older model without training statistics: the last line says)
    what, lower = ((f"sample.min_per_tag={s.min_per_tag} (--min-per-tag) for {len(quotas)} tags", "--min-per-tag")
                   if s.min_per_tag else
                   (f"sample.quotas (up to {max(quotas.values())} sets for each of {len(quotas)} tags)", "the quotas"))
    reporter.warn(f"{what} needs about {_about(total)} sets, more than sample.num_samples={s.num_samples} (-n): "
                  f"about {_about(total)} sets will be written; lower {lower} or raise -n to keep the count")


def _about(x: int) -> str:
    """Two significant digits, with thousands separators: 75738 -> '76,000'."""
    digits = max(len(str(int(x))) - 2, 0)
    return f"{round(x, -digits):,}"


def _rows(indices: Iterable[tuple[list[int], dict[str, Any]]], taxonomy: Taxonomy, seed: int,
          params: dict[str, Any]) -> Iterator[TagSetRow]:
    """Rows for (indices, extra fields) in order; ``quota`` goes into ``provenance.tags``."""
    for n, (idx, extra) in enumerate(indices):
        quota = extra.pop("quota", None)
        ident = extra.pop("id", None) or f"s{seed}-{n:06d}"
        yield TagSetRow(id=ident, tags=[taxonomy.tags[i] for i in idx],
                        provenance={"tags": {**params, **({"quota": quota} if quota else {})}}, **extra)


def _write(out: Path, rows: Iterable[TagSetRow], taxonomy: Taxonomy, task: Any) -> tuple[int, int, int]:
    """Write rows to ``out`` atomically; returns (rows, total tags, distinct sets)."""
    count = sizes = 0
    distinct: set[tuple[str, ...]] = set()
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(dumps_line(row.to_record(taxonomy)))
            count, sizes = count + 1, sizes + len(row.tags)
            distinct.add(tuple(row.tags))
            task.advance(1)
    return count, sizes, len(distinct)


def _result(out: Path, drawer: _Drawer, params: dict[str, Any], written: tuple[int, int, int]) -> SampleResult:
    count, sizes, distinct = written
    return SampleResult(path=out, num_samples=count, draws=drawer.stats.draws, rounds=drawer.stats.rounds, seconds=0.0,
                        mean_set_size=sizes / max(count, 1), unique_share=distinct / max(count, 1), params=params)


def _streamed(out: Path, drawer: _Drawer, params: dict[str, Any], reporter: Reporter) -> SampleResult:
    """Plain sampling: sets written as drawn; a budget failure keeps them, then re-raises."""
    n, seed, taxonomy = drawer.cfg.sample.num_samples, drawer.cfg.seed, drawer.loaded.taxonomy
    failure: ConstraintError | None = None

    def indices() -> Iterator[tuple[list[int], dict[str, Any]]]:
        nonlocal failure
        try:
            for batch in drawer.sets(n, seed):
                yield from ((idx, {}) for idx in batch)
        except ConstraintError as exc:
            failure = exc

    with reporter.progress("sampling", total=n, unit="sets") as task:
        written = _write(out, _rows(indices(), taxonomy, seed, params), taxonomy, task)
    if failure is not None:
        raise ConstraintError(f"{failure.message}; the {written[0]} sets drawn are in {out}", hint=failure.hint)
    return _result(out, drawer, params, written)


def _held(out: Path, drawer: _Drawer, quotas: dict[str, int], concepts: list[str], params: dict[str, Any],
          reporter: Reporter, skipped: list[str]) -> SampleResult:
    """Balanced sets and/or counterfactual pairs: everything drawn first, written only on success."""
    s, seed, taxonomy = drawer.cfg.sample, drawer.cfg.seed, drawer.loaded.taxonomy
    with reporter.progress("drawing", total=s.num_samples + s.counterfactual, unit="sets") as task:
        own = [idx for batch in drawer.sets(s.num_samples, seed) for idx in batch] if s.num_samples else []
        task.advance(len(own))
        extra: list[tuple[str, list[int]]] = []
        report = None
        if quotas:
            own, extra, report = balance(own, quotas, taxonomy, drawer.holding)
        pairs = []
        if s.counterfactual:
            pairs = draw_pairs(s.counterfactual, concepts, taxonomy, drawer.cons.min_tags, drawer.holding)
        task.advance(s.counterfactual)
    items: list[tuple[list[int], dict[str, Any]]] = [(idx, {}) for idx in own]
    items += [(idx, {"quota": tag}) for tag, idx in extra]
    for p in pairs:
        pair_id = f"s{seed}-pair{p.number:06d}"
        items.append((p.base, {"id": f"{pair_id}-base", "pair_id": pair_id, "concept": p.concept, "edit": "base"}))
        items.append((p.partner, {"id": f"{pair_id}-{p.edit}", "pair_id": pair_id, "concept": p.concept, "edit": p.edit}))
    with reporter.progress("writing", total=len(items), unit="sets") as task:
        written = _write(out, _rows(items, taxonomy, seed, params), taxonomy, task)
    result = _result(out, drawer, params, written)
    result.pairs = len(pairs)
    if report is not None:
        report.draws, report.skipped_absent = drawer.stats.draws, skipped
        result.balance = report.to_dict()
        atomic_write_json(out.with_name(out.name + ".balance.json"), result.balance)
    return result
