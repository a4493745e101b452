"""Gated recurrent unit (Cho et al. 2014), in the cuDNN / PyTorch / Flax form."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from seqjax.cells import fused
from seqjax.cells.base import (
    INPUT_INITS,
    RECURRENT_INITS,
    Cell,
    GateSpec,
    Initializer,
    Params,
    check_input,
    chrono_bias,
    resolve_init,
)
from seqjax.checks import positive_int


class GRUGates(NamedTuple):
    """Gate activations of one GRU step, each ``[H]``: reset, update, candidate."""

    r: jax.Array
    z: jax.Array
    n: jax.Array


def gru_gates(params: Params, h: jax.Array, x: jax.Array) -> GRUGates:
    """The three gates of one step, from two fused products (input and recurrent)."""
    H = params["b_hn"].shape[-1]
    zx = x @ params["w_i"] + params["b_i"]
    zh = h @ params["w_h"]
    r = jax.nn.sigmoid(zx[..., :H] + zh[..., :H])
    z = jax.nn.sigmoid(zx[..., H : 2 * H] + zh[..., H : 2 * H])
    n = jnp.tanh(zx[..., 2 * H :] + r * (zh[..., 2 * H :] + params["b_hn"]))
    return GRUGates(r=r, z=z, n=n)


def gru(
    hidden_size: int,
    *,
    chrono: float | None = None,
    input_init: str | Initializer = "glorot",
    recurrent_init: str | Initializer = "orthogonal",
    dtype: Any = jnp.float32,
    fast: bool = False,
) -> Cell:
    """A GRU cell (whitepaper section 19), with the reset gate applied after the recurrent
    product, as in cuDNN, PyTorch and Flax's ``GRUCell``.

    Equations, for one example with input ``x: [F]`` and state ``h: [H]``::

        r_t = sigmoid(x_t @ W_r + b_r + h_{t-1} @ U_r)               reset gate
        z_t = sigmoid(x_t @ W_z + b_z + h_{t-1} @ U_z)               update gate
        n_t = tanh(x_t @ W_n + b_n + r_t * (h_{t-1} @ U_n + b_hn))   candidate
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    ``z_t`` plays the part of the LSTM's forget gate: near one, the state is kept. With
    recurrent dropout (``Cell.masked_step``, mask ``m: [H]``) the three products read
    ``(m * h_{t-1}) @ U`` while the interpolation keeps ``z_t * h_{t-1}``.

    Parameters (``init(key, input_size)``), gates fused in the order r, z, n::

        w_i:  [F, 3H]  [W_r | W_z | W_n]
        w_h:  [H, 3H]  [U_r | U_z | U_n]   ("orthogonal" is per gate block)
        b_i:  [3H]     [b_r | b_z | b_n]   zeros (b_z ~ log U[1, T_max - 1] with chrono)
        b_hn: [H]      zeros

    Args:
      hidden_size: H.
      chrono: the longest dependency expected, for chrono initialisation of the update gate
        bias (the GRU analogue of Tallec & Ollivier 2018), or None.
      input_init: initialiser of ``w_i``.
      recurrent_init: initialiser of ``w_h``.
      dtype: dtype of the parameters and the carry.
      fast: run whole sequences through the fused kernel of `seqjax.cells.fused` (same
        values and gradients, faster training of small models, no forward-mode autodiff,
        hence off by default); ``model.fast`` in a config.

    Returns:
      A `Cell`.
    """
    positive_int(hidden_size, "hidden_size", "gru")
    w_i_init = resolve_init(input_init, INPUT_INITS, "input_init")
    w_h_init = resolve_init(recurrent_init, RECURRENT_INITS, "recurrent_init")
    H = hidden_size

    def init(key: jax.Array, input_size: int) -> Params:
        positive_int(input_size, "input_size", "gru.init")
        k_i, k_h, k_b = jax.random.split(key, 3)
        b_z = jnp.zeros((H,), dtype) if chrono is None else chrono_bias(k_b, H, chrono, dtype)
        zeros = jnp.zeros((H,), dtype)
        return {
            "w_i": w_i_init(k_i, (input_size, 3 * H), dtype),
            "w_h": w_h_init(k_h, (H, 3 * H), dtype),
            "b_i": jnp.concatenate([zeros, b_z, zeros]),
            "b_hn": jnp.zeros((H,), dtype),
        }

    def initial_carry() -> jax.Array:
        return jnp.zeros((H,), dtype)

    def step(params: Params, carry: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        check_input(x, params["w_i"].shape[0], "gru")
        gates = gru_gates(params, carry, x)
        h = (1.0 - gates.z) * gates.n + gates.z * carry
        return h, h

    def masked_step(
        params: Params, carry: jax.Array, x: jax.Array, mask: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        # Recurrent dropout masks the three recurrent products, not the interpolation.
        check_input(x, params["w_i"].shape[0], "gru")
        gates = gru_gates(params, carry * mask, x)
        h = (1.0 - gates.z) * gates.n + gates.z * carry
        return h, h

    scan = fused.gru_scan() if fast else None
    return Cell(
        init,
        initial_carry,
        step,
        hidden_size,
        "gru",
        scan,
        gates=GRUGates._fields,
        weight_blocks=GRUGates._fields,  # w_h is [U_r | U_z | U_n]
        masked_step=masked_step,
        # From 50 steps, recomputing each step beats storing its residuals on XLA:CPU
        # (docs/pages/performance.md; measured by experiments/bench_remat.py).
        remat_min_steps=50,
        gate_spec=GateSpec(gates=gru_gates, sigmoid=("r", "z"), tanh=("n",), memory="z"),
    )
