"""``tagtune vae sample``: draw new tag sets from a trained model, with constraints.

Latents come from the aggregate posterior (a random training set's ``q(z|x)``, the default) or
from ``N(0, I)``, their noise scaled by ``temperature``. Tags are then drawn in one of three
modes:

* ``sized`` (default): a set size ``n`` from the size head, then exactly ``n`` tags from the
  decoder's Bernoulli probabilities *conditioned on the sum being n* (the conditional Bernoulli
  distribution, sampled exactly with a dynamic programme over elementary symmetric sums);
* ``bernoulli``: every tag drawn independently with its probability;
* ``threshold``: every tag with probability ``>= threshold`` (the reference behaviour; it
  collapses set sizes and repeats itself).

``--require`` / ``--forbid`` condition the draw: latents are resampled in proportion to the
probability they give the required tags (and the absence of the forbidden ones), the required
tags are then forced in and the forbidden ones out. Per-category minimum / maximum counts and
``min_tags`` are met by redrawing the sets that miss them, for up to ``max_attempts`` rounds.
The output is the JSONL of ``docs/schema.md`` section 1, written to a temporary file and
renamed; a torch generator seeded with ``seed`` makes it byte-identical run to run.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagtune.errors import ConfigError, InputError, TagtuneError
from tagtune.taxonomy import Taxonomy, normalize_tag

if TYPE_CHECKING:
    import torch

    from tagtune.vae.modeldir import LoadedModel

MODES = ("sized", "bernoulli", "threshold")
PRIORS = ("aggregate", "normal")


class ConstraintError(TagtuneError):
    """Constraints that the model cannot satisfy often enough (exit 2, one line)."""


@dataclass
class Constraints:
    """What every sampled set must satisfy, as taxonomy indices."""

    require: list[int] = field(default_factory=list)
    forbid: list[int] = field(default_factory=list)
    category_min: dict[str, int] = field(default_factory=dict)
    category_max: dict[str, int] = field(default_factory=dict)
    min_tags: int = 0
    max_tags: int | None = None

    def active(self) -> bool:
        return bool(self.require or self.forbid or self.category_min or self.category_max or self.min_tags or self.max_tags)


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


def _unknown_tag(tag: str, taxonomy: Taxonomy, flag: str) -> InputError:
    close = difflib.get_close_matches(normalize_tag(tag), taxonomy.tags, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "see the model's taxonomy.json"
    return InputError(f"{flag} '{tag}' is not a tag of the model's taxonomy", hint=hint)


def _counts(value: Any, flag: str, taxonomy: Taxonomy) -> dict[str, int]:
    """``{category: k}`` from a mapping or from ``["cat=k", ...]``; categories must exist."""
    items: list[tuple[str, Any]] = []
    if value is None:
        return {}
    if isinstance(value, Mapping):
        items = list(value.items())
    else:
        for entry in value:
            text = str(entry)
            if "=" not in text:
                raise InputError(f"{flag} '{text}' must look like CATEGORY=COUNT, e.g. genre=1")
            cat, _, num = text.partition("=")
            items.append((cat, num))
    out: dict[str, int] = {}
    for cat, num in items:
        name = normalize_tag(str(cat)).replace(" ", "_")
        if name not in taxonomy.categories:
            raise InputError(
                f"{flag} names unknown category '{cat}'", hint=f"categories: {', '.join(taxonomy.categories)}",
            )
        try:
            k = int(str(num).strip())
        except ValueError as exc:
            raise InputError(f"{flag} {cat}={num}: the count must be an integer") from exc
        if k < 0:
            raise InputError(f"{flag} {cat}={k}: the count must be >= 0")
        out[name] = k
    return out


def parse_constraints(inf: Mapping[str, Any], taxonomy: Taxonomy) -> Constraints:
    """Check the ``inference`` constraint keys against the taxonomy and turn them into indices.

    Raises:
        InputError: An unknown tag (with close matches) or category, a bad count.
        ConstraintError: Constraints that contradict each other.
    """
    def tags(key: str, flag: str) -> list[int]:
        out = []
        for tag in inf.get(key) or []:
            if tag not in taxonomy:
                raise _unknown_tag(str(tag), taxonomy, flag)
            idx = taxonomy.index[normalize_tag(tag)]
            if idx not in out:
                out.append(idx)
        return out

    c = Constraints(
        require=tags("require", "--require"), forbid=tags("forbid", "--forbid"),
        category_min=_counts(inf.get("category_min"), "--min", taxonomy),
        category_max=_counts(inf.get("category_max"), "--max", taxonomy),
        min_tags=int(inf.get("min_tags") or 0),  # a plain mapping (tests, library use) may leave it out
        max_tags=None if inf.get("max_tags") in (None, "") else int(inf.get("max_tags")),
    )
    both = set(c.require) & set(c.forbid)
    if both:
        raise ConstraintError(f"'{taxonomy.tags[min(both)]}' is both required and forbidden")
    for cat, lo in c.category_min.items():
        hi = c.category_max.get(cat)
        size = len(taxonomy.categories[cat])
        if hi is not None and lo > hi:
            raise ConstraintError(f"category '{cat}': --min {lo} is above --max {hi}")
        if lo > size:
            raise ConstraintError(f"category '{cat}' has only {size} tags; --min {lo} cannot be met")
    for cat, hi in c.category_max.items():
        forced = sum(1 for i in c.require if taxonomy.category_of[taxonomy.tags[i]] == cat)
        if forced > hi:
            raise ConstraintError(f"category '{cat}': {forced} required tags but --max {hi}")
    if c.max_tags is not None and (len(c.require) > c.max_tags or c.min_tags > c.max_tags):
        raise ConstraintError(f"max_tags={c.max_tags} is below min_tags or the number of required tags")
    return c


# -- drawing -----------------------------------------------------------------------------------
def _latents(loaded: LoadedModel, n: int, prior: str, temperature: float, gen: torch.Generator) -> torch.Tensor:
    import torch

    dim = loaded.model.arch.latent_dim
    eps = torch.randn(n, dim, generator=gen) * temperature
    if prior == "normal":
        return eps
    pick = torch.randint(len(loaded.prior_mu), (n,), generator=gen)
    return loaded.prior_mu[pick] + eps * torch.exp(0.5 * loaded.prior_logvar[pick])


def conditional_bernoulli(logits: torch.Tensor, sizes: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Exactly ``sizes[b]`` tags per row from independent Bernoullis conditioned on their sum.

    ``P(S) ∝ prod_{i in S} exp(logits_i)`` over the sets of the requested size. A backward pass
    computes ``log e_m`` (elementary symmetric sums of the odds) of every suffix; the forward
    pass then includes tag ``i`` with its exact conditional probability. Tags whose logit is
    ``-inf`` are never drawn; rows asking for more tags than are drawable get all of them.

    Args:
        logits: ``(B, T)`` log-odds.
        sizes: ``(B,)`` integer set sizes.
        gen: Random generator (determinism).

    Returns:
        ``(B, T)`` float 0/1 matrix.
    """
    import torch

    batch, num = logits.shape
    drawable = torch.isfinite(logits).sum(dim=1)
    sizes = torch.minimum(sizes.long(), drawable)
    uniform = torch.rand(batch, num, generator=gen)  # drawn up front: chunking cannot change results
    top = int(sizes.max()) if batch else 0
    rows_per_chunk = max(1, _CB_TABLE_ELEMENTS // ((num + 1) * (top + 1)))
    out = torch.zeros(batch, num)
    for lo in range(0, batch, rows_per_chunk):
        hi = min(batch, lo + rows_per_chunk)
        out[lo:hi] = _conditional_bernoulli_rows(logits[lo:hi], sizes[lo:hi], uniform[lo:hi])
    return out


_CB_TABLE_ELEMENTS = 1 << 24  # bound on the DP table per chunk (64 MiB of float32)


def _conditional_bernoulli_rows(logits: torch.Tensor, sizes: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    import torch

    batch, num = logits.shape
    top = int(sizes.max()) if batch else 0
    neg = torch.tensor(float("-inf"))
    # table[i] = log e_m(odds[i:]) for m = 0..top
    table = torch.full((num + 1, batch, top + 1), float("-inf"))
    table[num, :, 0] = 0.0
    for i in range(num - 1, -1, -1):
        nxt = table[i + 1]
        cur = nxt.clone()
        if top > 0:
            cur[:, 1:] = torch.logaddexp(nxt[:, 1:], logits[:, i:i + 1] + nxt[:, :-1])
        table[i] = cur
    out = torch.zeros(batch, num)
    remaining = sizes.clone()
    rows = torch.arange(batch)
    for i in range(num):
        active = remaining > 0
        if not bool(active.any()):
            break
        m = remaining.clamp(min=1)
        log_p = logits[:, i] + table[i + 1, rows, m - 1] - table[i, rows, m]
        log_p = torch.where(torch.isnan(log_p), neg, log_p)
        take = active & (torch.log(uniform[:, i]) < log_p)
        out[:, i] = take.float()
        remaining = remaining - take.long()
    return out


def _draw(
    loaded: LoadedModel, n: int, mode: str, prior: str, temperature: float, threshold: float,
    cons: Constraints, gen: torch.Generator,
) -> torch.Tensor:
    """One round of ``n`` candidate sets (before the count constraints are checked)."""
    import torch

    model = loaded.model
    pool = n * 8 if (cons.require or cons.forbid) else n
    with torch.no_grad():
        z = _latents(loaded, pool, prior, temperature, gen)
        logits, size_logits = model.decode(z)
        if pool != n:  # sampling-importance-resampling: keep latents that favour the constraints
            logw = torch.zeros(pool)
            if cons.require:
                logw = logw + torch.nn.functional.logsigmoid(logits[:, cons.require]).sum(dim=1)
            if cons.forbid:
                logw = logw + torch.nn.functional.logsigmoid(-logits[:, cons.forbid]).sum(dim=1)
            pick = torch.multinomial(torch.softmax(logw, dim=0), n, replacement=True, generator=gen)
            logits, size_logits = logits[pick], size_logits[pick]
        free = logits.clone()
        if cons.require:
            free[:, cons.require] = float("-inf")
        if cons.forbid:
            free[:, cons.forbid] = float("-inf")
        if mode == "sized":
            k = len(cons.require)
            sizes = torch.arange(size_logits.shape[1])
            allowed = sizes >= max(k, cons.min_tags)
            if cons.max_tags is not None:
                allowed &= sizes <= cons.max_tags
            masked = size_logits.masked_fill(~allowed, float("-inf"))
            if not bool(allowed.any()):
                masked = torch.zeros_like(size_logits)  # nothing allowed: let the count check reject
            draw_size = torch.multinomial(torch.softmax(masked, dim=1), 1, generator=gen).squeeze(1)
            sets = conditional_bernoulli(free, (draw_size - k).clamp(min=0), gen)
        elif mode == "bernoulli":
            sets = (torch.rand(free.shape, generator=gen) < torch.sigmoid(free)).float()
        else:
            sets = (torch.sigmoid(free) >= threshold).float()
        if cons.require:
            sets[:, cons.require] = 1.0
    return sets


def _meets_counts(sets: torch.Tensor, cons: Constraints, taxonomy: Taxonomy) -> torch.Tensor:
    import torch

    ok = torch.ones(len(sets), dtype=torch.bool)
    sizes = sets.sum(dim=1)
    ok &= sizes >= cons.min_tags  # min_tags 0 lets empty sets through (the reference recipe)
    if cons.max_tags is not None:
        ok &= sizes <= cons.max_tags
    start = 0
    for cat, tags in taxonomy.categories.items():
        count = sets[:, start:start + len(tags)].sum(dim=1)
        if cat in cons.category_min:
            ok &= count >= cons.category_min[cat]
        if cat in cons.category_max:
            ok &= count <= cons.category_max[cat]
        start += len(tags)
    return ok


def check_options(mode: str, prior: str, temperature: float) -> None:
    """Refuse an unknown mode or prior and a negative temperature (before anything is drawn)."""
    if mode not in MODES:
        raise ConfigError(f"unknown sampling mode '{mode}'", hint=f"use one of: {', '.join(MODES)}")
    if prior not in PRIORS:
        raise ConfigError(f"unknown inference.prior '{prior}'", hint=f"use one of: {', '.join(PRIORS)}")
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}")


def generate_sets(
    loaded: LoadedModel, num_samples: int, mode: str = "sized", prior: str = "aggregate", temperature: float = 1.0,
    threshold: float = 0.5, seed: int = 0, constraints: Constraints | None = None, dedupe: bool = False,
    batch_size: int = 1024, max_attempts: int = 50, progress: Any = None,
) -> tuple[list[list[int]], int, int]:
    """Draw ``num_samples`` sets meeting the constraints.

    Returns:
        (sets as sorted taxonomy indices, candidate sets drawn, rounds used).

    Raises:
        ConstraintError: Fewer than ``num_samples`` valid (and, with ``dedupe``, distinct) sets
            after ``max_attempts`` rounds.
    """
    import torch

    check_options(mode, prior, temperature)
    cons = constraints or Constraints()
    gen = torch.Generator().manual_seed(int(seed))
    kept: list[list[int]] = []
    seen: set[tuple[int, ...]] = set()
    draws = rounds = 0
    batch_size = max(1, int(batch_size))
    while len(kept) < num_samples:
        if rounds >= max_attempts:
            what = "distinct sets" if dedupe else "sets"
            raise ConstraintError(
                f"only {len(kept)} of {num_samples} {what} met the constraints after {rounds} rounds "
                f"({draws} draws)",
                hint="loosen --require/--forbid/--min/--max, raise inference.max_attempts, or sample fewer",
            )
        rounds += 1
        want = min(batch_size, max(num_samples - len(kept), 1))
        want = batch_size if cons.active() or dedupe else want
        sets = _draw(loaded, want, mode, prior, temperature, threshold, cons, gen)
        draws += len(sets)
        ok = _meets_counts(sets, cons, loaded.taxonomy)
        for row in sets[ok]:
            idx = tuple(torch.nonzero(row).flatten().tolist())
            if dedupe:
                if idx in seen:
                    continue
                seen.add(idx)
            kept.append(list(idx))
            if len(kept) >= num_samples:
                break
        if progress is not None:
            progress(len(kept))
    return kept, draws, rounds


def _record(index: int, tag_idx: Sequence[int], taxonomy: Taxonomy, seed: int, params: dict[str, Any]) -> dict[str, Any]:
    tags = [taxonomy.tags[i] for i in tag_idx]
    rec: dict[str, Any] = {"id": f"s{seed}-{index:06d}", "tags": tags}
    rec.update(taxonomy.by_category(tags))
    rec["sampling"] = params
    return rec


def sample(cfg: Any) -> SampleResult:
    """Sample ``inference.num_samples`` sets from ``inference.model_dir`` into ``inference.output``.

    The taxonomy comes from the model directory; if ``data.taxonomy_path`` was set explicitly
    by the caller (``inference.check_taxonomy``), it must match.

    Raises:
        ConfigError: No model directory, bad counts, unknown mode.
        ModelNotFoundError: Missing/corrupt model directory or mismatching taxonomy.
        InputError / ConstraintError: Unknown tags or unmeetable constraints.
    """
    import torch

    from tagtune.progress import make_progress
    from tagtune.resumable import atomic_path, dumps_line
    from tagtune.runs import sidecar_config
    from tagtune.vae.modeldir import load_model_dir

    inf = cfg.inference
    if not inf.get("model_dir"):
        raise ConfigError("no model directory", hint="pass --model DIR (a directory written by `tagtune vae train`)")
    num = int(inf.num_samples)
    if num <= 0:
        raise ConfigError(f"the number of samples must be positive, got {num}", hint="use -n 1 or more")
    check = inf.get("taxonomy_path")
    other = Taxonomy.load(check) if check else None
    loaded = load_model_dir(inf.model_dir, taxonomy=other)
    cons = parse_constraints(inf, loaded.taxonomy)
    seed = int(inf.seed)
    mode = str(inf.mode)
    params: dict[str, Any] = {
        "mode": mode, "temperature": float(inf.temperature), "threshold": float(inf.threshold), "seed": seed,
        "prior": str(inf.prior),
    }
    check_options(mode, params["prior"], params["temperature"])
    out = Path(inf.get("output") or Path(str(inf.model_dir)) / "samples.jsonl").expanduser()
    threads = torch.get_num_threads()
    started = time.perf_counter()
    with make_progress("sets") as bar:
        task = bar.add_task("sampling", total=num, rate="")

        def _tick(done: int) -> None:
            elapsed = time.perf_counter() - started
            bar.update(task, completed=done, rate=f"{done / elapsed:.0f} sets/s" if elapsed > 0 else "")

        try:
            torch.set_num_threads(1)  # same float sums on every machine size -> same bytes
            sets, draws, rounds = generate_sets(
                loaded, num, mode=mode, prior=params["prior"], temperature=params["temperature"],
                threshold=params["threshold"], seed=seed, constraints=cons, dedupe=bool(inf.get("dedupe")),
                batch_size=int(inf.batch_size), max_attempts=int(inf.max_attempts),
                progress=_tick,
            )
        except BaseException:
            bar.update(task, visible=False)  # the error line alone, no half-drawn bar
            raise
        finally:
            torch.set_num_threads(threads)
    with atomic_path(out) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            for i, idx in enumerate(sets):
                fh.write(dumps_line(_record(i, idx, loaded.taxonomy, seed, params)))
    sidecar_config(cfg, out)
    seconds = time.perf_counter() - started
    sizes = [len(s) for s in sets]
    return SampleResult(
        path=out, num_samples=len(sets), draws=draws, rounds=rounds, seconds=round(seconds, 3),
        mean_set_size=sum(sizes) / max(len(sizes), 1), unique_share=len({tuple(s) for s in sets}) / max(len(sets), 1),
        params=params,
    )
