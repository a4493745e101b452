"""Long-range memory tasks: adding, copy memory, temporal order, delayed recall, selective copy,
associative recall.

Each factory returns a `seqjax.tasks.Task`; see `seqjax.tasks.base` for the shared conventions
(one-hot symbols, int32 classes, float32 masks, zero padding).
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
    make_sampler,
    one_hot,
    steps,
    symbol_task,
)

__all__ = [
    "adding",
    "associative_recall",
    "copy_memory",
    "delayed_recall",
    "selective_copy",
    "temporal_order",
]


def adding(length: int = 150, variable_length: bool = False, min_length: int | None = None) -> Task:
    """The adding problem, in the variant of Arjovsky, Shah & Bengio (2016).

    Arjovsky et al., "Unitary Evolution Recurrent Neural Networks", ICML 2016, section 4.2
    (after Hochreiter & Schmidhuber 1997 and Le et al. 2015). Each input step has two channels::

        inputs[t] = (v_t, m_t),   v_t ~ U[0, 1] i.i.d.,   m_t in {0, 1}
        m_t = 1 at exactly two steps: one uniform in [0, L // 2), one uniform in [L // 2, L)
        target = sum_t v_t m_t    (in [0, 2])

    with L the valid length of the example. Many-to-one regression with MSE. Baseline: always
    predicting 1 (the mean of the target) gives MSE = Var(U1 + U2) = 1/6 ~= 0.167.

    A memoryless predictor that sees the last step does slightly better: the second marker
    falls on the last step with probability ``1 / ceil(L / 2)``, and then predicting
    ``v_{L-1} + 1/2`` leaves MSE = Var(U1) = 1/12, so its MSE is
    ``1/6 - 1 / (12 ceil(L / 2))`` (0.150 at L = 10, 0.160 at L = 25, 0.1656 at L = 150;
    below 1/6 by a relative ``1 / (2 ceil(L / 2)) ~= 1 / L``). The baseline stays 1/6, the
    figure of the papers; at small L a model must get below the smaller figure to have used
    the past.

    Args:
      length: T, the (maximum) sequence length, >= 2.
      variable_length: if True each example has a length L uniform on ``[min_length, length]``;
        steps past L are zeros (both channels).
      min_length: the shortest length with ``variable_length`` (default 2).

    Returns:
      A many_to_one `Task`: inputs ``[B, T, 2]``, targets ``[B, 1]`` float32, mask ``[B]``.

    Example:
      >>> task = adding(length=50)
      >>> batch = task.sample(jax.random.key(0), 4)   # targets [4, 1]
    """
    where = "adding"
    min_len, max_len = length_range(where, length, variable_length, min_length, minimum=2)
    t = steps(max_len)

    def example(key: jax.Array) -> Batch:
        k_len, k_val, k_first, k_second = jax.random.split(key, 4)
        n = draw_length(k_len, min_len, max_len)
        valid = t < n
        values = jax.random.uniform(k_val, (max_len,), dtype=jnp.float32)
        values = jnp.where(valid, values, jnp.float32(0.0))
        half = n // 2
        first = jax.random.randint(k_first, (), 0, half, dtype=jnp.int32)
        second = jax.random.randint(k_second, (), half, n, dtype=jnp.int32)
        marker = (t == first) | (t == second)
        inputs = jnp.stack([values, marker.astype(jnp.float32)], axis=-1)
        target = jnp.sum(jnp.where(marker, values, jnp.float32(0.0)), keepdims=True)
        return Batch(inputs, target, jnp.ones((), jnp.float32), n)

    return Task(
        name=where,
        sample=make_sampler(where, example),
        input_size=2,
        output_size=1,
        pattern="many_to_one",
        loss="mse",
        metric="mse",
        baseline=1.0 / 6.0,
    )


def copy_memory(delay: int = 100, num_symbols: int = 8, copy_length: int = 10) -> Task:
    """The copy memory task of Arjovsky, Shah & Bengio (2016), section 4.1.

    Alphabet (input and output classes): 0 = blank, 1..S = data symbols (S = ``num_symbols``,
    8 in the paper), S + 1 = delimiter. With K = ``copy_length`` (10) and delay T::

        input  = K symbols uniform on 1..S,  T - 1 blanks,  delimiter,  K blanks   (T + 2K steps)
        target = T + K blanks,  then the K input symbols in order

    The loss is cross-entropy over all T + 2K steps (mask all ones), blanks included, as the
    papers train it (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016); the delimiter class
    is never a target. The accuracy counts the K recall steps only (`Task.metric_mask`): over
    all steps, predicting blank everywhere would already score (T + K) / (T + 2K) (0.825 for
    T = 20, K = 10) without remembering anything, whereas on the recall steps chance is 1/S.
    Baseline (the paper's): predict blank for the first T + K steps and a uniform distribution
    over the S symbols for the last K, which costs ``K ln S / (T + 2K)`` nats per step
    (``10 ln 8 / (T + 20)`` for the paper's setting).

    Args:
      delay: T, the number of steps between the end of the symbols and the delimiter + 1.
      num_symbols: S, the number of data symbols.
      copy_length: K, the number of symbols to copy.

    Returns:
      A many_to_many `Task`: inputs ``[B, T + 2K, S + 2]``, targets ``[B, T + 2K]``;
      ``metric_mask(batch)`` is ``[B, T + 2K]``, 1.0 on the last K steps.
    """
    where = "copy_memory"
    delay = check_int(where, "delay", delay, 1)
    num_symbols = check_int(where, "num_symbols", num_symbols, 1)
    k = check_int(where, "copy_length", copy_length, 1)
    total = delay + 2 * k
    vocab = num_symbols + 2
    delimiter = num_symbols + 1

    def example(key: jax.Array) -> Batch:
        symbols = jax.random.randint(key, (k,), 1, num_symbols + 1, dtype=jnp.int32)
        ids = jnp.zeros((total,), jnp.int32).at[:k].set(symbols)
        ids = ids.at[k + delay - 1].set(delimiter)
        targets = jnp.zeros((total,), jnp.int32).at[total - k :].set(symbols)
        return Batch(
            one_hot(ids, vocab),
            targets,
            jnp.ones((total,), jnp.float32),
            jnp.asarray(total, jnp.int32),
        )

    recall = (steps(total) >= total - k).astype(jnp.float32)

    def recall_steps(batch: Batch) -> jax.Array:
        return batch.mask * jnp.broadcast_to(recall, batch.mask.shape)

    return symbol_task(
        where,
        example,
        input_size=vocab,
        output_size=vocab,
        pattern="many_to_many",
        baseline=k * math.log(num_symbols) / total,
        metric_mask=recall_steps,
    )


_ORDER_WINDOWS = {
    # Hochreiter & Schmidhuber (1997), experiment 6a (4 classes) and 6b (8 classes), as
    # fractions of the sequence length (their sequences have 100 to 110 steps).
    4: ((0.10, 0.20), (0.50, 0.60)),
    8: ((0.10, 0.20), (0.33, 0.43), (0.66, 0.76)),
}


def temporal_order(
    length: int = 100,
    num_classes: int = 4,
    variable_length: bool = False,
    min_length: int | None = None,
) -> Task:
    """The temporal order problem of Hochreiter & Schmidhuber (1997), experiments 6a and 6b.

    Hochreiter & Schmidhuber, "Long Short-Term Memory", Neural Computation 9(8), 1997,
    section 5.6. Input symbols (one-hot, 8 classes): 0..3 = distractors a, b, c, d; 4 = X;
    5 = Y; 6 = B (start); 7 = E (end). A sequence of L steps starts with B, ends with E, and is
    otherwise uniform distractors, except for n = 2 (4 classes) or n = 3 (8 classes) relevant
    symbols, each X or Y uniformly, at one step drawn uniformly from each window::

        4 classes: t1 in [0.10 M, 0.20 M], t2 in [0.50 M, 0.60 M]
        8 classes: t1 in [0.10 M, 0.20 M], t2 in [0.33 M, 0.43 M], t3 in [0.66 M, 0.76 M]

    with M the shortest length (rounded to the nearest step). The paper draws L uniformly from
    100 to 110 per sequence (``length=110, variable_length=True, min_length=100``), with the
    windows [10, 20], [50, 60] and [10, 20], [33, 43], [66, 76] for every L, which M = 100
    gives; with a fixed length, M = L = ``length``. The class is the order of the relevant
    symbols read as a binary number, X = 0 and Y = 1 (XX = 0, XY = 1, YX = 2, YY = 3, ...).
    Many-to-one cross-entropy on the output at step L - 1 (the E). Baseline: the class prior
    is uniform, so a memoryless predictor scores ``ln(num_classes)``.

    Args:
      length: T, the (maximum) sequence length, >= 10.
      num_classes: 4 (two relevant symbols) or 8 (three).
      variable_length: if True each example has a length L uniform on
        ``[min_length, length]``; steps past L are zeros.
      min_length: the shortest length with ``variable_length`` (default 10).

    Returns:
      A many_to_one `Task`: inputs ``[B, T, 8]``, targets ``[B]`` int32, length ``[B]``.

    Example:
      >>> task = temporal_order(length=110, variable_length=True, min_length=100)  # 6a
    """
    where = "temporal_order"
    min_len, max_len = length_range(where, length, variable_length, min_length, minimum=10)
    if (
        not isinstance(num_classes, int)
        or isinstance(num_classes, bool)
        or num_classes not in (4, 8)
    ):
        raise ValueError(
            f"{where}: `num_classes` must be 4 (experiment 6a) or 8 (experiment 6b), "
            f"got {num_classes!r}."
        )
    windows = tuple(
        (math.floor(lo * min_len + 0.5), math.floor(hi * min_len + 0.5))
        for lo, hi in _ORDER_WINDOWS[num_classes]
    )
    n = len(windows)
    t = steps(max_len)

    def example(key: jax.Array) -> Batch:
        k_ids, k_pos, k_bits = jax.random.split(key, 3)
        num = draw_length(jax.random.fold_in(key, 1), min_len, max_len)
        valid = t < num
        ids = jax.random.randint(k_ids, (max_len,), 0, 4, dtype=jnp.int32)
        ids = jnp.where(t == num - 1, 7, ids.at[0].set(6))
        bits = jax.random.randint(k_bits, (n,), 0, 2, dtype=jnp.int32)
        pos_keys = jax.random.split(k_pos, n)
        label = jnp.zeros((), jnp.int32)
        for i, (lo, hi) in enumerate(windows):
            pos = jax.random.randint(pos_keys[i], (), lo, hi + 1, dtype=jnp.int32)
            ids = jnp.where(t == pos, 4 + bits[i], ids)
            label = 2 * label + bits[i]
        return Batch(one_hot(ids, 8, valid), label, jnp.ones((), jnp.float32), num)

    return symbol_task(
        where,
        example,
        input_size=8,
        output_size=num_classes,
        pattern="many_to_one",
        baseline=math.log(num_classes),
    )


def delayed_recall(length: int = 100, lag: int = 10, num_symbols: int = 8) -> Task:
    """Delayed recall (echo): output at step t the input symbol of step t - L.

    A fixed-lag echo as used for memory-capacity studies (e.g. the delayed-recall / "echo"
    tasks of Jaeger 2002, "Short term memory in echo state networks", GMD Report 152, here on
    discrete symbols)::

        x_t uniform on 0..S-1 i.i.d.,   y_t = x_{t-L} for t >= L   (mask 0 for t < L)

    Many-to-many cross-entropy over the masked steps. Baseline: x_{t-L} is independent of
    everything a memoryless predictor sees, so the best it can do is ``ln S`` nats.

    Args:
      length: T, the sequence length, > ``lag``.
      lag: L >= 1.
      num_symbols: S >= 2.

    Returns:
      A many_to_many `Task`: inputs ``[B, T, S]``, targets ``[B, T]`` int32, mask ``[B, T]``.
    """
    where = "delayed_recall"
    lag = check_int(where, "lag", lag, 1)
    length = check_int(where, "length", length, lag + 1, hint="The length must exceed the lag.")
    num_symbols = check_int(where, "num_symbols", num_symbols, 2)
    t = steps(length)

    def example(key: jax.Array) -> Batch:
        ids = jax.random.randint(key, (length,), 0, num_symbols, dtype=jnp.int32)
        targets = jnp.where(t >= lag, jnp.roll(ids, lag), 0)
        mask = (t >= lag).astype(jnp.float32)
        return Batch(one_hot(ids, num_symbols), targets, mask, jnp.asarray(length, jnp.int32))

    return symbol_task(
        where,
        example,
        input_size=num_symbols,
        output_size=num_symbols,
        pattern="many_to_many",
        baseline=math.log(num_symbols),
    )


def selective_copy(length: int = 100, copy_length: int = 10, num_symbols: int = 8) -> Task:
    """The selective copying task of Gu & Dao (2023), "Mamba", section 3.1.

    Alphabet (input and output classes): 0 = blank (noise), 1..S = data symbols, S + 1 = the
    "copy now" marker. A sequence has ``length + K`` steps (K = ``copy_length``)::

        steps [0, length): K data symbols (uniform on 1..S) at K distinct uniformly random
                           positions, in order; blanks elsewhere
        steps [length, length + K): the marker; targets = the K data symbols in order

    Unlike `copy_memory` the symbols' positions vary, so the model must select what to store.
    Cross-entropy on the last K steps only (mask elsewhere 0). Baseline: ``ln S`` (uniform
    guess on each copied symbol; the memoryless predictor sees only the marker).

    Args:
      length: the number of steps holding the symbols and the noise, >= ``copy_length``.
      copy_length: K >= 1.
      num_symbols: S >= 2.

    Returns:
      A many_to_many `Task`: inputs ``[B, length + K, S + 2]``, targets ``[B, length + K]``.
    """
    where = "selective_copy"
    k = check_int(where, "copy_length", copy_length, 1)
    length = check_int(where, "length", length, k, hint="The length must hold copy_length symbols.")
    num_symbols = check_int(where, "num_symbols", num_symbols, 2)
    total = length + k
    vocab = num_symbols + 2

    def example(key: jax.Array) -> Batch:
        k_pos, k_sym = jax.random.split(key)
        positions = jnp.sort(jax.random.permutation(k_pos, length)[:k]).astype(jnp.int32)
        symbols = jax.random.randint(k_sym, (k,), 1, num_symbols + 1, dtype=jnp.int32)
        ids = jnp.zeros((total,), jnp.int32).at[positions].set(symbols)
        ids = ids.at[length:].set(num_symbols + 1)
        targets = jnp.zeros((total,), jnp.int32).at[length:].set(symbols)
        mask = (steps(total) >= length).astype(jnp.float32)
        return Batch(one_hot(ids, vocab), targets, mask, jnp.asarray(total, jnp.int32))

    return symbol_task(
        where,
        example,
        input_size=vocab,
        output_size=vocab,
        pattern="many_to_many",
        baseline=math.log(num_symbols),
    )


def associative_recall(num_pairs: int = 8, num_keys: int = 26, num_values: int = 10) -> Task:
    """Associative retrieval of Ba, Hinton, Mnih, Leibo & Ionescu (2016), "Using Fast Weights
    to Attend to the Recent Past", section 4.1 (``c9k8j3f1??c -> 8``).

    Input alphabet (one-hot, ``K + V + 1`` classes): keys 0..K-1 (letters), values
    K..K+V-1 (digits), and ``?`` = K + V. A sequence of ``2P + 3`` steps (P = ``num_pairs``)::

        k_1 v_1 k_2 v_2 ... k_P v_P ? ? q

    with P distinct keys drawn uniformly from the K, values uniform on the V (with
    repetition), and the query q uniform among the P keys. Target: the value paired with q, as
    a class in ``[0, V)``. Many-to-one cross-entropy. Baseline: ``ln V`` (the value is uniform
    and independent of the query alone).

    Args:
      num_pairs: P >= 1.
      num_keys: K >= P (26 letters in the paper).
      num_values: V >= 2 (10 digits in the paper).

    Returns:
      A many_to_one `Task`: inputs ``[B, 2P + 3, K + V + 1]``, targets ``[B]`` int32.
    """
    where = "associative_recall"
    p = check_int(where, "num_pairs", num_pairs, 1)
    num_keys = check_int(where, "num_keys", num_keys, p, hint="The keys of a sequence differ.")
    num_values = check_int(where, "num_values", num_values, 2)
    vocab = num_keys + num_values + 1
    total = 2 * p + 3

    def example(key: jax.Array) -> Batch:
        k_keys, k_vals, k_query = jax.random.split(key, 3)
        keys = jax.random.permutation(k_keys, num_keys)[:p].astype(jnp.int32)
        values = jax.random.randint(k_vals, (p,), 0, num_values, dtype=jnp.int32)
        query = jax.random.randint(k_query, (), 0, p, dtype=jnp.int32)
        pairs = jnp.stack([keys, num_keys + values], axis=1).reshape(2 * p)
        question = jnp.full((2,), num_keys + num_values, jnp.int32)
        ids = jnp.concatenate([pairs, question, keys[query][None]])
        return Batch(
            one_hot(ids, vocab),
            values[query],
            jnp.ones((), jnp.float32),
            jnp.asarray(total, jnp.int32),
        )

    return symbol_task(
        where,
        example,
        input_size=vocab,
        output_size=num_values,
        pattern="many_to_one",
        baseline=math.log(num_values),
    )
