"""Images read one pixel per step: `pixel_digits`, the small stand-in for sequential MNIST.

Sequential MNIST (Le et al. 2015, "A Simple Way to Initialize Recurrent Networks of Rectified
Linear Units", section 4.2) feeds a 28 x 28 image to a recurrent network one pixel per step,
T = 784, and classifies it from the final state; the permuted variant (same paper; Arjovsky et
al. 2016, "Unitary Evolution Recurrent Neural Networks") reads the pixels in a fixed random
order, which spreads strokes that are neighbours in the image across the whole sequence.
`pixel_digits` does the same with the 8 x 8 digits that scikit-learn ships
(``sklearn.datasets.load_digits``: 1797 images, read from the installed package, no download),
so T = 64 and a run fits on a CPU.

scikit-learn is an optional dependency (``pip install 'seqjax[digits]'``), imported only when
the task is built.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.checks import check_bool, check_int
from seqjax.tasks.base import Batch, Task, check_batch_size, make_sampler

__all__ = ["DIGITS_NUM_EVAL", "DIGITS_SPLIT_SEED", "DigitsSplit", "digits_split", "pixel_digits"]

DIGITS_NUM_EVAL = 297
"""Images held out for evaluation; the other 1500 of the 1797 train."""

DIGITS_SPLIT_SEED = 0
"""Seed of the fixed train/evaluation split (``numpy.random.default_rng``)."""

_SIDE = 8
_LEVELS = 16  # the digits' pixel values are the integers 0 .. 16


class DigitsSplit(NamedTuple):
    """The digits as `pixel_digits` reads them, split into training and held-out images.

    Attributes:
      train_inputs: ``[1500, 64]`` float32, each image's pixels in reading order.
      train_labels: ``[1500]`` int32, the digit 0..9.
      eval_inputs: ``[297, 64]`` float32, the held-out images.
      eval_labels: ``[297]`` int32.
      train_ids: ``[1500]`` int, each training image's row in ``load_digits()``.
      eval_ids: ``[297]`` int, each held-out image's row (disjoint from ``train_ids``).
      order: ``[64]`` int, the reading order: step t reads pixel ``order[t]`` of the row-major
        image (``arange(64)`` unpermuted), so ``inputs[:, argsort(order)]`` is the image.
    """

    train_inputs: np.ndarray
    train_labels: np.ndarray
    eval_inputs: np.ndarray
    eval_labels: np.ndarray
    train_ids: np.ndarray
    eval_ids: np.ndarray
    order: np.ndarray


@functools.lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images [1797, 64] float64 in 0..16, labels [1797] int)``, read-only and cached."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError(
            "pixel_digits: the task reads the 8x8 digits that scikit-learn ships, and "
            f"scikit-learn is not installed ({e}); install it with pip install 'seqjax[digits]' "
            "(or pip install scikit-learn)."
        ) from None
    images, labels = load_digits(return_X_y=True)
    images = np.asarray(images, np.float64)
    labels = np.asarray(labels, np.int64)
    for a in (images, labels):
        a.setflags(write=False)
    return images, labels


def digits_split(
    permute: bool = False, permutation_seed: int = 0, normalise: bool = True
) -> DigitsSplit:
    """The training and held-out images of `pixel_digits`, as NumPy arrays.

    Args:
      permute: read the pixels in the fixed order ``default_rng(permutation_seed)
        .permutation(64)`` instead of row by row.
      permutation_seed: the seed of that order, an int >= 0.
      normalise: divide the grey levels (0..16) by 16, to ``[0, 1]``.

    Returns:
      `DigitsSplit`; the split is the same for every argument (`DIGITS_SPLIT_SEED`).
    """
    where = "pixel_digits"
    check_bool(where, "permute", permute)
    seed = check_int(where, "permutation_seed", permutation_seed, 0)
    check_bool(where, "normalise", normalise)
    images, labels = _load_digits()
    n = images.shape[0]
    rows = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(n)
    train_ids, eval_ids = np.sort(rows[: n - DIGITS_NUM_EVAL]), np.sort(rows[n - DIGITS_NUM_EVAL :])
    num_pixels = _SIDE * _SIDE
    order = (
        np.random.default_rng(seed).permutation(num_pixels) if permute else np.arange(num_pixels)
    )
    pixels = images[:, order] / (_LEVELS if normalise else 1)
    pixels = pixels.astype(np.float32)
    return DigitsSplit(
        pixels[train_ids],
        labels[train_ids].astype(np.int32),
        pixels[eval_ids],
        labels[eval_ids].astype(np.int32),
        train_ids,
        eval_ids,
        order,
    )


def _last_step_entropy(inputs: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """H(label | last input value) in nats over the given examples: the cross-entropy of the
    best predictor that sees only the final step (its value; the position is always T - 1)."""
    values, which = np.unique(inputs[:, -1], return_inverse=True)
    counts = np.zeros((values.size, num_classes))
    np.add.at(counts, (which, labels), 1.0)
    p = counts / counts.sum(axis=1, keepdims=True)
    terms = np.where(counts > 0, counts * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return float(-terms.sum() / labels.size)


def pixel_digits(permute: bool = False, permutation_seed: int = 0, normalise: bool = True) -> Task:
    """Classify an 8 x 8 handwritten digit read one pixel per step (T = 64).

    The images are scikit-learn's digits (``sklearn.datasets.load_digits``; the UCI
    optical-recognition set: 1797 images of 8 x 8 pixels, integer grey levels 0..16, classes
    0..9). Step t reads pixel ``order[t]``: row by row (``order = arange(64)``), or, with
    ``permute``, in one fixed random order ``numpy.random.default_rng(permutation_seed)
    .permutation(64)``, the same for every image and batch (permuted sequential MNIST in
    miniature)::

        inputs[t] = image.reshape(64)[order[t]] / 16    (t < 64; no division without normalise)
        target    = the digit, read from the final state (many-to-one)

    Held-out images: a fixed split (``default_rng(DIGITS_SPLIT_SEED).permutation(1797)``), the
    same for every option, puts 1500 images in training and `DIGITS_NUM_EVAL` = 297 aside.
    ``sample`` draws training images uniformly with replacement, one key per example.
    ``sample_eval`` draws only held-out images, without replacement within a batch: a batch of
    297 is every held-out image once (in an order set by the key), so ``log.eval_batch_size:
    297`` with one evaluation batch scores the whole held-out set exactly; a larger batch goes
    round the set again in the same order. `digits_split` returns the arrays.

    Baseline: the cross-entropy of the best predictor that sees only the final step,
    ``H(label | last pixel value)`` over the training images, exactly (at most ln 10, the
    loss of chance; 2.21 nats row by row, where the last pixel is the bottom-right corner,
    mostly blank).

    Args:
      permute: read the pixels in a fixed random order instead of row by row.
      permutation_seed: the seed of that order, an int >= 0 (used only with ``permute``).
      normalise: scale the grey levels to ``[0, 1]`` (divide by 16); False keeps 0..16.

    Returns:
      A many_to_one `Task`: inputs ``[B, 64, 1]`` float32, targets ``[B]`` int32 in 0..9,
      cross-entropy loss, accuracy metric.

    Raises:
      ImportError: scikit-learn is not installed (``pip install 'seqjax[digits]'``).
    """
    where = "pixel_digits"
    split = digits_split(permute, permutation_seed, normalise)
    num_classes = 10
    num_steps = split.order.size
    train = (jnp.asarray(split.train_inputs), jnp.asarray(split.train_labels))
    held_out = (jnp.asarray(split.eval_inputs), jnp.asarray(split.eval_labels))

    def batch_of(pixels: jax.Array, labels: jax.Array) -> Batch:
        """Images ``[..., 64]`` and labels ``[...]`` as a `Batch` with one feature per step."""
        lead = labels.shape
        return Batch(
            pixels[..., None],
            labels,
            jnp.ones(lead, jnp.float32),
            jnp.full(lead, num_steps, jnp.int32),
        )

    def example(key: jax.Array) -> Batch:
        i = jax.random.randint(key, (), 0, train[1].shape[0], dtype=jnp.int32)
        return batch_of(train[0][i], train[1][i])

    def sample_eval(key: jax.Array, batch_size: int) -> Batch:
        batch_size = check_batch_size(f"{where}_eval", batch_size)
        num = held_out[1].shape[0]
        rows = jax.random.permutation(key, num)[jnp.arange(batch_size) % num]
        return batch_of(held_out[0][rows], held_out[1][rows])

    baseline = _last_step_entropy(split.train_inputs, split.train_labels, num_classes)
    return Task(
        name=where,
        sample=make_sampler(where, example),
        input_size=1,
        output_size=num_classes,
        pattern="many_to_one",
        loss="cross_entropy",
        metric="accuracy",
        baseline=baseline,
        sample_eval=sample_eval,
    )
