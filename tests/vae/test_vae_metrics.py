"""Metric functions on hand-computable cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tagtune.vae import metrics as M


def m(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


def test_jsd_identical_zero_disjoint_one_and_known_value():
    assert M.jensen_shannon([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0, abs=1e-12)  # normalised first
    assert M.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)  # base 2: disjoint supports -> 1
    # p = (1/2, 1/2), q = (1, 0): m = (3/4, 1/4)
    expected = 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)) + 0.5 * math.log2(1 / 0.75)
    assert M.jensen_shannon([1, 1], [1, 0]) == pytest.approx(expected)


def test_marginal_jsd_uses_tag_counts():
    a = m([[1, 0, 0], [0, 1, 0]])
    b = m([[1, 1, 0]])  # same tag distribution (1/2, 1/2, 0) although the sets differ
    assert M.marginal_jsd(a, b) == pytest.approx(0.0, abs=1e-12)
    assert M.marginal_jsd(a, m([[0, 0, 1]])) == pytest.approx(1.0)


def test_cooccurrence_matrix_and_pearson():
    x = m([[1, 1, 0], [1, 0, 1], [1, 1, 0], [0, 0, 1]])
    c = M.cooccurrence(x)
    assert c[0, 1] == pytest.approx(2 / 4) and c[0, 2] == pytest.approx(1 / 4) and c[1, 2] == 0
    assert np.allclose(np.diag(c), x.mean(axis=0))
    assert M.cooccurrence_pearson(x, x) == pytest.approx(1.0)
    # reversed pair ranking: off-diagonal (0.5, 0.25, 0) vs (0, 0.25, 0.5) -> r = -1
    y = m([[0, 1, 1], [1, 0, 1], [0, 1, 1], [1, 0, 0]])
    assert M.cooccurrence_pearson(x, y) == pytest.approx(-1.0)


def test_set_size_w1_and_sizes():
    a = m([[1, 0, 0], [1, 1, 0]])  # sizes 1, 2
    b = m([[1, 1, 1], [1, 1, 0]])  # sizes 3, 2
    assert M.set_size_w1(a, a) == 0
    assert M.set_size_w1(a, b) == pytest.approx(1.0)  # each mass moves by 1


def test_diversity_and_novelty():
    gen = m([[1, 0], [1, 0], [0, 1], [1, 1]])
    assert M.diversity(gen) == pytest.approx(3 / 4)
    train = m([[1, 0]])
    assert M.novelty(gen, train) == pytest.approx(2 / 4)
    assert M.novelty(train, train) == 0.0


def test_tanimoto_and_jaccard():
    a = m([[1, 1, 0, 0], [0, 0, 0, 0]])
    b = m([[1, 0, 1, 0], [0, 0, 0, 0]])
    sim = M.tanimoto(a, b)
    assert sim[0, 0] == pytest.approx(1 / 3)  # {0,1} vs {0,2}: 1 shared of 3
    assert sim[1, 1] == 1.0  # empty vs empty
    assert sim[0, 1] == 0.0
    assert M.jaccard_distance(a, a)[0, 0] == 0.0


def test_mmd_identical_near_zero_and_different_positive():
    rng = np.random.default_rng(0)
    x = (rng.random((300, 20)) < 0.3).astype(np.float32)
    y = (rng.random((300, 20)) < 0.3).astype(np.float32)
    z = (rng.random((300, 20)) < 0.05).astype(np.float32)
    # Identical samples: the unbiased estimate is ~0, exactly -2 (1 - mean off-diagonal similarity) / n
    # (the cross term keeps the self-pairs that the within-sample terms leave out).
    n = len(x)
    sim = M.tanimoto(x, x)
    off = (sim.sum() - n) / (n * (n - 1))
    assert M.mmd2_tanimoto(x, x) == pytest.approx(-2 * (1 - off) / n)
    assert abs(M.mmd2_tanimoto(x, x)) < 1e-2
    assert abs(M.mmd2_tanimoto(x, y)) < 2e-3  # same distribution, independent draws
    assert M.mmd2_tanimoto(x, z) > 20 * abs(M.mmd2_tanimoto(x, y))


def test_mmd_chunking_does_not_change_the_value():
    rng = np.random.default_rng(1)
    x = (rng.random((50, 10)) < 0.4).astype(np.float32)
    y = (rng.random((40, 10)) < 0.2).astype(np.float32)
    assert M.mmd2_tanimoto(x, y, chunk=7) == pytest.approx(M.mmd2_tanimoto(x, y, chunk=1000))


def test_prdc_identical_sets_are_perfect():
    rng = np.random.default_rng(2)
    x = (rng.random((60, 12)) < 0.35).astype(np.float32)
    x[x.sum(axis=1) == 0, 0] = 1
    out = M.prdc(x, x, k=3)
    assert out["precision"] == 1.0 and out["recall"] == 1.0 and out["coverage"] == 1.0
    assert out["density"] >= 1.0  # each set is in its own ball, plus its neighbours'


def test_prdc_hand_computed():
    # Real sets: three copies of {0,1} and one {2,3}; k=1 radii: 0 for the copies; {2,3} -> 1 (outlier).
    real = m([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]])
    # Fakes: {0,1} (inside the copies' zero-radius balls), {0} (distance 0.5: outside), {4}-like -> empty row? use {2}
    fake = m([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    out = M.prdc(fake, real, k=1)
    # precision: {0,1} in copies' balls; {2} and {3} are at 0.5 from {2,3} whose radius is 1 -> inside;
    # {0} is at distance 0.5 from {0,1} (radius 0) and 1 from {2,3} (no shared tag -> never inside).
    assert out["precision"] == pytest.approx(3 / 4)
    # coverage: every copy has {0,1} within radius 0; {2,3} holds {2} -> all 4 real sets covered.
    assert out["coverage"] == 1.0
    # density: fake {0,1} sits in 3 balls, {2} and {3} in 1 each, {0} in none -> (3+1+1+0)/(1*4)
    assert out["density"] == pytest.approx(5 / 4)


def test_prdc_detects_missing_mode():
    rng = np.random.default_rng(3)
    a = np.zeros((200, 10), dtype=np.float32)
    a[:100, :3] = rng.random((100, 3)) < 0.8
    a[100:, 5:8] = rng.random((100, 3)) < 0.8
    a[a.sum(axis=1) == 0, 0] = 1
    only_first = a[:100][rng.integers(0, 100, 200)]
    out = M.prdc(only_first, a, k=3)
    assert out["precision"] > 0.9  # everything generated is plausible...
    assert out["coverage"] < 0.6  # ...but half the real modes are never reached


def test_prdc_subsampled_equal_sizes_and_needs_more_than_k():
    rng = np.random.default_rng(4)
    big = (rng.random((500, 8)) < 0.4).astype(np.float32)
    small = (rng.random((40, 8)) < 0.4).astype(np.float32)
    out = M.prdc_subsampled(big, small, k=3, size=1000, repeats=2)
    assert out["subsample"] == 40
    with pytest.raises(ValueError, match="more than k=3"):
        M.prdc(big[:3], small, k=3)


def test_all_metrics_keys_and_categories():
    x = m([[1, 0, 1, 0], [0, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 1], [0, 1, 0, 1]])
    out = M.all_metrics(x, x, train=x, k=2, category_slices={"a": slice(0, 2), "b": slice(2, 4)})
    for key in ("jsd", "cooccurrence_r", "set_size_w1", "diversity", "novelty", "precision", "recall",
                "density", "coverage", "mmd2", "mean_set_size", "empty_share"):
        assert key in out
    assert out["jsd"] == pytest.approx(0.0, abs=1e-12) and out["novelty"] == 0.0 and out["precision"] == 1.0
    assert out["mean_set_size_by_category"] == {"a": pytest.approx(6 / 5), "b": pytest.approx(5 / 5)}
