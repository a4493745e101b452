"""Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for Long
Sequences"): a complex diagonal linear recurrence, evaluated parallel in time."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from seqjax.cells.base import Cell, Params, check_input
from seqjax.cells.linear_scan import linear_scan
from seqjax.checks import positive_int


def lru_lambda(params: Params) -> tuple[jax.Array, jax.Array]:
    """``(lambda, gamma)``: the complex eigenvalues ``[N]`` and their normalisation ``[N]``.

    ``lambda = exp(-exp(nu_log) + i exp(theta_log))``, so ``|lambda| = exp(-exp(nu_log)) < 1``
    for every parameter value, and ``gamma = sqrt(1 - |lambda|^2)``, computed as
    ``sqrt(-expm1(-2 exp(nu_log)))`` to keep its precision as ``|lambda| -> 1``.
    """
    nu = jnp.exp(params["nu_log"])
    lam = jnp.exp(jax.lax.complex(-nu, jnp.exp(params["theta_log"])))
    return lam, jnp.sqrt(-jnp.expm1(-2.0 * nu))


def _check_ring(r_min: Any, r_max: Any, max_phase: Any) -> None:
    if not (isinstance(r_min, int | float) and isinstance(r_max, int | float)) or not (
        0.0 <= r_min < r_max <= 1.0
    ):
        raise ValueError(
            f"lru: r_min={r_min!r}, r_max={r_max!r}; expected 0 <= r_min < r_max <= 1 (the "
            f"ring of initial |lambda|, e.g. r_min=0.9, r_max=0.999)"
        )
    if not isinstance(max_phase, int | float) or not max_phase > 0:
        raise ValueError(f"lru: max_phase={max_phase!r}; expected a positive angle (e.g. 2*pi)")


def lru(
    hidden_size: int,
    *,
    state_size: int | None = None,
    r_min: float = 0.9,
    r_max: float = 0.999,
    max_phase: float = 2.0 * math.pi,
    dtype: Any = jnp.float32,
) -> Cell:
    """An LRU layer as a cell (Orvieto et al. 2023, section 3 and appendix A).

    Equations, for one example with input ``u: [F]``, complex state ``x: [N]`` and output
    ``y: [H]``::

        lambda = exp(-exp(nu_log) + i exp(theta_log))          [N], |lambda| < 1
        gamma  = sqrt(1 - |lambda|^2)                          [N], normalisation
        x_t = lambda * x_{t-1} + gamma * (u_t @ B)             B = B_re + i B_im: [F, N]
        y_t = Re(x_t @ C) + u_t @ D                            C = C_re + i C_im: [N, H]

    The recurrence is linear, so ``Cell.scan`` runs it parallel in time
    (`seqjax.cells.linear_scan`, ``a_t = lambda``, ``b_t = gamma * (u_t @ B)``); ``step`` is
    the sequential reference. `seqjax.unroll` runs the scan on accelerators and ``step`` on
    the CPU, where the scan measured slower (``scan_on_cpu=False``, docs/pages/performance.md).
    ``gamma`` follows
    ``lambda`` (it is not a parameter of its own). The paper's nonlinear MLP/GLU after ``y``
    is not part of the cell: stack a dense layer or a readout on top.

    The carry is real, ``[2N] = [Re x | Im x]``; parameters and outputs are real, the complex
    numbers stay inside ``step`` and ``scan``. Parameters (``init(key, input_size)``)::

        nu_log:    [N]     ring initialisation: |lambda| uniform on the ring area between
        theta_log: [N]     r_min and r_max, arg(lambda) uniform in [0, max_phase)
        b_re, b_im: [F, N]   N(0, 1 / (2F)) each
        c_re, c_im: [N, H]   N(0, 1 / N) each
        d:          [F, H]   N(0, 1 / F)

    Args:
      hidden_size: H, the output size.
      state_size: N, the complex state size; None: N = H.
      r_min: smallest initial ``|lambda|``.
      r_max: largest initial ``|lambda|`` (close to 1 for long memory).
      max_phase: largest initial ``arg(lambda)``.
      dtype: real dtype of the parameters, the carry and the output (complex inside).

    Returns:
      A `Cell` with a parallel ``scan``.

    Example:
      >>> cell = lru(64, r_min=0.9, r_max=0.999)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> carry, ys = seqjax.unroll(cell, params, jnp.zeros((1000, 3)))   # ys: [1000, 64]
    """
    positive_int(hidden_size, "hidden_size", "lru")
    N = hidden_size if state_size is None else state_size
    positive_int(N, "state_size", "lru")
    _check_ring(r_min, r_max, max_phase)
    H = hidden_size

    def init(key: jax.Array, input_size: int) -> Params:
        positive_int(input_size, "input_size", "lru.init")
        k_r, k_p, k_b1, k_b2, k_c1, k_c2, k_d = jax.random.split(key, 7)
        u_r = jax.random.uniform(k_r, (N,), dtype)
        u_p = jax.random.uniform(k_p, (N,), dtype)
        # |lambda|^2 uniform in [r_min^2, r_max^2]: |lambda| = exp(-nu), nu = -log|lambda|.
        nu = -0.5 * jnp.log(u_r * (r_max**2 - r_min**2) + r_min**2)
        b_scale = 1.0 / math.sqrt(2 * input_size)
        return {
            "nu_log": jnp.log(nu),
            "theta_log": jnp.log(max_phase * u_p),
            "b_re": b_scale * jax.random.normal(k_b1, (input_size, N), dtype),
            "b_im": b_scale * jax.random.normal(k_b2, (input_size, N), dtype),
            "c_re": jax.random.normal(k_c1, (N, H), dtype) / math.sqrt(N),
            "c_im": jax.random.normal(k_c2, (N, H), dtype) / math.sqrt(N),
            "d": jax.random.normal(k_d, (input_size, H), dtype) / math.sqrt(input_size),
        }

    def initial_carry() -> jax.Array:
        return jnp.zeros((2 * N,), dtype)

    def output(x_re: jax.Array, x_im: jax.Array, u: jax.Array, params: Params) -> jax.Array:
        # Re((x_re + i x_im) @ (C_re + i C_im)) = x_re @ C_re - x_im @ C_im
        return x_re @ params["c_re"] - x_im @ params["c_im"] + u @ params["d"]

    def step(params: Params, carry: jax.Array, u: jax.Array) -> tuple[jax.Array, jax.Array]:
        check_input(u, params["b_re"].shape[0], "lru")
        lam, gamma = lru_lambda(params)
        x = jax.lax.complex(carry[:N], carry[N:])
        bu = jax.lax.complex(gamma * (u @ params["b_re"]), gamma * (u @ params["b_im"]))
        x = lam * x + bu
        return jnp.concatenate([x.real, x.imag]), output(x.real, x.imag, u, params)

    def scan(
        params: Params, carry: jax.Array, us: jax.Array, valid: jax.Array | None
    ) -> tuple[jax.Array, jax.Array]:
        if us.shape[0] == 0:
            return carry, jnp.zeros((0, H), carry.dtype)
        lam, gamma = lru_lambda(params)
        bu = jax.lax.complex(
            gamma[None] * (us @ params["b_re"]), gamma[None] * (us @ params["b_im"])
        )
        a = jnp.broadcast_to(lam[None], bu.shape)
        xs = linear_scan(a, bu, jax.lax.complex(carry[:N], carry[N:]), valid)
        ys = output(xs.real, xs.imag, us, params)
        last = xs[-1]
        if valid is not None:
            ys = jnp.where(valid[:, None], ys, jnp.zeros_like(ys))
        return jnp.concatenate([last.real, last.imag]), ys

    return Cell(init, initial_carry, step, hidden_size, "lru", scan, scan_on_cpu=False)
