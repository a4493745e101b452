"""The task contract: `Batch`, `Task`, and the helpers every task factory shares.

A task is a pure, jittable sampler plus the metadata a model builder and a training loop need::

    task = seqjax.tasks.adding(length=150)
    batch = jax.jit(task.sample, static_argnums=1)(key, 32)   # Batch of 32 examples
    batch.inputs.shape   # (32, 150, 2)

Every sampler is written for one example (``example(key) -> Batch`` with unbatched fields) and
batched with ``jax.vmap`` over ``jax.random.split(key, batch_size)``, so each example has its
own key and no key is used twice.

Conventions shared by all tasks:

* symbols are one-hot encoded in ``inputs`` (float32); padded input steps are all-zero vectors;
* classification targets are int32 class indices in ``[0, output_size)``; regression targets are
  float32 ``[..., D]`` with ``D = output_size``;
* ``mask`` is float32, 1.0 where a target position counts; losses are masked means over the
  whole batch (token-weighted), so ``baseline`` is in those units; the metric counts the same
  positions unless the task sets ``Task.metric_mask`` (copy memory: the recall steps only);
* ``length`` is the valid input length (int32); inputs past it are zeros;
* ``baseline`` is the loss of a predictor without memory: one that sees only the current input
  step and its position t (or, where the factory says so, a trivial predictor such as a
  constant, persistence, or the unigram distribution). A model that does not beat it has not
  used the past.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from seqjax.checks import check_bool, check_int

__all__ = ["LOSSES", "METRICS", "PATTERNS", "Batch", "Task"]

PATTERNS = ("many_to_one", "many_to_many", "seq2seq")
LOSSES = ("mse", "cross_entropy")
METRICS = ("mse", "accuracy")


class Batch(NamedTuple):
    """A batch of examples of one task.

    Attributes:
      inputs: ``[B, T, F]`` float32; symbols one-hot encoded, padded steps all zeros.
      targets: many_to_many ``[B, T]`` int32 classes or ``[B, T, D]`` float32; many_to_one
        ``[B]`` int32 or ``[B, D]`` float32; seq2seq ``[B, T_out]`` int32.
      mask: float32, 1.0 where a target position counts: ``[B, T]`` / ``[B]`` / ``[B, T_out]``.
      length: ``[B]`` int32, the valid input length (``<= T``).
    """

    inputs: jax.Array
    targets: jax.Array
    mask: jax.Array
    length: jax.Array


class Task(NamedTuple):
    """A synthetic task: a pure sampler plus metadata.

    Attributes:
      name: the registry name (``seqjax.tasks.TASKS``).
      sample: ``sample(key, batch_size) -> Batch``; jittable with ``batch_size`` static
        (``jax.jit(task.sample, static_argnums=1)``).
      input_size: F, the size of one input step.
      output_size: the number of classes (cross-entropy) or the regression dimension D (MSE).
      pattern: ``"many_to_one"``, ``"many_to_many"`` or ``"seq2seq"``.
      loss: ``"mse"`` or ``"cross_entropy"`` (masked mean over the batch).
      metric: the name of the task metric (``"mse"`` or ``"accuracy"``).
      baseline: the loss of the best memoryless or trivial predictor, in the units of ``loss``
        (nats for cross-entropy); each factory's docstring says which predictor.
      sample_eval: ``sample_eval(key, batch_size) -> Batch`` for evaluation, where a task
        holds out data from training (a later segment of a stored series, unseen phases);
        None: evaluation samples with ``sample`` and fresh keys.
      metric_mask: ``metric_mask(batch) -> mask``, shaped like ``batch.mask``: the positions
        the metric (accuracy) counts, where they are fewer than those the loss trains on;
        None: the metric counts ``batch.mask``, like the loss.
    """

    name: str
    sample: Callable[[jax.Array, int], Batch]
    input_size: int
    output_size: int
    pattern: str
    loss: str
    metric: str
    baseline: float
    sample_eval: Callable[[jax.Array, int], Batch] | None = None
    metric_mask: Callable[[Batch], jax.Array] | None = None


# ----------------------------------------------------------------------------- argument checks


def length_range(
    where: str,
    length: object,
    variable_length: object,
    min_length: object,
    minimum: int,
) -> tuple[int, int]:
    """Checks the length arguments of a factory and returns ``(min_len, max_len)``.

    Args:
      where: the factory name, for error messages.
      length: the (maximum) sequence length T.
      variable_length: whether each example draws its length uniformly from
        ``[min_length, length]``.
      min_length: the shortest length when ``variable_length``; None means ``minimum``.
      minimum: the smallest length the task is defined for.

    Returns:
      ``(min_len, max_len)``; equal when ``variable_length`` is False.
    """
    max_len = check_int(where, "length", length, minimum)
    check_bool(where, "variable_length", variable_length)
    if not variable_length:
        if min_length is not None:
            raise ValueError(
                f"{where}: `min_length`={min_length!r} is only used with variable_length=True; "
                f"pass variable_length=True or drop min_length."
            )
        return max_len, max_len
    if min_length is None:
        return minimum, max_len
    min_len = check_int(where, "min_length", min_length, minimum)
    if min_len > max_len:
        raise ValueError(
            f"{where}: `min_length` must be <= length={max_len}, got min_length={min_len}."
        )
    return min_len, max_len


def check_batch_size(where: str, batch_size: object) -> int:
    """Checks the static batch size of a sampler call."""
    hint = "It fixes the array shapes, so under jit mark it static: "
    hint += "jax.jit(task.sample, static_argnums=1)."
    return check_int(where, "batch_size", batch_size, 1, hint=hint)


# ----------------------------------------------------------------------------- sampling helpers


def draw_length(key: jax.Array, min_len: int, max_len: int) -> jax.Array:
    """The valid length of one example: uniform on ``[min_len, max_len]`` (int32 scalar)."""
    if min_len == max_len:
        return jnp.asarray(max_len, dtype=jnp.int32)
    return jax.random.randint(key, (), min_len, max_len + 1, dtype=jnp.int32)


def steps(num: int) -> jax.Array:
    """``arange(num)`` as int32 (time indices)."""
    return jnp.arange(num, dtype=jnp.int32)


def one_hot(ids: jax.Array, num_classes: int, valid: jax.Array | None = None) -> jax.Array:
    """One-hot float32 ``[..., num_classes]``; rows where ``valid`` is False are all zeros."""
    x = jax.nn.one_hot(ids, num_classes, dtype=jnp.float32)
    if valid is not None:
        x = jnp.where(valid[..., None], x, jnp.float32(0.0))
    return x


def make_sampler(
    where: str, example: Callable[[jax.Array], Any]
) -> Callable[[jax.Array, int], Any]:
    """Batches a one-example sampler: one key per example, from ``jax.random.split``."""

    def sample(key: jax.Array, batch_size: int) -> Any:
        batch_size = check_batch_size(where, batch_size)
        return jax.vmap(example)(jax.random.split(key, batch_size))

    sample.__name__ = f"{where}_sample"
    sample.__doc__ = f"``sample(key, batch_size) -> Batch`` for the {where} task."
    return sample


def symbol_task(
    where: str,
    example: Callable[[jax.Array], Any],
    *,
    input_size: int,
    output_size: int,
    pattern: str,
    baseline: float,
    metric_mask: Callable[[Batch], jax.Array] | None = None,
) -> Task:
    """A task that predicts symbols (cross-entropy loss, accuracy metric), named ``where`` and
    sampled by batching the one-example sampler ``example`` (`make_sampler`); ``metric_mask``
    as `Task.metric_mask`."""
    return Task(
        name=where,
        sample=make_sampler(where, example),
        input_size=input_size,
        output_size=output_size,
        pattern=pattern,
        loss="cross_entropy",
        metric="accuracy",
        baseline=baseline,
        metric_mask=metric_mask,
    )
