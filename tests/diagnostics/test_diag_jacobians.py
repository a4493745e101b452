"""Tests of Jacobian norms, spectra and Lyapunov exponents against direct computations.

References: matrix powers of a linear recurrence and its eigen/singular values in NumPy
float64; the analytic tanh-RNN step Jacobian ``diag(1 - h_t^2) W_h^T``; ``jax.jacobian`` of a
Python loop from s_t to the last state; the QR exponents from the volume growth of the
product of Jacobians (Gram determinants in NumPy).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from seqjax import cells
from seqjax.cells.base import Cell
from seqjax.diagnostics import (
    end_jacobians,
    jacobian_norms,
    lyapunov_exponents,
    recurrent_eigenvalues,
    step_jacobians,
)

F = 2


def linear_rnn(hidden_size, dtype=jnp.float64):
    """h_t = h_{t-1} @ w_h + x_t @ w_i, i.e. h_t = W h_{t-1} + U x_t with W = w_h^T."""

    def init(key, input_size):
        k_i, k_h = jax.random.split(key)
        return {
            "w_i": jax.random.normal(k_i, (input_size, hidden_size), dtype),
            "w_h": jax.random.normal(k_h, (hidden_size, hidden_size), dtype) / hidden_size**0.5,
        }

    def initial_carry():
        return jnp.zeros((hidden_size,), dtype)

    def step(params, carry, x):
        h = carry @ params["w_h"] + x @ params["w_i"]
        return h, h

    return Cell(init, initial_carry, step, hidden_size, "linear")


def test_linear_rnn_end_norms_equal_matrix_powers(key, x64):
    hidden, steps, length = 4, 9, 7
    cell = linear_rnn(hidden)
    k_p, k_x = jax.random.split(key)
    params = cell.init(k_p, F)
    # A well-conditioned, non-normal W (singular values 0.5 .. 1.3), so that W^L is exact
    # enough in float64 for the reference QR below.
    q1, _ = np.linalg.qr(np.asarray(params["w_h"]))
    q2, _ = np.linalg.qr(np.asarray(params["w_h"]).T + np.eye(hidden))
    params["w_h"] = jnp.asarray(q1 @ np.diag([1.3, 1.0, 0.8, 0.5]) @ q2)
    xs = jax.random.normal(k_x, (steps, F), jnp.float64)
    out = jax.jit(lambda p, x: jacobian_norms(cell, p, x, length=length))(params, xs)

    w = np.asarray(params["w_h"]).T  # h_t = W h_{t-1}
    # ||dh_{L-1}/dh_t||_2 = ||W^(L-1-t)||_2 (spectral norm), zero past the length.
    expected = [np.linalg.norm(np.linalg.matrix_power(w, length - 1 - t), 2) for t in range(length)]
    np.testing.assert_allclose(out.end_norm[:length], expected, rtol=1e-10)
    np.testing.assert_array_equal(out.end_norm[length:], 0.0)
    radius = np.max(np.abs(np.linalg.eigvals(w)))
    np.testing.assert_allclose(out.step_norm[:length], np.linalg.norm(w, 2), rtol=1e-10)
    np.testing.assert_allclose(out.step_radius[:length], radius, rtol=1e-10)
    np.testing.assert_allclose(out.weight_radius, [radius], rtol=1e-10)
    np.testing.assert_allclose(
        np.sort_complex(np.asarray(out.step_eigenvalues[0])), np.sort_complex(np.linalg.eigvals(w))
    )
    np.testing.assert_array_equal(out.step_eigenvalues[length:], 0.0)

    # Lyapunov exponents: the iterated QR equals one QR of the product P = W^L (Q starts as
    # the identity), so exponent i is log |R_ii| / L of that single decomposition.
    _, r = np.linalg.qr(np.linalg.matrix_power(w, length))
    expected_exps = np.sort(np.log(np.abs(np.diag(r))) / length)[::-1]
    np.testing.assert_allclose(out.lyapunov, expected_exps, rtol=1e-8)
    np.testing.assert_allclose(
        np.sum(out.lyapunov), np.log(abs(np.linalg.det(w))), rtol=1e-8
    )  # the exponents sum to log |det W| per step


def test_lyapunov_exponents_approach_log_eigenvalues(key, x64):
    # A symmetric W = O diag(lam) O^T: the exponents tend to log |lam| as L grows.
    lam = np.array([1.1, 0.9, -0.6, 0.3])
    q, _ = np.linalg.qr(np.asarray(jax.random.normal(key, (4, 4), jnp.float64)))
    w = q @ np.diag(lam) @ q.T
    jacs = jnp.broadcast_to(jnp.asarray(w), (200, 4, 4))
    exps = jax.jit(lyapunov_exponents)(jacs)
    np.testing.assert_allclose(exps, np.sort(np.log(np.abs(lam)))[::-1], atol=0.03)


def test_tanh_rnn_step_jacobians_are_analytic(key, x64):
    hidden, steps = 3, 5
    cell = cells.rnn(hidden, dtype=jnp.float64)
    k_p, k_x = jax.random.split(key)
    params = cell.init(k_p, F)
    xs = jax.random.normal(k_x, (steps, F), jnp.float64)
    jacs = jax.jit(lambda p, x: step_jacobians(cell, p, x))(params, xs)
    w_h = np.asarray(params["w_h"])
    h = np.zeros(hidden)
    for t in range(steps):
        h = np.tanh(np.asarray(xs[t]) @ np.asarray(params["w_i"]) + h @ w_h)
        np.testing.assert_allclose(jacs[t], np.diag(1.0 - h**2) @ w_h.T, rtol=1e-10)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_end_jacobians_equal_jacobian_of_the_rerun_tail(name, key, x64):
    hidden, steps, length = 3, 6, 5
    cell = cells.get_cell(name, hidden, dtype=jnp.float64)
    k_p, k_x = jax.random.split(key)
    params = cell.init(k_p, F)
    xs = jax.random.normal(k_x, (steps, F), jnp.float64)
    out, jacs = jax.jit(
        lambda p, x: (
            jacobian_norms(cell, p, x, length=length),
            step_jacobians(cell, p, x, length=length),
        )
    )(params, xs)
    prods = end_jacobians(jacs)

    carries, carry = [], cell.initial_carry()
    for t in range(length):
        carry, _ = cell.step(params, carry, xs[t])
        carries.append(carry)
    flat0, unravel = ravel_pytree(carry)
    for t in [0, 2, length - 1]:

        def tail(s, t=t):
            c = unravel(s)
            for u in range(t + 1, length):
                c, _ = cell.step(params, c, xs[u])
            return ravel_pytree(c)[0]

        ref = jax.jacobian(tail)(ravel_pytree(carries[t])[0])
        np.testing.assert_allclose(prods[t], ref, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(out.end_norm[t], np.linalg.norm(ref, 2), rtol=1e-10)
        assert ref.shape == (flat0.shape[0],) * 2
    eye = np.eye(jacs.shape[-1])
    np.testing.assert_array_equal(jacs[length:], np.broadcast_to(eye, jacs[length:].shape))
    k = 4 if name == "lstm" else 3
    blocks = np.split(np.asarray(params["w_h"]), k, axis=1)
    expected = [np.max(np.abs(np.linalg.eigvals(b))) for b in blocks]
    np.testing.assert_allclose(out.weight_radius, expected, rtol=1e-10)
    np.testing.assert_allclose(
        np.sort_complex(np.asarray(recurrent_eigenvalues(params))[1]),
        np.sort_complex(np.linalg.eigvals(blocks[1])),
        rtol=1e-10,
    )


def test_vmap_over_a_batch_equals_a_loop(key):
    cell = cells.gru(4)
    k_p, k_x = jax.random.split(key)
    params = cell.init(k_p, F)
    xs = jax.random.normal(k_x, (2, 5, F))
    lengths = jnp.array([5, 3])
    fn = jax.jit(lambda x, n: jacobian_norms(cell, params, x, length=n).end_norm)
    batched = jax.jit(jax.vmap(lambda x, n: jacobian_norms(cell, params, x, length=n).end_norm))
    out = batched(xs, lengths)
    for b in range(2):
        np.testing.assert_allclose(out[b], fn(xs[b], lengths[b]), rtol=1e-5)


def test_bad_weight_key_raises(key):
    params = {"w_h": jnp.zeros((3, 5))}
    with pytest.raises(
        ValueError, match=r"params\['w_h'\] has shape \(3, 5\), expected \[H, k\*H\]"
    ):
        recurrent_eigenvalues(params)
    with pytest.raises(ValueError, match=r"key='u' not in params \['w_h'\]"):
        recurrent_eigenvalues(params, "u")
