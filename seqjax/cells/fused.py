"""Fast whole-sequence paths for the built-in cells: a scan with a hand-written backward pass.

Each function here is a ``Cell.scan`` hook, ``scan(params, carry, xs, valid) -> (carry, hs)``
for one sequence ``xs: [T, F]`` (batch with ``jax.vmap``), equal in values and gradients to
``jax.lax.scan`` over the cell's ``step`` where steps with ``valid[t] == False`` keep the carry
and output zeros. ``seqjax.unroll`` calls the hook when the cell has one.

What the hand-written backward pass (a ``jax.custom_vjp``) changes, compared with autodiff
through ``lax.scan``::

    forward:   for t: carry_t, h_t = step(carry_{t-1}, x_t)       save gates, carries
    backward:  for t = T-1 .. 0:                                  only the recurrence
                   dz_t, d carry_{t-1} = step_vjp(d carry_t + dh_t)
               dW_i = xs^T @ dzx      dW_h = h_prev^T @ dzh        ONE matmul each, after
               db = sum_t dz_t        dxs  = dzx @ W_i^T           the loop

Autodiff instead accumulates ``dW += h_{t-1}^T dz_t`` inside the backward loop, T small
matmuls and T read-modify-writes of the weight gradient.

Limits: a ``custom_vjp`` supports reverse mode (``jax.grad``, ``jax.vjp``, ``jax.jacrev`` and
reverse-over-reverse) and ``jax.vmap``, but not forward mode (``jax.jvp``, ``jax.jacfwd``,
``jax.hessian``); keep the default ``fast=False`` cell for those.

Why it is opt-in (``cells.lstm(H, fast=True)``), measured with experiments/bench_cells.py on
XLA:CPU, jax 0.10.2: the hook is written for one sequence, so under ``jax.vmap`` the backward
runs per example and the "one big matmul" becomes B matmuls ``[H, T] @ [T, 4H]`` whose
``[B, H, 4H]`` result JAX sums over the batch; XLA:CPU runs that reduction very slowly
(17 ms for ``[32, 128, 512]``, where the same sum as a dot with ones takes 0.2 ms), and the
per-example path lost to autodiff through ``lax.scan`` at every benchmark shape. Autodiff of
the batched scan instead contracts over the batch inside each backward step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from seqjax.cells.base import Carry, Params

ScanFn = Callable[[Params, Carry, jax.Array, jax.Array | None], tuple[Carry, jax.Array]]


class _Spec(NamedTuple):
    """The cell-specific parts of a fused scan.

    Attributes:
      step: ``step(params, carry, x) -> (carry, res)``: one forward step that also returns the
        residuals (a pytree of ``[...]`` arrays) its backward needs.
      back: ``back(params, d_carry, res, carry_prev) -> (d_carry_prev, dzx, dzh)``: the VJP of
        one step given the cotangent of the new carry, where ``dzx`` is the cotangent of the
        input pre-activation ``x @ w_i`` and ``dzh`` that of the recurrent product
        ``h_prev @ w_h``.
      bias_grads: ``bias_grads(sum_t dzx, sum_t dzh) -> dict`` of the bias cotangents.
      output: ``output(carry) -> h``, the output of a step, read from the new carry.
      add_output: ``add_output(d_carry, dh) -> d_carry``, adds the cotangent of a step's output
        to that of its new carry.
    """

    step: Callable[..., tuple[Carry, Any]]
    back: Callable[..., tuple[Carry, jax.Array, jax.Array]]
    bias_grads: Callable[[jax.Array, jax.Array], dict[str, jax.Array]]
    output: Callable[[Carry], jax.Array]
    add_output: Callable[[Carry, jax.Array], Carry]


def _where(valid: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda n, o: jnp.where(valid, n, o), new, old)


def _make_scan(spec: _Spec, unroll: int) -> ScanFn:
    def forward(params, carry, xs, valid):
        def body(c, inp):
            x, v = inp
            new_c, res = spec.step(params, c, x)
            if v is not None:
                new_c = _where(v, new_c, c)
            return new_c, (new_c, res)

        last, (carries, res) = jax.lax.scan(body, carry, (xs, valid), unroll=unroll)
        hs = spec.output(carries)
        if valid is not None:
            hs = jnp.where(valid[:, None], hs, jnp.zeros_like(hs))
        return last, hs, carries, res

    @jax.custom_vjp
    def fused(params, carry, xs, valid):
        last, hs, _, _ = forward(params, carry, xs, valid)
        return last, hs

    def fused_fwd(params, carry, xs, valid):
        last, hs, carries, res = forward(params, carry, xs, valid)
        # Carries before each step: the initial carry, then the carries after steps 0..T-2.
        prev = jax.tree.map(lambda c0, cs: jnp.concatenate([c0[None], cs[:-1]]), carry, carries)
        return (last, hs), (params, xs, valid, prev, res)

    def fused_bwd(saved, cotangents):
        params, xs, valid, prev, res = saved
        d_last, d_hs = cotangents

        def body(d_c, inp):
            res_t, prev_t, dh_t, v = inp
            d_new = spec.add_output(d_c, dh_t)
            d_prev, dzx, dzh = spec.back(params, d_new, res_t, prev_t)
            if v is not None:
                d_prev = _where(v, d_prev, d_c)
                dzx = jnp.where(v, dzx, jnp.zeros_like(dzx))
                dzh = jnp.where(v, dzh, jnp.zeros_like(dzh))
            return d_prev, (dzx, dzh)

        d_carry, (dzx, dzh) = jax.lax.scan(
            body, d_last, (res, prev, d_hs, valid), reverse=True, unroll=unroll
        )
        h_prev = spec.output(prev)
        grads = {
            "w_i": xs.T @ dzx,
            "w_h": h_prev.T @ dzh,
            **spec.bias_grads(jnp.sum(dzx, axis=0), jnp.sum(dzh, axis=0)),
        }
        d_params = {k: grads[k].astype(params[k].dtype) for k in params}
        d_xs = dzx @ params["w_i"].T
        return d_params, d_carry, d_xs, None

    fused.defvjp(fused_fwd, fused_bwd)
    return fused


# LSTM ----------------------------------------------------------------------------------------


def _lstm_step(params: Params, carry: Any, x: jax.Array) -> tuple[Any, Any]:
    z = x @ params["w_i"] + carry.h @ params["w_h"] + params["b"]
    H = carry.h.shape[-1]
    f = jax.nn.sigmoid(z[..., :H])
    i = jax.nn.sigmoid(z[..., H : 2 * H])
    g = jnp.tanh(z[..., 2 * H : 3 * H])
    o = jax.nn.sigmoid(z[..., 3 * H :])
    c = f * carry.c + i * g
    tanh_c = jnp.tanh(c)
    return carry._replace(h=o * tanh_c, c=c), (jnp.concatenate([f, i, g, o], axis=-1), tanh_c)


def _lstm_back(params: Params, d_new: Any, res: Any, prev: Any):
    gates, tanh_c = res
    H = tanh_c.shape[-1]
    f, i, g, o = (gates[..., k * H : (k + 1) * H] for k in range(4))
    d_o = d_new.h * tanh_c
    d_c = d_new.c + d_new.h * o * (1.0 - tanh_c * tanh_c)
    dz = jnp.concatenate(
        [
            d_c * prev.c * f * (1.0 - f),
            d_c * g * i * (1.0 - i),
            d_c * i * (1.0 - g * g),
            d_o * o * (1.0 - o),
        ],
        axis=-1,
    )
    d_prev = d_new._replace(h=dz @ params["w_h"].T, c=d_c * f)
    return d_prev, dz, dz


LSTM_SPEC = _Spec(
    step=_lstm_step,
    back=_lstm_back,
    bias_grads=lambda dzx, dzh: {"b": dzx},
    output=lambda carry: carry.h,
    add_output=lambda d_carry, dh: d_carry._replace(h=d_carry.h + dh),
)


def _identity(h: jax.Array) -> jax.Array:
    return h


# GRU -----------------------------------------------------------------------------------------


def _gru_step(params: Params, h: jax.Array, x: jax.Array) -> tuple[jax.Array, Any]:
    H = h.shape[-1]
    zx = x @ params["w_i"] + params["b_i"]
    zh = h @ params["w_h"]
    r = jax.nn.sigmoid(zx[..., :H] + zh[..., :H])
    z = jax.nn.sigmoid(zx[..., H : 2 * H] + zh[..., H : 2 * H])
    hn = zh[..., 2 * H :] + params["b_hn"]
    n = jnp.tanh(zx[..., 2 * H :] + r * hn)
    new_h = (1.0 - z) * n + z * h
    return new_h, jnp.concatenate([r, z, n, hn], axis=-1)


def _gru_back(params: Params, d_h: jax.Array, res: jax.Array, h_prev: jax.Array):
    H = h_prev.shape[-1]
    r, z, n, hn = (res[..., k * H : (k + 1) * H] for k in range(4))
    d_an = d_h * (1.0 - z) * (1.0 - n * n)
    d_ar = d_an * hn * r * (1.0 - r)
    d_az = d_h * (h_prev - n) * z * (1.0 - z)
    dzx = jnp.concatenate([d_ar, d_az, d_an], axis=-1)
    dzh = jnp.concatenate([d_ar, d_az, d_an * r], axis=-1)
    d_prev = d_h * z + dzh @ params["w_h"].T
    return d_prev, dzx, dzh


def _gru_bias_grads(dzx: jax.Array, dzh: jax.Array) -> dict[str, jax.Array]:
    H = dzh.shape[-1] // 3
    return {"b_i": dzx, "b_hn": dzh[..., 2 * H :]}


GRU_SPEC = _Spec(
    step=_gru_step, back=_gru_back, bias_grads=_gru_bias_grads, output=_identity, add_output=jnp.add
)


# Vanilla RNN ---------------------------------------------------------------------------------


def _rnn_spec(activation: str) -> _Spec:
    if activation == "tanh":
        phi, d_phi = jnp.tanh, lambda h: 1.0 - h * h
    elif activation == "relu":
        phi, d_phi = jax.nn.relu, lambda h: (h > 0).astype(h.dtype)
    else:
        raise ValueError(f"fused rnn: unknown activation={activation!r}; expected 'tanh' or 'relu'")

    def step(params: Params, h: jax.Array, x: jax.Array) -> tuple[jax.Array, Any]:
        new_h = phi(x @ params["w_i"] + h @ params["w_h"] + params["b"])
        return new_h, new_h

    def back(params: Params, d_h: jax.Array, new_h: jax.Array, h_prev: jax.Array):
        del h_prev
        da = d_h * d_phi(new_h)
        return da @ params["w_h"].T, da, da

    return _Spec(
        step=step,
        back=back,
        bias_grads=lambda dzx, dzh: {"b": dzx},
        output=_identity,
        add_output=jnp.add,
    )


# Public hooks --------------------------------------------------------------------------------


def lstm_scan(unroll: int = 1) -> ScanFn:
    """The fused ``Cell.scan`` hook of `seqjax.cells.lstm` (params ``w_i, w_h, b``)."""
    return _make_scan(LSTM_SPEC, unroll)


def gru_scan(unroll: int = 1) -> ScanFn:
    """The fused ``Cell.scan`` hook of `seqjax.cells.gru` (params ``w_i, w_h, b_i, b_hn``)."""
    return _make_scan(GRU_SPEC, unroll)


def rnn_scan(activation: str = "tanh", unroll: int = 1) -> ScanFn:
    """The fused ``Cell.scan`` hook of `seqjax.cells.rnn` (params ``w_i, w_h, b``)."""
    return _make_scan(_rnn_spec(activation), unroll)
