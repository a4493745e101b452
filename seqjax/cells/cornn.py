"""Coupled oscillatory RNN (coRNN; Rusch & Mishra 2021): a discretised second-order ODE."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from seqjax.cells.base import Cell, Params, check_input
from seqjax.checks import positive_int


class CoRNNCarry(NamedTuple):
    """The coRNN state, each ``[H]``: position ``h`` (the paper's ``y``, the output) and
    velocity ``z``. The position is named ``h`` because recurrent dropout, zoneout and
    bidirectional summaries (`seqjax.layers`) act on the carry's field ``h``."""

    h: jax.Array
    z: jax.Array


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ValueError(f"cornn: {name} must be a positive finite number, got {value!r}")
    return float(value)


def cornn(
    hidden_size: int,
    *,
    dt: float = 0.042,
    gamma: float = 2.7,
    epsilon: float = 4.7,
    dtype: Any = jnp.float32,
) -> Cell:
    """A coRNN cell (Rusch & Mishra 2021, "Coupled Oscillatory Recurrent Neural Network
    (coRNN): An Accurate and (Gradient) Stable Architecture for Learning Long Time
    Dependencies", ICLR): a network of damped, driven, coupled oscillators
    ``y'' = tanh(W y + Wz y' + V x + b) - gamma y - epsilon y'`` discretised with step ``dt``.

    Equations, for one example with input ``x: [F]`` and carry ``(y, z)``, each ``[H]``::

        z_t = z_{t-1} + dt * (tanh(y_{t-1} @ W + z_{t-1} @ Wz + x_t @ V + b)
                              - gamma * y_{t-1} - epsilon * z_{t-1})
        y_t = y_{t-1} + dt * z_t

    (the explicit form of the paper's scheme, as in the authors' code; the paper also gives an
    implicit-explicit form with ``epsilon * z_t``). The output of ``step`` is ``y_t``; the
    carry is ``CoRNNCarry(h=y_t, z=z_t)``.

    Parameters (``init(key, input_size)``), every entry uniform in ``[-k, k]`` with
    ``k = 1 / sqrt(F + 2H)``, the fan-in initialisation of the authors' single linear map of
    ``[x, z, y]``::

        w_i: [F, H]    V, input weights
        w_h: [H, 2H]   [W | Wz]: W acts on the position y, Wz on the velocity z
        b:   [H]       bias

    Defaults of ``dt``, ``gamma``, ``epsilon`` are the published settings for sequential MNIST
    (0.042, 2.7, 4.7); the authors' code for the adding problem uses ``dt=0.06, gamma=66, epsilon=15``
    (configs/adding/cornn.yaml).

    Args:
      hidden_size: H.
      dt: the time step of the discretisation.
      gamma: the oscillators' stiffness (restoring force on y).
      epsilon: the damping (friction on z).
      dtype: dtype of the parameters and the carry.

    Returns:
      A `Cell` whose carry is a `CoRNNCarry` (no gates; weight blocks ``W``, ``W_z``).

    Example:
      >>> cell = cornn(64, dt=0.06, gamma=66.0, epsilon=15.0)
      >>> params = cell.init(jax.random.key(0), 2)
      >>> carry, y = cell.step(params, cell.initial_carry(), jnp.ones(2))
    """
    positive_int(hidden_size, "hidden_size", "cornn")
    dt = _positive(dt, "dt")
    gamma = _positive(gamma, "gamma")
    epsilon = _positive(epsilon, "epsilon")
    H = hidden_size

    def init(key: jax.Array, input_size: int) -> Params:
        positive_int(input_size, "input_size", "cornn.init")
        k_i, k_h, k_b = jax.random.split(key, 3)
        lim = 1.0 / math.sqrt(input_size + 2 * H)

        def uniform(k: jax.Array, shape: tuple[int, ...]) -> jax.Array:
            return jax.random.uniform(k, shape, dtype, minval=-lim, maxval=lim)

        return {
            "w_i": uniform(k_i, (input_size, H)),
            "w_h": uniform(k_h, (H, 2 * H)),
            "b": uniform(k_b, (H,)),
        }

    def initial_carry() -> CoRNNCarry:
        return CoRNNCarry(h=jnp.zeros((H,), dtype), z=jnp.zeros((H,), dtype))

    def step(params: Params, carry: CoRNNCarry, x: jax.Array) -> tuple[CoRNNCarry, jax.Array]:
        check_input(x, params["w_i"].shape[0], "cornn")
        y, z = carry.h, carry.z
        w, w_z = params["w_h"][:, :H], params["w_h"][:, H:]
        drive = jnp.tanh(y @ w + z @ w_z + x @ params["w_i"] + params["b"])
        z = z + dt * (drive - gamma * y - epsilon * z)
        y = y + dt * z
        return CoRNNCarry(h=y, z=z), y

    return Cell(init, initial_carry, step, hidden_size, "cornn", weight_blocks=("W", "W_z"))
