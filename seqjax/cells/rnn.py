"""Vanilla (Elman) recurrent cell: tanh or ReLU, with IRNN initialisation."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from seqjax.cells import fused
from seqjax.cells.base import (
    INPUT_INITS,
    RECURRENT_INITS,
    Cell,
    Initializer,
    Params,
    check_input,
    resolve_init,
)
from seqjax.checks import positive_int

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def rnn(
    hidden_size: int,
    activation: str = "tanh",
    *,
    input_init: str | Initializer = "glorot",
    recurrent_init: str | Initializer = "orthogonal",
    recurrent_scale: float = 1.0,
    dtype: Any = jnp.float32,
    fast: bool = False,
) -> Cell:
    """A vanilla RNN cell (whitepaper section 3).

    Equations, for one example with input ``x: [F]`` and state ``h: [H]``::

        h_t = phi(x_t @ w_i + h_{t-1} @ w_h + b),   phi = tanh or relu

    The output of ``step`` is ``h_t`` and so is the carry.

    Parameters (``init(key, input_size)``)::

        w_i: [F, H]   input weights        (input_init: "glorot" | "lecun" | callable)
        w_h: [H, H]   recurrent weights    (recurrent_init: "orthogonal" | "identity" | ...),
                      multiplied by recurrent_scale (its spectral radius for the defaults)
        b:   [H]      bias, zeros

    IRNN (Le et al. 2015) is ``rnn(H, "relu", recurrent_init="identity")``.

    Args:
      hidden_size: H.
      activation: "tanh" or "relu".
      input_init: initialiser of ``w_i``.
      recurrent_init: initialiser of ``w_h``.
      recurrent_scale: factor applied to ``w_h`` after initialisation (e.g. 1.5 for a
        recurrence whose spectral radius exceeds one, to study exploding gradients).
      dtype: dtype of the parameters and the carry.
      fast: run whole sequences through the fused kernel of `seqjax.cells.fused` (same
        values and gradients, faster training of small models, no forward-mode autodiff,
        hence off by default); ``model.fast`` in a config.

    Returns:
      A `Cell`.

    Example:
      >>> cell = rnn(32)
      >>> params = cell.init(jax.random.key(0), 4)
      >>> carry, h = cell.step(params, cell.initial_carry(), jnp.ones(4))
    """
    positive_int(hidden_size, "hidden_size", "rnn")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"rnn: unknown activation={activation!r}; expected one of {sorted(ACTIVATIONS)}"
        )
    phi = ACTIVATIONS[activation]
    w_i_init = resolve_init(input_init, INPUT_INITS, "input_init")
    w_h_init = resolve_init(recurrent_init, RECURRENT_INITS, "recurrent_init")

    def init(key: jax.Array, input_size: int) -> Params:
        positive_int(input_size, "input_size", "rnn.init")
        k_i, k_h = jax.random.split(key)
        return {
            "w_i": w_i_init(k_i, (input_size, hidden_size), dtype),
            "w_h": recurrent_scale * w_h_init(k_h, (hidden_size, hidden_size), dtype),
            "b": jnp.zeros((hidden_size,), dtype),
        }

    def initial_carry() -> jax.Array:
        return jnp.zeros((hidden_size,), dtype)

    def step(params: Params, carry: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        check_input(x, params["w_i"].shape[0], "rnn")
        h = phi(x @ params["w_i"] + carry @ params["w_h"] + params["b"])
        return h, h

    scan = fused.rnn_scan(activation) if fast else None
    return Cell(init, initial_carry, step, hidden_size, "rnn", scan, weight_blocks=("W_h",))
