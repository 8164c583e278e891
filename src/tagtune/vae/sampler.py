"""Drawing tag sets from a trained VAE: latents, the conditional Bernoulli draw, constrained rounds.

Latents come from the aggregate posterior (a random training set's ``q(z|x)``, the default) or
from ``N(0, I)``, their noise scaled by ``temperature``. Tags are then drawn in one of three
modes:

* ``sized`` (default): a set size ``n`` from the size head, then exactly ``n`` tags from the
  decoder's Bernoulli probabilities *conditioned on the sum being n* (the conditional Bernoulli
  distribution, sampled exactly with a dynamic programme over elementary symmetric sums);
* ``bernoulli``: every tag drawn independently with its probability;
* ``threshold``: every tag with probability ``>= threshold`` (the reference behaviour; it
  collapses set sizes and repeats itself).

Required / forbidden tags condition the draw: latents are resampled in proportion to the
probability they give the required tags (and the absence of the forbidden ones), the required
tags are then forced in and the forbidden ones out. Per-category counts and ``min_tags`` are met
by redrawing the sets that miss them. :func:`generate_sets` yields accepted sets batch by batch,
so any number of sets is drawn in bounded memory; a torch generator seeded with ``seed`` makes
the stream identical run to run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, get_args

from tagtune.errors import ConfigError
from tagtune.vae.config import Mode, Prior
from tagtune.vae.constraints import ConstraintError, Constraints, meets_counts

if TYPE_CHECKING:
    import torch

    from tagtune.vae.modeldir import LoadedModel

MODES: tuple[str, ...] = get_args(Mode)
PRIORS: tuple[str, ...] = get_args(Prior)


@dataclass
class DrawStats:
    """How much drawing it took: candidate sets drawn, rounds, sets accepted."""

    draws: int = 0
    rounds: int = 0
    accepted: int = 0


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


def check_options(mode: str, prior: str, temperature: float) -> None:
    """Refuse an unknown mode or prior and a negative temperature (before anything is drawn)."""
    if mode not in MODES:
        raise ConfigError(f"unknown sample.mode '{mode}'", hint=f"use one of: {', '.join(MODES)}", key="sample.mode")
    if prior not in PRIORS:
        raise ConfigError(f"unknown sample.prior '{prior}'", hint=f"use one of: {', '.join(PRIORS)}", key="sample.prior")
    if temperature < 0:
        raise ConfigError(f"sample.temperature must be >= 0, got {temperature}", key="sample.temperature")


def generate_sets(
    loaded: LoadedModel, num_samples: int, mode: Mode = "sized", prior: Prior = "aggregate", temperature: float = 1.0,
    threshold: float = 0.5, seed: int = 0, constraints: Constraints | None = None, dedupe: bool = False,
    batch_size: int = 1024, max_attempts: int = 50, stats: DrawStats | None = None,
) -> Iterator[list[list[int]]]:
    """Yield batches of accepted sets (sorted taxonomy indices) until ``num_samples`` are out.

    The draw budget is ``max_attempts`` candidates per requested set (at least one batch each),
    so unconstrained sampling scales to any ``num_samples`` and a constraint the model almost
    never meets fails after a bounded effort.

    Raises:
        ConstraintError: The budget ran out first (sets already yielded stay valid; the
            message says how many there were).
    """
    import torch

    check_options(mode, prior, temperature)
    cons = constraints or Constraints()
    stats = stats if stats is not None else DrawStats()
    gen = torch.Generator().manual_seed(int(seed))
    seen: set[int] = set()
    batch_size = max(1, int(batch_size))
    budget = int(max_attempts) * max(num_samples, batch_size)
    while stats.accepted < num_samples:
        if stats.draws >= budget:
            what = "distinct sets" if dedupe else "sets"
            raise ConstraintError(
                f"only {stats.accepted} of {num_samples} {what} met the constraints after {stats.draws} draws",
                hint="loosen the required/forbidden tags or category counts, raise sample.max_attempts, or sample fewer"
                + ("; the taxonomy's rules apply too (sample.rules=false turns them off)" if loaded.taxonomy.rules else ""),
            )
        stats.rounds += 1
        filtered = cons.active() or dedupe or bool(loaded.taxonomy.rules)
        want = batch_size if filtered else min(batch_size, num_samples - stats.accepted)
        sets = _draw(loaded, want, mode, prior, temperature, threshold, cons, gen)
        stats.draws += len(sets)
        batch = _accept(sets[meets_counts(sets, cons, loaded.taxonomy)], seen if dedupe else None,
                        num_samples - stats.accepted)
        stats.accepted += len(batch)
        if batch:
            yield batch


def _accept(sets: torch.Tensor, seen: set[int] | None, room: int) -> list[list[int]]:
    import torch

    out: list[list[int]] = []
    for row in sets:
        idx = torch.nonzero(row).flatten().tolist()
        if seen is not None:
            key = hash(tuple(idx))
            if key in seen:
                continue
            seen.add(key)
        out.append(idx)
        if len(out) >= room:
            break
    return out
