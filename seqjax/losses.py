"""Masked losses and metrics for sequence models (whitepaper section 7).

Every function takes predictions with leading "position" axes ``[...]`` and a trailing class or
feature axis, and a ``mask`` over the positions (bool, or 0/1 floats as tasks produce; nonzero
means valid):

* a sequence loss on the final output (many-to-one): positions are ``[B]`` (or ``[]`` for one
  example) and the mask marks valid examples (None: all);
* a per-timestep loss (many-to-many): positions are ``[T]`` for one sequence or ``[B, T]`` for a
  batch, and the mask marks the valid (unpadded) steps.

``reduction="mean"`` averages over the valid positions (token-weighted over the whole batch,
the usual choice for language modelling and bits per symbol); ``"sum"`` sums them
(``L = sum_t L_t``, the whitepaper's total loss). With no valid position the mean is 0.

Padded positions contribute exactly nothing, to the value and to the gradient: their inputs are
replaced by a harmless constant before any arithmetic, so even NaN or Inf predictions at padded
steps cannot leak a NaN into the gradient (``0 * inf``).

    loss = softmax_cross_entropy(logits, labels, mask)          # logits [B, T, K], labels [B, T]
    acc = accuracy(logits, labels, mask)
    bps = bits_per_symbol(logits, labels, mask)
    loss, aux = task_loss("cross_entropy", logits, labels, mask)   # a task's loss and metrics
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp

__all__ = [
    "REDUCTIONS",
    "TASK_LOSSES",
    "accuracy",
    "bits_per_symbol",
    "masked_reduce",
    "mse",
    "softmax_cross_entropy",
    "task_loss",
]

Reduction = Literal["mean", "sum"]
REDUCTIONS = ("mean", "sum")
TASK_LOSSES = ("mse", "cross_entropy")


def _check_reduction(reduction: str, fn: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{fn}: unknown reduction={reduction!r}; expected one of {REDUCTIONS}")


def _check_mask(mask: jax.Array | None, positions: tuple[int, ...], fn: str) -> jax.Array:
    if mask is None:
        return jnp.ones(positions, dtype=bool)
    mask = jnp.asarray(mask)
    if mask.shape != positions:
        raise ValueError(
            f"{fn}: mask has shape {mask.shape}, expected {positions} (the leading axes of the "
            f"predictions; one entry per position, True where valid)"
        )
    return mask.astype(bool)


def masked_reduce(values: jax.Array, mask: jax.Array | None, reduction: Reduction = "mean"):
    """Sum or mean of ``values [...]`` over the positions where ``mask [...]`` is True.

    Masked entries are replaced by zero with ``jnp.where`` (not multiplied by the mask), so a
    NaN or Inf there changes neither the value nor the gradient.
    """
    _check_reduction(reduction, "masked_reduce")
    values = jnp.asarray(values)
    mask = _check_mask(mask, values.shape, "masked_reduce")
    total = jnp.sum(jnp.where(mask, values, jnp.zeros_like(values)))
    if reduction == "sum":
        return total
    count = jnp.sum(mask).astype(values.dtype)
    return total / jnp.maximum(count, jnp.ones_like(count))


def _safe(x: jax.Array, mask: jax.Array, fill: float | int = 0) -> jax.Array:
    """``x`` with masked positions replaced by ``fill`` (mask broadcast over trailing axes)."""
    m = mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim))
    return jnp.where(m, x, jnp.full_like(x, fill))


def mse(
    predictions: jax.Array,
    targets: jax.Array,
    mask: jax.Array | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Masked mean squared error.

    The error at one position is the mean over the feature axis of ``(prediction - target)^2``;
    positions are then reduced over the valid ones.

    Args:
      predictions: ``[..., D]``.
      targets: ``[..., D]``, same shape.
      mask: ``[...]`` bool, True at valid positions; None: all valid.
      reduction: ``"mean"`` over valid positions or ``"sum"``.

    Returns:
      A scalar.
    """
    predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
    if predictions.shape != targets.shape or predictions.ndim < 1:
        raise ValueError(
            f"mse: predictions {predictions.shape} and targets {targets.shape} must have the "
            f"same shape [..., D] (a trailing feature axis; use shape [..., 1] for scalars)"
        )
    mask = _check_mask(mask, predictions.shape[:-1], "mse")
    diff = _safe(predictions, mask) - _safe(targets, mask)
    return masked_reduce(jnp.mean(jnp.square(diff), axis=-1), mask, reduction)


def _log_probs_of_targets(logits: jax.Array, labels: jax.Array, mask: jax.Array, fn: str):
    """Per-position ``sum_k y_k log softmax(logits)_k`` for int labels or probability targets."""
    logits = _safe(logits, mask)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    if jnp.issubdtype(labels.dtype, jnp.integer):
        if labels.shape != logits.shape[:-1]:
            raise ValueError(
                f"{fn}: integer labels have shape {labels.shape}, expected {logits.shape[:-1]} "
                f"(the logits' shape {logits.shape} without the class axis)"
            )
        labels = _safe(labels, mask)
        return jnp.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
    if labels.shape != logits.shape:
        raise ValueError(
            f"{fn}: probability targets have shape {labels.shape}, expected the logits' shape "
            f"{logits.shape} (or integer class labels of shape {logits.shape[:-1]})"
        )
    labels = _safe(labels, mask)
    return jnp.sum(labels * log_p, axis=-1)


def softmax_cross_entropy(
    logits: jax.Array,
    labels: jax.Array,
    mask: jax.Array | None = None,
    reduction: Reduction = "mean",
) -> jax.Array:
    """Masked softmax cross-entropy, in nats: ``-sum_k y_k log softmax(logits)_k`` per position.

    Args:
      logits: ``[..., K]`` unnormalised log-probabilities.
      labels: integer class labels ``[...]`` or probability targets ``[..., K]`` (one-hot or
        soft).
      mask: ``[...]`` bool, True at valid positions; None: all valid.
      reduction: ``"mean"`` over valid positions or ``"sum"``.

    Returns:
      A scalar.
    """
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    if logits.ndim < 1:
        raise ValueError(f"softmax_cross_entropy: logits must be [..., K], got {logits.shape}")
    mask = _check_mask(mask, logits.shape[:-1], "softmax_cross_entropy")
    log_p = _log_probs_of_targets(logits, labels, mask, "softmax_cross_entropy")
    return masked_reduce(-log_p, mask, reduction)


def accuracy(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Fraction of valid positions whose arg-max class equals the label.

    Args:
      logits: ``[..., K]``.
      labels: integer labels ``[...]`` or probability targets ``[..., K]`` (their arg-max is
        the label).
      mask: ``[...]`` bool; None: all valid.

    Returns:
      A scalar in [0, 1] (0 when no position is valid), the dtype of ``logits``.
    """
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    mask = _check_mask(mask, logits.shape[:-1], "accuracy")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        labels = jnp.argmax(labels, axis=-1)
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"accuracy: labels have shape {labels.shape}, expected {logits.shape[:-1]}"
        )
    correct = (jnp.argmax(logits, axis=-1).astype(labels.dtype) == labels).astype(logits.dtype)
    return jax.lax.stop_gradient(masked_reduce(correct, mask, "mean"))


def bits_per_symbol(
    logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None
) -> jax.Array:
    """Mean cross-entropy over valid positions in bits: ``CE_nats / ln 2``.

    Args and shapes as `softmax_cross_entropy`.
    """
    ce = softmax_cross_entropy(logits, labels, mask, reduction="mean")
    return ce / jnp.asarray(math.log(2.0), dtype=ce.dtype)


def task_loss(
    kind: str,
    outputs: jax.Array,
    targets: jax.Array,
    mask: jax.Array,
    metric_mask: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The loss a task trains with, and its metrics, over a batch of model outputs.

    Args:
      kind: the task's loss, ``"mse"`` or ``"cross_entropy"`` (``Task.loss``).
      outputs: ``[B, O]`` (many-to-one) or ``[B, T, O]`` (per step) model outputs.
      targets: for ``"mse"`` floats shaped like ``outputs``, or without its trailing axis
        (a trailing axis of one is added; cast to the dtype of ``outputs``); for
        ``"cross_entropy"`` int classes ``[B]`` / ``[B, T]`` or probabilities like ``outputs``.
      mask: ``[B]`` / ``[B, T]``, positive where the target counts (as tasks make it).
      metric_mask: shaped like ``mask``, positive where the accuracy counts
        (``Task.metric_mask``, e.g. copy memory's recall steps); None: ``mask``.

    Returns:
      ``(loss, aux)``: the mean over valid positions, and ``{}`` for ``"mse"`` or
      ``{"accuracy": ...}`` (over ``metric_mask``) for ``"cross_entropy"``.

    Example:
      >>> loss, aux = task_loss("cross_entropy", logits, batch.targets, batch.mask)
    """
    valid = mask > 0
    if kind == "mse":
        if targets.ndim == outputs.ndim - 1:
            targets = targets[..., None]
        return mse(outputs, targets.astype(outputs.dtype), valid), {}
    if kind == "cross_entropy":
        loss = softmax_cross_entropy(outputs, targets, valid)
        counted = valid if metric_mask is None else metric_mask > 0
        return loss, {"accuracy": accuracy(outputs, targets, counted)}
    raise ValueError(f"task_loss: unknown loss kind {kind!r}; expected one of {list(TASK_LOSSES)}")
