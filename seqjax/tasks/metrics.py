"""Detection metrics for scored steps: AUROC, and precision and recall at a threshold.

Pure and jittable; scores and labels of any shape are flattened, and an optional ``mask``
leaves out positions (padding) without changing shapes::

    scores = jnp.sum((predictions - batch.targets) ** 2, axis=-1)   # [B, T] forecasting error
    seqjax.tasks.auroc(scores, labels, mask=batch.mask)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["PrecisionRecall", "auroc", "precision_recall"]


def _flat(scores, labels, mask, where):
    scores = jnp.asarray(scores)
    labels = jnp.asarray(labels)
    if scores.shape != labels.shape:
        raise ValueError(
            f"{where}: `scores` and `labels` must have the same shape, got {scores.shape} and "
            f"{labels.shape}."
        )
    if mask is None:
        mask = jnp.ones(scores.shape, bool)
    mask = jnp.asarray(mask)
    if mask.shape != scores.shape:
        raise ValueError(
            f"{where}: `mask` must have the shape of `scores` {scores.shape}, got {mask.shape}."
        )
    scores = scores.reshape(-1).astype(jnp.float32)
    labels = labels.reshape(-1).astype(bool)
    mask = mask.reshape(-1).astype(bool)
    positive = labels & mask
    negative = ~labels & mask
    return scores, positive, negative


def auroc(scores: jax.Array, labels: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """The area under the ROC curve: the probability that a positive outscores a negative.

    Equal to the Mann-Whitney statistic with ties counted one half::

        AUROC = (1 / (P N)) sum_{i positive} sum_{j negative} ([s_i > s_j] + 0.5 [s_i = s_j])

    computed in O(n log n) by sorting. NaN when there is no positive or no negative.

    Args:
      scores: ``[...]`` anomaly scores (higher = more anomalous).
      labels: ``[...]``, nonzero for positives.
      mask: ``[...]`` or None; positions where it is zero are ignored.

    Returns:
      A float32 scalar in [0, 1] (or NaN).
    """
    scores, positive, negative = _flat(scores, labels, mask, "auroc")
    order = jnp.argsort(scores)
    sorted_scores = scores[order]
    neg_sorted = negative[order].astype(jnp.float32)
    cum_neg = jnp.concatenate([jnp.zeros((1,), jnp.float32), jnp.cumsum(neg_sorted)])
    below = cum_neg[jnp.searchsorted(sorted_scores, scores, side="left")]  # negatives < s
    at_or_below = cum_neg[jnp.searchsorted(sorted_scores, scores, side="right")]  # <= s
    wins = below + 0.5 * (at_or_below - below)
    pos = positive.astype(jnp.float32)
    num_pos = jnp.sum(pos)
    num_neg = jnp.sum(negative.astype(jnp.float32))
    return jnp.sum(pos * wins) / (num_pos * num_neg)


class PrecisionRecall(NamedTuple):
    """Precision and recall of the flagged positions (float32 scalars)."""

    precision: jax.Array
    recall: jax.Array


def precision_recall(
    scores: jax.Array,
    labels: jax.Array,
    threshold: float | jax.Array,
    mask: jax.Array | None = None,
) -> PrecisionRecall:
    """Precision and recall when positions with ``score >= threshold`` are flagged.

    ``precision = TP / (TP + FP)`` and ``recall = TP / (TP + FN)``; each is 0 when its
    denominator is 0 (nothing flagged, or no positive).

    Args:
      scores: ``[...]`` anomaly scores.
      labels: ``[...]``, nonzero for positives.
      threshold: flag positions with ``scores >= threshold``.
      mask: ``[...]`` or None; positions where it is zero are ignored.

    Returns:
      `PrecisionRecall` ``(precision, recall)``.
    """
    scores, positive, negative = _flat(scores, labels, mask, "precision_recall")
    flagged = scores >= jnp.asarray(threshold, jnp.float32)
    tp = jnp.sum((flagged & positive).astype(jnp.float32))
    fp = jnp.sum((flagged & negative).astype(jnp.float32))
    fn = jnp.sum((~flagged & positive).astype(jnp.float32))
    precision = jnp.where(tp + fp > 0, tp / jnp.maximum(tp + fp, 1.0), 0.0)
    recall = jnp.where(tp + fn > 0, tp / jnp.maximum(tp + fn, 1.0), 0.0)
    return PrecisionRecall(precision, recall)
