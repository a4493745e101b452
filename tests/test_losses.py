"""Masked losses against NumPy references; padding contributes nothing, values and gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import losses


def np_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_ce_positions(logits, labels):
    return -np.take_along_axis(np_log_softmax(logits), labels[..., None], axis=-1)[..., 0]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 4)) * 2.0
    labels = rng.integers(0, 4, size=(3, 5))
    lengths = np.array([5, 2, 3])
    mask = np.arange(5)[None, :] < lengths[:, None]
    return logits, labels, lengths, mask


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_matches_numpy(data, reduction, x64):
    logits, labels, lengths, mask = data
    got = losses.softmax_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), mask, reduction)
    # Reference: a plain loop over the valid steps of each sequence.
    terms = [np_ce_positions(logits[b, :n], labels[b, :n]) for b, n in enumerate(lengths)]
    total = sum(t.sum() for t in terms)
    want = total if reduction == "sum" else total / lengths.sum()
    np.testing.assert_allclose(float(got), want, rtol=1e-12)


def test_cross_entropy_one_hot_targets_equal_int_labels(data, x64):
    logits, labels, _, mask = data
    one_hot = np.eye(4)[labels]
    a = losses.softmax_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), mask)
    b = losses.softmax_cross_entropy(jnp.asarray(logits), jnp.asarray(one_hot), mask)
    np.testing.assert_allclose(float(a), float(b), rtol=1e-12)


def test_masked_equals_unpadded_and_padding_gets_no_gradient(data, x64):
    logits, labels, lengths, mask = data
    # Garbage (NaN, Inf) at padded positions must not reach the value or the gradient.
    poisoned = np.where(mask[..., None], logits, np.nan)
    poisoned[1, -1, 0] = np.inf

    def masked(z):
        return losses.softmax_cross_entropy(z, jnp.asarray(labels), mask, "sum")

    value, grad = jax.jit(jax.value_and_grad(masked))(jnp.asarray(poisoned))
    unpadded = jax.jit(
        jax.value_and_grad(lambda z, y: losses.softmax_cross_entropy(z, y, None, "sum"))
    )
    per_seq = [
        unpadded(jnp.asarray(logits[b, :n]), jnp.asarray(labels[b, :n]))
        for b, n in enumerate(lengths)
    ]
    np.testing.assert_allclose(float(value), sum(float(v) for v, _ in per_seq), rtol=1e-12)
    grad = np.asarray(grad)
    assert np.all(grad[~mask] == 0.0)
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(grad[b, :n], np.asarray(per_seq[b][1]), rtol=1e-12)


def test_mse_many_to_one_and_per_step(x64):
    rng = np.random.default_rng(1)
    pred, target = rng.normal(size=(4, 6, 2)), rng.normal(size=(4, 6, 2))
    mask = rng.random((4, 6)) < 0.6
    mask[0] = False  # a fully padded sequence
    got_mean = losses.mse(jnp.asarray(pred), jnp.asarray(target), mask)
    got_sum = losses.mse(jnp.asarray(pred), jnp.asarray(target), mask, "sum")
    per_pos = ((pred - target) ** 2).mean(-1)
    np.testing.assert_allclose(float(got_sum), per_pos[mask].sum(), rtol=1e-12)
    np.testing.assert_allclose(float(got_mean), per_pos[mask].mean(), rtol=1e-12)
    # A 0/1 float mask (as tasks produce) is the same as a bool one.
    as_float = losses.mse(jnp.asarray(pred), jnp.asarray(target), mask.astype(np.float32))
    np.testing.assert_allclose(float(as_float), float(got_mean), rtol=1e-12)
    # Many-to-one: one final prediction per example, no mask.
    last = losses.mse(jnp.asarray(pred[:, -1]), jnp.asarray(target[:, -1]))
    np.testing.assert_allclose(float(last), per_pos[:, -1].mean(), rtol=1e-12)
    # Gradient is zero at masked positions even with NaN there.
    poisoned = np.where(mask[..., None], pred, np.nan)
    g = jax.grad(lambda p: losses.mse(p, jnp.asarray(target), mask))(jnp.asarray(poisoned))
    assert np.all(np.asarray(g)[~mask] == 0.0)
    assert np.all(np.isfinite(np.asarray(g)))


def test_accuracy_and_bits_per_symbol(data, x64):
    logits, labels, _, mask = data
    acc = losses.accuracy(jnp.asarray(logits), jnp.asarray(labels), mask)
    want_acc = (logits.argmax(-1) == labels)[mask].mean()
    np.testing.assert_allclose(float(acc), want_acc, rtol=1e-12)
    bps = losses.bits_per_symbol(jnp.asarray(logits), jnp.asarray(labels), mask)
    want_bps = np_ce_positions(logits, labels)[mask].mean() / math.log(2)
    np.testing.assert_allclose(float(bps), want_bps, rtol=1e-12)
    # Uniform logits over K classes cost exactly log2(K) bits per symbol.
    flat = losses.bits_per_symbol(jnp.zeros((2, 3, 8)), jnp.zeros((2, 3), jnp.int32))
    np.testing.assert_allclose(float(flat), 3.0, rtol=1e-6)


def test_empty_mask_gives_zero_mean():
    out = losses.softmax_cross_entropy(
        jnp.ones((2, 3)), jnp.zeros((2,), jnp.int32), jnp.zeros((2,), bool)
    )
    assert float(out) == 0.0


def test_bad_input_errors():
    with pytest.raises(ValueError, match=r"mask has shape \(3,\), expected \(2,\)"):
        losses.softmax_cross_entropy(jnp.ones((2, 4)), jnp.zeros((2,), jnp.int32), jnp.ones(3))
    with pytest.raises(ValueError, match="integer labels have shape"):
        losses.softmax_cross_entropy(jnp.ones((2, 4)), jnp.zeros((3,), jnp.int32))
    with pytest.raises(ValueError, match="unknown reduction='avg'"):
        losses.mse(jnp.ones((2, 1)), jnp.ones((2, 1)), reduction="avg")
    with pytest.raises(ValueError, match="same shape"):
        losses.mse(jnp.ones((2, 1)), jnp.ones((2, 2)))


# ---------------------------------------------------------------------------------------------
# task_loss: the loss and metrics a task trains with.


def test_task_loss_cross_entropy_against_numpy(data, x64):
    logits, labels, _, mask = data
    float_mask = mask.astype(np.float32)  # tasks give 0/1 floats
    loss, aux = losses.task_loss("cross_entropy", jnp.asarray(logits), labels, float_mask)
    ce = np_ce_positions(logits, labels)
    np.testing.assert_allclose(loss, ce[mask].mean(), rtol=1e-12)
    correct = logits.argmax(-1) == labels
    assert set(aux) == {"accuracy"}
    np.testing.assert_allclose(aux["accuracy"], correct[mask].mean(), rtol=1e-12)


def test_task_loss_mse_adds_the_feature_axis_and_casts(x64):
    rng = np.random.default_rng(1)
    outputs = rng.normal(size=(4, 1))  # many-to-one, one feature
    targets = rng.normal(size=(4,)).astype(np.float32)  # without the feature axis
    mask = np.array([1.0, 0.0, 1.0, 1.0])
    loss, aux = losses.task_loss("mse", jnp.asarray(outputs), jnp.asarray(targets), mask)
    valid = mask > 0
    expected = np.mean((outputs[:, 0] - targets.astype(np.float64))[valid] ** 2)
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    assert aux == {}
    assert loss.dtype == jnp.float64  # targets were cast to the outputs' dtype
    # Per step, with a feature axis already there: the mean over features, then positions.
    outputs = rng.normal(size=(2, 3, 2))
    targets = rng.normal(size=(2, 3, 2))
    mask = np.array([[1, 1, 0], [1, 0, 0]], np.float32)
    loss, _ = losses.task_loss("mse", jnp.asarray(outputs), jnp.asarray(targets), mask)
    per_step = ((outputs - targets) ** 2).mean(-1)
    np.testing.assert_allclose(loss, per_step[mask > 0].mean(), rtol=1e-12)


def test_task_loss_unknown_kind_lists_the_valid_ones():
    with pytest.raises(
        ValueError, match=r"task_loss: unknown loss kind 'mae'.*'mse', 'cross_entropy'"
    ):
        losses.task_loss("mae", jnp.zeros((2, 1)), jnp.zeros((2,)), jnp.ones((2,)))
