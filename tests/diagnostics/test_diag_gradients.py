"""Tests of per-timestep gradient norms, weight-gradient contributions and the decay fit.

References are independent of the one-backward-pass implementation: the gradient with respect
to each hidden state is obtained by re-running the tail of the sequence from that state in a
Python loop over ``cell.step`` and differentiating it alone; the per-timestep weight terms by
a Python loop in which only step t uses a separate copy of the weight; everything in float64.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import cells
from seqjax.diagnostics import (
    batch_hidden_grad_norms,
    decay_rate,
    describe_decay,
    hidden_grad_norms,
    hidden_grads,
    weight_grad_contributions,
)

H, F, T = 3, 2, 6

CELL_CASES = {
    "rnn": lambda **kw: cells.rnn(H, **kw),
    "lstm": lambda **kw: cells.lstm(H, **kw),
    "gru": lambda **kw: cells.gru(H, **kw),
}


def _hidden(carry):
    return carry.h if isinstance(carry, cells.LSTMCarry) else carry


def _make(name, key, dtype=jnp.float64):
    cell = CELL_CASES[name](dtype=dtype)
    k_p, k_x, k_w = jax.random.split(key, 3)
    params = cell.init(k_p, F)
    xs = jax.random.normal(k_x, (T, F), dtype)
    weights = jax.random.normal(k_w, (T, H), dtype)

    def loss_fn(hs, final):
        # Depends on every output (sin(0) = 0, so zero padding adds nothing) and on the carry.
        n = hs.shape[0]
        return jnp.sum(jnp.sin(hs) * weights[:n]) + jnp.sum(_hidden(final) ** 2)

    return cell, params, xs, loss_fn


def _loop(cell, params, xs, carry, start, length, hs_prefix):
    """Python loop over cell.step from ``carry`` (the state after step start - 1)."""
    hs = list(hs_prefix)
    for t in range(start, xs.shape[0]):
        if t < length:
            carry, h = cell.step(params, carry, xs[t])
        else:
            h = jnp.zeros_like(_hidden(carry))
        hs.append(h)
    return carry, jnp.stack(hs)


def _reference_grads(cell, params, xs, loss_fn, length):
    """dL/d carry_t for each t < length, by differentiating the re-run tail from carry_t."""
    carry = cell.initial_carry()
    carries, hs = [], []
    for t in range(length):
        carry, h = cell.step(params, carry, xs[t])
        carries.append(carry)
        hs.append(h)
    grads = []
    for t in range(length):

        def tail_loss(c_t, t=t):
            final, all_hs = _loop(cell, params, xs, c_t, t + 1, length, [*hs[:t], _hidden(c_t)])
            return loss_fn(all_hs, final)

        grads.append(jax.grad(tail_loss)(carries[t]))
    return grads


@pytest.mark.parametrize(("name", "length"), [("rnn", None), ("lstm", 4), ("gru", None)])
def test_hidden_grads_match_tail_reruns(name, length, key, x64):
    cell, params, xs, loss_fn = _make(name, key)
    both = jax.jit(
        lambda p, x: (
            hidden_grads(cell, p, x, loss_fn, length=length),
            hidden_grad_norms(cell, p, x, loss_fn, length=length),
        )
    )
    (loss, grads), norms = both(params, xs)
    n = T if length is None else length
    ref = _reference_grads(cell, params, xs, loss_fn, n)
    _, ref_hs = _loop(cell, params, xs, cell.initial_carry(), 0, n, [])
    final_ref, _ = _loop(cell, params, xs, cell.initial_carry(), 0, n, [])
    np.testing.assert_allclose(loss, loss_fn(ref_hs, final_ref), rtol=1e-12)
    for t in range(T):
        got = jax.tree.map(lambda g, t=t: g[t], grads)
        if t < n:
            chex.assert_trees_all_close(got, ref[t], rtol=1e-10, atol=1e-12)
        else:
            for leaf in jax.tree.leaves(got):
                np.testing.assert_array_equal(leaf, 0.0)

    np.testing.assert_allclose(norms.loss, loss, rtol=1e-12)
    ref_h = [np.linalg.norm(_hidden(g)) for g in ref] + [0.0] * (T - n)
    np.testing.assert_allclose(norms.h, ref_h, rtol=1e-10, atol=1e-14)
    if name == "lstm":
        ref_c = [np.linalg.norm(g.c) for g in ref] + [0.0] * (T - n)
        np.testing.assert_allclose(norms.carry.c, ref_c, rtol=1e-10, atol=1e-14)
        assert not np.allclose(norms.carry.c[:n], norms.h[:n])


def test_length_masking_equals_unpadded_sequence(key, x64):
    cell, params, xs, loss_fn = _make("lstm", key)
    n = 3
    norms = jax.jit(lambda x, n: hidden_grad_norms(cell, params, x, loss_fn, length=n))
    padded, unpadded = norms(xs, n), norms(xs[:n], None)
    np.testing.assert_allclose(padded.h[:n], unpadded.h, rtol=1e-12)
    np.testing.assert_allclose(padded.carry.c[:n], unpadded.carry.c, rtol=1e-12)
    np.testing.assert_array_equal(padded.h[n:], 0.0)
    np.testing.assert_array_equal(padded.carry.c[n:], 0.0)
    np.testing.assert_allclose(padded.loss, unpadded.loss, rtol=1e-12)


def test_batch_norms_per_example_and_mean(key, x64):
    cell, params, _, _ = _make("gru", key)
    k_x, k_y = jax.random.split(jax.random.fold_in(key, 1))
    xs = jax.random.normal(k_x, (3, T, F), jnp.float64)
    targets = jax.random.normal(k_y, (3, H), jnp.float64)
    lengths = jnp.array([6, 2, 4], jnp.int32)

    def loss_fn(hs, final, target):
        return jnp.sum((final - target) ** 2) + 0.1 * jnp.sum(hs**2)

    out = jax.jit(
        lambda p, x, y, n: batch_hidden_grad_norms(cell, p, x, loss_fn, targets=y, length=n)
    )(params, xs, targets, lengths)
    chex.assert_shape(out.per_example.h, (3, T))
    single = jax.jit(lambda p, x, y, n: hidden_grad_norms(cell, p, x, loss_fn, targets=y, length=n))
    singles = [single(params, xs[b], targets[b], lengths[b]) for b in range(3)]
    per = np.stack([s.h for s in singles])
    np.testing.assert_allclose(out.per_example.h, per, rtol=1e-12)
    np.testing.assert_allclose(out.mean.loss, np.mean([s.loss for s in singles]), rtol=1e-12)
    # Mean over the examples still valid at t: all 3 for t < 2, then 2 (t < 4), then 1.
    expected = [per[:, t][np.arange(3)[np.asarray(lengths) > t]].mean() for t in range(T)]
    np.testing.assert_allclose(out.mean.h, expected, rtol=1e-12)


def test_no_retrace_on_second_call(key):
    cell, params, xs, _ = _make("rnn", key, jnp.float32)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def fn(p, x, n):
        return hidden_grad_norms(cell, p, x, lambda hs, c: jnp.sum(hs**2), length=n)

    fn(params, xs, 3)
    out = fn(params, 2.0 * xs, 5)
    assert out.h.shape == (T,) and float(out.h[5]) == 0.0 and float(out.h[4]) > 0.0


# --- weight-gradient contributions -----------------------------------------------------------


def _reference_weight_terms(cell, params, xs, loss_fn, length, key_name):
    """Term t: the gradient through step t only, with W replaced by a copy at that step."""
    terms = []
    for s in range(xs.shape[0]):

        def loss_with_copy(w_s, s=s):
            carry, hs = cell.initial_carry(), []
            for t in range(xs.shape[0]):
                if t < length:
                    p = {**params, key_name: w_s} if t == s else params
                    carry, h = cell.step(p, carry, xs[t])
                else:
                    h = jnp.zeros_like(_hidden(carry))
                hs.append(h)
            return loss_fn(jnp.stack(hs), carry)

        terms.append(jax.grad(loss_with_copy)(params[key_name]))
    return terms


@pytest.mark.parametrize("name", sorted(CELL_CASES))
def test_weight_grad_contributions_match_per_step_copies(name, key, x64):
    cell, params, xs, loss_fn = _make(name, key)
    length = 5
    out = jax.jit(lambda p, x: weight_grad_contributions(cell, p, x, loss_fn, length=length))(
        params, xs
    )
    ref_terms = _reference_weight_terms(cell, params, xs, loss_fn, length, "w_h")
    np.testing.assert_allclose(
        out.norms, [np.linalg.norm(g) for g in ref_terms], rtol=1e-10, atol=1e-14
    )
    assert float(out.norms[length]) == 0.0
    assert float(out.norms[0]) == 0.0  # step 0 multiplies W_hh by the zero initial state

    def full_loss(w_h):
        final, hs = _loop(cell, {**params, "w_h": w_h}, xs, cell.initial_carry(), 0, length, [])
        return loss_fn(hs, final)

    np.testing.assert_allclose(out.grad, jax.grad(full_loss)(params["w_h"]), rtol=1e-10)


def test_weight_grad_contributions_input_weights(key, x64):
    cell, params, xs, loss_fn = _make("rnn", key)
    out = weight_grad_contributions(cell, params, xs, loss_fn, key="w_i")
    ref_terms = _reference_weight_terms(cell, params, xs, loss_fn, T, "w_i")
    np.testing.assert_allclose(out.norms, [np.linalg.norm(g) for g in ref_terms], rtol=1e-10)
    np.testing.assert_allclose(out.grad, sum(ref_terms), rtol=1e-10)


# --- decay --------------------------------------------------------------------------------


def test_decay_rate_recovers_a_geometric_sequence():
    n, valid = 12, 9
    d = np.arange(valid)[::-1].astype(np.float32)  # distance from the last valid step
    norms = np.zeros(n, np.float32)
    norms[:valid] = 3.0 * 10.0 ** (-0.25 * d)
    norms[2] = 0.0  # a zero entry is left out of the fit
    fit_fn = jax.jit(decay_rate)
    fit = fit_fn(jnp.asarray(norms), valid)
    np.testing.assert_allclose(fit.slope, -0.25, rtol=1e-4)
    np.testing.assert_allclose(fit.intercept, np.log10(3.0), atol=1e-4)
    np.testing.assert_allclose(fit.decades, 0.25 * (valid - 1), rtol=1e-4)
    assert describe_decay(fit) == "gradients vanish by 10^2.0 over 9 steps (-0.25 decades per step)"

    grow = fit_fn(jnp.asarray(10.0 ** (0.5 * np.arange(n)[::-1]), jnp.float32), n)
    np.testing.assert_allclose(grow.slope, 0.5, rtol=1e-4)
    assert describe_decay(grow).startswith("gradients explode by 10^5.5 over 12 steps")

    batch = jax.vmap(decay_rate)(jnp.stack([jnp.asarray(norms)] * 2), jnp.array([valid, valid]))
    np.testing.assert_allclose(batch.slope, [-0.25, -0.25], rtol=1e-4)

    lone = fit_fn(jnp.array([0.0, 1.0, 0.0]), 3)
    assert np.isnan(lone.slope) and "undefined" in describe_decay(lone)


def _orthogonal(key, n, dtype):
    q, _ = jnp.linalg.qr(jax.random.normal(key, (n, n), dtype))
    return q


def test_tanh_rnn_gradients_decay_at_least_as_fast_as_the_spectral_norm(key, x64):
    hidden, steps = 8, 30
    cell = cells.rnn(hidden, dtype=jnp.float64)
    k_p, k_w, k_x, k_v = jax.random.split(key, 4)
    params = cell.init(k_p, F)
    params["w_h"] = 0.5 * _orthogonal(k_w, hidden, jnp.float64)
    sigma = float(np.linalg.norm(np.asarray(params["w_h"]), 2))
    xs = jax.random.normal(k_x, (steps, F), jnp.float64)
    v = jax.random.normal(k_v, (hidden,), jnp.float64)
    norms = jax.jit(lambda p: hidden_grad_norms(cell, p, xs, lambda hs, c: jnp.dot(c, v)).h)(params)
    d = np.arange(steps)[::-1]
    # |tanh'| <= 1, so each step back multiplies the norm by at most ||W_hh||_2 = 0.5.
    assert np.all(np.asarray(norms) <= sigma**d * float(norms[-1]) * (1.0 + 1e-9))
    fit = jax.jit(decay_rate)(norms)
    assert float(fit.slope) <= np.log10(sigma) + 1e-6
    assert float(fit.decades) > 8.0  # 29 steps at <= 0.5 each: more than 10^8


def test_lstm_forget_bias_3_keeps_gradients_far_longer_than_bias_0(key):
    hidden, steps = 16, 40
    k_p, k_x = jax.random.split(key)
    xs = jax.random.normal(k_x, (steps, F))

    cell = cells.lstm(hidden)

    @jax.jit
    def decades(params):
        norms = hidden_grad_norms(cell, params, xs, lambda hs, c: jnp.sum(c.h))
        return decay_rate(norms.h).decades

    params = cell.init(k_p, F)
    bias_0 = {**params, "b": params["b"].at[:hidden].set(0.0)}
    bias_3 = {**params, "b": params["b"].at[:hidden].set(3.0)}
    lost_0, lost_3 = float(decades(bias_0)), float(decades(bias_3))
    # Measured: about 6 decades lost over 40 steps with b_f = 0, none with b_f = 3.
    assert lost_0 > 4.0
    assert lost_3 < 1.0


# --- errors ----------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors(key):
    cell = cells.lstm(H)
    params = cell.init(key, F)
    xs = jnp.zeros((T, F))
    loss_fn = lambda hs, c: jnp.sum(hs)  # noqa: E731
    with pytest.raises(ValueError, match=r"xs has shape \(2, 6, 2\), expected one sequence"):
        hidden_grad_norms(cell, params, jnp.zeros((2, T, F)), loss_fn)
    with pytest.raises(ValueError, match=r"length=7 is outside \[0, T=6\]"):
        hidden_grad_norms(cell, params, xs, loss_fn, length=7)
    with pytest.raises(ValueError, match=r"loss_fn returned shape \(6, 3\), expected a scalar"):
        hidden_grad_norms(cell, params, xs, lambda hs, c: hs)
    with pytest.raises(ValueError, match=r"carry has structure"):
        hidden_grad_norms(cell, params, xs, loss_fn, carry=jnp.zeros(H))
    with pytest.raises(ValueError, match=r"key='w_hh' is not a parameter.*\['b', 'w_h', 'w_i'\]"):
        weight_grad_contributions(cell, params, xs, loss_fn, key="w_hh")
    with pytest.raises(ValueError, match=r"length has shape \(3,\), expected \[B\] = \(2,\)"):
        batch_hidden_grad_norms(cell, params, jnp.zeros((2, T, F)), loss_fn, length=jnp.ones(3))
    with pytest.raises(ValueError, match=r"norms has shape \(2, 6\), expected \[T\]"):
        decay_rate(jnp.ones((2, T)))
