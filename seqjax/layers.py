"""Whole-sequence layers built from cells: deep (stacked) RNNs, bidirectional RNNs, dropout.

A `Layer` is a small record of pure functions, like a `Cell` but over a whole sequence::

    layer = stack([lstm(64), lstm(64)], dropout=0.2, residual=True)
    params = layer.init(key, input_size)                  # plain pytree
    carry, hs = layer.apply(params, xs)                   # xs: [T, F] -> hs: [T, layer.output_size]
    carry, hs = layer.apply(params, xs, length=n, key=k)  # training: dropout masks drawn from k

Numerics are written for one sequence, time on axis 0; batch with ``jax.vmap``::

    jax.vmap(lambda x, n: layer.apply(params, x, length=n))(xs_bt, lengths_b)

Regularisation is active only when a PRNG ``key`` is passed to ``apply``; without a key the
layer is deterministic (evaluation): dropout is the identity, recurrent dropout is off and
zoneout uses its expectation. Where each mask goes (``stack`` and ``bidirectional``):

* ``dropout`` (between layers): inverted dropout on the *input of every layer after the
  first*, i.e. on the output sequence of layer ``l - 1``, with a fresh mask for every unit at
  every time step, survivors scaled by ``1 / (1 - rate)``. Neither the stack's input nor its
  output is dropped (apply `dropout` yourself where you want it there).
* ``recurrent_dropout`` (variational, Gal & Ghahramani 2016): one mask ``m: [H]`` per sequence
  (per layer and direction), drawn once and reused at every step, multiplies the hidden state
  ``h_{t-1}`` where the step reads it, scaled by ``1 / (1 - rate)``. For an LSTM it masks
  ``h_{t-1}`` in the gate products (the cell state ``c`` is not masked); for a vanilla RNN the
  recurrent product; for a GRU the three recurrent products, while the interpolation
  ``z_t * h_{t-1}`` reads the unmasked state (a cell that masks inside its own recurrence
  says how with ``Cell.masked_step``). The carry passed on is never masked.
* ``zoneout`` (Krueger et al. 2017): each unit of every carry leaf (``h`` and ``c`` for an
  LSTM) keeps its previous value with probability ``rate``, with a fresh Bernoulli draw per
  unit and step: ``s_t = d_t * s_{t-1} + (1 - d_t) * s~_t``, where ``s~_t`` is what the cell
  step computed. At evaluation ``s_t = rate * s_{t-1} + (1 - rate) * s~_t``. The step's output
  is the zoned-out ``h_t``.

Residual connections (``residual=True``) add each layer's input to its output for every layer
after the first, which needs equal sizes: ``y_l = f_l(u_l) + u_l`` with ``u_l = dropout(y_{l-1})``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from seqjax import checks
from seqjax.cells.base import Carry, Cell
from seqjax.unroll import unroll as unroll_fn

UNROLL_OPTIONS = ("unroll", "truncate", "remat")


class Layer(NamedTuple):
    """A function of a whole sequence, as pure functions over a parameter pytree.

    Attributes:
      init: ``init(key, input_size) -> params``.
      apply: ``apply(params, xs, *, length=None, carry=None, key=None, unroll=1,
        truncate=None, remat="auto") -> (carry, hs)`` with ``xs: [T, F]`` and
        ``hs: [T, output_size]``, zero past ``length``. ``key`` (a PRNG key) turns on the
        layer's dropout; the unroll options are passed to `seqjax.unroll`.
      output_size: the size of each output ``hs[t]``.
      initial_carry: ``initial_carry() -> carry``, zeros for one example.
      last: ``last(carry, hs, length) -> [output_size]``, the layer's summary of the whole
        sequence (for many-to-one readouts): the output at step ``length - 1`` for a forward
        layer; the forward state at ``length - 1`` merged with the backward state at step 0 for
        a bidirectional one.
      name: a short description, for error messages.
    """

    init: Callable[[jax.Array, int], Any]
    apply: Callable[..., tuple[Carry, jax.Array]]
    output_size: int
    initial_carry: Callable[[], Carry]
    last: Callable[[Carry, jax.Array, Any], jax.Array]
    name: str


class BidirectionalCarry(NamedTuple):
    """Carry of a bidirectional layer: forward carry (at the last valid step) and backward carry
    (after step 0)."""

    fw: Carry
    bw: Carry


# ----------------------------------------------------------------------------------------------
# Small helpers


def dropout(key: jax.Array | None, x: jax.Array, rate: float) -> jax.Array:
    """Inverted dropout: each element is zeroed with probability ``rate``, survivors are scaled by
    ``1 / (1 - rate)`` so the expectation is unchanged. Identity when ``key`` is None or
    ``rate == 0`` (evaluation).

    Args:
      key: a PRNG key, or None for evaluation.
      x: any array.
      rate: drop probability in [0, 1).

    Returns:
      An array shaped like ``x``.
    """
    checks.rate(rate, "rate", "dropout")
    return _dropout(key, x, rate)


def _dropout(key: jax.Array | None, x: jax.Array, rate: Any) -> jax.Array:
    if key is None or not active_rate(rate):
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / jnp.asarray(1.0 - rate, x.dtype), jnp.zeros_like(x))


def active_rate(rate: Any) -> bool:
    """Whether a dropout rate needs a mask: a Python number above 0, or any traced rate (a
    swept rate is a traced scalar, `seqjax.sweep`; its value 0 draws a mask that keeps
    everything, the same numbers as no dropout)."""
    return not isinstance(rate, (int, float)) or rate > 0


def last_step(hs: jax.Array, length: int | jax.Array | None) -> jax.Array:
    """``hs[length - 1]`` (``hs[-1]`` when ``length`` is None), for ``hs: [T, H]``; ``hs[0]`` (zeros
    from `seqjax.unroll`) when ``length == 0``."""
    if length is None:
        return hs[-1]
    index = jnp.maximum(jnp.asarray(length, jnp.int32) - 1, 0)
    return jnp.take(hs, index, axis=0)


def _hidden(carry: Carry) -> jax.Array:
    return carry.h if hasattr(carry, "h") else carry


def _replace_hidden(carry: Carry, h: jax.Array) -> Carry:
    return carry._replace(h=h) if hasattr(carry, "h") else h


def _check_hidden_carry(cell: Cell, where: str) -> None:
    carry = cell.initial_carry()
    if not (isinstance(carry, jax.Array) or hasattr(carry, "h")):
        raise ValueError(
            f"{where}: the {cell.name} cell's carry is a {type(carry).__name__}; recurrent "
            f"dropout, zoneout and bidirectional summaries need a carry that is the hidden state "
            f"array or a NamedTuple with a field h (like LSTMCarry)"
        )


def _check_unroll_options(options: dict[str, Any], where: str) -> None:
    unknown = sorted(set(options) - set(UNROLL_OPTIONS))
    if unknown:
        raise TypeError(
            f"{where}: unexpected keyword arguments {unknown}; the unroll options are "
            f"{list(UNROLL_OPTIONS)}"
        )


def _is_cell(obj: Any) -> bool:
    return isinstance(obj, Cell)


def _is_layer(obj: Any) -> bool:
    return isinstance(obj, Layer)


def _split(key: jax.Array | None, num: int) -> list[jax.Array | None]:
    if key is None:
        return [None] * num
    return list(jax.random.split(key, num))


# ----------------------------------------------------------------------------------------------
# Cells with recurrent dropout and zoneout


def recurrent_dropout_cell(cell: Cell, mask: jax.Array) -> Cell:
    """The cell whose step reads ``mask * h_{t-1}`` in its recurrence (variational dropout).

    The same ``mask: [H]`` is used at every step (Gal & Ghahramani 2016); draw it once per
    sequence, e.g. ``bernoulli(key, 1 - p, (H,)) / (1 - p)``. The step is the cell's own
    ``cell.masked_step`` when it has one (the GRU), else ``cell.step`` of the carry whose hidden
    part is multiplied by the mask; the returned carry is never masked.

    Args:
      cell: a `Cell` whose carry is the hidden state or has a field ``h``.
      mask: ``[H]``, the per-sequence mask (already scaled).

    Returns:
      A `Cell` with the same parameters and carry (its ``scan`` fast path and ``masked_step``
      are dropped: the mask is already inside its ``step``).
    """
    _check_hidden_carry(cell, "recurrent_dropout_cell")
    masked_step = cell.masked_step

    def step(params: Any, carry: Carry, x: jax.Array) -> tuple[Carry, jax.Array]:
        if masked_step is not None:
            return masked_step(params, carry, x, mask)
        return cell.step(params, _replace_hidden(carry, _hidden(carry) * mask), x)

    return cell._replace(step=step, scan=None, masked_step=None)


def _zoneout_cell(cell: Cell, rate: float, num_mask_units: int | None) -> Cell:
    """Zoneout around ``cell.step``. With ``num_mask_units`` (training) the step's input is
    ``[x ; d]`` where ``d`` (0/1, one per carry unit, leaves in tree order) marks the units that
    keep their previous value; with None (evaluation) every unit takes the expectation."""

    def step(params: Any, carry: Carry, x_aug: jax.Array) -> tuple[Carry, jax.Array]:
        if num_mask_units is None:
            x = x_aug
        else:
            x, keep = x_aug[:-num_mask_units], x_aug[-num_mask_units:]
        new, _ = cell.step(params, carry, x)
        old_leaves, treedef = jax.tree.flatten(carry)
        new_leaves = treedef.flatten_up_to(new)
        mixed, offset = [], 0
        for old, upd in zip(old_leaves, new_leaves, strict=True):
            if num_mask_units is None:
                mixed.append(rate * old + (1.0 - rate) * upd)
            else:
                d = keep[offset : offset + old.size].reshape(old.shape)
                mixed.append(jnp.where(d > 0, old, upd))
            offset += old.size
        new = jax.tree.unflatten(treedef, mixed)
        return new, _hidden(new)

    return cell._replace(step=step, scan=None, masked_step=None)


def _unroll_regularised(
    cell: Cell,
    params: Any,
    xs: jax.Array,
    *,
    carry: Carry | None,
    length: Any,
    reverse: bool,
    key: jax.Array | None,
    recurrent_dropout: float,
    zoneout: float,
    options: dict[str, Any],
) -> tuple[Carry, jax.Array]:
    """`seqjax.unroll` of ``cell`` with recurrent dropout and zoneout (see the module docstring)."""
    xs = jnp.asarray(xs)
    k_rec, k_zone = _split(key, 2)
    if active_rate(recurrent_dropout) and k_rec is not None:
        h0 = _hidden(cell.initial_carry())
        keep = jax.random.bernoulli(k_rec, 1.0 - recurrent_dropout, h0.shape)
        mask = keep.astype(h0.dtype) / jnp.asarray(1.0 - recurrent_dropout, h0.dtype)
        cell = recurrent_dropout_cell(cell, mask)
    if zoneout > 0:
        if k_zone is None:
            cell = _zoneout_cell(cell, zoneout, None)
        elif xs.ndim == 2:  # otherwise let unroll report the bad shape
            num_units = sum(leaf.size for leaf in jax.tree.leaves(cell.initial_carry()))
            d = jax.random.bernoulli(k_zone, zoneout, (xs.shape[0], num_units))
            xs = jnp.concatenate([xs, d.astype(xs.dtype)], axis=-1)
            cell = _zoneout_cell(cell, zoneout, num_units)
    return unroll_fn(cell, params, xs, carry=carry, length=length, reverse=reverse, **options)


# ----------------------------------------------------------------------------------------------
# Layers


def as_layer(cell: Cell | Layer) -> Layer:
    """A cell as a `Layer`: ``apply`` is `seqjax.unroll`; the ``key`` is unused. A `Layer` is
    returned unchanged."""
    if _is_layer(cell):
        return cell
    if not _is_cell(cell):
        raise TypeError(
            f"as_layer: expected a seqjax Cell (e.g. seqjax.lstm(64)) or a Layer, "
            f"got {type(cell).__name__}"
        )

    def apply(
        params: Any,
        xs: jax.Array,
        *,
        length: Any = None,
        carry: Carry | None = None,
        key: jax.Array | None = None,
        **options: Any,
    ) -> tuple[Carry, jax.Array]:
        del key
        _check_unroll_options(options, f"{cell.name} layer")
        return unroll_fn(cell, params, xs, carry=carry, length=length, **options)

    def last(carry: Carry, hs: jax.Array, length: Any) -> jax.Array:
        del carry
        return last_step(hs, length)

    return Layer(cell.init, apply, cell.hidden_size, cell.initial_carry, last, cell.name)


def stack(
    cells: Sequence[Cell | Layer],
    *,
    dropout: float = 0.0,
    residual: bool = False,
    recurrent_dropout: float = 0.0,
    zoneout: float = 0.0,
    input_dropout: float = 0.0,
    output_dropout: float = 0.0,
) -> Layer:
    """A deep RNN: layer ``l`` reads the output sequence of layer ``l - 1``.

    What ``apply(params, xs, length=n, key=k)`` computes::

        u = dropout(k_in, xs, input_dropout)               # only with a key
        for l, cell in enumerate(cells):
            if l > 0:
                u = dropout(k_l, u, rate)                  # only with a key
            carry[l], y = unroll(cell, params[l], u, carry[l], length=n)  # + recurrent masks
            u = y + u if residual and l > 0 else y
        return carry, dropout(k_out, u, output_dropout)     # only with a key

    Args:
      cells: one or more `Cell` (or `Layer`, e.g. `bidirectional`, used as it is) items, bottom
        first.
      dropout: rate of (non-variational) dropout on the input of each layer after the first.
      residual: add each layer's input to its output, for every layer after the first; all
        those layers must keep the size of their input.
      recurrent_dropout: rate of variational recurrent dropout in every `Cell` item.
      zoneout: zoneout probability of every carry unit in every `Cell` item.
      input_dropout: rate of dropout on the stack's input sequence (fresh mask per step).
      output_dropout: rate of dropout on the stack's output sequence. A many-to-one readout
        over a `Cell` on top reads this (dropped) output; over a `Layer` on top (e.g.
        bidirectional) it reads that layer's carries, which are not dropped.

    Returns:
      A `Layer` whose params are a list (one entry per item, bottom first), whose carry is a
      tuple of the items' carries, and whose ``output_size`` is that of the top item. Its
      ``last`` is the top output at ``length - 1``, or, when the top item is a `Layer`, that
      layer's own ``last`` (for a bidirectional top with ``residual=True`` the residual is not
      part of that summary).

    Example:
      >>> layer = stack([lstm(32), lstm(32)], dropout=0.1, residual=True)
      >>> params = layer.init(jax.random.key(0), 8)
      >>> carry, hs = layer.apply(params, jnp.ones((5, 8)), length=3, key=jax.random.key(1))
    """
    if _is_cell(cells) or _is_layer(cells) or not isinstance(cells, Sequence) or not cells:
        raise TypeError(
            f"stack: cells must be a non-empty list of Cells or Layers, e.g. [lstm(64), "
            f"lstm(64)], got {cells!r:.200}"
        )
    items = list(cells)
    for i, item in enumerate(items):
        if not (_is_cell(item) or _is_layer(item)):
            raise TypeError(
                f"stack: cells[{i}] is a {type(item).__name__}; expected a Cell or a Layer"
            )
    checks.rate(dropout, "dropout", "stack")
    checks.rate(recurrent_dropout, "recurrent_dropout", "stack")
    checks.rate(zoneout, "zoneout", "stack", traced=False)
    checks.rate(input_dropout, "input_dropout", "stack")
    checks.rate(output_dropout, "output_dropout", "stack")
    for i, item in enumerate(items):
        if _is_layer(item) and (active_rate(recurrent_dropout) or zoneout > 0):
            raise ValueError(
                f"stack: recurrent_dropout/zoneout apply to Cell items, but cells[{i}] is the "
                f"Layer {item.name!r}; give those options to the layer itself, e.g. "
                f"bidirectional(cell, recurrent_dropout=...)"
            )
        if _is_cell(item) and (active_rate(recurrent_dropout) or zoneout > 0):
            _check_hidden_carry(item, "stack")
    sizes = [item.hidden_size if _is_cell(item) else item.output_size for item in items]
    if residual:
        for i in range(1, len(items)):
            if sizes[i] != sizes[i - 1]:
                raise ValueError(
                    f"stack: residual=True adds the input of layer {i} (size {sizes[i - 1]}, "
                    f"the output of layer {i - 1}) to its output (size {sizes[i]}), which "
                    f"needs equal sizes; got sizes {sizes}. Use equal hidden sizes after the "
                    f"first layer or residual=False."
                )
    names = [item.name for item in items]
    num = len(items)

    def init(key: jax.Array, input_size: int) -> list[Any]:
        keys = jax.random.split(key, num)
        in_sizes = [input_size, *sizes[:-1]]
        return [item.init(k, n) for item, k, n in zip(items, keys, in_sizes, strict=True)]

    def initial_carry() -> tuple[Carry, ...]:
        return tuple(item.initial_carry() for item in items)

    def apply(
        params: Sequence[Any],
        xs: jax.Array,
        *,
        length: Any = None,
        carry: Sequence[Carry] | None = None,
        key: jax.Array | None = None,
        **options: Any,
    ) -> tuple[tuple[Carry, ...], jax.Array]:
        _check_unroll_options(options, "stack")
        if len(params) != num:
            raise ValueError(
                f"stack.apply: params has {len(params)} entries, expected {num} (one per layer "
                f"of {names}); pass the params returned by this layer's init"
            )
        if carry is None:
            carry = initial_carry()
        elif len(carry) != num:
            raise ValueError(
                f"stack.apply: carry has {len(carry)} entries, expected a tuple of {num} (one "
                f"per layer of {names}), as returned by apply or initial_carry()"
            )
        carries = []
        # fold_in, not a wider split, so the per-layer keys do not depend on these options
        u = _dropout(None if key is None else jax.random.fold_in(key, num), xs, input_dropout)
        for i, (item, k) in enumerate(zip(items, _split(key, num), strict=True)):
            k_in, k_layer = _split(k, 2)
            if i > 0:
                u = _dropout(k_in, u, dropout)
            if _is_cell(item):
                c, y = _unroll_regularised(
                    item,
                    params[i],
                    u,
                    carry=carry[i],
                    length=length,
                    reverse=False,
                    key=k_layer,
                    recurrent_dropout=recurrent_dropout,
                    zoneout=zoneout,
                    options=options,
                )
            else:
                c, y = item.apply(
                    params[i], u, length=length, carry=carry[i], key=k_layer, **options
                )
            carries.append(c)
            u = y + u if residual and i > 0 else y
        k_out = None if key is None else jax.random.fold_in(key, num + 1)
        return tuple(carries), _dropout(k_out, u, output_dropout)

    top = items[-1]

    def last(carry: Sequence[Carry], hs: jax.Array, length: Any) -> jax.Array:
        if _is_cell(top):
            return last_step(hs, length)
        # A Layer on top (e.g. bidirectional) knows its own summary; a residual is not added.
        return top.last(carry[-1], hs, length)

    return Layer(init, apply, sizes[-1], initial_carry, last, f"stack({', '.join(names)})")


def _merge_concat(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.concatenate([a, b], axis=-1)


def _merge_sum(a: jax.Array, b: jax.Array) -> jax.Array:
    return a + b


MERGES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "concat": _merge_concat,
    "sum": _merge_sum,
}


def bidirectional(
    cell_fw: Cell,
    cell_bw: Cell | None = None,
    merge: str = "concat",
    *,
    recurrent_dropout: float = 0.0,
    zoneout: float = 0.0,
) -> Layer:
    """A bidirectional RNN (whitepaper section 18): ``h_t = merge(h_t^fw, h_t^bw)``.

    The forward cell runs over steps ``0 .. length - 1``; the backward cell runs over the same
    valid prefix from ``length - 1`` back to 0 (``unroll(..., reverse=True, length=length)``), so
    on a padded batch each sequence gets exactly what it would get unpadded. Outputs stay
    aligned in time (``hs[t]`` belongs to ``xs[t]``) and are zero past ``length``.

    Args:
      cell_fw: the forward `Cell`.
      cell_bw: the backward `Cell`; None uses a second copy of ``cell_fw`` (own parameters).
      merge: "concat" (``[h^fw ; h^bw]``, size ``H_fw + H_bw``) or "sum" (equal sizes).
      recurrent_dropout: variational recurrent dropout rate, one mask per direction.
      zoneout: zoneout probability of each carry unit, in both directions.

    Returns:
      A `Layer` with params ``{"fw": ..., "bw": ...}`` and carry `BidirectionalCarry`.
      ``last`` merges the forward state at step ``length - 1`` with the backward state at 0.

    Example:
      >>> layer = bidirectional(gru(16))
      >>> params = layer.init(jax.random.key(0), 4)
      >>> carry, hs = layer.apply(params, jnp.ones((6, 4)), length=4)    # hs: [6, 32]
    """
    if cell_bw is None:
        cell_bw = cell_fw
    for arg, cell in (("cell_fw", cell_fw), ("cell_bw", cell_bw)):
        if not _is_cell(cell):
            raise TypeError(
                f"bidirectional: {arg} must be a seqjax Cell (e.g. seqjax.lstm(64)), "
                f"got {type(cell).__name__}"
            )
        _check_hidden_carry(cell, "bidirectional")
    if merge not in MERGES:
        raise ValueError(
            f"bidirectional: unknown merge={merge!r}; expected one of {sorted(MERGES)}"
        )
    if merge == "sum" and cell_fw.hidden_size != cell_bw.hidden_size:
        raise ValueError(
            f"bidirectional: merge='sum' needs equal hidden sizes, got cell_fw "
            f"{cell_fw.hidden_size} and cell_bw {cell_bw.hidden_size}; use merge='concat'"
        )
    checks.rate(recurrent_dropout, "recurrent_dropout", "bidirectional")
    checks.rate(zoneout, "zoneout", "bidirectional", traced=False)
    merge_fn = MERGES[merge]
    if merge == "concat":
        output_size = cell_fw.hidden_size + cell_bw.hidden_size
    else:
        output_size = cell_fw.hidden_size

    def init(key: jax.Array, input_size: int) -> dict[str, Any]:
        k_fw, k_bw = jax.random.split(key)
        return {"fw": cell_fw.init(k_fw, input_size), "bw": cell_bw.init(k_bw, input_size)}

    def initial_carry() -> BidirectionalCarry:
        return BidirectionalCarry(cell_fw.initial_carry(), cell_bw.initial_carry())

    def apply(
        params: dict[str, Any],
        xs: jax.Array,
        *,
        length: Any = None,
        carry: BidirectionalCarry | None = None,
        key: jax.Array | None = None,
        **options: Any,
    ) -> tuple[BidirectionalCarry, jax.Array]:
        _check_unroll_options(options, "bidirectional")
        if carry is None:
            carry = initial_carry()
        elif not (isinstance(carry, tuple) and len(carry) == 2):
            raise ValueError(
                f"bidirectional.apply: carry must be a BidirectionalCarry(fw, bw), got "
                f"{type(carry).__name__}"
            )
        k_fw, k_bw = _split(key, 2)
        regs = {"recurrent_dropout": recurrent_dropout, "zoneout": zoneout, "options": options}
        c_fw, h_fw = _unroll_regularised(
            cell_fw,
            params["fw"],
            xs,
            carry=carry[0],
            length=length,
            reverse=False,
            key=k_fw,
            **regs,
        )
        c_bw, h_bw = _unroll_regularised(
            cell_bw, params["bw"], xs, carry=carry[1], length=length, reverse=True, key=k_bw, **regs
        )
        return BidirectionalCarry(c_fw, c_bw), merge_fn(h_fw, h_bw)

    def last(carry: BidirectionalCarry, hs: jax.Array, length: Any) -> jax.Array:
        del hs, length
        return merge_fn(_hidden(carry[0]), _hidden(carry[1]))

    name = f"bidirectional({cell_fw.name}, {cell_bw.name}, {merge})"
    return Layer(init, apply, output_size, initial_carry, last, name)
