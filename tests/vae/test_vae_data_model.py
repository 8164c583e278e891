"""Data loading through the stage (every tag-column layout), the network, its loss and the sampler's core."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tagtune.errors import InputError
from tagtune.records.taxonomy import Taxonomy
from tagtune.vae.data import TensorBatches, load_vae_data
from tagtune.vae.model import Architecture, TagVAE, vae_loss
from tagtune.vae.sampler import conditional_bernoulli

SETS = [["rock", "energetic", "Electric Guitar"], ["jazz", "calm", "piano", "slow tempo"], ["ambient", "synthesizer"]]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _layouts(tmp: Path) -> dict[str, tuple[Path, dict]]:
    tax = Taxonomy({"genre": ["rock", "jazz", "ambient"], "mood": ["energetic", "calm"],
                    "instrument": ["electric guitar", "piano", "synthesizer"], "tempo": ["slow tempo"]})
    by_cat = [tax.by_category(s) for s in SETS]
    out = {
        "comma string csv": (_write_csv(tmp / "a.csv", ["aspect_list"], [[", ".join(s)] for s in SETS]), {"tags_column": "aspect_list"}),
        "json list string csv": (_write_csv(tmp / "b.csv", ["tags"], [[json.dumps(s)] for s in SETS]), {"tags_column": "tags"}),
        "python literal csv": (_write_csv(tmp / "c.csv", ["aspect_list"], [[repr(s)] for s in SETS]), {"tags_column": None}),
        "per-category columns": (
            _write_csv(tmp / "d.csv", ["genre_tags", "mood_tags", "instrument_tags", "tempo_tags"],
                       [[", ".join(c[k]) for k in ("genre", "mood", "instrument", "tempo")] for c in by_cat]),
            {"tags_column": None},
        ),
    }
    jl = tmp / "e.jsonl"
    jl.write_text("".join(json.dumps({"tags": s}) + "\n" for s in SETS), encoding="utf-8")
    out["list jsonl"] = (jl, {"tags_column": "tags"})
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"aspect_list": SETS}), tmp / "f.parquet")
    out["list parquet"] = (tmp / "f.parquet", {"tags_column": "aspect_list"})
    return out, tax


@pytest.mark.parametrize("layout", ["comma string csv", "json list string csv", "python literal csv",
                                    "per-category columns", "list jsonl", "list parquet"])
def test_every_tag_column_layout_gives_the_same_matrix(tmp_path, layout, tag_data):
    layouts, tax = _layouts(tmp_path)
    tax_path = tmp_path / "tax.json"
    tax.save(tax_path)
    path, extra = layouts[layout]
    data = load_vae_data(tag_data(path=str(path), taxonomy_path=str(tax_path), val_fraction=0.0, test_fraction=0.0,
                                  split_seed=0, **extra))
    expected = tax.encode_many(SETS)
    assert data.train.shape == (3, len(tax))
    # The split shuffles rows; compare as sets of rows.
    assert sorted(map(tuple, data.train.tolist())) == sorted(map(tuple, expected.tolist()))


def test_unknown_tags_counted_and_empty_rows_dropped(tmp_path, small_taxonomy, tag_data):
    path = _write_csv(tmp_path / "x.csv", ["tags"], [["rock, kazoo"], ["kazoo, theremin"], ["jazz, piano, kazoo"]])
    data = load_vae_data(tag_data(path=str(path), taxonomy_path=str(small_taxonomy), tags_column="tags",
                                  val_fraction=0.0, test_fraction=0.0, split_seed=0))
    s = data.summary()
    assert s["rows_read"] == 3 and s["rows_kept"] == 2 and s["rows_dropped"] == 1
    assert s["top_unknown_tags"]["kazoo"] == 3 and s["unknown_tag_uses"] == 4
    assert any("kazoo" in line for line in s["report"])


def test_missing_column_lists_available_columns(tmp_path, small_taxonomy, tag_data):
    path = _write_csv(tmp_path / "x.csv", ["caption", "labels"], [["a song", "rock"]])
    with pytest.raises(InputError, match=r"no column 'concepts'; available columns: caption, labels"):
        load_vae_data(tag_data(path=str(path), taxonomy_path=str(small_taxonomy), tags_column="concepts"))


def test_split_is_seeded(small_jsonl, small_taxonomy, tag_data):
    cfg = {"path": str(small_jsonl), "taxonomy_path": str(small_taxonomy), "val_fraction": 0.2, "test_fraction": 0.1}
    a = load_vae_data(tag_data(**cfg, split_seed=1))
    b = load_vae_data(tag_data(**cfg, split_seed=1))
    c = load_vae_data(tag_data(**cfg, split_seed=2))
    assert (len(a.train), len(a.val), len(a.test)) == (42, 12, 6)
    assert np.array_equal(a.val, b.val) and not np.array_equal(a.val, c.val)


def test_tensor_batches_cover_every_row_and_never_leave_one_row():
    data = np.eye(11, dtype=np.float32)
    batches = TensorBatches(data, batch_size=5, shuffle=True, seed=0)
    got = [b[0] for b in batches]
    assert len(got) == len(batches) == 2  # 5 + 6: the 1-row tail joins the batch before it
    rows = torch.cat(got)
    assert sorted(rows.argmax(dim=1).tolist()) == list(range(11))
    first = [b[0].argmax(dim=1).tolist() for b in TensorBatches(data, 5, True, seed=0)]
    again = [b[0].argmax(dim=1).tolist() for b in TensorBatches(data, 5, True, seed=0)]
    assert first == again  # same seed and epoch -> same order


def _arch(**kw) -> Architecture:
    base = dict(num_tags=13, latent_dim=4, hidden_dim=16, num_layers=2, dropout=0.1, batch_norm=True, max_set_size=6)
    return Architecture(**{**base, **kw})


def test_forward_and_loss_shapes():
    torch.manual_seed(0)
    model = TagVAE(_arch())
    x = (torch.rand(8, 13) < 0.3).float()
    out = model(x)
    assert out["tag_logits"].shape == (8, 13)
    assert out["size_logits"].shape == (8, 7)
    assert out["mu"].shape == out["logvar"].shape == out["z"].shape == (8, 4)
    terms = vae_loss(x, out, beta=0.5)
    assert set(terms) == {"loss", "bce", "size_ce", "kld"}
    assert all(t.ndim == 0 and torch.isfinite(t) for t in terms.values())
    assert terms["loss"].item() == pytest.approx(terms["bce"].item() + terms["size_ce"].item() + 0.5 * terms["kld"].item(), rel=1e-5)
    # Weights and KL warm-up scale their terms.
    half = vae_loss(x, out, beta=0.5, bce_weight=0.0, size_weight=0.0, kl_scale=0.5)
    assert half["loss"].item() == pytest.approx(0.25 * terms["kld"].item(), rel=1e-5)


def test_free_bits_floor_the_penalised_kl():
    model = TagVAE(_arch())
    x = (torch.rand(4, 13) < 0.3).float()
    out = model(x)
    out["mu"] = torch.zeros(4, 4)
    out["logvar"] = torch.zeros(4, 4)  # KL exactly 0
    terms = vae_loss(x, out, beta=1.0, bce_weight=0.0, size_weight=0.0, free_bits=0.25)
    assert terms["kld"].item() == pytest.approx(0.0, abs=1e-7)
    assert terms["loss"].item() == pytest.approx(4 * 0.25)


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    model = TagVAE(_arch(dropout=0.0))
    x = torch.zeros(32, 13)
    x[:16, :3] = 1
    x[16:, 8:12] = 1
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = vae_loss(x, model(x), beta=0.5)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_the_same_weights_give_the_same_file_bytes(tmp_path):
    """safetensors writes its metadata in hash order, which changes between processes: save_model_dir sorts it."""
    from tagtune.vae.modeldir import WEIGHTS, load_model_dir, save_model_dir

    torch.manual_seed(0)
    model = TagVAE(_arch(num_tags=4))
    tax = Taxonomy({"genre": ["rock", "jazz"], "mood": ["calm", "dark"]})
    mu, logvar = torch.zeros(3, 4), torch.zeros(3, 4)
    files = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        save_model_dir(tmp_path / name, model, tax, mu, logvar)
        files.append((tmp_path / name / WEIGHTS).read_bytes())
    size = int.from_bytes(files[0][:8], "little")
    metadata = json.loads(files[0][8:8 + size])["__metadata__"]
    assert list(metadata) == sorted(metadata) == ["architecture", "format", "taxonomy_sha256"]
    assert files[0] == files[1]
    loaded = load_model_dir(tmp_path / "a")  # the rewritten header reads back as before
    assert loaded.model.arch == model.arch and torch.equal(loaded.prior_mu, mu)


def test_conditional_bernoulli_gives_exact_sizes_and_respects_masks():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 10)
    logits[:, 3] = float("-inf")
    sizes = torch.randint(0, 6, (500,), generator=gen)
    out = conditional_bernoulli(logits, sizes, gen)
    assert torch.equal(out.sum(dim=1).long(), sizes)
    assert out[:, 3].sum() == 0


def test_conditional_bernoulli_matches_the_exact_distribution():
    # 4 tags, sets of size 2: P(S) ∝ prod of odds; compare frequencies with the enumeration.
    p = torch.tensor([0.7, 0.4, 0.2, 0.5])
    logits = torch.log(p / (1 - p))
    n = 40000
    gen = torch.Generator().manual_seed(1)
    out = conditional_bernoulli(logits.expand(n, 4).clone(), torch.full((n,), 2), gen)
    pairs = list(itertools.combinations(range(4), 2))
    odds = (p / (1 - p)).tolist()
    weights = [odds[i] * odds[j] for i, j in pairs]
    total = sum(weights)
    for (i, j), w in zip(pairs, weights, strict=True):
        freq = ((out[:, i] == 1) & (out[:, j] == 1)).float().mean().item()
        expected = w / total
        assert abs(freq - expected) < 4 * math.sqrt(expected * (1 - expected) / n) + 1e-3


def test_conditional_bernoulli_chunking_does_not_change_results(monkeypatch):
    import tagtune.vae.sampler as S

    logits = torch.randn(64, 12)
    sizes = torch.randint(0, 5, (64,), generator=torch.Generator().manual_seed(3))
    whole = conditional_bernoulli(logits, sizes, torch.Generator().manual_seed(5))
    monkeypatch.setattr(S, "_CB_TABLE_ELEMENTS", 13 * 5 * 7)  # 7 rows per chunk
    chunked = conditional_bernoulli(logits, sizes, torch.Generator().manual_seed(5))
    assert torch.equal(whole, chunked)
