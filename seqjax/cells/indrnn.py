"""Independently recurrent neural network (IndRNN; Li et al. 2018): element-wise recurrence."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from seqjax.cells.base import INPUT_INITS, Cell, Initializer, Params, check_input, resolve_init
from seqjax.cells.rnn import ACTIVATIONS
from seqjax.checks import positive_int


def indrnn_bound(num_steps: int, gamma: float = 2.0) -> float:
    """The paper's bound on ``|u|`` for sequences of ``num_steps`` steps: ``gamma ** (1 / T)``.

    With ReLU and ``|u| <= gamma ** (1/T)`` the recurrent factor ``u ** T`` of the gradient over
    T steps stays at most ``gamma`` (Li et al. 2018, section 3.1, which uses ``gamma = 2``).
    """
    positive_int(num_steps, "num_steps", "indrnn_bound")
    if not (isinstance(gamma, int | float) and not isinstance(gamma, bool) and gamma > 0):
        raise ValueError(f"indrnn_bound: gamma must be a positive number, got {gamma!r}")
    return float(gamma) ** (1.0 / num_steps)


def indrnn(
    hidden_size: int,
    activation: str = "relu",
    *,
    u_bound: float | None = None,
    u_min: float = 0.0,
    input_init: str | Initializer = "glorot",
    dtype: Any = jnp.float32,
) -> Cell:
    """An IndRNN cell (Li et al. 2018, "Independently Recurrent Neural Network (IndRNN):
    Building a Longer and Deeper RNN", CVPR): each unit sees only its own past state.

    Equations, for one example with input ``x: [F]`` and state ``h: [H]``::

        u_c = clip(u, -u_bound, u_bound)               (u_c = u when u_bound is None)
        h_t = phi(x_t @ w_i + u_c * h_{t-1} + b)       * element-wise, phi = relu or tanh

    The output of ``step`` is ``h_t`` and so is the carry. The gradient through T steps of
    unit n is a product of ``u_n * phi'`` factors, so bounding ``|u|`` by ``gamma ** (1/T)``
    (`indrnn_bound`; the paper takes ``gamma = 2`` for ReLU) keeps it from exploding. The
    bound is applied in ``step`` (the parameter itself is unconstrained; its gradient is zero
    where it is clipped), which is a projection onto the bound that needs no hook in the
    optimiser.

    Parameters (``init(key, input_size)``)::

        w_i: [F, H]   input weights        (input_init: "glorot" | "lecun" | callable)
        u:   [H]      recurrent weights    uniform in [u_min, u_bound] ([u_min, 1] without a
                                           bound), as in the paper's experiments
        b:   [H]      bias, zeros

    For the last layer on the adding problem the paper draws ``u`` in ``[2 ** (-1/T),
    2 ** (1/T)]``: ``u_min=indrnn_bound(T, 0.5), u_bound=indrnn_bound(T)``.

    Args:
      hidden_size: H.
      activation: "relu" (the paper's) or "tanh".
      u_bound: the largest ``|u|`` the step uses, or None for no bound.
      u_min: the lower end of the uniform initialisation of ``u``, in ``[0, u_bound)``.
      input_init: initialiser of ``w_i``.
      dtype: dtype of the parameters and the carry.

    Returns:
      A `Cell` (no gates, no ``[H, H]`` recurrent blocks).

    Example:
      >>> cell = indrnn(32, u_bound=indrnn_bound(1000))
      >>> params = cell.init(jax.random.key(0), 2)
      >>> carry, h = cell.step(params, cell.initial_carry(), jnp.ones(2))
    """
    positive_int(hidden_size, "hidden_size", "indrnn")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"indrnn: unknown activation={activation!r}; expected one of {sorted(ACTIVATIONS)}"
        )
    if u_bound is not None and not (
        isinstance(u_bound, int | float)
        and not isinstance(u_bound, bool)
        and 0 < u_bound < math.inf
    ):
        raise ValueError(
            f"indrnn: u_bound must be a positive finite number or None, got {u_bound!r} "
            f"(the paper's bound for T steps is indrnn_bound(T) = 2 ** (1/T))"
        )
    u_max = 1.0 if u_bound is None else float(u_bound)
    if isinstance(u_min, bool) or not isinstance(u_min, int | float) or not 0 <= u_min < u_max:
        raise ValueError(
            f"indrnn: u_min must be a number in [0, {u_max}) (below u_bound, or below 1 without "
            f"one), got {u_min!r}"
        )
    phi = ACTIVATIONS[activation]
    w_i_init = resolve_init(input_init, INPUT_INITS, "input_init")

    def init(key: jax.Array, input_size: int) -> Params:
        positive_int(input_size, "input_size", "indrnn.init")
        k_i, k_u = jax.random.split(key)
        return {
            "w_i": w_i_init(k_i, (input_size, hidden_size), dtype),
            "u": jax.random.uniform(k_u, (hidden_size,), dtype, minval=u_min, maxval=u_max),
            "b": jnp.zeros((hidden_size,), dtype),
        }

    def initial_carry() -> jax.Array:
        return jnp.zeros((hidden_size,), dtype)

    def step(params: Params, carry: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        check_input(x, params["w_i"].shape[0], "indrnn")
        u = params["u"] if u_bound is None else jnp.clip(params["u"], -u_bound, u_bound)
        h = phi(x @ params["w_i"] + u * carry + params["b"])
        return h, h

    return Cell(init, initial_carry, step, hidden_size, "indrnn")
