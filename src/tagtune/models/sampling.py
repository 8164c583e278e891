"""Per-row seeded sampling inside ``model.generate``: a row's draws depend only on its own seed.

``generate()`` normally samples from the global RNG, so a caption or a clip would change with its
batch neighbours, the batch size, the shard and every resume. :class:`RowSeededSampler` is a logits
processor that draws each row's token from uniforms pre-drawn from that row's own generator
(seeded from the run seed and the row id), after transformers' own temperature / top-k / top-p
warpers, and hands ``generate()`` a one-hot choice to take greedily. Processors that run before
it (repetition penalty, n-gram blocking, suppressed tokens) still apply.

MusicGen decodes ``num_codebooks`` rows per clip (``rows_per_seed``) and, with classifier-free
guidance, passes conditional and unconditional scores stacked; the guidance is applied here and
the same choice is returned in both halves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tagtune.files.ids import stable_hash

_CHOSEN = 0.0
_NOT_CHOSEN = -1.0e4  # finite, so guidance arithmetic on it stays finite (and fits in float16)


def row_seed(seed: int, row_id: str, bits: int = 63) -> int:
    """The seed of one row: a stable function of the run seed and the row id (not of the batch)."""
    return stable_hash(f"{int(seed)}:{row_id}") % (2**bits)


def seed_for_row(seed: int, row: Any, bits: int = 63) -> int:
    """A row's own seed: from its pair's id for a counterfactual pair (both members draw alike), else
    its id. Not a function of the batch, the shard or the resume point."""
    return row_seed(seed, getattr(row, "pair_id", None) or row.id, bits=bits)


def _warpers(temperature: float | None, top_k: int | None, top_p: float | None) -> list[Any]:
    from transformers.generation import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    out: list[Any] = []
    if temperature and float(temperature) != 1.0:
        out.append(TemperatureLogitsWarper(float(temperature)))
    if top_k:
        out.append(TopKLogitsWarper(int(top_k)))
    if top_p and 0.0 < float(top_p) < 1.0:
        out.append(TopPLogitsWarper(float(top_p)))
    return out


class RowSeededSampler:
    """A ``LogitsProcessor`` that samples every row from its own seed's stream of uniforms.

    Args:
        seeds: One seed per sequence of the batch (per clip for MusicGen).
        steps: The most decoding steps (uniforms are drawn up front for these).
        do_sample: False: greedy (argmax), still returned one-hot.
        temperature, top_k, top_p: Sampling settings (0 / None disable top-k and top-p).
        rows_per_seed: Decoder rows per sequence (MusicGen: ``num_codebooks``).
        guidance_scale: Classifier-free guidance applied to stacked cond/uncond scores.
    """

    def __init__(self, seeds: Sequence[int], steps: int, do_sample: bool = True, temperature: float | None = 1.0,
                 top_k: int | None = None, top_p: float | None = None, rows_per_seed: int = 1,
                 guidance_scale: float | None = None):
        import torch

        self.do_sample = do_sample
        self.guidance_scale = guidance_scale
        self.warpers = _warpers(temperature, top_k, top_p) if do_sample else []
        self.step = 0
        # Drawn on the CPU (the same numbers on every device), moved to the scores' device once, on the
        # first step: one host-to-device copy per batch instead of one per decoding step.
        draws = [torch.rand(steps + 1, rows_per_seed, generator=torch.Generator().manual_seed(int(s)), dtype=torch.float64)
                 for s in seeds]
        self.uniforms = torch.stack(draws, dim=1).reshape(steps + 1, len(seeds) * rows_per_seed)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        rows = input_ids.shape[0]
        if self.uniforms.device != scores.device:
            self.uniforms = self.uniforms.to(scores.device)
        logits = scores
        if scores.shape[0] == 2 * rows and self.guidance_scale is not None:
            cond, uncond = scores[:rows], scores[rows:]
            logits = uncond + (cond - uncond) * self.guidance_scale
        logits = logits.float()
        for warp in self.warpers:
            logits = warp(input_ids, logits)
        tokens = self._draw(logits) if self.do_sample else logits.argmax(dim=-1)
        self.step += 1
        out = torch.full_like(scores, _NOT_CHOSEN)
        index = tokens.repeat(scores.shape[0] // rows)[:, None]
        return out.scatter_(1, index, _CHOSEN)

    def _draw(self, logits: Any) -> Any:
        import torch

        cdf = torch.softmax(logits, dim=-1).double().cumsum(dim=-1)
        row = self.uniforms[min(self.step, self.uniforms.shape[0] - 1)]
        u = row[:, None].clamp_min(1e-12) * cdf[:, -1:]
        return torch.searchsorted(cdf, u).squeeze(1).clamp_(max=logits.shape[-1] - 1)
