"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates from the input only,
so the recurrence is linear in the state and a whole sequence is one parallel scan.

Both cells are ``h_t = a_t * h_{t-1} + b_t`` with ``a_t, b_t`` functions of ``x_t`` alone.
``step`` is the sequential reference; ``Cell.scan`` evaluates all steps at once with
`seqjax.cells.linear_scan` (in log space when ``log_space=True``), the same values and
gradients up to rounding. `seqjax.unroll` runs the scan on accelerators and ``step`` on the
CPU, where the scan measured slower (``scan_on_cpu=False``; docs/pages/performance.md,
experiments/bench_scan.py).

Log space (the paper's form for long sequences): the candidate goes through
``g(x) = x + 0.5 for x >= 0, sigmoid(x) otherwise`` so that it is positive, and the scan runs
on ``log a_t`` and ``log b_t``. With ``log_space=False`` the candidate is the plain linear
map ``h~_t``, the paper's sequential-mode form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from seqjax.cells.base import (
    INPUT_INITS,
    Cell,
    GateSpec,
    Initializer,
    Params,
    check_input,
    resolve_init,
)
from seqjax.cells.linear_scan import linear_scan, log_linear_scan
from seqjax.checks import positive_int


def g(x: jax.Array) -> jax.Array:
    """``g(x) = x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` otherwise: positive and continuous."""
    return jnp.where(x >= 0, jax.nn.relu(x) + 0.5, jax.nn.sigmoid(jnp.minimum(x, 0.0)))


def log_g(x: jax.Array) -> jax.Array:
    """``log g(x)``, computed without ``log(sigmoid)`` underflow (``-softplus(-x)``)."""
    return jnp.where(x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-jnp.minimum(x, 0.0)))


def _factory_checks(hidden_size: int, log_space: Any, where: str) -> None:
    positive_int(hidden_size, "hidden_size", where)
    if not isinstance(log_space, bool):
        raise TypeError(f"{where}: log_space must be True or False, got {log_space!r}")


def _linear_cell(
    name: str,
    hidden_size: int,
    num_blocks: int,
    coefficients: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
    log_coefficients: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
    gate_spec: GateSpec,
    input_init: str | Initializer,
    dtype: Any,
) -> Cell:
    """A cell ``h_t = a_t * h_{t-1} + b_t`` with ``(a_t, b_t) = coefficients(x_t @ w_i + b)``.

    ``log_coefficients`` gives ``(log a_t, log b_t)`` for the log-space scan, or is None.
    """
    w_i_init = resolve_init(input_init, INPUT_INITS, "input_init")
    H = hidden_size

    def init(key: jax.Array, input_size: int) -> Params:
        positive_int(input_size, "input_size", f"{name}.init")
        return {
            "w_i": w_i_init(key, (input_size, num_blocks * H), dtype),
            "b": jnp.zeros((num_blocks * H,), dtype),
        }

    def initial_carry() -> jax.Array:
        return jnp.zeros((H,), dtype)

    def step(params: Params, carry: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        check_input(x, params["w_i"].shape[0], name)
        a, b = coefficients(x @ params["w_i"] + params["b"])
        h = a * carry + b
        return h, h

    def scan(
        params: Params, carry: jax.Array, xs: jax.Array, valid: jax.Array | None
    ) -> tuple[jax.Array, jax.Array]:
        if xs.shape[0] == 0:
            return carry, jnp.zeros((0, H), carry.dtype)
        k = xs @ params["w_i"] + params["b"][None]
        if log_coefficients is None:
            hs = linear_scan(*coefficients(k), carry, valid)
        else:
            hs = log_linear_scan(*log_coefficients(k), carry, valid)
        last = hs[-1]  # invalid steps keep the state: the state after the last valid step
        if valid is not None:
            hs = jnp.where(valid[:, None], hs, jnp.zeros_like(hs))
        return last, hs

    return Cell(
        init,
        initial_carry,
        step,
        hidden_size,
        name,
        scan,
        gates=tuple(gate_spec.sigmoid),
        gate_spec=gate_spec,
        # On XLA:CPU the parallel scan measured slower than the sequential loop at almost
        # every shape (docs/pages/performance.md, experiments/bench_scan.py).
        scan_on_cpu=False,
    )


def _split(k: jax.Array, n: int) -> list[jax.Array]:
    return jnp.split(k, n, axis=-1)


def min_gru(
    hidden_size: int,
    *,
    log_space: bool = True,
    input_init: str | Initializer = "glorot",
    dtype: Any = jnp.float32,
) -> Cell:
    """minGRU (Feng et al. 2024, section 3.1): a GRU whose gate and candidate read only ``x_t``.

    Equations, for one example with input ``x: [F]`` and state ``h: [H]``::

        z_t  = sigmoid(x_t @ W_z + b_z)                  update gate
        h~_t = g(x_t @ W_h + b_h)                        candidate (no g if log_space=False)
        h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

    with ``g(x) = x + 0.5`` for ``x >= 0`` and ``sigmoid(x)`` otherwise. The output is
    ``h_t``, the carry ``h_t``. Parallel in time: ``a_t = 1 - z_t``, ``b_t = z_t * h~_t``; in
    log space ``log a_t = -softplus(k_z)``, ``log b_t = -softplus(-k_z) + log g(k_h)``.

    Parameters (``init(key, input_size)``)::

        w_i: [F, 2H]  [W_z | W_h]   (input_init: "glorot" | "lecun" | callable)
        b:   [2H]     [b_z | b_h]   zeros

    Args:
      hidden_size: H.
      log_space: the paper's log-space form (positive candidates ``g(.)``, scan over
        logarithms), for stability over long sequences; False: the plain linear candidate.
      input_init: initialiser of ``w_i``.
      dtype: dtype of the parameters and the carry.

    Returns:
      A `Cell` with a parallel ``scan``; gate ``z`` for the diagnostics (memory ``1 - z``).

    Example:
      >>> cell = min_gru(64)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> carry, hs = seqjax.unroll(cell, params, jnp.zeros((1000, 3)))
    """
    _factory_checks(hidden_size, log_space, "min_gru")
    candidate = g if log_space else (lambda x: x)

    def coefficients(k: jax.Array) -> tuple[jax.Array, jax.Array]:
        k_z, k_h = _split(k, 2)
        z = jax.nn.sigmoid(k_z)
        return 1.0 - z, z * candidate(k_h)

    def log_coefficients(k: jax.Array) -> tuple[jax.Array, jax.Array]:
        k_z, k_h = _split(k, 2)
        return -jax.nn.softplus(k_z), -jax.nn.softplus(-k_z) + log_g(k_h)

    def gates(params: Params, carry: jax.Array, x: jax.Array) -> dict[str, jax.Array]:
        del carry  # the gate reads the input only
        k_z, _ = _split(x @ params["w_i"] + params["b"], 2)
        return {"z": jax.nn.sigmoid(k_z)}

    spec = GateSpec(gates=gates, sigmoid=("z",), tanh=(), memory=lambda gs: 1.0 - gs["z"])
    return _linear_cell(
        "min_gru",
        hidden_size,
        2,
        coefficients,
        log_coefficients if log_space else None,
        spec,
        input_init,
        dtype,
    )


def min_lstm(
    hidden_size: int,
    *,
    log_space: bool = True,
    input_init: str | Initializer = "glorot",
    dtype: Any = jnp.float32,
) -> Cell:
    """minLSTM (Feng et al. 2024, section 3.2): an LSTM whose gates read only ``x_t``, with the
    forget and input gates normalised to sum to one and no output gate or cell state.

    Equations, for one example with input ``x: [F]`` and state ``h: [H]``::

        f_t  = sigmoid(x_t @ W_f + b_f)                  forget gate
        i_t  = sigmoid(x_t @ W_i + b_i)                  input gate
        h~_t = g(x_t @ W_h + b_h)                        candidate (no g if log_space=False)
        f'_t = f_t / (f_t + i_t),   i'_t = i_t / (f_t + i_t)
        h_t  = f'_t * h_{t-1} + i'_t * h~_t

    with ``g`` as in `min_gru`. Parallel in time: ``a_t = f'_t``, ``b_t = i'_t * h~_t``; in
    log space, with ``d_t = softplus(-k_f) - softplus(-k_i)``, ``log f'_t = -softplus(d_t)``
    and ``log i'_t = -softplus(-d_t)``.

    Parameters (``init(key, input_size)``)::

        w_i: [F, 3H]  [W_f | W_i | W_h]   (input_init: "glorot" | "lecun" | callable)
        b:   [3H]     [b_f | b_i | b_h]   zeros

    Args:
      hidden_size: H.
      log_space: the paper's log-space form; False: the plain linear candidate.
      input_init: initialiser of ``w_i``.
      dtype: dtype of the parameters and the carry.

    Returns:
      A `Cell` with a parallel ``scan``; gates ``f, i`` for the diagnostics (memory
      ``f / (f + i)``).
    """
    _factory_checks(hidden_size, log_space, "min_lstm")
    candidate = g if log_space else (lambda x: x)

    def coefficients(k: jax.Array) -> tuple[jax.Array, jax.Array]:
        k_f, k_i, k_h = _split(k, 3)
        f, i = jax.nn.sigmoid(k_f), jax.nn.sigmoid(k_i)
        return f / (f + i), i / (f + i) * candidate(k_h)

    def log_coefficients(k: jax.Array) -> tuple[jax.Array, jax.Array]:
        k_f, k_i, k_h = _split(k, 3)
        d = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
        return -jax.nn.softplus(d), -jax.nn.softplus(-d) + log_g(k_h)

    def gates(params: Params, carry: jax.Array, x: jax.Array) -> dict[str, jax.Array]:
        del carry  # the gates read the input only
        k_f, k_i, _ = _split(x @ params["w_i"] + params["b"], 3)
        return {"f": jax.nn.sigmoid(k_f), "i": jax.nn.sigmoid(k_i)}

    spec = GateSpec(
        gates=gates, sigmoid=("f", "i"), tanh=(), memory=lambda gs: gs["f"] / (gs["f"] + gs["i"])
    )
    return _linear_cell(
        "min_lstm",
        hidden_size,
        3,
        coefficients,
        log_coefficients if log_space else None,
        spec,
        input_init,
        dtype,
    )
