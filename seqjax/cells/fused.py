"""Fast whole-sequence paths for the built-in cells: a batched scan with a hand-written backward.

Each function here is a ``Cell.scan`` hook, ``scan(params, carry, xs, valid) -> (carry, hs)``
for one sequence ``xs: [T, F]`` (batch with ``jax.vmap``), equal in values and gradients to
``jax.lax.scan`` over the cell's ``step`` where steps with ``valid[t] == False`` keep the carry
and output zeros. ``seqjax.unroll`` calls the hook when the cell has one.

What the kernel does differently from autodiff through ``lax.scan`` over ``step``::

    forward:   zx = xs @ W_i + b                                   ONE matmul, before the loop
               for t: carry_t, res_t = step(carry_{t-1}, zx_t)     res_t: gates, one array
    backward:  for t = T-1 .. 0:                                   only the recurrence
                   dz_t, d carry_{t-1} = step_vjp(d carry_t + dh_t)
               dW_i = xs^T @ dzx      dW_h = h_prev^T @ dzh         ONE matmul each, after
               db = sum_t dz_t        dxs  = dzx @ W_i^T            the loop, over all steps
                                                                    and all examples

Autodiff instead accumulates ``dW += h_{t-1}^T dz_t`` inside the backward loop (T small
matmuls), stacks about a dozen residuals per step, and materialises zero cotangents; here
the input projection and every weight gradient are single large products, the residuals of
a step are one array, unused cotangents stay symbolic (``symbolic_zeros``), and ``dxs`` is
not computed when nothing asks for it.

The hook is written for one sequence, as ``Cell.scan`` must be, but the kernel runs on a
batch. Under ``jax.vmap`` (``jax.vmap(unroll)`` in every seqjax model, inside
``jax.grad`` in training) a ``custom_vmap`` rule hands the whole batch to the kernel, so the
weight gradients contract over batch and time in one product. A per-example kernel would
leave JAX to sum ``[B, H, 4H]`` per-example gradients, and XLA:CPU runs that reduction over
the leading axis about 30x slower than a product (14 ms for ``[32, 128, 512]``; measured,
jax 0.10.2). Where the innermost transformation is not a vmap (one sequence, or
``jax.vmap(jax.grad(...))`` for per-example gradients), the kernel runs as a batch of one.
``unroll(..., truncate=k)`` hands ``truncate`` to the hook (``scan.truncates``), whose
backward pass cuts the carry's cotangent at every window start. With ``remat`` windows
``unroll`` still calls the hook inside its own ``lax.scan`` over windows, whose body is
traced without the vmap: exact, but per example, so without the speed-up.

Limits: a ``custom_vjp`` supports reverse mode (``jax.grad``, ``jax.vjp``, ``jax.jacrev`` and
reverse-over-reverse) and ``jax.vmap``, but not forward mode (``jax.jvp``, ``jax.jacfwd``,
``jax.hessian``); keep the default ``fast=False`` cell for those.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap
from jax.custom_derivatives import CustomVJPPrimal, SymbolicZero

from seqjax.cells.base import Carry, Params
from seqjax.xla import vmapped_here

ScanFn = Callable[[Params, Carry, jax.Array, jax.Array | None], tuple[Carry, jax.Array]]


class _Spec(NamedTuple):
    """The cell-specific parts of a fused scan; every array is batched, ``[B, ...]``.

    Attributes:
      input_bias: the key of the bias added to ``x @ w_i`` before the loop.
      step: ``step(params, carry, zx) -> (carry, res)``: one forward step from the input
        pre-activation ``zx = x @ w_i + params[input_bias]`` that also returns the residuals
        (a tuple of ``[B, H]`` arrays) its backward needs.
      back: ``back(params, w_h_t, d_carry, carry, res, carry_prev) -> (d_carry_prev, dzx,
        dzh)``: the VJP of one step given the cotangent of its new carry ``carry``, where
        ``w_h_t`` is ``params["w_h"].T``, ``dzx`` the cotangent of ``zx`` and ``dzh`` that of
        the recurrent product ``h_prev @ w_h`` (the same array when they are equal).
      bias_grads: ``bias_grads(sum dzx, sum dzh) -> dict`` of the bias cotangents.
      output: ``output(carry) -> h``, the output of a step, read from the new carry.
      add_output: ``add_output(d_carry, dh) -> d_carry``, adds the cotangent of a step's output
        to that of its new carry.
    """

    input_bias: str
    step: Callable[..., tuple[Carry, tuple[jax.Array, ...]]]
    back: Callable[..., tuple[Carry, jax.Array, jax.Array]]
    bias_grads: Callable[[jax.Array, jax.Array], dict[str, jax.Array]]
    output: Callable[[Carry], jax.Array]
    add_output: Callable[[Carry, jax.Array], Carry]


def _where(valid: jax.Array, new: Any, old: Any) -> Any:
    """``valid: [B]`` selects per example between two pytrees of ``[B, ...]`` leaves."""
    return jax.tree.map(
        lambda n, o: jnp.where(valid.reshape(valid.shape + (1,) * (n.ndim - 1)), n, o), new, old
    )


def _over_steps(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a [T, B, K]``, ``b [T, B, G]`` -> ``[K, G]``: the sum over steps and examples of the
    outer products, as one product contracting time and batch. Not written as a reshape to
    ``[T * B, K]``: that merges a batch axis split over devices (``parallel.data``) into a
    minor position, which GSPMD can only serve by gathering the whole batch on every device."""
    return jnp.einsum("tbk,tbg->kg", a, b)


def _value(arg: Any) -> Any:
    return jax.tree.map(lambda p: p.value, arg, is_leaf=lambda x: isinstance(x, CustomVJPPrimal))


def _perturbed(arg: Any) -> bool:
    leaves = jax.tree.leaves(arg, is_leaf=lambda x: isinstance(x, CustomVJPPrimal))
    return any(p.perturbed for p in leaves)


def _dense(ct: Any) -> Any:
    """A cotangent with its symbolic zeros made arrays."""
    return jax.tree.map(
        lambda c: jnp.zeros(c.aval.shape, c.aval.dtype) if isinstance(c, SymbolicZero) else c,
        ct,
        is_leaf=lambda x: isinstance(x, SymbolicZero),
    )


def _make_batched(
    spec: _Spec, unroll: int, truncate: int | None = None
) -> Callable[..., tuple[Carry, jax.Array]]:
    """The fused scan over a batch: carry leaves ``[B, ...]``, ``xs: [T, B, F]``, ``valid:
    [T, B]`` or None; returns ``(carry [B, ...], hs [T, B, H])``. With ``truncate=k`` the
    gradient stops at the carry entering steps k, 2k, ... (`seqjax.unroll`'s windows)."""

    def forward(params, carry, xs, valid):
        zx = jnp.einsum("tbf,fg->tbg", xs, params["w_i"]) + params[spec.input_bias][None, None]
        layout = []  # the pytree of (carry, res), recorded while tracing the body

        def body(c, inp):
            zx_t, v = inp
            new_c, res = spec.step(params, c, zx_t)
            if v is not None:
                new_c = _where(v, new_c, c)
            leaves, tree = jax.tree.flatten((new_c, res))
            layout.append(tree)
            # One array per step: each separate stacked output costs XLA:CPU a write of its
            # own inside the loop.
            return new_c, jnp.stack(leaves)

        last, packed = jax.lax.scan(body, carry, (zx, valid), unroll=unroll)
        carries, res = jax.tree.unflatten(layout[-1], list(jnp.moveaxis(packed, 1, 0)))
        hs = spec.output(carries)
        if valid is not None:
            hs = jnp.where(valid[..., None], hs, jnp.zeros_like(hs))
        return last, hs, carries, res

    @jax.custom_vjp
    def fused(params, carry, xs, valid):
        last, hs, _, _ = forward(params, carry, xs, valid)
        return last, hs

    def fused_fwd(params, carry, xs, valid):
        wants_dxs = _perturbed(xs)
        params, carry, xs, valid = (_value(a) for a in (params, carry, xs, valid))
        last, hs, carries, res = forward(params, carry, xs, valid)
        # Carries before each step: the initial carry, then the carries after steps 0..T-2.
        prev = jax.tree.map(lambda c0, cs: jnp.concatenate([c0[None], cs[:-1]]), carry, carries)
        # Whether to compute dxs, as a static shape (residuals are arrays).
        flag = jnp.zeros((int(wants_dxs),), bool)
        return (last, hs), (params, xs, valid, carries, res, prev, flag)

    def fused_bwd(saved, cotangents):
        params, xs, valid, carries, res, prev, flag = saved
        d_last, d_hs = cotangents
        d_last = _dense(d_last)
        has_dhs = not isinstance(d_hs, SymbolicZero)
        w_h_t = params["w_h"].T
        shared = []  # LSTM and RNN: dzx is dzh, so the loop stacks it once

        def body(d_c, inp):
            carry_t, res_t, prev_t, dh_t, v, t = inp
            d_new = spec.add_output(d_c, dh_t) if has_dhs else d_c
            d_prev, dzx, dzh = spec.back(params, w_h_t, d_new, carry_t, res_t, prev_t)
            same = dzh is dzx
            if v is not None:
                d_prev = _where(v, d_prev, d_c)
                dzx = jnp.where(v[:, None], dzx, jnp.zeros_like(dzx))
                dzh = dzx if same else jnp.where(v[:, None], dzh, jnp.zeros_like(dzh))
            if t is not None:  # truncated BPTT: the carry entering a window is a constant
                cut = (t % truncate == 0) & (t > 0)
                d_prev = jax.tree.map(lambda d: jnp.where(cut, jnp.zeros_like(d), d), d_prev)
            shared.append(same)
            return d_prev, (dzx,) if same else (dzx, dzh)

        ts = None if truncate is None else jnp.arange(xs.shape[0], dtype=jnp.int32)
        d_carry, dz = jax.lax.scan(
            body,
            d_last,
            (carries, res, prev, d_hs if has_dhs else None, valid, ts),
            reverse=True,
            unroll=unroll,
        )
        dzx, dzh = (dz[0], dz[0]) if shared[-1] else dz
        ones = jnp.ones((*dzx.shape[:2], 1), dzx.dtype)
        grads = {
            "w_i": _over_steps(xs, dzx),
            "w_h": _over_steps(spec.output(prev), dzh),
            # Sums over steps and examples as products with ones (XLA:CPU's reductions over
            # leading axes are far slower).
            **spec.bias_grads(_over_steps(ones, dzx)[0], _over_steps(ones, dzh)[0]),
        }
        d_params = {k: grads[k].astype(params[k].dtype) for k in params}
        d_xs = (dzx @ params["w_i"].T).astype(xs.dtype) if flag.shape[-1] else None
        return d_params, d_carry, d_xs, None

    fused.defvjp(fused_fwd, fused_bwd, symbolic_zeros=True)
    return fused


def _make_scan(spec: _Spec, unroll: int) -> ScanFn:
    @functools.cache
    def get(masked: bool, truncate: int | None):
        return _make_hook(_make_batched(spec, unroll, truncate), masked)

    def scan(params, carry, xs, valid, truncate=None):
        one, batched_scan = get(valid is not None, truncate)
        if not vmapped_here(carry, xs, valid):
            return one(params, carry, xs, valid)
        if valid is None:
            return batched_scan(params, carry, xs, jnp.ones(xs.shape[:1], bool))
        return batched_scan(params, carry, xs, valid)

    # `seqjax.unroll` passes ``truncate=k`` to a hook that says it can take it, instead of
    # calling it once per window inside a scan (where the vmap is hidden from it).
    scan.truncates = True
    return scan


def _make_hook(batched: Callable[..., Any], masked: bool) -> tuple[Callable, Callable]:
    """``(one, batched_scan)``: the kernel on one example (a batch of one), and the same as a
    ``custom_vmap`` function whose vmap rule hands the whole batch to the kernel."""

    def one(params, carry, xs, valid):
        v = None if valid is None else valid[:, None]
        last, hs = batched(params, jax.tree.map(lambda a: a[None], carry), xs[:, None], v)
        return jax.tree.map(lambda a: a[0], last), hs[:, 0]

    # Not differentiable by itself (custom_vmap has no reverse mode): only called where
    # `seqjax.xla.vmapped_here`, so that the vmap rule below replaces it before autodiff sees it.
    @custom_vmap
    def batched_scan(params, carry, xs, valid):
        return one(params, carry, xs, valid if masked else None)

    @batched_scan.def_vmap
    def batched_scan_vmap(axis_size, in_batched, params, carry, xs, valid):
        p_b, c_b, x_b, v_b = in_batched

        def grow(a, b):
            return a if b else jnp.broadcast_to(a, (axis_size, *a.shape))

        carry = jax.tree.map(grow, carry, c_b)
        xs, valid = grow(xs, x_b), grow(valid, v_b)
        if any(jax.tree.leaves(p_b)):
            # Parameters differ per example: no shared weight to batch over.
            params = jax.tree.map(grow, params, p_b)
            out = jax.vmap(lambda p, c, x, v: one(p, c, x, v if masked else None))(
                params, carry, xs, valid
            )
        else:
            v = jnp.swapaxes(valid, 0, 1) if masked else None
            last, hs = batched(params, carry, jnp.swapaxes(xs, 0, 1), v)
            out = (last, jnp.swapaxes(hs, 0, 1))
        return out, jax.tree.map(lambda _: True, out)

    return one, batched_scan


# LSTM ----------------------------------------------------------------------------------------


def _lstm_step(params: Params, carry: Any, zx: jax.Array) -> tuple[Any, Any]:
    z = zx + carry.h @ params["w_h"]
    H = carry.h.shape[-1]
    f = jax.nn.sigmoid(z[:, :H])
    i = jax.nn.sigmoid(z[:, H : 2 * H])
    g = jnp.tanh(z[:, 2 * H : 3 * H])
    o = jax.nn.sigmoid(z[:, 3 * H :])
    c = f * carry.c + i * g
    tanh_c = jnp.tanh(c)
    # Each gate a residual of its own: slicing one [B, 4H] array in the backward loop
    # measured about twice as slow on XLA:CPU.
    return carry._replace(h=o * tanh_c, c=c), (f, i, g, o, tanh_c)


def _lstm_back(params: Params, w_h_t: jax.Array, d_new: Any, new: Any, res: Any, prev: Any):
    del params, new
    f, i, g, o, tanh_c = res
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
    d_prev = d_new._replace(h=dz @ w_h_t, c=d_c * f)
    return d_prev, dz, dz


LSTM_SPEC = _Spec(
    input_bias="b",
    step=_lstm_step,
    back=_lstm_back,
    bias_grads=lambda dzx, dzh: {"b": dzx},
    output=lambda carry: carry.h,
    add_output=lambda d_carry, dh: d_carry._replace(h=d_carry.h + dh),
)


def _identity(h: jax.Array) -> jax.Array:
    return h


# GRU -----------------------------------------------------------------------------------------


def _gru_step(params: Params, h: jax.Array, zx: jax.Array) -> tuple[jax.Array, Any]:
    H = h.shape[-1]
    zh = h @ params["w_h"]
    r = jax.nn.sigmoid(zx[:, :H] + zh[:, :H])
    z = jax.nn.sigmoid(zx[:, H : 2 * H] + zh[:, H : 2 * H])
    hn = zh[:, 2 * H :] + params["b_hn"][None]
    n = jnp.tanh(zx[:, 2 * H :] + r * hn)
    new_h = (1.0 - z) * n + z * h
    return new_h, (r, z, n, hn)


def _gru_back(params: Params, w_h_t: jax.Array, d_h: jax.Array, new_h, res, h_prev: jax.Array):
    del params, new_h
    r, z, n, hn = res
    d_an = d_h * (1.0 - z) * (1.0 - n * n)
    d_ar = d_an * hn * r * (1.0 - r)
    d_az = d_h * (h_prev - n) * z * (1.0 - z)
    dzx = jnp.concatenate([d_ar, d_az, d_an], axis=-1)
    dzh = jnp.concatenate([d_ar, d_az, d_an * r], axis=-1)
    d_prev = d_h * z + dzh @ w_h_t
    return d_prev, dzx, dzh


def _gru_bias_grads(dzx: jax.Array, dzh: jax.Array) -> dict[str, jax.Array]:
    H = dzh.shape[-1] // 3
    return {"b_i": dzx, "b_hn": dzh[2 * H :]}


GRU_SPEC = _Spec(
    input_bias="b_i",
    step=_gru_step,
    back=_gru_back,
    bias_grads=_gru_bias_grads,
    output=_identity,
    add_output=jnp.add,
)


# Vanilla RNN ---------------------------------------------------------------------------------


def _rnn_spec(activation: str) -> _Spec:
    if activation == "tanh":
        phi, d_phi = jnp.tanh, lambda h: 1.0 - h * h
    elif activation == "relu":
        phi, d_phi = jax.nn.relu, lambda h: (h > 0).astype(h.dtype)
    else:
        raise ValueError(f"fused rnn: unknown activation={activation!r}; expected 'tanh' or 'relu'")

    def step(params: Params, h: jax.Array, zx: jax.Array) -> tuple[jax.Array, Any]:
        return phi(zx + h @ params["w_h"]), ()

    def back(params, w_h_t, d_h, new_h, res, h_prev):
        del params, res, h_prev
        da = d_h * d_phi(new_h)
        return da @ w_h_t, da, da

    return _Spec(
        input_bias="b",
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
