"""Algorithmic tasks: parity of a bit stream, flip-flop language modelling, and a tagging task
whose labels need future context (for bidirectional models).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from seqjax.checks import check_bool, check_float, check_int
from seqjax.tasks.base import (
    Batch,
    Task,
    draw_length,
    length_range,
    one_hot,
    steps,
    symbol_task,
)

__all__ = ["FLIP_FLOP_TOKENS", "flip_flop", "future_tagging", "parity"]


def parity(
    length: int = 100,
    variable_length: bool = False,
    min_length: int | None = None,
    running: bool = False,
) -> Task:
    """Parity of a bit stream.

    The parity problem of Bengio, Simard & Frasconi (1994), "Learning Long-Term Dependencies
    with Gradient Descent is Difficult", IEEE Trans. Neural Networks 5(2) (there with +-1
    inputs and one target at the end): bits ``b_t`` uniform on {0, 1} i.i.d., one-hot::

        many_to_one (running=False):  y = (sum_{t < L} b_t) mod 2
        many_to_many (running=True):  y_t = (sum_{s <= t} b_s) mod 2  for t < L (mask 0 after)

    Cross-entropy over 2 classes. Baseline: the parity is uniform and independent of any
    proper subset of the bits, so a memoryless predictor scores ``ln 2``; with ``running`` it
    knows y_0 = b_0 at the first step, so it scores ``ln 2 (E[L] - 1) / E[L]`` per counted step
    (``E[L] = (min_length + length) / 2``).

    Args:
      length: T, the (maximum) number of bits, >= 1.
      variable_length: if True each example has a length L uniform on ``[min_length, length]``.
      min_length: the shortest length with ``variable_length`` (default 1).
      running: emit the parity of the prefix at every step (many_to_many) instead of the
        parity of the whole sequence (many_to_one).

    Returns:
      A `Task`: inputs ``[B, T, 2]``; targets ``[B]`` or ``[B, T]`` int32.
    """
    where = "parity"
    min_len, max_len = length_range(where, length, variable_length, min_length, minimum=1)
    running = check_bool(where, "running", running)
    mean_len = (min_len + max_len) / 2.0
    t = steps(max_len)

    def example(key: jax.Array) -> Batch:
        k_len, k_bits = jax.random.split(key)
        n = draw_length(k_len, min_len, max_len)
        valid = t < n
        bits = jnp.where(valid, jax.random.randint(k_bits, (max_len,), 0, 2, jnp.int32), 0)
        inputs = one_hot(bits, 2, valid)
        if running:
            targets = jnp.where(valid, jnp.cumsum(bits) % 2, 0).astype(jnp.int32)
            return Batch(inputs, targets, valid.astype(jnp.float32), n)
        return Batch(inputs, jnp.sum(bits) % 2, jnp.ones((), jnp.float32), n)

    return symbol_task(
        where,
        example,
        input_size=2,
        output_size=2,
        pattern="many_to_many" if running else "many_to_one",
        baseline=math.log(2.0) * ((mean_len - 1.0) / mean_len if running else 1.0),
    )


FLIP_FLOP_TOKENS = ("w", "r", "i", "0", "1")
"""The flip-flop vocabulary, indexed by token id: write, read, ignore, and the two bits."""


def flip_flop(length: int = 512, p_ignore: float = 0.8) -> Task:
    """Flip-flop language modelling of Liu, Ash, Goel, Krishnamurthy & Zhang (2023),
    "Exposing Attention Glitches with Flip-Flop Language Modeling", NeurIPS 2023: FFL(p).

    A flip-flop string of ``length`` tokens is ``length / 2`` instruction-data pairs over the
    vocabulary `FLIP_FLOP_TOKENS` = (w, r, i, 0, 1) (ids 0..4). The first instruction is w,
    the last is r, the others are i with probability ``p_ignore`` and w or r with probability
    ``(1 - p_ignore) / 2`` each. The datum after w or i is a uniform bit; the datum after r is
    the bit of the most recent w. As a next-token prediction task::

        inputs  = one_hot(tokens[:-1])   (T = length - 1 steps)
        targets = tokens[1:]
        mask_t  = 1 where tokens[t] == r   (the only deterministic next tokens)

    so the loss and the accuracy are measured on reads only (the paper's glitch rate is
    1 - accuracy). Cross-entropy over the 5 tokens. Baseline: ``ln 2``, a memoryless predictor
    that sees ``r`` can only guess the bit.

    Args:
      length: the number of tokens in the string, even and >= 4.
      p_ignore: the probability of an ``i`` instruction, in [0, 1) (0.8 is the paper's
        sparse FFL(0.8), 0.1 its dense FFL(0.1)).

    Returns:
      A many_to_many `Task`: inputs ``[B, length - 1, 5]``, targets ``[B, length - 1]`` int32.
    """
    where = "flip_flop"
    length = check_int(where, "length", length, 4)
    if length % 2:
        raise ValueError(
            f"{where}: `length` must be even (instruction-data pairs), got {length}; use "
            f"{length + 1}."
        )
    p_ignore = check_float(where, "p_ignore", p_ignore, 0.0, 1.0, high_open=True)
    pairs = length // 2
    p_rw = (1.0 - p_ignore) / 2.0
    logits = jnp.log(jnp.asarray([p_rw, p_rw, p_ignore], jnp.float32))
    w, r = 0, 1
    pair_index = steps(pairs)

    def example(key: jax.Array) -> Batch:
        k_instr, k_bits = jax.random.split(key)
        instr = jax.random.categorical(k_instr, logits, shape=(pairs,)).astype(jnp.int32)
        instr = instr.at[0].set(w).at[pairs - 1].set(r)
        bits = jax.random.randint(k_bits, (pairs,), 0, 2, dtype=jnp.int32)
        last_write = jax.lax.cummax(jnp.where(instr == w, pair_index, -1))
        bits = jnp.where(instr == r, bits[last_write], bits)
        tokens = jnp.stack([instr, 3 + bits], axis=1).reshape(length)
        mask = (tokens[:-1] == r).astype(jnp.float32)
        return Batch(one_hot(tokens[:-1], 5), tokens[1:], mask, jnp.asarray(length - 1, jnp.int32))

    return symbol_task(
        where,
        example,
        input_size=5,
        output_size=5,
        pattern="many_to_many",
        baseline=math.log(2.0),
    )


def future_tagging(
    length: int = 50,
    lookahead: int = 5,
    num_symbols: int = 8,
    variable_length: bool = False,
    min_length: int | None = None,
) -> Task:
    """Sequence tagging where each label needs future context (for bidirectional models).

    A synthetic task of ours, in the spirit of the artificial-data experiments of Schuster &
    Paliwal (1997), "Bidirectional Recurrent Neural Networks", IEEE TSP 45(11), where the
    target depends on inputs ahead in time. Symbols uniform on 0..S-1 i.i.d.::

        y_t = (x_t + x_{t+k}) mod S    for t + k < L   (mask 0 for t >= L - k)

    with k = ``lookahead`` and L the valid length. Many-to-many cross-entropy. A causal model
    cannot know x_{t+k} at step t, so ``ln S`` is the best any unidirectional model (and any
    memoryless one) can do, which is the baseline; a bidirectional model can reach 0.

    Args:
      length: T, the (maximum) length, > ``lookahead``.
      lookahead: k >= 1.
      num_symbols: S >= 2.
      variable_length: if True each example has a length L uniform on ``[min_length, length]``.
      min_length: the shortest length with ``variable_length`` (default ``lookahead + 1``).

    Returns:
      A many_to_many `Task`: inputs ``[B, T, S]``, targets ``[B, T]`` int32, mask ``[B, T]``.
    """
    where = "future_tagging"
    k = check_int(where, "lookahead", lookahead, 1)
    num_symbols = check_int(where, "num_symbols", num_symbols, 2)
    min_len, max_len = length_range(where, length, variable_length, min_length, minimum=k + 1)
    t = steps(max_len)

    def example(key: jax.Array) -> Batch:
        k_len, k_ids = jax.random.split(key)
        n = draw_length(k_len, min_len, max_len)
        valid = t < n
        ids = jax.random.randint(k_ids, (max_len,), 0, num_symbols, dtype=jnp.int32)
        ids = jnp.where(valid, ids, 0)
        labelled = t < n - k
        targets = jnp.where(labelled, (ids + jnp.roll(ids, -k)) % num_symbols, 0)
        return Batch(one_hot(ids, num_symbols, valid), targets, labelled.astype(jnp.float32), n)

    return symbol_task(
        where,
        example,
        input_size=num_symbols,
        output_size=num_symbols,
        pattern="many_to_many",
        baseline=math.log(num_symbols),
    )
