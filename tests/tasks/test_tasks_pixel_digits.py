"""`pixel_digits`: scikit-learn's 8x8 digits read one pixel per step, plain and permuted.

The references are scikit-learn's own arrays (``load_digits().images``, row-major) and NumPy
counts; the task's arrays are only ever compared against them.
"""

from __future__ import annotations

import functools
import math
import sys
from collections import Counter
from pathlib import Path

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits

import seqjax
from seqjax import tasks
from seqjax.tasks import images

ROOT = Path(__file__).resolve().parents[2]
NUM_IMAGES, NUM_EVAL = 1797, 297


@pytest.fixture(scope="module")
def digits():
    """``(pixels [1797, 64] float64 row-major from the 8x8 images, labels [1797])``."""
    data = load_digits()
    return data.images.reshape(NUM_IMAGES, 64), np.asarray(data.target)


@pytest.fixture(scope="module")
def plain():
    return tasks.pixel_digits()


@pytest.fixture(scope="module")
def permuted():
    return tasks.pixel_digits(permute=True, permutation_seed=3)


@functools.cache
def _jitted(sample):
    return jax.jit(sample, static_argnums=1)


def _draw(sample, seed, batch_size=128):
    return jax.tree.map(np.asarray, _jitted(sample)(jax.random.key(seed), batch_size))


def _rows_of(pixels, digits_pixels):
    """The row of ``digits_pixels`` equal to each row of ``pixels`` (exactly one each)."""
    index = {row.tobytes(): i for i, row in enumerate(digits_pixels.astype(np.float32))}
    return np.asarray([index[row.tobytes()] for row in pixels.astype(np.float32)])


def test_metadata_shapes_and_values(plain):
    assert plain.name == "pixel_digits" and plain.pattern == "many_to_one"
    assert (plain.input_size, plain.output_size) == (1, 10)
    assert (plain.loss, plain.metric) == ("cross_entropy", "accuracy")
    for sample in (plain.sample, plain.sample_eval):
        batch = _draw(sample, 0)
        assert batch.inputs.shape == (128, 64, 1) and batch.inputs.dtype == np.float32
        assert batch.targets.shape == (128,) and batch.targets.dtype == np.int32
        assert np.all((batch.targets >= 0) & (batch.targets < 10))
        np.testing.assert_array_equal(batch.mask, np.ones(128, np.float32))
        np.testing.assert_array_equal(batch.length, np.full(128, 64, np.int32))
        levels = batch.inputs * 16  # normalised: the grey levels 0..16 divided by 16
        assert batch.inputs.min() >= 0.0 and batch.inputs.max() <= 1.0
        np.testing.assert_array_equal(levels, np.round(levels))
    raw = _draw(tasks.pixel_digits(normalise=False).sample, 0)
    np.testing.assert_array_equal(raw.inputs, _draw(plain.sample, 0).inputs * 16)
    assert raw.inputs.max() == 16.0


def test_examples_are_the_digits_row_by_row_with_their_labels(plain, digits):
    pixels, labels = digits
    batch = _draw(plain.sample, 1)
    rows = _rows_of(batch.inputs[..., 0] * 16, pixels)
    np.testing.assert_array_equal(batch.targets, labels[rows])


def test_the_permutation_is_fixed_and_its_inverse_recovers_the_image(plain, permuted):
    order = images.digits_split(permute=True, permutation_seed=3).order
    np.testing.assert_array_equal(order, np.random.default_rng(3).permutation(64))
    assert not np.array_equal(order, np.arange(64))
    np.testing.assert_array_equal(images.digits_split().order, np.arange(64))
    other = images.digits_split(permute=True, permutation_seed=4).order
    assert not np.array_equal(order, other)
    inverse = np.argsort(order)
    for sample_permuted, sample_plain in (
        (permuted.sample, plain.sample),
        (permuted.sample_eval, plain.sample_eval),
    ):
        for seed in (0, 1):  # both tasks draw the same images from the same key
            p, q = _draw(sample_permuted, seed), _draw(sample_plain, seed)
            np.testing.assert_array_equal(p.targets, q.targets)
            np.testing.assert_array_equal(p.inputs[:, inverse], q.inputs)  # same order each batch
            np.testing.assert_array_equal(p.inputs, q.inputs[:, order])


def test_train_and_evaluation_images_are_disjoint_and_fixed(plain, digits):
    pixels, labels = digits
    split = images.digits_split()
    assert len(split.train_ids) == NUM_IMAGES - NUM_EVAL and len(split.eval_ids) == NUM_EVAL
    assert set(split.train_ids).isdisjoint(split.eval_ids)
    assert set(split.train_ids) | set(split.eval_ids) == set(range(NUM_IMAGES))
    np.testing.assert_array_equal(split.train_inputs * 16, pixels[split.train_ids])
    np.testing.assert_array_equal(split.eval_labels, labels[split.eval_ids])
    permuted = images.digits_split(permute=True, permutation_seed=5, normalise=False)
    np.testing.assert_array_equal(permuted.eval_ids, split.eval_ids)  # one split for all options
    train_rows = set(split.train_ids)
    eval_rows = set(split.eval_ids)
    # sample draws training images only; a sample_eval batch of 297 is every held-out image once
    drawn = _rows_of(_draw(plain.sample, 2, 512).inputs[..., 0] * 16, pixels)
    assert set(drawn) <= train_rows
    whole = _draw(plain.sample_eval, 2, NUM_EVAL)
    rows = _rows_of(whole.inputs[..., 0] * 16, pixels)
    assert sorted(rows) == sorted(eval_rows)
    np.testing.assert_array_equal(whole.targets, labels[rows])
    twice = _rows_of(_draw(plain.sample_eval, 3, 2 * NUM_EVAL).inputs[..., 0] * 16, pixels)
    assert Counter(twice.tolist()) == dict.fromkeys(eval_rows, 2)
    # no held-out image appears in training under another row either
    train_images = {row.tobytes() for row in pixels[split.train_ids]}
    assert not any(row.tobytes() in train_images for row in pixels[split.eval_ids])


@pytest.mark.parametrize(("permute", "seed"), [(False, 0), (True, 0), (True, 3)])
def test_baseline_is_the_entropy_of_the_label_given_the_last_pixel(permute, seed, digits):
    pixels, labels = digits
    split = images.digits_split(permute=permute, permutation_seed=seed)
    order = np.random.default_rng(seed).permutation(64) if permute else np.arange(64)
    last = pixels[split.train_ids, order[-1]]
    y = labels[split.train_ids]
    n = len(y)
    entropy = 0.0
    for value in set(last.tolist()):
        counts = Counter(y[last == value].tolist())
        total = sum(counts.values())
        entropy -= sum(c / n * math.log(c / total) for c in counts.values())
    task = tasks.pixel_digits(permute=permute, permutation_seed=seed)
    assert task.baseline == pytest.approx(entropy, rel=1e-12)
    assert 0.0 < task.baseline <= math.log(10)
    if not permute:  # the bottom-right pixel says a little: below chance's ln 10
        assert task.baseline < math.log(10) - 0.05


BAD = [
    (dict(permute=1), TypeError, r"`permute` must be True or False, got 1"),
    (dict(normalise="yes"), TypeError, r"`normalise` must be True or False"),
    (
        dict(permute=True, permutation_seed=-1),
        ValueError,
        r"`permutation_seed` must be an int >= 0",
    ),
    (dict(permutation_seed=1.5), TypeError, r"`permutation_seed` must be an int, got 1.5"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        tasks.pixel_digits(**kwargs)


def test_bad_batch_sizes_and_unknown_arguments(plain):
    with pytest.raises(ValueError, match=r"pixel_digits_eval: `batch_size` must be an int >= 1"):
        plain.sample_eval(jax.random.key(0), 0)
    with pytest.raises(TypeError, match=r"\['length'\].*'permute'"):
        tasks.get_task("pixel_digits", length=64)


def test_without_scikit_learn_the_error_names_the_extra(monkeypatch):
    images._load_digits.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import now fails
    try:
        with pytest.raises(ImportError, match=r"pip install 'seqjax\[digits\]'"):
            tasks.pixel_digits()
    finally:
        images._load_digits.cache_clear()


def test_a_config_trains_and_evaluates_on_the_whole_held_out_set():
    overrides = [
        "task.permute=true",
        "model.hidden_size=8",
        "train.steps=3",
        "train.chunk_size=3",
        "train.eval_every=null",
        "train.batch_size=8",
    ]
    with jax.numpy_dtype_promotion("standard"):  # Optax's Adam mixes dtypes
        result = seqjax.run(
            ROOT / "configs" / "pixel_digits" / "lstm.yaml", overrides=overrides, progress=False
        )
    summary = result.summary
    assert summary["steps"] == 3
    assert summary["baseline"] == pytest.approx(tasks.pixel_digits(permute=True).baseline)
    (accuracy,) = np.atleast_1d(summary["eval"]["accuracy"])
    correct = accuracy * NUM_EVAL  # one batch of 297: every held-out image once
    assert 0.0 <= accuracy <= 1.0 and correct == pytest.approx(round(correct), abs=1e-3)
    assert np.all(np.isfinite(result.metrics["loss"]))
