"""Counterfactual pairs: two plausible tag sets that differ in exactly one tag (the concept).

For a concept ``c`` a set ``S`` holding ``c`` is drawn conditioned on it (the ``require``
machinery: latents resampled towards ``c``, the rest drawn from the decoder), and its partner is
``S`` without ``c``. Pairs alternate the direction: the base is ``S - {c}`` and the partner adds
``c`` (edit ``add``), or the base is ``S`` and the partner removes it (edit ``remove``). Both
members keep the taxonomy's rules and ``sample.min_tags`` (an ``S`` whose partner would break
them is drawn again), and the concepts are taken in turn (``sample.concepts``, default every tag
the model has seen). What a pair guarantees: the two *tag sets* differ in the concept alone; the
captions and audio share their seeds downstream (by ``pair_id``), but whether the audio realises
the edit is for the verify step to measure.

The constraints hold for both members, so a concept must be free to come and go: a concept that is
also required (``sample.require``) is refused, since every pair has a member without it and half
the pair rows would break the requirement (no reading of the two settings gives pairs that keep
both; pair on the tag without requiring it, or require it and pair on others). For the same reason
a forbidden concept, or one the required tags exclude (taxonomy rules), is refused by name; the
default concepts leave such tags out, with a note.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tagtune.errors import ConfigError
from tagtune.records.taxonomy import Taxonomy, normalize_tag
from tagtune.vae.constraints import ConstraintError, Constraints, required_break_rules


@dataclass(frozen=True)
class Pair:
    number: int
    concept: str
    edit: str  # the partner's edit: add | remove
    base: list[int]
    partner: list[int]


def parse_concepts(concepts: Sequence[str] | None, taxonomy: Taxonomy, seen: dict[str, int] | None,
                   cons: Constraints | None = None) -> list[str]:
    """The concepts to pair on: the named tags (checked), else every tag the training data holds
    that the constraints leave free to come and go (see the module docstring).

    Raises:
        ConfigError: A named concept outside the taxonomy, or one that is required, forbidden or
            excluded by the required tags.
    """
    cons = cons or Constraints()
    if concepts:
        out = []
        for c in concepts:
            name = normalize_tag(c)
            if name not in taxonomy.index:
                raise ConfigError(f"sample.concepts: '{c}' is not a tag of the model's taxonomy", key="sample.concepts")
            problem = _not_free(name, taxonomy, cons)
            if problem:
                raise ConfigError(problem[0], key="sample.concepts", hint=problem[1])
            out.append(name)
        return out
    return [t for t in taxonomy.tags if (seen is None or seen.get(t, 0) > 0) and _not_free(t, taxonomy, cons) is None]


def _not_free(name: str, taxonomy: Taxonomy, cons: Constraints) -> tuple[str, str] | None:
    """Why the constraints keep ``name`` from differing within a pair (message, hint), or None."""
    required = [taxonomy.tags[i] for i in cons.require]
    if name in required:
        return (f"'{name}' is both required (sample.require, --require) and a counterfactual concept (sample.concepts, "
                f"--concept): every pair has one member without its concept, so half the pair rows would lack "
                f"a required tag", f"to pair on '{name}', leave out --require '{name}' (one member of each pair holds "
                f"it); to keep it in every set, pair on other tags (--concept TAG)")
    if taxonomy.index[name] in cons.forbid:
        return (f"'{name}' is forbidden (sample.forbid) but is a counterfactual concept (sample.concepts): "
                f"one member of each pair would hold it", "leave it out of --forbid or of --concept")
    broken = required_break_rules([*required, name], taxonomy)
    if broken:
        return (f"counterfactual concept '{name}' (sample.concepts) cannot join the required tags (sample.require): "
                f"{'; '.join(broken)}", "pair on another tag (--concept TAG) or require fewer tags")
    return None


def _valid(idx: list[int], taxonomy: Taxonomy, min_tags: int) -> bool:
    return len(idx) >= max(1, min_tags) and not taxonomy.violations([taxonomy.tags[i] for i in idx])


def draw_pairs(count: int, concepts: list[str], taxonomy: Taxonomy, min_tags: int,
               draw: Callable[[int, int, int], list[list[int]]], max_rounds: int = 20) -> list[Pair]:
    """``count`` pairs, the concepts taken in turn.

    Args:
        draw: ``(tag index, count, round) -> sets holding that tag`` (a new seed per round).

    Raises:
        ConstraintError: A concept for which no valid pair turned up in ``max_rounds`` rounds.
    """
    wanted: dict[str, list[int]] = {}
    for k in range(count):
        wanted.setdefault(concepts[k % len(concepts)], []).append(k)
    pairs: list[Pair] = []
    for position, (concept, numbers) in enumerate(wanted.items()):
        c = taxonomy.index[concept]
        found: list[list[int]] = []
        for rnd in range(max_rounds):
            for s in draw(c, 4 * (len(numbers) - len(found)) + 16, rnd):  # spares: some partners break a rule
                without = [i for i in s if i != c]
                if len(found) < len(numbers) and _valid(s, taxonomy, min_tags) and _valid(without, taxonomy, min_tags):
                    found.append(s)
            if len(found) >= len(numbers):
                break
        if len(found) < len(numbers):
            raise ConstraintError(f"concept '{concept}': only {len(found)} of {len(numbers)} counterfactual pairs "
                                  f"keep the taxonomy's rules without it", hint="pair on other concepts (sample.concepts)")
        for j, (k, s) in enumerate(zip(numbers, found, strict=False)):
            without = [i for i in s if i != c]
            edit = "add" if (position + j) % 2 == 0 else "remove"  # both directions, across and within concepts
            base, partner = (without, s) if edit == "add" else (s, without)
            pairs.append(Pair(k, concept, edit, base, partner))
    return sorted(pairs, key=lambda p: p.number)
