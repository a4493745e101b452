"""Each task's targets follow its definition, checked against an independent NumPy reference."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from task_cases import CASES

from seqjax import tasks
from seqjax.experiment.builders import make_loss_fn
from seqjax.models import Model
from seqjax.tasks.forecasting import mackey_glass_series


def _ids(inputs: np.ndarray) -> np.ndarray:
    """Symbol ids of one-hot inputs, -1 on padded steps."""
    return np.where(inputs.sum(-1) > 0, inputs.argmax(-1), -1)


def test_adding_target_is_the_sum_of_the_two_marked_values(draw):
    for case_id in ("adding", "adding_var"):
        _, batch = draw(case_id)
        values, markers = batch.inputs[..., 0], batch.inputs[..., 1]
        assert np.all((values >= 0.0) & (values < 1.0))
        for b in range(64):
            n = batch.length[b]
            marked = np.flatnonzero(markers[b])
            assert marked.shape == (2,)
            assert 0 <= marked[0] < n // 2 <= marked[1] < n
        np.testing.assert_allclose(
            batch.targets[:, 0], np.sum(values * markers, axis=1), rtol=1e-6, atol=1e-6
        )
    assert len(np.unique(draw("adding_var")[1].length)) > 10


def test_copy_memory_outputs_the_input_symbols_after_the_delimiter(draw):
    _, batch = draw("copy_memory")
    _, kw, _ = CASES["copy_memory"]
    delay, k, s = kw["delay"], kw["copy_length"], kw["num_symbols"]
    ids = _ids(batch.inputs)
    assert ids.shape[1] == delay + 2 * k
    symbols = ids[:, :k]
    assert np.all((symbols >= 1) & (symbols <= s))
    np.testing.assert_array_equal(ids[:, k + delay - 1], s + 1)  # the delimiter
    rest = np.delete(ids, [*range(k), k + delay - 1], axis=1)
    assert np.all(rest == 0)  # blanks
    assert np.all(batch.targets[:, : delay + k] == 0)
    np.testing.assert_array_equal(batch.targets[:, delay + k :], symbols)


@pytest.mark.parametrize("length", [4, 5, 10])
def test_adding_memoryless_predictor_beats_one_sixth_by_the_stated_amount(length):
    """Monte-Carlo check of the docstring: seeing only the last step (and L), predicting
    ``v + 1/2`` when it carries the second marker and 1 otherwise scores
    ``1/6 - 1 / (12 ceil(L / 2))``."""
    batch = jax.tree.map(np.asarray, tasks.adding(length=length).sample(jax.random.key(7), 40_000))
    value, marker = batch.inputs[:, -1, 0], batch.inputs[:, -1, 1]
    half = math.ceil(length / 2)
    assert marker.mean() == pytest.approx(1.0 / half, abs=0.01)
    prediction = np.where(marker > 0, value + 0.5, 1.0)
    mse = np.mean((batch.targets[:, 0] - prediction) ** 2)
    # the MSE of 40000 samples has a standard deviation below 0.001
    assert mse == pytest.approx(1.0 / 6.0 - 1.0 / (12.0 * half), abs=0.004)
    assert mse < tasks.adding(length=length).baseline - 0.01


@pytest.mark.parametrize("order_case", ["temporal_order4", "temporal_order8", "temporal_order_var"])
def test_temporal_order_label_is_the_order_of_x_and_y(order_case, draw):
    task, batch = draw(order_case)
    kwargs = CASES[order_case][1]
    shortest = kwargs.get("min_length", kwargs["length"])  # the windows scale with it
    windows = {
        4: [(0.1, 0.2), (0.5, 0.6)],
        8: [(0.1, 0.2), (0.33, 0.43), (0.66, 0.76)],
    }[task.output_size]
    ids = _ids(batch.inputs)
    rows = np.arange(ids.shape[0])
    assert np.all(ids[:, 0] == 6) and np.all(ids[rows, batch.length - 1] == 7)
    for b in range(ids.shape[0]):
        relevant = np.flatnonzero(ids[b] >= 4)[1:-1]  # X, Y between B and E
        assert len(relevant) == len(windows)
        label = 0
        for pos, (lo, hi) in zip(relevant, windows, strict=True):
            assert round(lo * shortest) <= pos <= round(hi * shortest)
            label = 2 * label + (ids[b, pos] - 4)
        assert batch.targets[b] == label
    valid = np.arange(ids.shape[1])[None, :] < batch.length[:, None]
    assert np.all(ids[valid] >= 0) and np.all(ids[~valid] == -1)


def test_temporal_order_variable_length_is_the_papers_100_to_110():
    """Experiment 6a: L uniform on 100..110, E at L - 1, zeros after, windows [10, 20] and
    [50, 60] for every L."""
    task = tasks.temporal_order(length=110, variable_length=True, min_length=100)
    batch = jax.tree.map(np.asarray, task.sample(jax.random.key(3), 1100))
    counts = np.bincount(batch.length, minlength=111)[100:]
    assert counts.sum() == 1100 and np.all(counts > 60)  # 100 expected per length
    ids = _ids(batch.inputs)
    rows = np.arange(ids.shape[0])
    np.testing.assert_array_equal(ids[rows, batch.length - 1], 7)
    assert np.all((ids == -1) == (np.arange(110)[None, :] >= batch.length[:, None]))
    marked = ids >= 4
    marked[rows, 0] = marked[rows, batch.length - 1] = False
    first, second = (np.nonzero(marked[:, lo:hi])[1] + lo for lo, hi in ((0, 40), (40, 110)))
    assert first.shape == second.shape == (1100,)
    assert first.min() == 10 and first.max() == 20 and second.min() == 50 and second.max() == 60
    fixed = tasks.temporal_order(length=100)  # the fixed length stays available
    np.testing.assert_array_equal(fixed.sample(jax.random.key(0), 4).length, 100)


def _fixed_output_model(task, outputs_of_inputs) -> Model:
    """A stand-in model whose per-example outputs are a function of the whole input."""

    def apply(params, inputs, length):
        del params, length
        return outputs_of_inputs(inputs), None

    return Model(None, apply, task.pattern, task.input_size, task.output_size, lambda: None)


def test_copy_memory_accuracy_counts_the_recall_steps_only_and_the_loss_all_steps(draw):
    task, batch = draw("copy_memory")
    _, kw, _ = CASES["copy_memory"]
    delay, k, vocab = kw["delay"], kw["copy_length"], task.output_size
    total = delay + 2 * k
    recall = np.broadcast_to(np.arange(total) >= total - k, batch.mask.shape)
    np.testing.assert_array_equal(task.metric_mask(batch), recall.astype(np.float32))
    np.testing.assert_array_equal(batch.mask, 1.0)  # the loss trains on every step

    def blank(inputs):  # blank everywhere: 0.77 of the steps right, none of the recalls
        return jax.nn.one_hot(jnp.zeros(inputs.shape[0], jnp.int32), vocab)

    def oracle(inputs):  # reads the symbols from the whole input
        symbols = jnp.argmax(inputs[:k], axis=-1)
        return jax.nn.one_hot(jnp.zeros(total, jnp.int32).at[total - k :].set(symbols), vocab)

    loss, aux = make_loss_fn(_fixed_output_model(task, blank), task)(None, batch, None)
    assert float(aux["accuracy"]) == 0.0
    # cross-entropy of one-hot logits, blanks right on T + K of the T + 2K steps
    expected = math.log(math.e + vocab - 1) - (delay + k) / total
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    _, aux = make_loss_fn(_fixed_output_model(task, oracle), task)(None, batch, None)
    assert float(aux["accuracy"]) == 1.0


def _window_starts(series: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """The start index of each window ``[N, W]`` in ``series`` (each must occur exactly once)."""
    views = sliding_window_view(series, windows.shape[1])
    starts = [np.flatnonzero(np.all(views == w, axis=1)) for w in windows]
    assert all(s.shape == (1,) for s in starts)
    return np.concatenate(starts)


def test_mackey_glass_evaluation_windows_never_overlap_training_windows(draw):
    task, batch = draw("mackey_glass")
    kwargs = CASES["mackey_glass"][1]
    length, n = kwargs["length"], kwargs["num_points"]
    series = mackey_glass_series(n)
    held_out = jax.tree.map(np.asarray, task.sample_eval(jax.random.key(0), 256))
    span = np.concatenate([batch.inputs[..., 0], batch.targets[:, -1:, 0]], axis=1)  # T + h
    span_eval = np.concatenate([held_out.inputs[..., 0], held_out.targets[:, -1:, 0]], axis=1)
    train_starts = _window_starts(series, span)
    eval_starts = _window_starts(series, span_eval)
    split = n - round(0.2 * n)
    assert np.all(train_starts + length + 1 <= split)  # the last target index < split
    assert np.all(eval_starts >= split)
    assert train_starts.max() > split - 3 * length and eval_starts.min() < split + 3 * length
    with pytest.raises(ValueError, match="evaluation segment 10; each must hold a window"):
        tasks.mackey_glass(length=20, num_points=50, eval_fraction=0.2)


def _fitted_phases(x: np.ndarray) -> np.ndarray:
    """The phase phi in [0, 2 pi) of noise-free windows ``x_t = a sin(w t + phi)`` ``[B, T]``:
    cos w from the recurrence x_{t+1} + x_{t-1} = 2 cos w x_t, then a cos phi and a sin phi
    by least squares on sin(w t) and cos(w t)."""
    x = x.astype(np.float64)
    phases = []
    t = np.arange(x.shape[1])
    for row in x:
        cos_w = np.sum((row[2:] + row[:-2]) * row[1:-1]) / (2.0 * np.sum(row[1:-1] ** 2))
        w = np.arccos(np.clip(cos_w, -1.0, 1.0))
        basis = np.stack([np.sin(w * t), np.cos(w * t)], axis=1)
        (a_cos, a_sin), *_ = np.linalg.lstsq(basis, row, rcond=None)
        phases.append(np.arctan2(a_sin, a_cos) % (2 * np.pi))
    return np.asarray(phases)


def test_sine_evaluation_series_have_phases_training_never_draws():
    task = tasks.sine_forecast(length=32, num_components=1, noise_std=0.0)
    train = np.asarray(task.sample(jax.random.key(0), 256).inputs[..., 0])
    held_out = np.asarray(task.sample_eval(jax.random.key(0), 256).inputs[..., 0])
    quarter = np.pi / 2
    train_phase = _fitted_phases(train) % quarter
    eval_phase = _fitted_phases(held_out) % quarter
    tol = 1e-3  # float32 data; the fit is exact up to rounding
    assert np.all((train_phase < np.pi / 4 + tol) | (train_phase > quarter - tol))
    assert np.all(eval_phase > np.pi / 4 - tol)
    # both halves are used throughout: four quarter turns, the whole of each half
    for phases in (train_phase, eval_phase):
        assert np.ptp(phases[(phases > tol) & (phases < quarter - tol)]) > 0.7


def test_delayed_recall_output_at_t_is_input_at_t_minus_lag(draw):
    _, batch = draw("delayed_recall")
    lag = CASES["delayed_recall"][1]["lag"]
    ids = _ids(batch.inputs)
    np.testing.assert_array_equal(batch.targets[:, lag:], ids[:, :-lag])
    assert np.all(batch.mask[:, :lag] == 0) and np.all(batch.mask[:, lag:] == 1)


def test_selective_copy_outputs_the_scattered_symbols_in_order(draw):
    _, batch = draw("selective_copy")
    kw = CASES["selective_copy"][1]
    length, k, s = kw["length"], kw["copy_length"], kw["num_symbols"]
    ids = _ids(batch.inputs)
    assert np.all(ids[:, length:] == s + 1)
    for b in range(ids.shape[0]):
        data = ids[b, :length][ids[b, :length] != 0]
        assert data.shape == (k,)
        np.testing.assert_array_equal(batch.targets[b, length:], data)
    assert np.all(batch.mask[:, :length] == 0) and np.all(batch.mask[:, length:] == 1)
    first = np.argmax(ids[:, :length] != 0, axis=1)
    assert len(np.unique(first)) > 3  # the positions vary


def test_associative_recall_returns_the_value_of_the_query_key(draw):
    _, batch = draw("associative_recall")
    kw = CASES["associative_recall"][1]
    p, num_keys, num_values = kw["num_pairs"], kw["num_keys"], kw["num_values"]
    ids = _ids(batch.inputs)
    assert np.all(ids[:, 2 * p : 2 * p + 2] == num_keys + num_values)
    for b in range(ids.shape[0]):
        keys, values = ids[b, 0 : 2 * p : 2], ids[b, 1 : 2 * p : 2] - num_keys
        assert len(set(keys)) == p and np.all(keys < num_keys)
        query = ids[b, -1]
        assert batch.targets[b] == values[list(keys).index(query)]


def test_flip_flop_reads_return_the_last_written_bit(draw):
    _, batch = draw("flip_flop")
    w, r, i = 0, 1, 2
    ids = _ids(batch.inputs)
    tokens = np.concatenate([ids, batch.targets[:, -1:]], axis=1)  # the whole string
    assert np.all(tokens[:, 0] == w) and np.all(tokens[:, -2] == r)
    for b in range(tokens.shape[0]):
        instr, bits = tokens[b, 0::2], tokens[b, 1::2] - 3
        assert np.all(np.isin(instr, [w, r, i])) and np.all(np.isin(bits, [0, 1]))
        last = None
        for op, bit in zip(instr, bits, strict=True):
            if op == w:
                last = bit
            elif op == r:
                assert bit == last
    np.testing.assert_array_equal(batch.mask, (ids == r).astype(np.float32))
    freq = np.mean(tokens[:, 2:-2:2] == i)
    assert freq == pytest.approx(0.5, abs=0.03)  # p_ignore


def test_parity_targets(draw):
    _, batch = draw("parity_var")
    bits = _ids(batch.inputs).clip(0)
    np.testing.assert_array_equal(batch.targets, bits.sum(1) % 2)
    _, batch = draw("parity_running")
    bits = _ids(batch.inputs).clip(0)
    valid = batch.mask > 0
    np.testing.assert_array_equal(batch.targets[valid], (np.cumsum(bits, 1) % 2)[valid])


def test_future_tagging_label_needs_the_symbol_k_steps_ahead(draw):
    _, batch = draw("future_tagging_var")
    kw = CASES["future_tagging_var"][1]
    k, s = kw["lookahead"], kw["num_symbols"]
    ids = _ids(batch.inputs)
    for b in range(ids.shape[0]):
        n = batch.length[b]
        expected = (ids[b, : n - k] + ids[b, k:n]) % s
        np.testing.assert_array_equal(batch.targets[b, : n - k], expected)
        assert np.all(batch.mask[b, : n - k] == 1) and np.all(batch.mask[b, n - k :] == 0)


@pytest.mark.parametrize("seq_case", ["reverse", "sort"])
def test_seq2seq_targets_are_the_transformed_source_then_eos(seq_case, draw):
    task, batch = draw(seq_case)
    ids = _ids(batch.inputs)
    transform = {"reverse": lambda x: x[::-1], "sort": np.sort}[seq_case]
    for b in range(ids.shape[0]):
        n = batch.length[b]
        source = ids[b, :n]
        assert np.all((source >= 1) & (source < task.output_size))
        expected = np.concatenate([transform(source), [tasks.EOS]])
        np.testing.assert_array_equal(batch.targets[b, : n + 1], expected)
    assert batch.targets.shape[1] == batch.inputs.shape[1] + 1
    assert batch.length.min() == CASES[seq_case][1].get("min_length", 1)


def test_decoder_inputs_shift_targets_right_behind_bos(draw):
    task, batch = draw("reverse")
    dec = np.asarray(tasks.decoder_inputs(batch.targets, task.output_size))
    assert dec.shape == (*batch.targets.shape, task.output_size)
    np.testing.assert_array_equal(dec[:, 0].argmax(-1), tasks.BOS)
    np.testing.assert_array_equal(dec[:, 1:].argmax(-1), batch.targets[:, :-1])


def test_forecasting_targets_are_the_inputs_shifted_by_the_horizon(draw):
    _, batch = draw("sine_forecast")
    h = CASES["sine_forecast"][1]["horizon"]
    np.testing.assert_array_equal(batch.targets[:, :-h], batch.inputs[:, h:])
    _, batch = draw("mackey_glass")
    np.testing.assert_array_equal(batch.targets[:, :-1], batch.inputs[:, 1:])
    series = mackey_glass_series(CASES["mackey_glass"][1]["num_points"])
    for b in range(8):  # each window is a slice of the stored series
        window = batch.inputs[b, :, 0]
        starts = np.flatnonzero(series == window[0])
        assert any(np.array_equal(series[s : s + window.shape[0]], window) for s in starts)


def _mackey_glass_rk4(num_points, tau=17.0, dt=0.01, beta=0.2, gamma=0.1, n=10.0, x0=1.2):
    """Independent reference: RK4 with a finer step, delayed values linearly interpolated."""
    delay = round(tau / dt)
    sub = round(1.0 / dt)
    x = np.full(delay + num_points * sub + 1, x0)

    def f(xt, xd):
        return beta * xd / (1.0 + xd**n) - gamma * xt

    for i in range(delay, x.shape[0] - 1):
        d0, d1 = x[i - delay], x[i + 1 - delay]
        dm = 0.5 * (d0 + d1)
        k1 = f(x[i], d0)
        k2 = f(x[i] + 0.5 * dt * k1, dm)
        k3 = f(x[i] + 0.5 * dt * k2, dm)
        k4 = f(x[i] + dt * k3, d1)
        x[i + 1] = x[i] + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x[delay::sub][:num_points]


def test_mackey_glass_integration_matches_an_independent_solver():
    ours = mackey_glass_series(150, washout=0)
    reference = _mackey_glass_rk4(150)
    np.testing.assert_allclose(ours, reference, atol=5e-3)
    series = mackey_glass_series(3000)
    assert 0.2 < series.min() < 0.5 and 1.2 < series.max() < 1.4  # the chaotic attractor
    assert not series.flags.writeable


def test_sensor_anomaly_labels_mark_exactly_the_perturbed_targets(draw):
    _, base = draw("sensor_anomaly")  # the clean streams of key 0
    _, kwargs, batch_size = CASES["sensor_anomaly"]
    labelled = tasks.sensor_anomaly_eval(**kwargs, num_anomalies=2, max_duration=5)
    batch, labels = jax.jit(labelled, static_argnums=1)(jax.random.key(0), batch_size)
    batch, labels = jax.tree.map(np.asarray, batch), np.asarray(labels)
    t = kwargs["length"]
    assert labels.shape == (batch_size, t) and labels.dtype == np.float32
    # the same clean signal (up to float rounding of two compilations) outside the anomalies
    differs = np.any(np.abs(batch.targets - base.targets) > 1e-5, axis=-1)
    np.testing.assert_array_equal(differs, labels > 0)
    np.testing.assert_array_equal(batch.inputs[:, 1:], batch.targets[:, :-1])
    assert 0.05 < labels.mean() < 0.6
    # the persistence forecaster's error already separates anomalies from normal steps
    scores = np.sum((batch.targets - batch.inputs) ** 2, axis=-1)
    assert float(jax.jit(tasks.auroc)(scores, labels)) > 0.7
