"""Long short-term memory cell (Hochreiter & Schmidhuber 1997, with forget gate)."""

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


class LSTMCarry(NamedTuple):
    """The LSTM state: hidden state ``h: [H]`` and cell state ``c: [H]``."""

    h: jax.Array
    c: jax.Array


class LSTMGates(NamedTuple):
    """Gate activations of one LSTM step, each ``[H]``: forget, input, candidate, output."""

    f: jax.Array
    i: jax.Array
    g: jax.Array
    o: jax.Array


def lstm_gates(params: Params, h: jax.Array, x: jax.Array) -> LSTMGates:
    """The four gates of one step, from one fused product ``[F] @ [F, 4H] + [H] @ [H, 4H]``."""
    z = x @ params["w_i"] + h @ params["w_h"] + params["b"]
    z_f, z_i, z_g, z_o = jnp.split(z, 4, axis=-1)
    return LSTMGates(
        f=jax.nn.sigmoid(z_f), i=jax.nn.sigmoid(z_i), g=jnp.tanh(z_g), o=jax.nn.sigmoid(z_o)
    )


def lstm(
    hidden_size: int,
    forget_bias: float = 1.0,
    *,
    chrono: float | None = None,
    input_init: str | Initializer = "glorot",
    recurrent_init: str | Initializer = "orthogonal",
    dtype: Any = jnp.float32,
    fast: bool = False,
) -> Cell:
    """An LSTM cell (whitepaper section 13).

    Equations, for one example with input ``x: [F]`` and carry ``(h, c)``, each ``[H]``::

        f_t = sigmoid(x_t @ W_f + h_{t-1} @ U_f + b_f)     forget gate
        i_t = sigmoid(x_t @ W_i + h_{t-1} @ U_i + b_i)     input gate
        g_t = tanh(   x_t @ W_g + h_{t-1} @ U_g + b_g)     candidate cell content
        o_t = sigmoid(x_t @ W_o + h_{t-1} @ U_o + b_o)     output gate
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * tanh(c_t)

    The output of ``step`` is ``h_t``; the carry is ``LSTMCarry(h_t, c_t)``.

    Parameters (``init(key, input_size)``), the four gates fused in the order f, i, g, o::

        w_i: [F, 4H]  [W_f | W_i | W_g | W_o]   (input_init: "glorot" | "lecun" | callable)
        w_h: [H, 4H]  [U_f | U_i | U_g | U_o]   (recurrent_init; "orthogonal" is per gate block)
        b:   [4H]     [b_f | b_i | b_g | b_o]   b_f = forget_bias, the rest zeros

    With ``chrono=T_max`` (chrono initialisation, Tallec & Ollivier 2018) the biases are instead
    ``b_f ~ log(U[1, T_max - 1])`` and ``b_i = -b_f``; ``forget_bias`` is then ignored.

    Args:
      hidden_size: H.
      forget_bias: initial value of ``b_f`` (1.0 as in Jozefowicz et al. 2015).
      chrono: the longest dependency expected, for chrono initialisation, or None.
      input_init: initialiser of ``w_i``.
      recurrent_init: initialiser of ``w_h``.
      dtype: dtype of the parameters and the carry.
      fast: run whole sequences through the fused kernel of `seqjax.cells.fused` (same
        values and gradients, faster training of small models, no forward-mode autodiff,
        hence off by default); ``model.fast`` in a config.

    Returns:
      A `Cell` whose carry is an `LSTMCarry`.

    Example:
      >>> cell = lstm(64)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> carry, h = cell.step(params, cell.initial_carry(), jnp.zeros(3))
    """
    positive_int(hidden_size, "hidden_size", "lstm")
    w_i_init = resolve_init(input_init, INPUT_INITS, "input_init")
    w_h_init = resolve_init(recurrent_init, RECURRENT_INITS, "recurrent_init")
    H = hidden_size

    def init(key: jax.Array, input_size: int) -> Params:
        positive_int(input_size, "input_size", "lstm.init")
        k_i, k_h, k_b = jax.random.split(key, 3)
        if chrono is None:
            b_f = jnp.full((H,), forget_bias, dtype)
            b_i = jnp.zeros((H,), dtype)
        else:
            b_f = chrono_bias(k_b, H, chrono, dtype)
            b_i = -b_f
        return {
            "w_i": w_i_init(k_i, (input_size, 4 * H), dtype),
            "w_h": w_h_init(k_h, (H, 4 * H), dtype),
            "b": jnp.concatenate([b_f, b_i, jnp.zeros((2 * H,), dtype)]),
        }

    def initial_carry() -> LSTMCarry:
        return LSTMCarry(h=jnp.zeros((H,), dtype), c=jnp.zeros((H,), dtype))

    def step(params: Params, carry: LSTMCarry, x: jax.Array) -> tuple[LSTMCarry, jax.Array]:
        check_input(x, params["w_i"].shape[0], "lstm")
        gates = lstm_gates(params, carry.h, x)
        c = gates.f * carry.c + gates.i * gates.g
        h = gates.o * jnp.tanh(c)
        return LSTMCarry(h=h, c=c), h

    scan = fused.lstm_scan() if fast else None
    return Cell(
        init,
        initial_carry,
        step,
        hidden_size,
        "lstm",
        scan,
        gates=LSTMGates._fields,
        weight_blocks=LSTMGates._fields,  # w_h is [U_f | U_i | U_g | U_o]
        # From 50 steps, recomputing each step beats storing its residuals on XLA:CPU
        # (docs/pages/performance.md; measured by experiments/bench_remat.py).
        remat_min_steps=50,
        gate_spec=GateSpec(
            gates=lambda params, carry, x: lstm_gates(params, carry.h, x),
            sigmoid=("f", "i", "o"),
            tanh=("g",),
            memory="f",
        ),
    )
