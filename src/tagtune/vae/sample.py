"""``tagtune vae sample``: draw new tag sets from a trained model into a JSONL file.

The sets come from :func:`tagtune.vae.sampler.generate_sets` (modes, priors, constraints) and are
written as they are drawn, so any number of sets fits in bounded memory. The output is the tag-set
file of ``docs/schema.md`` (:class:`tagtune.schema.TagSetRow`, with the sampling settings and the
model's fingerprint under ``provenance.tags``), written to a temporary name and renamed; the same
model, settings and seed give the same bytes. When the constraints are too strict for the draw
budget, the sets drawn so far are kept and the error says how many.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagtune.errors import ConfigError
from tagtune.report import SILENT, Reporter
from tagtune.taxonomy import Taxonomy
from tagtune.vae.constraints import ConstraintError, parse_constraints
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


def sampling_provenance(cfg: Any, loaded: Any) -> dict[str, Any]:
    """``provenance.tags`` of every row: which model (by fingerprint) and which settings."""
    from tagtune import __version__

    s = cfg.sample
    return {"model": loaded.path.name, "fingerprint": loaded.fingerprint, "mode": s.mode, "prior": s.prior,
            "temperature": s.temperature, "threshold": s.threshold, "seed": cfg.seed, "tagtune_version": __version__}


def sample(cfg: Any, reporter: Reporter = SILENT) -> SampleResult:
    """Sample ``sample.num_samples`` sets from ``sample.model`` into ``sample.output``.

    Raises:
        ConfigError: No model directory; an unknown tag or category in the constraints.
        ModelNotFoundError: Missing/corrupt model directory or a taxonomy that does not match it.
        ConstraintError: The constraints could not be met often enough (what was drawn is kept).
    """
    from tagtune.device import torch_threads
    from tagtune.runs import sidecar_config
    from tagtune.vae.modeldir import load_model_dir

    s = cfg.sample
    if not s.model:
        raise ConfigError("no model directory", key="sample.model", hint="pass a directory written by `tagtune vae train`")
    loaded = load_model_dir(s.model, taxonomy=Taxonomy.load(s.taxonomy_path) if s.taxonomy_path else None)
    cons = parse_constraints(s, loaded.taxonomy)
    out = Path(s.output or Path(s.model) / "samples.jsonl").expanduser()
    params = sampling_provenance(cfg, loaded)
    started = time.perf_counter()
    with torch_threads(1):  # one thread: the same float sums on every machine size, so the same bytes
        stats, sizes, unique = _write(out, loaded, cfg, cons, params, reporter)
    sidecar_config(cfg, out)
    return SampleResult(path=out, num_samples=stats.accepted, draws=stats.draws, rounds=stats.rounds,
                        seconds=round(time.perf_counter() - started, 3), mean_set_size=sizes / max(stats.accepted, 1),
                        unique_share=unique / max(stats.accepted, 1), params=params)


def _write(out: Path, loaded: Any, cfg: Any, cons: Any, params: dict[str, Any],
           reporter: Reporter) -> tuple[DrawStats, int, int]:
    """Stream the sets into ``out``; a budget failure keeps the sets drawn so far, then re-raises."""
    from tagtune.resumable import atomic_path, dumps_line
    from tagtune.schema import TagSetRow

    s, stats = cfg.sample, DrawStats()
    sizes, dupes, distinct, failure = 0, 0, set(), None
    batches = generate_sets(loaded, s.num_samples, mode=s.mode, prior=s.prior, temperature=s.temperature,
                            threshold=s.threshold, seed=cfg.seed, constraints=cons, dedupe=s.dedupe,
                            batch_size=s.batch_size, max_attempts=s.max_attempts, stats=stats)
    with reporter.progress("sampling", total=s.num_samples, unit="sets") as task, atomic_path(out) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            try:
                for batch in batches:
                    for idx in batch:
                        row = TagSetRow(id=f"s{cfg.seed}-{len(distinct) + dupes:06d}",
                                        tags=[loaded.taxonomy.tags[i] for i in idx], provenance={"tags": params})
                        fh.write(dumps_line(row.to_record(loaded.taxonomy)))
                        sizes += len(idx)
                        key = hash(tuple(idx))
                        dupes += key in distinct
                        distinct.add(key)
                    task.advance(len(batch))
            except ConstraintError as exc:
                failure = exc
    if failure is not None:
        raise ConstraintError(f"{failure.message}; the {stats.accepted} sets drawn are in {out}", hint=failure.hint)
    return stats, sizes, len(distinct)
