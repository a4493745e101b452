"""AUROC and precision/recall against brute-force references; bucketing by length."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import tasks


def _brute_auroc(scores, labels):
    pos, neg = scores[labels > 0], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (pos.size * neg.size)


@pytest.mark.parametrize("seed", range(4))
def test_auroc_equals_the_pairwise_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 200
    scores = rng.integers(0, 12, size=n).astype(np.float32)  # many ties
    labels = (rng.random(n) < 0.3 + 0.02 * scores).astype(np.float32)
    got = float(jax.jit(tasks.auroc)(scores, labels))
    assert got == pytest.approx(_brute_auroc(scores, labels), abs=1e-6)


def test_auroc_mask_drops_positions_and_extreme_cases():
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(4, 30)).astype(np.float32)
    labels = (rng.random((4, 30)) < 0.4).astype(np.float32)
    mask = rng.random((4, 30)) < 0.7
    auroc = jax.jit(tasks.auroc)
    got = float(auroc(scores, labels, mask))
    assert got == pytest.approx(_brute_auroc(scores[mask], labels[mask]), abs=1e-6)
    assert float(auroc(labels, labels, mask)) == 1.0  # perfect separation
    assert float(auroc(-labels, labels, mask)) == 0.0
    assert float(auroc(np.zeros_like(scores), labels, mask)) == 0.5  # all tied
    assert np.isnan(float(auroc(scores, np.zeros_like(labels), mask)))  # no positive


def test_auroc_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"same shape, got \(3,\) and \(4,\)"):
        tasks.auroc(jnp.zeros(3), jnp.zeros(4))


@pytest.mark.parametrize("threshold", [-1.0, 0.0, 0.3, 1.5, 9.0])
def test_precision_recall_match_counts(threshold):
    rng = np.random.default_rng(1)
    scores = rng.normal(size=300).astype(np.float32)
    labels = (rng.random(300) < 0.2).astype(np.int32)
    mask = rng.random(300) < 0.9
    precision, recall = tasks.precision_recall(scores, labels, threshold, mask=mask)
    tp = fp = fn = 0
    for s, y, m in zip(scores, labels, mask, strict=True):
        if not m:
            continue
        flagged = s >= threshold
        tp += flagged and y == 1
        fp += flagged and y == 0
        fn += (not flagged) and y == 1
    assert float(precision) == pytest.approx(tp / (tp + fp) if tp + fp else 0.0)
    assert float(recall) == pytest.approx(tp / (tp + fn) if tp + fn else 0.0)


# ----------------------------------------------------------------------------- bucketing


@pytest.mark.parametrize("multiple", [1, 4])
def test_bucketing_sorts_by_length_trims_and_keeps_every_example(multiple, draw):
    task, full = draw("future_tagging_var")  # lengths 6..16
    pool = tasks.Batch(*(x[:50] for x in full))
    t_max = pool.inputs.shape[1]
    batches = tasks.bucket_by_length(pool, 8, task.pattern, multiple=multiple)
    batches = [jax.tree.map(np.asarray, b) for b in batches]
    assert [b.inputs.shape[0] for b in batches] == [8] * 6 + [2]
    lengths = np.concatenate([np.asarray(b.length) for b in batches])
    np.testing.assert_array_equal(lengths, np.sort(pool.length))
    seen = []
    for b in batches:
        t = b.inputs.shape[1]
        assert t == min(t_max, -(-int(b.length.max()) // multiple) * multiple)
        assert b.targets.shape == b.mask.shape == (b.inputs.shape[0], t)
        for x, y, m, n in zip(b.inputs, b.targets, b.mask, b.length, strict=True):
            # find the example in the pool, and check nothing that counts was cut
            j = next(
                j
                for j in range(50)
                if j not in seen
                and pool.length[j] == n
                and np.array_equal(pool.inputs[j, :t], np.asarray(x))
                and np.array_equal(pool.targets[j, :t], np.asarray(y))
            )
            seen.append(j)
            assert pool.mask[j, t:].sum() == 0 and pool.inputs[j, t:].sum() == 0
            np.testing.assert_array_equal(pool.mask[j, :t], np.asarray(m))
    assert sorted(seen) == list(range(50))
    mean_padding = np.mean([tasks.padding_fraction(b) for b in batches])
    assert mean_padding < 0.5 * tasks.padding_fraction(pool)


def test_bucketing_seq2seq_and_many_to_one(draw):
    task, full = draw("reverse")
    pool = tasks.Batch(*(x[:40] for x in full))
    batches = tasks.bucket_by_length(pool, 10, task.pattern, drop_remainder=True)
    batches = [jax.tree.map(np.asarray, b) for b in batches]
    assert len(batches) == 4
    for b in batches:
        n = int(b.length.max())
        assert b.inputs.shape[1] == n and b.targets.shape[1] == b.mask.shape[1] == n + 1
        assert b.mask.sum() == np.sum(b.length + 1)
    task, full = draw("adding_var")
    pool = tasks.Batch(*(x[:33] for x in full))
    batches = tasks.bucket_by_length(pool, 16, task.pattern, drop_remainder=True)
    assert len(batches) == 2 and batches[0].targets.shape == (16, 1)
    with pytest.raises(ValueError, match="`pattern` must be one of"):
        tasks.bucket_by_length(pool, 16, "one_to_many")
