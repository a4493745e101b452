"""A cell over a whole sequence with ``jax.lax.scan``: lengths, reverse, truncation, remat.

What ``unroll`` computes, for one sequence ``xs: [T, F]`` (batches come from ``jax.vmap``)::

    carry = cell.initial_carry() if carry is None else carry
    for t in range(T):                       # range(T)[::-1] on the valid prefix if reverse
        if t < length:
            carry, hs[t] = cell.step(params, carry, xs[t])
        else:
            hs[t] = 0                        # the carry stops changing after `length`
    return carry, hs

with these options, none of which changes the forward numbers:

* ``truncate=k``: the time axis is cut into windows of k steps and the carry enters each window
  after the first under ``stop_gradient``, so gradients reach back at most k steps (truncated
  BPTT inside one sequence; Williams & Peng's BPTT(k, k)).
* ``remat``: the same windows, each under ``jax.checkpoint``: the backward pass keeps only the
  carries at window boundaries and recomputes the inside of a window, trading compute for
  memory on long sequences. ``remat=True`` uses windows of about sqrt(T) steps; an int sets it.
  ``remat="step"`` checkpoints every step instead (the backward pass keeps only each step's
  carry and input), which on XLA:CPU is faster for small cells over enough steps (from
  ``cell.remat_min_steps``: 50 for LSTM and GRU; 1000 for other cells); the default
  ``"auto"`` chooses it there (`auto_remat`).
* ``unroll``: the ``unroll`` factor of ``lax.scan`` (more code, fewer loop iterations).

Compile time does not grow with T: the loop is a ``lax.scan`` whatever the options.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.cells.base import Carry, Cell, Params
from seqjax.checks import positive_int


def _check_carry(cell: Cell, carry: Carry) -> None:
    expected = cell.initial_carry()
    got_def, exp_def = jax.tree.structure(carry), jax.tree.structure(expected)
    if got_def != exp_def:
        raise ValueError(
            f"unroll: carry has structure {got_def}, expected {exp_def} "
            f"(the structure of cell.initial_carry() for the {cell.name} cell)"
        )
    for got, exp in zip(jax.tree.leaves(carry), jax.tree.leaves(expected), strict=True):
        if jnp.shape(got) != exp.shape:
            raise ValueError(
                f"unroll: carry leaf has shape {jnp.shape(got)}, expected {exp.shape} "
                f"(one example of the {cell.name} cell; unroll works on one sequence, "
                f"batch with jax.vmap)"
            )


AUTO_STEP_REMAT_MIN_STEPS = 1000
AUTO_STEP_REMAT_MAX_HIDDEN = 64


def use_scan(cell: Cell, unroll: int = 1, backend: str | None = None) -> bool:
    """Whether `unroll` runs ``cell.scan`` rather than ``lax.scan`` over ``cell.step``.

    Only with ``unroll=1`` and a cell that has a ``scan``, and on the CPU backend only if
    ``cell.scan_on_cpu``. The parallel-in-time scans of the linear recurrences (LRU, minGRU,
    minLSTM) set it False: on XLA:CPU their training step measured slower than the sequential
    loop at most shapes, 0.07-0.8x at T = 10000 to 100000 (experiments/bench_scan.py,
    docs/pages/performance.md). On other backends, whose parallel hardware is what a
    parallel scan is for, ``scan`` runs whenever there is one (not measured here).

    Args:
      cell: a `Cell`.
      unroll: the ``lax.scan`` unroll factor asked of `unroll` (not 1: the sequential loop).
      backend: the JAX backend name; None: ``jax.default_backend()``.
    """
    if cell.scan is None or unroll != 1:
        return False
    backend = jax.default_backend() if backend is None else backend
    return cell.scan_on_cpu or backend != "cpu"


def auto_remat(cell: Cell, num_steps: int, unroll: int = 1) -> str | bool:
    """What ``remat="auto"`` means for ``cell`` over ``num_steps`` steps: ``"step"`` or False.

    On the CPU backend: ``"step"`` for a cell of at most `AUTO_STEP_REMAT_MAX_HIDDEN` units
    over at least ``cell.remat_min_steps`` steps (50 for LSTM and GRU), or at least
    `AUTO_STEP_REMAT_MIN_STEPS` steps for a cell that does not set it, unless the cell has its
    own fast path that runs here (`use_scan`); False otherwise, and on other backends (not
    measured).

    Why: autodiff through ``lax.scan`` stacks about a dozen residuals per step for the
    backward pass, and on XLA:CPU those writes cost more than recomputing a small step. The
    measurements are in docs/pages/performance.md; experiments/bench_remat.py reproduces them.
    """
    if use_scan(cell, unroll):
        return False
    min_steps = AUTO_STEP_REMAT_MIN_STEPS if cell.remat_min_steps is None else cell.remat_min_steps
    if num_steps < min_steps or cell.hidden_size > AUTO_STEP_REMAT_MAX_HIDDEN:
        return False
    return "step" if jax.default_backend() == "cpu" else False


def valid_prefix_reverse_index(num_steps: int, length: jax.Array) -> jax.Array:
    """Indices ``[T]`` that reverse the first ``length`` steps and keep the rest in place.

    The permutation is its own inverse: applying it twice gives ``arange(T)``.
    """
    t = jnp.arange(num_steps, dtype=jnp.int32)
    return jnp.where(t < length, length - 1 - t, t)


def unroll(
    cell: Cell,
    params: Params,
    xs: jax.Array,
    carry: Carry | None = None,
    length: int | jax.Array | None = None,
    reverse: bool = False,
    unroll: int = 1,
    truncate: int | None = None,
    remat: bool | int | str = "auto",
) -> tuple[Carry, jax.Array]:
    """Runs ``cell`` over one sequence.

    Args:
      cell: a `Cell`.
      params: the cell's parameters, from ``cell.init``.
      xs: inputs ``[T, F]``, time on axis 0.
      carry: the initial carry (one example); ``cell.initial_carry()`` when None.
      length: the number of valid steps, an int or a traced int scalar; steps at and after
        ``length`` leave the carry unchanged and output zeros. None means all T steps.
      reverse: run from the last valid step back to the first. Only the valid prefix is
        reversed, and outputs stay aligned with their inputs (``hs[t]`` belongs to ``xs[t]``).
      unroll: the ``lax.scan`` unroll factor.
      truncate: window size k of truncated BPTT, or None for full BPTT.
      remat: False, True (windows of ~sqrt(T) steps) or a window size; rematerialises each
        window in the backward pass. With ``truncate`` the windows are the truncation windows.
        ``"step"``: ``jax.checkpoint`` on every step, so the backward pass keeps only each
        step's carry and input and recomputes the step. ``"auto"`` (the default): ``"step"``
        where it measured faster, else False; see `auto_remat`. Values and gradients are the
        same whatever the choice.

    Returns:
      ``(carry, hs)``: the carry after the last valid step (after step 0 when reversed) and
      the outputs ``hs: [T, H]``, zero past ``length``.
    """
    xs = jnp.asarray(xs)
    if xs.ndim != 2:
        raise ValueError(
            f"unroll: xs has shape {xs.shape}, expected one sequence [T, F] (time on axis 0). "
            f"For a batch [B, T, F] use jax.vmap(lambda x: unroll(cell, params, x))(xs)."
        )
    if unroll != 1:
        positive_int(unroll, "unroll", "unroll")
    if truncate is not None:
        positive_int(truncate, "truncate", "unroll")
    if isinstance(remat, str) and remat == "auto":
        remat = auto_remat(cell, xs.shape[0], unroll)
    step_remat = isinstance(remat, str) and remat == "step"
    if isinstance(remat, str) and not step_remat:
        raise ValueError(
            f"unroll: remat={remat!r}; expected False, True, a window size, 'step' or 'auto'"
        )
    if remat is not False and remat is not True and not step_remat:
        positive_int(remat, "remat", "unroll")
    num_steps = xs.shape[0]
    if carry is None:
        carry = cell.initial_carry()
    else:
        _check_carry(cell, carry)
    # One abstract step (nothing is computed) runs the cell's own input checks, so a wrong
    # feature size is a clear error even when a fast path (`cell.scan`) skips `cell.step`.
    try:
        jax.eval_shape(cell.step, params, carry, jax.ShapeDtypeStruct(xs.shape[1:], xs.dtype))
    except ValueError as err:
        raise ValueError(f"unroll: xs has shape {xs.shape} and a step of it fails: {err}") from err
    if isinstance(length, int | np.integer) and not 0 <= length <= num_steps:
        raise ValueError(f"unroll: length={length} is outside [0, T={num_steps}] for xs {xs.shape}")

    # A fast path that truncates by itself runs once over the whole sequence (inside a scan
    # over windows it could not see a surrounding vmap, see `seqjax.cells.fused`).
    hook_truncates = (
        truncate is not None
        and use_scan(cell, unroll)
        and getattr(cell.scan, "truncates", False)
        and (remat is False or step_remat)
    )
    window = None if hook_truncates else truncate
    if window is None and remat is not False and not step_remat:
        window = max(1, math.isqrt(num_steps)) if remat is True else remat
    window = None if window is None else min(window, max(num_steps, 1))
    padded_steps = num_steps if window is None else -(-num_steps // window) * window
    if length is None and padded_steps != num_steps:
        length = num_steps  # mask the zero padding added to fill the last window
    if length is not None:
        length = jnp.asarray(length).astype(jnp.int32)

    if reverse:
        if length is None:
            perm = jnp.arange(num_steps - 1, -1, -1)
        else:
            perm = valid_prefix_reverse_index(num_steps, length)
        xs = xs[perm]

    def step(c: Carry, inp: tuple[jax.Array, jax.Array]) -> tuple[Carry, jax.Array]:
        x, t = inp
        new_c, h = cell.step(params, c, x)
        if length is None:
            return new_c, h
        valid = t < length
        new_c = jax.tree.map(lambda n, o: jnp.where(valid, n, o), new_c, c)
        return new_c, jnp.where(valid, h, jnp.zeros_like(h))

    def scan_steps(c: Carry, x_w: jax.Array, t_w: jax.Array) -> tuple[Carry, jax.Array]:
        if use_scan(cell, unroll):
            valid = None if length is None else t_w < length
            extra = {"truncate": truncate} if hook_truncates else {}
            return cell.scan(params, c, x_w, valid, **extra)
        body = jax.checkpoint(step, prevent_cse=False) if step_remat else step
        return jax.lax.scan(body, c, (x_w, t_w), unroll=unroll)

    ts = jnp.arange(padded_steps, dtype=jnp.int32)
    if window is None:
        carry, hs = scan_steps(carry, xs, ts)
    else:
        xs = jnp.pad(xs, ((0, padded_steps - num_steps), (0, 0)))
        num_windows = padded_steps // window
        xs_w = xs.reshape(num_windows, window, xs.shape[-1])
        ts_w = ts.reshape(num_windows, window)

        def run_window(c: Carry, inp: tuple[jax.Array, jax.Array]) -> tuple[Carry, jax.Array]:
            x_w, t_w = inp
            if truncate is not None:
                # The first window keeps the gradient to the initial carry (k >= T is full BPTT).
                first = t_w[0] == 0
                c = jax.tree.map(lambda a: jnp.where(first, a, jax.lax.stop_gradient(a)), c)
            return scan_steps(c, x_w, t_w)

        if remat is not False and not step_remat:
            run_window = jax.checkpoint(run_window)
        carry, hs = jax.lax.scan(run_window, carry, (xs_w, ts_w))
        hs = hs.reshape(padded_steps, hs.shape[-1])[:num_steps]

    if reverse:
        hs = hs[perm]
    return carry, hs
