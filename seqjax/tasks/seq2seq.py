"""Sequence-to-sequence tasks: reverse and sort a sequence of symbols.

Vocabulary and decoder convention (shared by both tasks, and by ``seqjax.models.seq2seq`` with
its default ``start_id=0``): one vocabulary of ``S + 1`` classes for source and target, where

* class 0 is reserved: BOS (the decoder's first input), EOS (the last target) and PAD;
* classes 1..S are the data symbols.

For a source of valid length L the target is ``y_1 .. y_L, 0 (EOS), 0 (PAD) ...`` with
``T_out = length + 1`` and the mask 1 on the first ``L + 1`` positions (the symbols and the
EOS), so the source (``T = length``) and target lengths differ. Teacher forcing feeds the
decoder the targets shifted right behind BOS: `decoder_inputs` builds them.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from seqjax.checks import check_int
from seqjax.tasks.base import (
    Batch,
    Task,
    draw_length,
    length_range,
    one_hot,
    steps,
    symbol_task,
)

__all__ = ["BOS", "EOS", "PAD", "decoder_inputs", "reverse", "sort"]

BOS = EOS = PAD = 0


def decoder_inputs(targets: jax.Array, num_classes: int) -> jax.Array:
    """Teacher-forcing decoder inputs: targets shifted right behind BOS, one-hot.

    Args:
      targets: ``[..., T_out]`` int32 target classes (a seq2seq `Batch`'s ``targets``).
      num_classes: the vocabulary size (the task's ``output_size``).

    Returns:
      ``[..., T_out, num_classes]`` float32, ``one_hot([BOS, y_1, ..., y_{T_out - 1}])``.
    """
    bos = jnp.full((*targets.shape[:-1], 1), BOS, dtype=targets.dtype)
    shifted = jnp.concatenate([bos, targets[..., :-1]], axis=-1)
    return jax.nn.one_hot(shifted, num_classes, dtype=jnp.float32)


def _seq2seq_task(
    where: str,
    transform,
    length: int,
    num_symbols: int,
    variable_length: bool,
    min_length: int | None,
) -> Task:
    min_len, max_len = length_range(where, length, variable_length, min_length, minimum=1)
    num_symbols = check_int(where, "num_symbols", num_symbols, 2)
    vocab = num_symbols + 1
    t = steps(max_len)
    t_out = steps(max_len + 1)

    def example(key: jax.Array) -> Batch:
        k_len, k_ids = jax.random.split(key)
        n = draw_length(k_len, min_len, max_len)
        valid = t < n
        ids = jax.random.randint(k_ids, (max_len,), 1, num_symbols + 1, dtype=jnp.int32)
        ids = jnp.where(valid, ids, PAD)
        out = transform(ids, n)  # [max_len], valid prefix of length n
        targets = jnp.where(t_out < n, jnp.concatenate([out, jnp.zeros((1,), jnp.int32)]), EOS)
        mask = (t_out <= n).astype(jnp.float32)
        return Batch(one_hot(ids, vocab, valid), targets, mask, n)

    mean_len = (min_len + max_len) / 2.0
    return symbol_task(
        where,
        example,
        input_size=vocab,
        output_size=vocab,
        pattern="seq2seq",
        baseline=math.log(num_symbols) * mean_len / (mean_len + 1.0),
    )


def reverse(
    length: int = 10,
    num_symbols: int = 8,
    variable_length: bool = True,
    min_length: int | None = None,
) -> Task:
    """Reverse a sequence: the sequence reversal transduction of Grefenstette, Hermann,
    Suleyman & Blunsom (2015), "Learning to Transduce with Unbounded Memory", NeurIPS 2015.

    Source: L symbols uniform on 1..S (PAD = 0 and zero vectors after L). Target:
    ``x_L, ..., x_1, EOS`` (see the module docstring for the vocabulary). Token-level
    cross-entropy over the L + 1 masked target positions.

    Baseline: a decoder that ignores the source but knows where EOS goes pays ``ln S`` per
    symbol and 0 on the EOS, ``ln S * E[L] / (E[L] + 1)`` per masked token with
    ``E[L] = (min_length + length) / 2``.

    Args:
      length: the maximum source length T >= 1 (T_out = T + 1).
      num_symbols: S >= 2.
      variable_length: if True (the default) each example has a length L uniform on
        ``[min_length, length]``.
      min_length: the shortest length with ``variable_length`` (default 1).

    Returns:
      A seq2seq `Task`: inputs ``[B, T, S + 1]``, targets and mask ``[B, T + 1]``.
    """

    def transform(ids: jax.Array, n: jax.Array) -> jax.Array:
        idx = jnp.clip(n - 1 - steps(ids.shape[0]), 0, ids.shape[0] - 1)
        return ids[idx]

    return _seq2seq_task("reverse", transform, length, num_symbols, variable_length, min_length)


def sort(
    length: int = 10,
    num_symbols: int = 8,
    variable_length: bool = True,
    min_length: int | None = None,
) -> Task:
    """Sort a sequence of symbols in ascending order, as in the number-sorting task of
    Vinyals, Bengio & Kudlur (2016), "Order Matters: Sequence to Sequence for Sets", ICLR 2016
    (there real numbers; here symbols 1..S with repetition, sorted stably).

    Source: L symbols uniform on 1..S. Target: ``sorted(x_1..x_L), EOS`` (see the module
    docstring). Token-level cross-entropy over the L + 1 masked positions.

    Baseline: as for `reverse`, ``ln S * E[L] / (E[L] + 1)``, the loss of a decoder that
    ignores the source (and its own prefix) but knows where EOS goes; a decoder that uses the
    sorted prefix it is fed can do somewhat better without reading the source.

    Args:
      length: the maximum source length T >= 1 (T_out = T + 1).
      num_symbols: S >= 2.
      variable_length: if True (the default) each example has a length L uniform on
        ``[min_length, length]``.
      min_length: the shortest length with ``variable_length`` (default 1).

    Returns:
      A seq2seq `Task`: inputs ``[B, T, S + 1]``, targets and mask ``[B, T + 1]``.
    """

    def transform(ids: jax.Array, n: jax.Array) -> jax.Array:
        big = jnp.iinfo(jnp.int32).max
        return jnp.sort(jnp.where(steps(ids.shape[0]) < n, ids, big))

    return _seq2seq_task("sort", transform, length, num_symbols, variable_length, min_length)
