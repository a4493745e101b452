"""The scan every diagnostic shares: ``cell.step`` over one sequence, masked like ``unroll``.

Diagnostics run their own ``lax.scan`` over ``cell.step`` (never a cell's fast ``scan`` path)
because they need hooks inside the loop: a perturbation added to the carry after each step
(gradients with respect to every hidden state in one backward pass), a perturbation added to
a parameter at each step (per-timestep terms of a weight gradient), and the carry that enters
each step (Jacobians and gates along the trajectory).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from seqjax.cells.base import Carry, Cell, Params

HiddenOfCarry = Callable[[Carry], jax.Array]


def default_hidden_of_carry(carry: Carry) -> jax.Array:
    """The hidden state ``h: [H]`` inside a carry: the carry itself or its ``h`` field.

    That covers every seqjax cell (rnn, irnn and gru carry ``h``; lstm carries
    ``LSTMCarry(h, c)``). For another carry pass ``hidden_of_carry`` explicitly.
    """
    if isinstance(carry, jax.Array):
        return carry
    if hasattr(carry, "h"):
        return carry.h
    raise TypeError(
        f"cannot find the hidden state in a carry of type {type(carry).__name__}: expected an "
        f"array or a NamedTuple with an `h` field. Pass hidden_of_carry=lambda carry: ... that "
        f"returns the [H] hidden state (the output of cell.step)."
    )


def check_sequence(xs: Any, fn_name: str) -> jax.Array:
    """Returns ``xs`` as an array after checking it is one sequence ``[T, F]``."""
    xs = jnp.asarray(xs)
    if xs.ndim != 2:
        raise ValueError(
            f"{fn_name}: xs has shape {xs.shape}, expected one sequence [T, F] (time on axis 0). "
            f"For a batch [B, T, F] use the batch_* variant or jax.vmap over examples."
        )
    return xs


def resolve_carry(cell: Cell, carry: Carry | None, fn_name: str) -> Carry:
    """The initial carry: ``cell.initial_carry()`` when None, else checked against it."""
    expected = cell.initial_carry()
    if carry is None:
        return expected
    got_def, exp_def = jax.tree.structure(carry), jax.tree.structure(expected)
    if got_def != exp_def:
        raise ValueError(
            f"{fn_name}: carry has structure {got_def}, expected {exp_def} "
            f"(the structure of cell.initial_carry() for the {cell.name} cell)"
        )
    for got, exp in zip(jax.tree.leaves(carry), jax.tree.leaves(expected), strict=True):
        if jnp.shape(got) != exp.shape:
            raise ValueError(
                f"{fn_name}: carry leaf has shape {jnp.shape(got)}, expected {exp.shape} "
                f"(one example of the {cell.name} cell; batch with the batch_* variant or vmap)"
            )
    return carry


def resolve_length(length: int | jax.Array | None, num_steps: int, fn_name: str) -> jax.Array:
    """The number of valid steps as an int32 scalar (``T`` when None)."""
    if length is None:
        return jnp.asarray(num_steps, jnp.int32)
    if isinstance(length, bool) or (isinstance(length, int) and not 0 <= length <= num_steps):
        raise ValueError(f"{fn_name}: length={length!r} is outside [0, T={num_steps}]")
    length = jnp.asarray(length)
    if length.ndim != 0 or not jnp.issubdtype(length.dtype, jnp.integer):
        raise ValueError(
            f"{fn_name}: length must be an int scalar, got shape {length.shape} dtype "
            f"{length.dtype}. For a batch of lengths [B] use the batch_* variant or jax.vmap."
        )
    return length.astype(jnp.int32)


def valid_steps(num_steps: int, length: jax.Array) -> jax.Array:
    """A ``[T]`` bool mask, True for steps before ``length``."""
    return jnp.arange(num_steps, dtype=jnp.int32) < length


def masked_scan(
    cell: Cell,
    params: Params,
    xs: jax.Array,
    carry: Carry,
    valid: jax.Array,
    *,
    carry_deltas: Carry | None = None,
    param_deltas: dict[str, jax.Array] | None = None,
    hidden_of_carry: HiddenOfCarry = default_hidden_of_carry,
) -> tuple[Carry, jax.Array, Carry]:
    """``cell.step`` over ``xs`` with optional per-step perturbations.

    Pseudocode, for ``t`` in ``range(T)``::

        before[t] = carry
        p = params + param_deltas[t]                 # per-step copy of the perturbed weights
        new, y = cell.step(p, carry, xs[t])
        new = new + carry_deltas[t]                  # perturb the state after step t ...
        y = y + hidden_of_carry(carry_deltas[t])     # ... and the output, which is its h part
        if valid[t]: carry, hs[t] = new, y
        else:        hs[t] = 0                       # carry unchanged, as in seqjax.unroll

    Args:
      cell: a `Cell` whose ``step`` output is ``hidden_of_carry`` of its new carry.
      params: the cell's parameters.
      xs: inputs ``[T, F]``.
      carry: the initial carry.
      valid: ``[T]`` bool mask.
      carry_deltas: None or a pytree like ``carry`` with a leading ``[T]`` axis on each leaf.
      param_deltas: None or a dict ``{key: [T, *params[key].shape]}``.
      hidden_of_carry: maps a carry (or a carry-shaped delta) to its ``[H]`` hidden part.

    Returns:
      ``(final_carry, hs [T, H], before)`` where ``before`` holds the carry entering each step,
      a pytree like ``carry`` with a leading ``[T]`` axis.
    """

    def body(c: Carry, inp: tuple[Any, ...]) -> tuple[Carry, tuple[jax.Array, Carry]]:
        x, ok, dc, dp = inp
        p = params if dp is None else {**params, **{k: params[k] + v for k, v in dp.items()}}
        new_c, y = cell.step(p, c, x)
        if dc is not None:
            new_c = jax.tree.map(jnp.add, new_c, dc)
            y = y + hidden_of_carry(dc)
        new_c = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new_c, c)
        y = jnp.where(ok, y, jnp.zeros_like(y))
        return new_c, (y, c)

    final, (hs, before) = jax.lax.scan(body, carry, (xs, valid, carry_deltas, param_deltas))
    return final, hs, before


def per_step_norm(tree: Any) -> jax.Array:
    """The Frobenius norm over all non-time axes of every leaf together: ``[T]``."""
    leaves = jax.tree.leaves(tree)
    sq = sum(jnp.sum(jnp.square(a), axis=tuple(range(1, a.ndim))) for a in leaves)
    return jnp.sqrt(sq)
