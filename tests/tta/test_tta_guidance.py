"""Classifier-free guidance survives inside transformers' MusicGen ``generate``.

tagtune's :class:`~tagtune.models.sampling.RowSeededSampler` receives MusicGen's stacked conditional
and unconditional scores, applies the guidance itself and samples each clip from its own seed. These
tests build the guided distribution by hand (decoder logits for the caption and for the empty
condition, ``uncond + scale * (cond - uncond)``, temperature, top-k, top-p, then the row's own
uniform) and check that the token the sampler picks, alone and inside the real ``generate`` of the
tiny MusicGen through tagtune's backend, is that draw; a reordering of the logits processors in
transformers (guidance applied before or after ours, scores no longer stacked) fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tagtune.models.sampling import RowSeededSampler
from tagtune.records.rows import CaptionRow
from tagtune.tta.backends.base import SamplingParams

GUIDANCE, TEMPERATURE, TOP_K, TOP_P = 3.0, 1.3, 20, 0.9
SEEDS = [11, 2024]


def _warp_by_hand(logits: np.ndarray, temperature: float, top_k: int, top_p: float) -> np.ndarray:
    """Temperature, then top-k, then top-p (the smallest set of likeliest tokens reaching ``top_p``)."""
    x = logits.astype(np.float64) / temperature
    kth = np.sort(x)[-top_k]
    x = np.where(x < kth, -np.inf, x)
    p = np.exp(x - x.max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")
    mass_before = np.concatenate([[0.0], np.cumsum(p[order])[:-1]])
    keep = np.zeros_like(p, dtype=bool)
    keep[order[mass_before < top_p]] = True
    return np.where(keep, x, -np.inf)


def _draw_by_hand(logits: np.ndarray, u: float) -> int:
    """The inverse-CDF draw for the uniform ``u``: the first token whose cumulative probability reaches it."""
    p = np.exp(logits - logits.max())
    cdf = np.cumsum(p / p.sum())
    return int(np.searchsorted(cdf, u * cdf[-1]))


def _uniform(seed: int, steps: int, rows_per_seed: int, step: int, row: int) -> float:
    """The row's own uniform for a step: drawn from a generator seeded with its seed only."""
    return float(torch.rand(steps + 1, rows_per_seed, generator=torch.Generator().manual_seed(seed),
                            dtype=torch.float64)[step, row])


def _guided_by_hand(cond: np.ndarray, uncond: np.ndarray) -> np.ndarray:
    return uncond + GUIDANCE * (cond - uncond)


def test_sampler_draws_the_hand_built_guided_token():
    gen = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(2, 64, generator=gen) * 3, torch.randn(2, 64, generator=gen) * 3
    sampler = RowSeededSampler(SEEDS, steps=4, temperature=TEMPERATURE, top_k=TOP_K, top_p=TOP_P,
                               guidance_scale=GUIDANCE)
    for step in range(3):  # the same scores at each step: only the uniform changes
        out = sampler(torch.zeros(2, 1, dtype=torch.long), torch.cat([cond, uncond]))
        chosen = out.argmax(dim=-1)
        assert torch.equal(chosen[:2], chosen[2:])  # both halves carry the choice
        for row, seed in enumerate(SEEDS):
            warped = _warp_by_hand(_guided_by_hand(cond[row].numpy(), uncond[row].numpy()), TEMPERATURE, TOP_K, TOP_P)
            assert int(chosen[row]) == _draw_by_hand(warped, _uniform(seed, 4, 1, step, 0)), (step, row)


def test_guidance_changes_the_draw():
    """Not a tautology: without guidance the same uniforms pick other tokens for these scores."""
    gen = torch.Generator().manual_seed(1)
    cond, uncond = torch.randn(2, 64, generator=gen) * 3, torch.randn(2, 64, generator=gen) * 3
    guided = RowSeededSampler(SEEDS, steps=8, guidance_scale=GUIDANCE)
    plain = RowSeededSampler(SEEDS, steps=8, guidance_scale=None)
    differ = 0
    for _ in range(8):
        a = guided(torch.zeros(2, 1, dtype=torch.long), torch.cat([cond, uncond])).argmax(dim=-1)[:2]
        b = plain(torch.zeros(2, 1, dtype=torch.long), cond).argmax(dim=-1)
        differ += int((a != b).sum())
    assert differ > 0


class _Recorder(RowSeededSampler):
    """The sampler ``tta generate`` uses, keeping what it chose and what it was given at each step."""

    last: _Recorder | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.chosen: list[torch.Tensor] = []
        self.stacked: list[bool] = []
        _Recorder.last = self

    def __call__(self, input_ids, scores):
        self.stacked.append(scores.shape[0] == 2 * input_ids.shape[0])
        out = super().__call__(input_ids, scores)
        self.chosen.append(out.argmax(dim=-1)[: input_ids.shape[0]].clone())
        return out


def _decoder_logits(model, inputs, decoder_ids: torch.Tensor) -> torch.Tensor:
    """Last-position logits for the caption (first half) and the empty condition (second half),
    computed as MusicGen conditions: the text encoding, and zeros with a zero attention mask."""
    with torch.inference_mode():
        enc = model.text_encoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
        mask = inputs["attention_mask"]
        out = model(encoder_outputs=(torch.cat([enc, torch.zeros_like(enc)]),),
                    attention_mask=torch.cat([mask, torch.zeros_like(mask)]),
                    decoder_input_ids=torch.cat([decoder_ids, decoder_ids]))
    return out.logits[:, -1, :].float()


@pytest.mark.slow
def test_guided_tokens_inside_musicgen_generate_are_the_hand_built_draws(tiny_backend, monkeypatch):
    backend, k = tiny_backend, tiny_backend.num_codebooks
    monkeypatch.setattr("tagtune.tta.backends.musicgen.RowSeededSampler", _Recorder)
    rows = [CaptionRow(id="a", tags=[], caption="a calm ambient piano piece"),
            CaptionRow(id="b", tags=[], caption="energetic rock with loud drums and electric guitar")]
    params = SamplingParams(do_sample=True, temperature=TEMPERATURE, top_k=TOP_K, top_p=TOP_P, guidance_scale=GUIDANCE)
    steps = 8  # long enough for MusicGen's usual delay pattern at the start (shorter runs force no pads)
    backend.generate(rows, SEEDS, steps, params)
    rec = _Recorder.last
    assert rec is not None and all(rec.stacked), "the sampler must see cond/uncond scores stacked"

    inputs = backend.processor(text=[r.caption for r in rows], padding=True, return_tensors="pt")
    bos = backend.model.generation_config.decoder_start_token_id
    ids = torch.full((len(rows) * k, 1), bos, dtype=torch.long)
    for step in range(3):
        logits = _decoder_logits(backend.model, inputs, ids)
        cond, uncond = logits[: len(rows) * k].numpy(), logits[len(rows) * k:].numpy()
        for row in range(len(rows) * k):
            clip, codebook = divmod(row, k)
            warped = _warp_by_hand(_guided_by_hand(cond[row], uncond[row]), TEMPERATURE, TOP_K, TOP_P)
            expected = _draw_by_hand(warped, _uniform(SEEDS[clip], steps, k, step, codebook))
            assert int(rec.chosen[step][row]) == expected, (step, clip, codebook)
        # MusicGen's delay pattern: at position step + 1 only codebooks 0..step hold a real token
        real = torch.tensor([row % k <= step for row in range(len(rows) * k)])
        ids = torch.cat([ids, torch.where(real, rec.chosen[step], bos)[:, None]], dim=1)


def test_uniforms_move_to_the_scores_device_once(monkeypatch):
    """One host-to-device copy per batch, at the first step, not one per step (scores on the ``meta``
    device stand in for a GPU); on the CPU the uniforms are never copied."""
    copies = []
    real_to = torch.Tensor.to

    def counting_to(self, *args, **kwargs):
        if self.dtype == torch.float64 and self.dim() == 2:  # the (steps + 1, rows) uniforms
            copies.append(args)
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", counting_to)
    ids = torch.zeros(2, 1, dtype=torch.long)
    on_cpu = RowSeededSampler(SEEDS, steps=3)
    for _ in range(3):
        on_cpu(ids, torch.randn(2, 16))
    assert copies == [] and on_cpu.uniforms.device.type == "cpu"
    elsewhere = RowSeededSampler(SEEDS, steps=3)
    for _ in range(3):
        elsewhere(ids.to("meta"), torch.randn(2, 16, device="meta"))
    assert len(copies) == 1 and elsewhere.uniforms.device.type == "meta"
