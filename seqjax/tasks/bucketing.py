"""Bucketing: group examples of similar lengths so that batches carry little padding.

For a sampled pool (one big `Batch` from ``task.sample(key, pool_size)``) bucketing is a pure
host-side function: sort the examples by length, cut the sorted order into batches, and trim
each batch's time axes to the longest example in it::

    pool = task.sample(key, 1024)
    for batch in bucket_by_length(pool, 32, task.pattern, multiple=8):
        ...   # batch.inputs [32, T_b, F] with T_b = max length in the batch, rounded up to 8

The output shapes depend on the data, so this runs outside ``jit``; ``multiple`` bounds the
number of distinct shapes (and so of compilations) a training loop sees.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from seqjax.checks import check_bool, check_int
from seqjax.tasks.base import PATTERNS, Batch

__all__ = ["bucket_by_length", "padding_fraction"]


def padding_fraction(batch: Batch) -> float:
    """The fraction of input steps that are padding: ``1 - sum(length) / (B * T)``."""
    b, t = batch.inputs.shape[:2]
    return float(1.0 - np.sum(np.asarray(batch.length, np.float64)) / (b * t))


def _round_up(n: int, multiple: int, cap: int) -> int:
    return min(cap, -(-n // multiple) * multiple)


def bucket_by_length(
    pool: Batch,
    batch_size: int,
    pattern: str,
    *,
    trim: bool = True,
    multiple: int = 1,
    drop_remainder: bool = False,
) -> list[Batch]:
    """Splits a pool of examples into batches of similar lengths.

    The examples are sorted by ``length`` (stably, so equal lengths keep their pool order) and
    cut into consecutive batches of ``batch_size``. With ``trim``, each batch's time axes are
    cut to what its longest example needs, rounded up to ``multiple``:

    * inputs ``[B, T, F]`` to the longest ``length``;
    * many_to_many targets and mask ``[B, T, ...]`` likewise (their mask is zero past the
      length, so nothing that counts is cut);
    * seq2seq targets and mask ``[B, T_out]`` to the last position where any mask is nonzero;
    * many_to_one targets and mask are per example and untouched.

    Args:
      pool: a `Batch` of N examples (e.g. ``task.sample(key, N)``).
      batch_size: examples per batch, >= 1.
      pattern: the task's pattern (``task.pattern``): how targets relate to the time axis.
      trim: cut the padding past each batch's longest example.
      multiple: round trimmed lengths up to a multiple of this (fewer distinct shapes).
      drop_remainder: drop the last batch if it has fewer than ``batch_size`` examples.

    Returns:
      A list of `Batch`, shortest examples first; every example of the pool appears once
      (except those dropped with ``drop_remainder``).
    """
    where = "bucket_by_length"
    batch_size = check_int(where, "batch_size", batch_size, 1)
    multiple = check_int(where, "multiple", multiple, 1)
    check_bool(where, "trim", trim)
    check_bool(where, "drop_remainder", drop_remainder)
    if pattern not in PATTERNS:
        raise ValueError(f"{where}: `pattern` must be one of {PATTERNS}, got {pattern!r}.")
    arrays = Batch(*(np.asarray(x) for x in pool))
    n, t_in = arrays.inputs.shape[:2]
    if arrays.length.shape != (n,):
        raise ValueError(
            f"{where}: `pool.length` must have shape ({n},) (one per example), got "
            f"{arrays.length.shape}."
        )
    order = np.argsort(arrays.length, kind="stable")
    batches = []
    for begin in range(0, n, batch_size):
        idx = order[begin : begin + batch_size]
        if drop_remainder and idx.shape[0] < batch_size:
            break
        inputs, targets, mask, length = (x[idx] for x in arrays)
        if trim:
            t = _round_up(int(length.max()), multiple, t_in)
            inputs = inputs[:, :t]
            if pattern == "many_to_many":
                targets, mask = targets[:, :t], mask[:, :t]
            elif pattern == "seq2seq":
                counted = np.nonzero(mask.any(axis=0))[0]
                t_out = _round_up(
                    int(counted.max()) + 1 if counted.size else 1, multiple, mask.shape[1]
                )
                targets, mask = targets[:, :t_out], mask[:, :t_out]
        batches.append(Batch(*(jnp.asarray(x) for x in (inputs, targets, mask, length))))
    return batches
