"""The task contract, for every task: shapes, dtypes, masks, keys, jit, and the baseline.

The baseline of each task is checked by simulation: the best memoryless predictor (one that
sees only the current input step and its position) is estimated from the sampled data, or the
trivial predictor named in the factory's docstring is evaluated on it.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from task_cases import CASES, case_task

from seqjax import losses, tasks
from seqjax.experiment.builders import make_eval_fn
from seqjax.models import Model
from seqjax.tasks.text import load_corpus

# ----------------------------------------------------------------------------- generic contract


def test_registry_holds_every_factory():
    assert isinstance(tasks.TASKS, dict)
    for name, factory in tasks.TASKS.items():
        assert callable(factory)
        assert factory().name == name


def test_metadata(case_id, draw):
    task, batch = draw(case_id)
    assert isinstance(task, tasks.Task)
    assert task.pattern in tasks.PATTERNS
    assert task.loss in tasks.LOSSES
    assert task.metric in tasks.METRICS
    assert (task.loss == "mse") == (task.metric == "mse")
    assert isinstance(task.input_size, int) and isinstance(task.output_size, int)
    assert isinstance(task.baseline, float) and 0.0 < task.baseline < math.inf
    assert batch.inputs.shape[-1] == task.input_size


def test_shapes_and_dtypes(case_id, draw):
    task, batch = draw(case_id)
    b, t, _ = batch.inputs.shape
    assert batch.inputs.dtype == np.float32
    assert batch.mask.dtype == np.float32
    assert batch.length.dtype == np.int32 and batch.length.shape == (b,)
    classes = task.loss == "cross_entropy"
    target_dtype = np.int32 if classes else np.float32
    assert batch.targets.dtype == target_dtype
    if task.pattern == "many_to_one":
        assert batch.mask.shape == (b,)
        assert batch.targets.shape == ((b,) if classes else (b, task.output_size))
    elif task.pattern == "many_to_many":
        assert batch.mask.shape == (b, t)
        assert batch.targets.shape == ((b, t) if classes else (b, t, task.output_size))
    else:
        t_out = batch.targets.shape[1]
        assert batch.targets.shape == (b, t_out) and batch.mask.shape == (b, t_out)


def test_mask_length_and_padding(case_id, draw):
    task, batch = draw(case_id)
    t = batch.inputs.shape[1]
    assert np.all((batch.length >= 1) & (batch.length <= t))
    assert np.all((batch.mask == 0.0) | (batch.mask == 1.0))
    steps = np.arange(t)[None, :]
    padded = steps >= batch.length[:, None]  # [B, T]
    assert np.all(batch.inputs[padded] == 0.0), "padded input steps must be exactly zero"
    if task.pattern == "many_to_one":
        assert np.all(batch.mask == 1.0)
    elif task.pattern == "many_to_many":
        assert np.all(batch.mask[padded] == 0.0)
    else:  # seq2seq: targets y_1..y_L, EOS; nothing counts past position L
        out_steps = np.arange(batch.targets.shape[1])[None, :]
        past = out_steps > batch.length[:, None]
        assert np.all(batch.mask[past] == 0.0)
        assert np.all(batch.targets[past] == tasks.PAD)
        assert np.all(batch.mask[~past] == 1.0)
    assert batch.mask.sum() > 0


def test_values_in_range(case_id, draw):
    task, batch = draw(case_id)
    assert np.all(np.isfinite(batch.inputs))
    if task.loss == "cross_entropy":  # one-hot symbols and class targets
        valid = np.arange(batch.inputs.shape[1])[None, :] < batch.length[:, None]
        assert np.all((batch.inputs == 0.0) | (batch.inputs == 1.0))
        np.testing.assert_array_equal(batch.inputs.sum(-1), valid.astype(np.float32))
        assert np.all((batch.targets >= 0) & (batch.targets < task.output_size))
    else:
        assert np.all(np.isfinite(batch.targets))


def test_same_key_same_batch_other_key_other_batch(case_id, draw):
    _, first = draw(case_id, seed=0)
    _, sample, batch_size = case_task(case_id)
    again = sample(jax.random.key(0), batch_size)
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, np.asarray(y))
    _, other = draw(case_id, seed=1)
    assert not np.array_equal(first.inputs, other.inputs)


def test_metric_counts_the_loss_mask_unless_the_task_says_otherwise(case_id, draw):
    task, batch = draw(case_id)
    if task.metric_mask is None:  # every task but copy memory: the metric's default
        assert case_id != "copy_memory"
        counted = batch.mask
    else:
        counted = np.asarray(task.metric_mask(batch))
        assert counted.shape == batch.mask.shape
        assert np.all(counted <= batch.mask) and 0 < counted.sum() < batch.mask.sum()
    if task.loss == "cross_entropy":
        logits = np.eye(task.output_size, dtype=np.float32)[batch.targets] + np.float32(0.5)
        wrong = np.flatnonzero(batch.mask.reshape(-1) > 0)[::2]  # every other counted step
        logits = logits.reshape(-1, task.output_size)
        logits[wrong] = np.roll(logits[wrong], 1, axis=-1)
        logits = logits.reshape(*batch.targets.shape, task.output_size)
        by_default = losses.task_loss(task.loss, logits, batch.targets, batch.mask)[1]
        given = losses.task_loss(task.loss, logits, batch.targets, batch.mask, counted)[1]
        right = np.argmax(logits, -1) == batch.targets
        expected = np.sum(right * (counted > 0)) / np.sum(counted > 0)
        assert float(given["accuracy"]) == pytest.approx(expected, rel=1e-6)
        if task.metric_mask is None:
            assert float(by_default["accuracy"]) == float(given["accuracy"])


def test_evaluation_samples_with_sample_eval_where_a_task_has_one():
    task = tasks.sine_forecast(length=6)
    assert task.sample_eval is not None and tasks.mackey_glass(length=6).sample_eval is not None
    for case_id, (name, _, _) in CASES.items():  # the synthetic tasks sample afresh
        if name not in ("sine_forecast", "mackey_glass", "char_lm"):
            assert case_task(case_id)[0].sample_eval is None, case_id

    def constant(key, batch_size):  # targets all 3.0: a zero forecast scores exactly 9.0
        batch = task.sample(key, batch_size)
        return batch._replace(targets=jnp.full_like(batch.targets, 3.0))

    def apply(params, inputs, length):
        del params, length
        return jnp.zeros_like(inputs), None

    model = Model(None, apply, task.pattern, 1, 1, lambda: None)
    eval_fn = make_eval_fn(model, task._replace(sample_eval=constant), batch_size=4, num_batches=2)
    assert float(eval_fn(None)["loss"]) == 9.0
    on_train = make_eval_fn(model, task._replace(sample_eval=None), batch_size=4, num_batches=2)
    assert float(on_train(None)["loss"]) < 9.0


def test_jitted_sampler_does_not_retrace_and_takes_legacy_keys():
    task = tasks.parity(length=6, variable_length=True)
    sample = jax.jit(chex.assert_max_traces(task.sample, n=1), static_argnums=1)
    first = sample(jax.random.PRNGKey(0), 3)  # a raw uint32 key works too
    second = sample(jax.random.PRNGKey(1), 3)  # a new key does not retrace
    assert first.inputs.shape == second.inputs.shape == (3, 6, 2)


# ----------------------------------------------------------------------------- baselines


def _conditional_entropy(y: np.ndarray, *conditions: np.ndarray) -> float:
    """Plug-in H(Y | C) in nats with the Miller-Madow bias correction."""
    c = np.stack([np.asarray(x).reshape(-1) for x in conditions], axis=1)
    _, cell = np.unique(c, axis=0, return_inverse=True)
    cell = cell.reshape(-1)
    _, y_code = np.unique(np.asarray(y).reshape(-1), return_inverse=True)
    counts = np.zeros((cell.max() + 1, y_code.max() + 1))
    np.add.at(counts, (cell, y_code.reshape(-1)), 1.0)
    n_c = counts.sum(1)
    p = counts / n_c[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        h_c = -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=1)
    h_c = h_c + ((counts > 0).sum(1) - 1) / (2.0 * n_c)
    return float(np.sum(n_c * h_c) / n_c.sum())


def _symbols(inputs: np.ndarray) -> np.ndarray:
    """Input symbol ids, -1 on padded (all-zero) steps."""
    return np.where(inputs.sum(-1) > 0, inputs.argmax(-1), -1)


MEMORYLESS_CE = [
    "copy_memory",
    "temporal_order4",
    "temporal_order8",
    "temporal_order_var",
    "delayed_recall",
    "selective_copy",
    "associative_recall",
    "flip_flop",
    "parity_var",
    "parity_running",
    "future_tagging_var",
]


@pytest.mark.parametrize("ce_case", MEMORYLESS_CE)
def test_baseline_is_the_best_memoryless_classifier(ce_case, draw):
    """H(y_t | t, x_t) over the counted positions, estimated from the samples."""
    task, batch = draw(ce_case)
    x = _symbols(batch.inputs)
    if task.pattern == "many_to_one":  # the last valid step
        last = x[np.arange(x.shape[0]), batch.length - 1]
        estimate = _conditional_entropy(batch.targets, last, batch.length)
    else:
        counted = batch.mask > 0
        t = np.broadcast_to(np.arange(x.shape[1])[None, :], x.shape)
        estimate = _conditional_entropy(batch.targets[counted], t[counted], x[counted])
    assert estimate == pytest.approx(task.baseline, abs=0.03, rel=0.02)


@pytest.mark.parametrize("seq_case", ["reverse", "sort"])
def test_seq2seq_baseline_source_blind_decoder(seq_case, draw):
    """``ln S`` per symbol and 0 on EOS, pooled over the counted tokens."""
    task, batch = draw(seq_case)
    counted = batch.mask > 0
    symbols = task.output_size - 1
    loss = np.sum((batch.targets[counted] != tasks.EOS) * math.log(symbols)) / counted.sum()
    assert loss == pytest.approx(task.baseline, rel=0.02)


def test_adding_baseline_predicting_one(draw):
    for case_id in ("adding", "adding_var"):
        task, batch = draw(case_id)
        mse = np.mean((batch.targets[:, 0] - 1.0) ** 2)
        # the MSE of 2048 samples has a standard deviation of about 0.0044
        assert mse == pytest.approx(task.baseline, abs=0.02)
        assert task.baseline == pytest.approx(1.0 / 6.0)


def _mse(a, b):
    return float(np.mean((a - b) ** 2))


def test_sine_baselines_match_simulation(draw):
    task, batch = draw("sine_forecast")
    _, kwargs, _ = CASES["sine_forecast"]
    h, sigma = kwargs["horizon"], kwargs["noise_std"]
    # independent closed forms, with E[a^2] for a ~ U[0.5, 1.5] and the default f range
    mean_a2 = 1.0 / 12.0 + 1.0
    f = np.linspace(0.01, 0.1, 100_001)
    mean_cos = np.mean(np.cos(2 * np.pi * f * h))
    persistence = 3 * mean_a2 * (1 - mean_cos) + 2 * sigma**2
    zero = 3 * mean_a2 / 2 + sigma**2
    x, y = batch.inputs[..., 0], batch.targets[..., 0]
    assert _mse(x, y) == pytest.approx(persistence, rel=0.06)
    assert _mse(0.0, y) == pytest.approx(zero, rel=0.06)
    assert task.baseline == pytest.approx(min(persistence, zero), rel=1e-4)
    # the held-out phases have the same first two moments, so the same baseline
    held_out = task.sample_eval(jax.random.key(0), batch.inputs.shape[0])
    x, y = np.asarray(held_out.inputs[..., 0]), np.asarray(held_out.targets[..., 0])
    assert _mse(x, y) == pytest.approx(persistence, rel=0.06)
    assert _mse(0.0, y) == pytest.approx(zero, rel=0.06)


def test_mackey_glass_baseline_matches_simulated_persistence(draw):
    task, batch = draw("mackey_glass")
    assert _mse(batch.inputs, batch.targets) == pytest.approx(task.baseline, rel=0.15)


def test_sensor_baselines_match_simulation(draw):
    task, batch = draw("sensor_anomaly")
    sigma = 0.05
    f = np.linspace(0.01, 0.1, 100_001)
    persistence = 1 - np.mean(np.cos(2 * np.pi * f)) + 2 * sigma**2
    assert _mse(batch.inputs, batch.targets) == pytest.approx(persistence, rel=0.1)
    assert _mse(0.0, batch.targets) == pytest.approx(0.5 + sigma**2, rel=0.1)
    assert task.baseline == pytest.approx(min(persistence, 0.5 + sigma**2), rel=1e-4)


def test_char_lm_baseline_is_unigram_cross_entropy(draw):
    task, batch = draw("char_lm")
    corpus = load_corpus("train")
    counts = np.bincount(corpus.ids, minlength=task.output_size)
    p = counts / counts.sum()
    assert -np.sum(p[p > 0] * np.log(p[p > 0])) == pytest.approx(task.baseline, rel=1e-6)
    sampled = -np.mean(np.log(p[batch.targets]))  # 4096 characters, overlapping windows
    assert sampled == pytest.approx(task.baseline, rel=0.05)


# ----------------------------------------------------------------------------- errors


def test_get_task_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown task 'addding'") as info:
        tasks.get_task("addding")
    for name in tasks.TASKS:
        assert name in str(info.value)


def test_get_task_unknown_argument_lists_the_accepted_ones():
    with pytest.raises(TypeError, match=r"\['lenght'\].*'length'"):
        tasks.get_task("adding", lenght=10)


BAD_ARGUMENTS = [
    (tasks.adding, dict(length=1), r"`length` must be an int >= 2, got 1"),
    (tasks.adding, dict(length=10, min_length=3), r"`min_length`=3 is only used with"),
    (tasks.adding, dict(length=10, variable_length=True, min_length=11), r"min_length=11"),
    (tasks.copy_memory, dict(delay=0), r"`delay` must be an int >= 1, got 0"),
    (tasks.temporal_order, dict(num_classes=6), r"`num_classes` must be 4 .* or 8 .*got 6"),
    (tasks.temporal_order, dict(length=9), r"`length` must be an int >= 10, got 9"),
    (tasks.delayed_recall, dict(length=5, lag=5), r"`length` must be an int >= 6, got 5"),
    (tasks.selective_copy, dict(length=3, copy_length=4), r"`length` must be an int >= 4"),
    (tasks.associative_recall, dict(num_pairs=5, num_keys=4), r"`num_keys` must be an int >= 5"),
    (tasks.flip_flop, dict(length=9), r"`length` must be even .*got 9"),
    (tasks.flip_flop, dict(p_ignore=1.0), r"`p_ignore` must be in \[0.0, 1.0\), got 1.0"),
    (tasks.parity, dict(length=0), r"`length` must be an int >= 1, got 0"),
    (tasks.future_tagging, dict(length=3, lookahead=3), r"`length` must be an int >= 4"),
    (tasks.reverse, dict(num_symbols=1), r"`num_symbols` must be an int >= 2, got 1"),
    (tasks.sine_forecast, dict(noise_std=-1.0), r"`noise_std` must be in \[0.0, inf\]"),
    (tasks.sine_forecast, dict(min_freq=0.2, max_freq=0.1), r"`max_freq` must be in \[0.2"),
    (tasks.mackey_glass, dict(length=10, num_points=5), r"`num_points` must be an int >= 11"),
    (tasks.char_lm, dict(split="test"), r"`split` must be one of .*got 'test'"),
    (tasks.sensor_anomaly, dict(num_channels=0), r"`num_channels` must be an int >= 1, got 0"),
    (tasks.sensor_anomaly_eval, dict(length=5, max_duration=6), r"`max_duration` must be <= "),
]


@pytest.mark.parametrize(("factory", "kwargs", "message"), BAD_ARGUMENTS)
def test_bad_arguments_raise_value_error(factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        factory(**kwargs)


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match=r"`length` must be an int, got 10.0"):
        tasks.adding(length=10.0)
    with pytest.raises(TypeError, match="`variable_length` must be True or False"):
        tasks.parity(variable_length=1)
    with pytest.raises(TypeError, match="static_argnums=1"):
        jax.jit(tasks.adding(length=4).sample)(jax.random.key(0), jnp.int32(2))
