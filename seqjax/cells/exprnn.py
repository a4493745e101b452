"""expRNN (Lezcano-Casado & Martinez-Rubio 2019): an orthogonal recurrence ``exp(A - A^T)``."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.linalg import expm

from seqjax.cells.base import Cell, Initializer, Params, check_input, resolve_init
from seqjax.checks import positive_int

EXPRNN_INPUT_INITS: dict[str, Any] = {
    "he": jax.nn.initializers.he_normal,
    "glorot": jax.nn.initializers.glorot_uniform,
    "lecun": jax.nn.initializers.lecun_normal,
}


def _skew_angles(init: str, key: jax.Array, num: int, dtype: Any) -> jax.Array:
    if init == "henaff":  # rotation angles uniform in [-pi, pi] (Henaff et al. 2016)
        return jax.random.uniform(key, (num,), dtype, minval=-math.pi, maxval=math.pi)
    # Cayley: the skew-symmetric matrix whose Cayley transform has eigenvalues of angle
    # theta ~ U[0, pi/2] (Helfrich et al. 2018), -sqrt((1 - cos theta) / (1 + cos theta)).
    theta = jax.random.uniform(key, (num,), dtype, minval=0.0, maxval=math.pi / 2)
    return -jnp.sqrt((1.0 - jnp.cos(theta)) / (1.0 + jnp.cos(theta)))


SKEW_INITS = ("henaff", "cayley")


def exprnn_recurrent_matrix(params: Params) -> jax.Array:
    """The recurrent matrix ``expm(a - a^T): [H, H]`` of `exprnn` params, orthogonal."""
    a = params["a"]
    return expm(a - a.T)


def modrelu(z: jax.Array, b: jax.Array) -> jax.Array:
    """modReLU (Arjovsky et al. 2016) on real numbers: ``sign(z) * relu(|z| + b)``."""
    return jnp.sign(z) * jax.nn.relu(jnp.abs(z) + b)


def exprnn(
    hidden_size: int,
    *,
    init: str = "henaff",
    input_init: str | Initializer = "he",
    dtype: Any = jnp.float32,
) -> Cell:
    """An expRNN cell (Lezcano-Casado & Martinez-Rubio 2019, "Cheap Orthogonal Constraints in
    Neural Networks: A Simple Parametrization of the Orthogonal and Unitary Group", ICML):
    the recurrent matrix is the exponential of a skew-symmetric matrix, so it is orthogonal
    whatever the parameters, and plain gradient descent on ``a`` keeps it so.

    Equations, for one example with input ``x: [F]`` and state ``h: [H]``::

        B   = expm(a - a^T)                             orthogonal [H, H], once per sequence
        h_t = modrelu(x_t @ w_i + h_{t-1} @ B, b)
        modrelu(z, b) = sign(z) * relu(|z| + b)

    The output of ``step`` is ``h_t`` and so is the carry. ``step`` is the readable reference
    and computes ``B`` at every step; the cell's ``scan`` (what `seqjax.unroll` runs) computes
    ``B`` and the input products ``xs @ w_i`` once per sequence, then loops over the
    recurrence, with the same values and gradients. It takes ``unroll``'s ``truncate`` itself
    (its gradient cut at every window start); under ``remat`` windows ``B`` is computed once
    per window.

    Parameters (``init(key, input_size)``)::

        w_i: [F, H]   input weights, no bias   (input_init: "he" | "glorot" | "lecun" |
                                                callable; "he": the paper's Kaiming normal)
        a:   [H, H]   log-parameter of B: strictly upper triangular at init, from the
                      skew-symmetric matrix of init ("henaff" | "cayley")
        b:   [H]      modReLU bias, uniform in [-0.01, 0.01]

    The two initialisations of the paper put ``a - a^T`` block-diagonal, with 2x2 blocks
    ``[[0, s], [-s, 0]]`` (a last zero for odd H): ``"henaff"`` with ``s ~ U[-pi, pi]``,
    ``"cayley"`` with ``s = -sqrt((1 - cos t) / (1 + cos t))``, ``t ~ U[0, pi/2]``.

    Args:
      hidden_size: H.
      init: initialisation of ``a``, "henaff" or "cayley".
      input_init: initialiser of ``w_i``.
      dtype: dtype of the parameters and the carry.

    Returns:
      A `Cell` with a ``scan`` fast path (no gates, no ``[H, H]`` weight blocks: B's spectral
      radius is one by construction; `exprnn_recurrent_matrix` gives B).

    Example:
      >>> cell = exprnn(64, init="cayley")
      >>> params = cell.init(jax.random.key(0), 2)
      >>> carry, hs = seqjax.unroll(cell, params, jnp.ones((100, 2)))
    """
    positive_int(hidden_size, "hidden_size", "exprnn")
    if init not in SKEW_INITS:
        raise ValueError(f"exprnn: unknown init={init!r}; expected one of {list(SKEW_INITS)}")
    w_i_init = resolve_init(input_init, EXPRNN_INPUT_INITS, "input_init")
    H = hidden_size

    def init_params(key: jax.Array, input_size: int) -> Params:
        positive_int(input_size, "input_size", "exprnn.init")
        k_i, k_a, k_b = jax.random.split(key, 3)
        rows = jnp.arange(H // 2) * 2
        a = jnp.zeros((H, H), dtype).at[rows, rows + 1].set(_skew_angles(init, k_a, H // 2, dtype))
        return {
            "w_i": w_i_init(k_i, (input_size, H), dtype),
            "a": a,
            "b": jax.random.uniform(k_b, (H,), dtype, minval=-0.01, maxval=0.01),
        }

    def initial_carry() -> jax.Array:
        return jnp.zeros((H,), dtype)

    def step(params: Params, carry: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        check_input(x, params["w_i"].shape[0], "exprnn")
        h = modrelu(x @ params["w_i"] + carry @ exprnn_recurrent_matrix(params), params["b"])
        return h, h

    def scan(
        params: Params,
        carry: jax.Array,
        xs: jax.Array,
        valid: jax.Array | None,
        truncate: int | None = None,
        **unsupported: Any,
    ) -> tuple[jax.Array, jax.Array]:
        if unsupported:
            raise TypeError(
                f"exprnn scan: unsupported options {sorted(unsupported)}; it takes "
                f"(params, carry, xs, valid) and truncate only"
            )
        if truncate is not None:
            positive_int(truncate, "truncate", "exprnn scan")
        if xs.ndim != 2 or xs.shape[1] != params["w_i"].shape[0]:
            raise ValueError(
                f"exprnn scan: xs has shape {xs.shape}, expected one sequence [T, F] with "
                f"F = {params['w_i'].shape[0]} (the input_size given to init)"
            )
        num_steps = xs.shape[0]
        if valid is not None and valid.shape != (num_steps,):
            raise ValueError(
                f"exprnn scan: valid has shape {valid.shape}, expected [T] = ({num_steps},) "
                f"for xs {xs.shape}"
            )
        rec = exprnn_recurrent_matrix(params)
        zx = xs @ params["w_i"]
        ts = jnp.arange(num_steps, dtype=jnp.int32)
        ok = jnp.ones((num_steps,), bool) if valid is None else valid

        def body(h: jax.Array, inp: tuple[jax.Array, ...]) -> tuple[jax.Array, jax.Array]:
            z_x, t, ok_t = inp
            if truncate is not None:  # the carry entering each window of k steps is a constant
                h = jnp.where((t % truncate == 0) & (t > 0), jax.lax.stop_gradient(h), h)
            new = modrelu(z_x + h @ rec, params["b"])
            if valid is None:
                return new, new
            return jnp.where(ok_t, new, h), jnp.where(ok_t, new, jnp.zeros_like(new))

        return jax.lax.scan(body, carry, (zx, ts, ok))

    # `seqjax.unroll` hands ``truncate=k`` to a scan that says it takes it.
    scan.truncates = True  # type: ignore[attr-defined]
    return Cell(init_params, initial_carry, step, H, "exprnn", scan)
