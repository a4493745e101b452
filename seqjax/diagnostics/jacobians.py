"""Jacobians of the recurrence along a trajectory: norms, spectra, Lyapunov exponents.

The state is the whole carry flattened to a vector ``s: [S]`` (``S = H`` for rnn and gru,
``S = 2H`` for an LSTM, whose state is ``(h, c)``). Along the trajectory of one sequence the
step Jacobians are ``J_t = d s_t / d s_{t-1}``, ``[S, S]`` (rows: outputs), and the
sensitivity of the last valid state to an earlier one is their product (whitepaper 8.1)::

    d s_{L-1} / d s_t = J_{L-1} J_{L-2} ... J_{t+1}        (the identity at t = L - 1)

For a vanilla RNN ``h_t = phi(x_t @ W_i + h_{t-1} @ W_h + b)`` this is
``prod_k diag(phi'(z_k)) W_h^T``: with phi the identity it is the matrix power
``(W_h^T)^(L-1-t)``. All matrix norms here are spectral norms (the largest singular value).

Eigenvalues use ``jnp.linalg.eigvals``, which XLA implements on CPU; on an accelerator run
these functions under ``jax.default_device(jax.devices("cpu")[0])`` if eig is unsupported.

Cost: the Jacobians take ``T * S^2`` memory and the products ``T`` matrix products of
``[S, S]``; meant for diagnostics at moderate sizes (S up to a few hundred).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from seqjax.cells.base import Carry, Cell, Params, one_at_a_time
from seqjax.diagnostics._common import (
    check_sequence,
    masked_scan,
    resolve_carry,
    resolve_length,
    valid_steps,
)


def _per_matrix(fn: Any, a: jax.Array) -> Any:
    """``fn`` of one ``[S, S]`` matrix applied to each matrix of ``a [..., S, S]`` in turn.

    Batched LAPACK calls (``eigvals``, the SVD of ``norm(ord=2)``, QR) can hang XLA:CPU when
    every thread of its pool runs one, e.g. with one simulated device per core
    (`seqjax.cells.base.one_at_a_time`, which this uses so that vmaps keep them unbatched).
    Not differentiable: these are diagnostics.
    """
    lead = a.shape[:-2]
    out = jax.lax.map(one_at_a_time(fn), a.reshape((-1, *a.shape[-2:])))
    return jax.tree.map(lambda o: o.reshape(lead + o.shape[1:]), out)


def _spectral_norm(m: jax.Array) -> jax.Array:
    return jnp.linalg.norm(m, ord=2)


class JacobianNorms(NamedTuple):
    """Jacobian diagnostics of one trajectory (zeros past the length).

    Attributes:
      end_norm: ``[T]``, ``||d s_{L-1} / d s_t||_2`` (spectral norm of the product of step
        Jacobians); 1 at ``t = L - 1``.
      step_norm: ``[T]``, ``||J_t||_2`` of the step Jacobian ``d s_t / d s_{t-1}``.
      step_radius: ``[T]``, the spectral radius ``max |eig(J_t)|``.
      step_eigenvalues: ``[T, S]`` complex eigenvalues of each ``J_t``.
      lyapunov: ``[S]``, the finite-time Lyapunov exponents of the trajectory, in decreasing
        order (natural log per step, see `lyapunov_exponents`).
      weight_radius: ``[k]``, the spectral radius of each ``[H, H]`` block of the recurrent
        weights ``params[weight_key]`` (k = 1 for rnn, 4 for lstm gates f, i, g, o, 3 for gru
        gates r, z, n), or None when ``weight_key`` is None.
    """

    end_norm: jax.Array
    step_norm: jax.Array
    step_radius: jax.Array
    step_eigenvalues: jax.Array
    lyapunov: jax.Array
    weight_radius: jax.Array | None


def step_jacobians(
    cell: Cell,
    params: Params,
    xs: jax.Array,
    *,
    length: int | jax.Array | None = None,
    carry: Carry | None = None,
) -> jax.Array:
    """The step Jacobians ``J_t = d s_t / d s_{t-1}`` along the trajectory of ``xs``.

    Args:
      cell: a `Cell`.
      params: its parameters.
      xs: inputs ``[T, F]``.
      length: the number of valid steps, or None for all T; ``J_t`` is the identity for
        ``t >= length`` (the carry stops changing there, as in `seqjax.unroll`).
      carry: the initial carry, ``cell.initial_carry()`` when None.

    Returns:
      ``[T, S, S]``, the Jacobian of the flattened carry (``jax.flatten_util.ravel_pytree``
      order: for an LSTM ``[h, c]``) after step t with respect to the one before.
    """
    xs = check_sequence(xs, "step_jacobians")
    num_steps = xs.shape[0]
    carry = resolve_carry(cell, carry, "step_jacobians")
    valid = valid_steps(num_steps, resolve_length(length, num_steps, "step_jacobians"))
    _, _, before = masked_scan(cell, params, xs, carry, valid)
    _, unravel = ravel_pytree(carry)

    def flat_step(s: jax.Array, x: jax.Array) -> jax.Array:
        new, _ = cell.step(params, unravel(s), x)
        return ravel_pytree(new)[0]

    states = jax.vmap(lambda c: ravel_pytree(c)[0])(before)
    jacs = jax.vmap(jax.jacfwd(flat_step))(states, xs)
    eye = jnp.eye(jacs.shape[-1], dtype=jacs.dtype)
    return jnp.where(valid[:, None, None], jacs, eye)


def end_jacobians(jacs: jax.Array) -> jax.Array:
    """Products ``P_t = J_{T-1} ... J_{t+1}`` (``P_{T-1} = I``) of step Jacobians ``[T, S, S]``.

    ``P_t = d s_{T-1} / d s_t``; with identity Jacobians past the length this is the
    sensitivity of the last valid state.
    """

    def body(m: jax.Array, jac: jax.Array) -> tuple[jax.Array, jax.Array]:
        return m @ jac, m

    eye = jnp.eye(jacs.shape[-1], dtype=jacs.dtype)
    _, prods = jax.lax.scan(body, eye, jacs, reverse=True)
    return prods


def lyapunov_exponents(jacs: jax.Array, num_steps: int | jax.Array | None = None) -> jax.Array:
    """Finite-time Lyapunov exponents from step Jacobians ``[T, S, S]``, by repeated QR.

    The Benettin / Shimada-Nagashima iteration: ``Q_{-1} = I`` and ``Q_t R_t = J_t Q_{t-1}``
    (QR decomposition); then ``lambda_i = (1 / L) sum_t log |R_t[i, i]|``. The product of the
    ``R_t`` is the triangular factor of the product of Jacobians, so the exponents sum to
    ``log |det(J_{T-1} ... J_0)| / L``, and the leading one tends to the largest Lyapunov
    exponent of the trajectory as L grows. Natural log per step: positive means nearby
    trajectories separate (exploding gradients), negative means they contract (vanishing).
    Identity Jacobians (steps past the length) contribute nothing.

    Args:
      jacs: ``[T, S, S]`` step Jacobians.
      num_steps: L, the normaliser (the number of valid steps); T when None.

    Returns:
      ``[S]`` exponents in decreasing order (``-inf`` for a singular direction).
    """

    def body(q: jax.Array, jac: jax.Array) -> tuple[jax.Array, jax.Array]:
        q, r = one_at_a_time(jnp.linalg.qr)(jac @ q)
        return q, jnp.log(jnp.abs(jnp.diagonal(r)))

    eye = jnp.eye(jacs.shape[-1], dtype=jacs.dtype)
    _, logs = jax.lax.scan(body, eye, jacs)
    n = jacs.shape[0] if num_steps is None else num_steps
    exps = jnp.sum(logs, axis=0) / jnp.maximum(jnp.asarray(n), 1).astype(jacs.dtype)
    return -jnp.sort(-exps)


def recurrent_eigenvalues(params: Params, key: str = "w_h") -> jax.Array:
    """Eigenvalues of each ``[H, H]`` gate block of the recurrent weights: ``[k, H]`` complex.

    ``params[key]`` is ``[H, k*H]`` (seqjax layout ``h @ w_h``; transposing does not change
    eigenvalues). k = 1 for rnn, 4 for lstm (f, i, g, o), 3 for gru (r, z, n).
    """
    if key not in params:
        raise ValueError(f"recurrent_eigenvalues: key={key!r} not in params {sorted(params)}")
    w = params[key]
    if w.ndim != 2 or w.shape[1] % w.shape[0]:
        raise ValueError(
            f"recurrent_eigenvalues: params[{key!r}] has shape {w.shape}, expected [H, k*H] "
            f"(square gate blocks); pass the key of the recurrent weights"
        )
    hidden = w.shape[0]
    blocks = w.reshape(hidden, w.shape[1] // hidden, hidden).transpose(1, 0, 2)
    return _per_matrix(jnp.linalg.eigvals, blocks)


def recurrent_spectral_radius(params: Params, key: str = "w_h") -> jax.Array:
    """The spectral radius of each gate block of the recurrent weights: ``[k]``."""
    return jnp.max(jnp.abs(recurrent_eigenvalues(params, key)), axis=-1)


def jacobian_norms(
    cell: Cell,
    params: Params,
    xs: jax.Array,
    *,
    length: int | jax.Array | None = None,
    carry: Carry | None = None,
    weight_key: str | None = "w_h",
) -> JacobianNorms:
    """Jacobian norms, spectra and Lyapunov exponents along the trajectory of one sequence.

    Args:
      cell: a `Cell`.
      params: its parameters.
      xs: inputs ``[T, F]``.
      length: the number of valid steps L, or None for all T.
      carry: the initial carry, ``cell.initial_carry()`` when None.
      weight_key: the key of the recurrent weights for ``weight_radius``, or None to skip.

    Returns:
      A `JacobianNorms` (arrays zero for ``t >= length``).

    Example:
      >>> out = jacobian_norms(seqjax.rnn(8), params, xs)
      >>> out.end_norm      # [T]: how much s_{T-1} still depends on s_t
    """
    xs = check_sequence(xs, "jacobian_norms")
    num_steps = xs.shape[0]
    n_valid = resolve_length(length, num_steps, "jacobian_norms")
    valid = valid_steps(num_steps, n_valid)
    jacs = step_jacobians(cell, params, xs, length=n_valid, carry=carry)
    eigs = _per_matrix(jnp.linalg.eigvals, jacs)
    zero = jnp.zeros((num_steps,), jacs.dtype)
    end_norm = _per_matrix(_spectral_norm, end_jacobians(jacs))
    return JacobianNorms(
        end_norm=jnp.where(valid, end_norm, zero),
        step_norm=jnp.where(valid, _per_matrix(_spectral_norm, jacs), zero),
        step_radius=jnp.where(valid, jnp.max(jnp.abs(eigs), axis=-1), zero),
        step_eigenvalues=jnp.where(valid[:, None], eigs, jnp.zeros_like(eigs)),
        lyapunov=lyapunov_exponents(jacs, n_valid),
        weight_radius=None if weight_key is None else recurrent_spectral_radius(params, weight_key),
    )
