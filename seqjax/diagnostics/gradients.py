"""Per-timestep gradient norms: ||dL/dh_t||, the BPTT terms of dL/dW_hh, and their decay rate.

One backward pass gives the gradient with respect to every hidden state: a zero perturbation
``delta_t`` is added to the carry after each step inside the scan, and since
``dL/d delta_t = dL/dh_t`` (the total derivative, through the output at t and through every
later step), differentiating with respect to the stacked perturbations ``[T, ...]`` yields all
of them at once. The same trick with a zero perturbation of a weight at each step gives the
per-timestep terms of the BPTT sum ``dL/dW_hh = sum_t dL/dW_hh|_t`` (whitepaper section 8).

All functions here are written for one sequence ``xs: [T, F]`` and are jittable
(``jax.jit(lambda p, xs: hidden_grad_norms(cell, p, xs, loss_fn))``); ``batch_*`` variants
vmap them over a batch ``[B, T, F]``.

Extension point (stacked layers, whole models): everything is computed on a `Cell`. A stacked
or model-level diagnostic is the same computation on a cell whose carry is the tuple of the
layer carries (and whose ``step`` runs the layers in turn), with ``hidden_of_carry`` picking
the state of interest; or it can call `seqjax.diagnostics.masked_scan` (the scan with
per-step carry and parameter perturbations that everything here is built on) directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from seqjax.cells.base import Carry, Cell, Params
from seqjax.diagnostics._common import (
    HiddenOfCarry,
    check_sequence,
    default_hidden_of_carry,
    masked_scan,
    per_step_norm,
    resolve_carry,
    resolve_length,
    valid_steps,
)

LossFn = Callable[..., jax.Array]


class HiddenGradNorms(NamedTuple):
    """Gradient norms with respect to the state after each step of one sequence.

    Attributes:
      loss: the scalar loss.
      h: ``[T]``, ``||dL/dh_t||_2`` for the hidden state, zero past the length.
      carry: the norms for every part of the carry, a pytree like the carry with ``[T]``
        leaves: for an LSTM ``LSTMCarry(h=[T], c=[T])`` (``carry.c`` is ``||dL/dc_t||``);
        for rnn and gru the array ``[T]`` (equal to ``h``).
    """

    loss: jax.Array
    h: jax.Array
    carry: Any


class BatchGradNorms(NamedTuple):
    """Per-example gradient norms over a batch, and their mean.

    Attributes:
      per_example: `HiddenGradNorms` with a leading ``[B]`` axis on every field.
      mean: `HiddenGradNorms` of ``[T]`` arrays: at each t the mean over the examples still
        valid at t (zero where none is); ``loss`` is the mean loss.
    """

    per_example: HiddenGradNorms
    mean: HiddenGradNorms


class WeightGradContributions(NamedTuple):
    """The per-timestep terms of the BPTT sum for one weight.

    Attributes:
      loss: the scalar loss.
      norms: ``[T]``, the Frobenius norm of ``dL/dW|_t``, the gradient through step t only
        (zero past the length).
      grad: ``dL/dW`` itself, the sum of the terms over t (equal to ``jax.grad``).
    """

    loss: jax.Array
    norms: jax.Array
    grad: jax.Array


class DecayFit(NamedTuple):
    """A least-squares line through ``log10 ||g_t||`` against the distance ``d = L - 1 - t``.

    Attributes:
      slope: decades per step; negative when gradients vanish going back in time, positive
        when they explode. NaN when fewer than two entries are valid and nonzero.
      intercept: the fitted ``log10 ||g||`` at the last valid step (``d = 0``).
      decades: ``-slope * (L - 1)``, the orders of magnitude lost between the last valid step
        and the first (negative: gained).
      num_steps: L, the number of valid steps the fit spans.
    """

    slope: jax.Array
    intercept: jax.Array
    decades: jax.Array
    num_steps: jax.Array


def _call_loss(loss_fn: LossFn, hs: jax.Array, final: Carry, targets: Any) -> jax.Array:
    loss = loss_fn(hs, final) if targets is None else loss_fn(hs, final, targets)
    if jnp.shape(loss) != ():
        raise ValueError(
            f"loss_fn returned shape {jnp.shape(loss)}, expected a scalar. loss_fn(hs [T, H], "
            f"final_carry[, targets]) must reduce over time and features (e.g. .sum() or .mean())."
        )
    return loss


def hidden_grads(
    cell: Cell,
    params: Params,
    xs: jax.Array,
    loss_fn: LossFn,
    *,
    targets: Any = None,
    length: int | jax.Array | None = None,
    carry: Carry | None = None,
    hidden_of_carry: HiddenOfCarry = default_hidden_of_carry,
) -> tuple[jax.Array, Carry]:
    """The gradient of the loss with respect to the carry after every step, in one backward pass.

    Args:
      cell: a `Cell`; its ``step`` output must be ``hidden_of_carry`` of its new carry (true for
        every seqjax cell).
      params: the cell's parameters.
      xs: inputs ``[T, F]``.
      loss_fn: ``loss_fn(hs [T, H], final_carry) -> scalar``, or
        ``loss_fn(hs, final_carry, targets)`` when ``targets`` is given. Past ``length`` the
        outputs are zero and the final carry is the one at the length, as in `seqjax.unroll`.
      targets: any pytree passed to ``loss_fn`` as a third argument, or None.
      length: the number of valid steps (int or traced int scalar), or None for all T.
      carry: the initial carry, ``cell.initial_carry()`` when None.
      hidden_of_carry: maps a carry to its hidden state ``[H]``.

    Returns:
      ``(loss, grads)``: ``grads`` is a pytree like the carry with a leading ``[T]`` axis;
      ``grads[t]`` is ``dL/d carry_t`` (total derivative), zero for ``t >= length``.
    """
    xs = check_sequence(xs, "hidden_grads")
    num_steps = xs.shape[0]
    carry = resolve_carry(cell, carry, "hidden_grads")
    valid = valid_steps(num_steps, resolve_length(length, num_steps, "hidden_grads"))
    deltas = jax.tree.map(lambda a: jnp.zeros((num_steps, *jnp.shape(a)), a.dtype), carry)

    def loss_of(deltas: Carry) -> jax.Array:
        final, hs, _ = masked_scan(
            cell, params, xs, carry, valid, carry_deltas=deltas, hidden_of_carry=hidden_of_carry
        )
        return _call_loss(loss_fn, hs, final, targets)

    return jax.value_and_grad(loss_of)(deltas)


def hidden_grad_norms(
    cell: Cell,
    params: Params,
    xs: jax.Array,
    loss_fn: LossFn,
    *,
    targets: Any = None,
    length: int | jax.Array | None = None,
    carry: Carry | None = None,
    hidden_of_carry: HiddenOfCarry = default_hidden_of_carry,
) -> HiddenGradNorms:
    """``||dL/dh_t||`` for every timestep of one sequence (and ``||dL/dc_t||`` for an LSTM).

    Computed in one backward pass (see `hidden_grads`). Arguments as in `hidden_grads`.

    Returns:
      A `HiddenGradNorms` with ``h: [T]`` (L2 norms), zero for ``t >= length``.

    Example:
      >>> cell = seqjax.lstm(16)
      >>> params = cell.init(jax.random.key(0), 3)
      >>> norms = hidden_grad_norms(cell, params, xs, lambda hs, carry: carry.h.sum())
      >>> norms.h.shape, norms.carry.c.shape    # ([T], [T])
    """
    loss, grads = hidden_grads(
        cell,
        params,
        xs,
        loss_fn,
        targets=targets,
        length=length,
        carry=carry,
        hidden_of_carry=hidden_of_carry,
    )
    return HiddenGradNorms(
        loss=loss,
        h=per_step_norm(hidden_of_carry(grads)),
        carry=jax.tree.map(lambda g: per_step_norm(g), grads),
    )


def _check_batch(xs: Any, length: Any, fn_name: str) -> tuple[jax.Array, jax.Array | None]:
    xs = jnp.asarray(xs)
    if xs.ndim != 3:
        raise ValueError(
            f"{fn_name}: xs has shape {xs.shape}, expected a batch [B, T, F]. "
            f"For one sequence [T, F] use the function without the batch_ prefix."
        )
    if length is not None:
        length = jnp.asarray(length)
        if length.shape != (xs.shape[0],):
            raise ValueError(
                f"{fn_name}: length has shape {length.shape}, expected [B] = ({xs.shape[0]},), "
                f"one length per example of xs {xs.shape}"
            )
    return xs, length


def batch_hidden_grad_norms(
    cell: Cell,
    params: Params,
    xs: jax.Array,
    loss_fn: LossFn,
    *,
    targets: Any = None,
    length: jax.Array | None = None,
    carry: Carry | None = None,
    hidden_of_carry: HiddenOfCarry = default_hidden_of_carry,
) -> BatchGradNorms:
    """`hidden_grad_norms` for each example of a batch (via ``jax.vmap``), and their mean.

    Each example's norms are those of its own loss ``loss_fn(hs_b, final_b[, targets_b])``
    (the gradient of a batch-mean loss would be these divided by B).

    Args:
      cell: as in `hidden_grads`.
      params: as in `hidden_grads`.
      xs: inputs ``[B, T, F]``.
      loss_fn: as in `hidden_grads`, for one example.
      targets: None or a pytree whose leaves have a leading ``[B]`` axis.
      length: None or ``[B]`` int lengths.
      carry: None or a batch of initial carries (leaves ``[B, ...]``).
      hidden_of_carry: as in `hidden_grads`.

    Returns:
      A `BatchGradNorms`.
    """
    xs, length = _check_batch(xs, length, "batch_hidden_grad_norms")
    batch, num_steps = xs.shape[0], xs.shape[1]

    def one(x: jax.Array, tgt: Any, n: Any, c: Any) -> HiddenGradNorms:
        return hidden_grad_norms(
            cell,
            params,
            x,
            loss_fn,
            targets=tgt,
            length=n,
            carry=c,
            hidden_of_carry=hidden_of_carry,
        )

    per_example = jax.vmap(one)(xs, targets, length, carry)
    lengths = jnp.full((batch,), num_steps, jnp.int32) if length is None else length
    valid = jnp.arange(num_steps, dtype=jnp.int32)[None, :] < lengths[:, None]  # [B, T]
    count = jnp.sum(valid, axis=0)

    def mean_over_valid(a: jax.Array) -> jax.Array:
        total = jnp.sum(jnp.where(valid, a, jnp.zeros_like(a)), axis=0)
        return jnp.where(count > 0, total / jnp.maximum(count, 1).astype(a.dtype), 0.0)

    mean = HiddenGradNorms(
        loss=jnp.mean(per_example.loss),
        h=mean_over_valid(per_example.h),
        carry=jax.tree.map(mean_over_valid, per_example.carry),
    )
    return BatchGradNorms(per_example=per_example, mean=mean)


def weight_grad_contributions(
    cell: Cell,
    params: Params,
    xs: jax.Array,
    loss_fn: LossFn,
    *,
    key: str = "w_h",
    targets: Any = None,
    length: int | jax.Array | None = None,
    carry: Carry | None = None,
) -> WeightGradContributions:
    """The norm of each per-timestep term of the BPTT sum ``dL/dW = sum_t dL/dW|_t``.

    Each step gets its own copy ``W + D_t`` of the weight ``params[key]`` (``D_t = 0``); the
    gradient with respect to ``D_t`` is the term of step t, the part of the gradient that flows
    through the use of W at step t. Their sum over t is ``dL/dW`` (whitepaper section 8). A
    user sees which timesteps the recurrent-weight gradient actually comes from: under
    vanishing gradients the terms of early steps are tiny.

    Args:
      cell: as in `hidden_grads`.
      params: as in `hidden_grads`.
      xs: as in `hidden_grads`.
      loss_fn: as in `hidden_grads`.
      key: the parameter to decompose, ``"w_h"`` (the recurrent weights) by default; any key
        of ``params`` works (e.g. ``"w_i"``).
      targets: as in `hidden_grads`.
      length: as in `hidden_grads`.
      carry: as in `hidden_grads`.

    Returns:
      A `WeightGradContributions`: ``norms: [T]`` and the total gradient ``grad``.
    """
    xs = check_sequence(xs, "weight_grad_contributions")
    if key not in params:
        raise ValueError(
            f"weight_grad_contributions: key={key!r} is not a parameter of this "
            f"{cell.name} cell; expected one of {sorted(params)}"
        )
    num_steps = xs.shape[0]
    carry = resolve_carry(cell, carry, "weight_grad_contributions")
    length = resolve_length(length, num_steps, "weight_grad_contributions")
    valid = valid_steps(num_steps, length)
    w = params[key]
    deltas = jnp.zeros((num_steps, *w.shape), w.dtype)

    def loss_of(deltas: jax.Array) -> jax.Array:
        final, hs, _ = masked_scan(cell, params, xs, carry, valid, param_deltas={key: deltas})
        return _call_loss(loss_fn, hs, final, targets)

    loss, terms = jax.value_and_grad(loss_of)(deltas)
    return WeightGradContributions(loss=loss, norms=per_step_norm(terms), grad=terms.sum(axis=0))


def decay_rate(norms: jax.Array, length: int | jax.Array | None = None) -> DecayFit:
    """Fits ``log10 ||g_t|| = intercept + slope * (L - 1 - t)`` by least squares.

    Only entries with ``t < length`` whose norm is positive and finite take part. ``slope`` is
    in decades per step: ``-2`` means each step back in time divides the gradient by 100.
    Jittable; for a batch of curves ``[B, T]`` use ``jax.vmap(decay_rate)``.

    Args:
      norms: ``[T]`` gradient norms, e.g. ``hidden_grad_norms(...).h``.
      length: the number of valid steps L, or None for all T.

    Returns:
      A `DecayFit`.
    """
    norms = jnp.asarray(norms)
    if norms.ndim != 1:
        raise ValueError(
            f"decay_rate: norms has shape {norms.shape}, expected [T]. "
            f"For a batch [B, T] use jax.vmap(decay_rate)(norms, lengths)."
        )
    if not jnp.issubdtype(norms.dtype, jnp.floating):
        norms = norms.astype(jnp.float32)
    num_steps = norms.shape[0]
    n_valid = resolve_length(length, num_steps, "decay_rate")
    t = jnp.arange(num_steps, dtype=jnp.int32)
    use = (t < n_valid) & (norms > 0) & jnp.isfinite(norms)
    w = use.astype(norms.dtype)
    d = (n_valid - 1 - t).astype(norms.dtype)
    y = jnp.log10(jnp.where(use, norms, jnp.ones_like(norms)))
    n = jnp.sum(w)
    d_mean = jnp.sum(w * d) / n
    y_mean = jnp.sum(w * y) / n
    var = jnp.sum(w * (d - d_mean) ** 2)
    slope = jnp.where(n >= 2, jnp.sum(w * (d - d_mean) * (y - y_mean)) / var, jnp.nan)
    intercept = y_mean - slope * d_mean
    decades = -slope * (n_valid - 1).astype(norms.dtype)
    return DecayFit(slope=slope, intercept=intercept, decades=decades, num_steps=n_valid)


def describe_decay(fit: DecayFit) -> str:
    """Phrases a (concrete, unbatched) `DecayFit`, e.g. ``"gradients vanish by 10^4.2 over 100
    steps (-0.042 decades per step)"``."""
    slope = float(fit.slope)
    steps = int(fit.num_steps)
    if math.isnan(slope):
        return f"gradient decay undefined over {steps} steps (fewer than two nonzero norms)"
    decades = float(fit.decades)
    verb = "vanish" if decades >= 0 else "explode"
    return (
        f"gradients {verb} by 10^{abs(decades):.1f} over {steps} steps "
        f"({slope:+.3g} decades per step)"
    )
