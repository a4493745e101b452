"""Element-wise linear recurrences ``h_t = a_t * h_{t-1} + b_t``, evaluated parallel in time.

The ``Cell.scan`` of the linear recurrent cells (`seqjax.cells.lru`, `seqjax.cells.min_gru`,
`seqjax.cells.min_lstm`) runs here. With ``(A_t, B_t)`` the composition of steps ``0..t``,
``h_t = A_t * h_{-1} + B_t``, and composing two stretches of steps is associative::

    (a_1, b_1) then (a_2, b_2)  =  (a_2 * a_1,  a_2 * b_1 + b_2)

so ``jax.lax.associative_scan`` computes every ``(A_t, B_t)`` in ``O(log T)`` sequential depth
(Blelloch 1990; Martin & Cundy 2018). A step with ``valid[t] == False`` is the identity
``(a, b) = (1, 0)``: the state passes through it unchanged, as in `seqjax.unroll`.

`log_linear_scan` is the same recurrence for positive ``a_t, b_t`` given as logarithms (the
log-space form of Feng et al. 2024): composition reads
``(la_1 + la_2, logaddexp(la_2 + lb_1, lb_2))``. The logarithm of ``B_t`` stays the logarithm
of a state-sized number, so it keeps its relative precision over any length, and ``A_t``
underflows cleanly to zero.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _identity_where_invalid(
    a: jax.Array, b: jax.Array, valid: jax.Array | None, one: float, zero: float
) -> tuple[jax.Array, jax.Array]:
    if valid is None:
        return a, b
    v = valid.reshape(valid.shape + (1,) * (a.ndim - 1))
    return jnp.where(v, a, jnp.full_like(a, one)), jnp.where(v, b, jnp.full_like(b, zero))


def linear_scan(
    a: jax.Array, b: jax.Array, h0: jax.Array, valid: jax.Array | None = None
) -> jax.Array:
    """All states of ``h_t = a_t * h_{t-1} + b_t`` (element-wise), parallel in time.

    Args:
      a: ``[T, N]`` coefficients (real or complex).
      b: ``[T, N]`` inputs, the dtype of ``a``.
      h0: ``[N]`` the state before step 0.
      valid: ``[T]`` bool, or None (all valid). An invalid step keeps the state.

    Returns:
      ``hs: [T, N]``, ``hs[t] = h_t``.
    """
    a, b = _identity_where_invalid(a, b, valid, 1.0, 0.0)

    def compose(first, second):
        a_1, b_1 = first
        a_2, b_2 = second
        return a_2 * a_1, a_2 * b_1 + b_2

    big_a, big_b = jax.lax.associative_scan(compose, (a, b))
    return big_a * h0[None] + big_b


def log_linear_scan(
    log_a: jax.Array, log_b: jax.Array, h0: jax.Array, valid: jax.Array | None = None
) -> jax.Array:
    """All states of ``h_t = a_t * h_{t-1} + b_t`` for ``a_t, b_t > 0`` given as logarithms.

    ``h0`` may have any sign: ``h_t = exp(log A_t) * h0 + exp(log B_t)``.

    Args:
      log_a: ``[T, N]``, ``log a_t``.
      log_b: ``[T, N]``, ``log b_t``.
      h0: ``[N]`` the state before step 0.
      valid: ``[T]`` bool, or None (all valid). An invalid step keeps the state.

    Returns:
      ``hs: [T, N]``.
    """
    # log 0 as a finite number: -inf would make logaddexp(-inf, -inf) and its gradient NaN.
    # Any partial sum of log a (at least -1e8 over 1e5 steps of float32 sigmoids) added to
    # it stays finite, and its exp is exactly 0.
    log_zero = float(jnp.finfo(log_b.dtype).min) / 4
    log_a, log_b = _identity_where_invalid(log_a, log_b, valid, 0.0, log_zero)

    def compose(first, second):
        la_1, lb_1 = first
        la_2, lb_2 = second
        return la_1 + la_2, jnp.logaddexp(la_2 + lb_1, lb_2)

    log_big_a, log_big_b = jax.lax.associative_scan(compose, (log_a, log_b))
    return jnp.exp(log_big_a) * h0[None] + jnp.exp(log_big_b)
