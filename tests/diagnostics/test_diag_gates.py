"""Tests of gate statistics against gates recomputed in NumPy float64 from the cell equations
(written here from the cell docstrings, not by calling seqjax's gate functions)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import cells
from seqjax.diagnostics import gate_stats

H, F, T, LENGTH, BINS = 5, 3, 7, 5, 8


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _numpy_gates(name, params, xs, length):
    """Gate values [T, H] per gate, zero for t >= length, from a float64 NumPy loop."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    xs = np.asarray(xs, np.float64)
    h, c = np.zeros(H), np.zeros(H)
    names = ("f", "i", "g", "o") if name == "lstm" else ("r", "z", "n")
    out = {g: np.zeros((xs.shape[0], H)) for g in names}
    for t in range(length):
        if name == "lstm":
            z = xs[t] @ p["w_i"] + h @ p["w_h"] + p["b"]
            f, i, o = (_sigmoid(z[k * H : (k + 1) * H]) for k in (0, 1, 3))
            g = np.tanh(z[2 * H : 3 * H])
            c = f * c + i * g
            h = o * np.tanh(c)
            vals = {"f": f, "i": i, "g": g, "o": o}
        else:
            zx = xs[t] @ p["w_i"] + p["b_i"]
            zh = h @ p["w_h"]
            r = _sigmoid(zx[:H] + zh[:H])
            zz = _sigmoid(zx[H : 2 * H] + zh[H : 2 * H])
            n = np.tanh(zx[2 * H :] + r * (zh[2 * H :] + p["b_hn"]))
            h = (1.0 - zz) * n + zz * h
            vals = {"r": r, "z": zz, "n": n}
        for k, v in vals.items():
            out[k][t] = v
    return out


@pytest.mark.parametrize(("name", "memory"), [("lstm", "f"), ("gru", "z")], ids=["lstm", "gru"])
def test_gate_stats_equal_a_numpy_recomputation(name, memory, key, x64):
    kwargs = {"forget_bias": 2.0} if name == "lstm" else {"chrono": 10.0}
    cell = cells.get_cell(name, H, dtype=jnp.float64, **kwargs)
    k_p, k_x = jax.random.split(key)
    params = cell.init(k_p, F)
    xs = 3.0 * jax.random.normal(k_x, (T, F), jnp.float64)  # large inputs: some saturation
    stats = jax.jit(lambda p, x: gate_stats(cell, p, x, length=LENGTH, bins=BINS))(params, xs)
    ref = _numpy_gates(name, params, xs, LENGTH)

    assert set(stats.values) == set(ref)
    any_saturated = 0.0
    for g, vals in ref.items():
        lo = -1.0 if g in ("g", "n") else 0.0
        np.testing.assert_allclose(stats.values[g], vals, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(stats.mean[g], vals.mean(axis=1), rtol=1e-10, atol=1e-12)
        if lo == 0.0:
            sat = (vals > 0.95) | (vals < 0.05)
        else:
            sat = np.abs(vals) > 0.9
        sat[LENGTH:] = False
        np.testing.assert_allclose(stats.saturated[g], sat.mean(axis=1), atol=1e-12)
        any_saturated += sat.sum()
        edges = np.linspace(lo, 1.0, BINS + 1)
        np.testing.assert_allclose(stats.bin_edges[g], edges, atol=1e-12)
        for t in range(T):
            counts = np.histogram(vals[t], BINS, range=(lo, 1.0))[0] if t < LENGTH else 0
            np.testing.assert_array_equal(stats.hist[g][t], counts)
    assert any_saturated > 0  # the saturation check is not vacuous
    keep = ref[memory][:LENGTH].mean(axis=0)
    np.testing.assert_allclose(stats.timescale, 1.0 / (1.0 - keep), rtol=1e-10)


def test_forget_bias_sets_the_memory_timescale(key):
    cell = cells.lstm(H, forget_bias=4.0)
    params = cell.init(key, F)
    params["w_i"] = jnp.zeros_like(params["w_i"])
    params["w_h"] = jnp.zeros_like(params["w_h"])
    stats = jax.jit(lambda p: gate_stats(cell, p, jnp.ones((T, F))))(params)
    # f = sigmoid(4) everywhere: tau = 1 / (1 - sigmoid(4)) = 1 + e^4.
    np.testing.assert_allclose(stats.timescale, 1.0 + np.exp(4.0), rtol=1e-4)
    np.testing.assert_allclose(stats.saturated["f"], 1.0)
    np.testing.assert_allclose(stats.saturated["i"], 0.0)


def test_gate_stats_rejects_ungated_cells(key):
    cell = cells.rnn(H)
    params = cell.init(key, F)
    with pytest.raises(ValueError, match=r"the 'rnn' cell has no gates \(cell.gate_spec is None\)"):
        gate_stats(cell, params, jnp.zeros((T, F)))
    with pytest.raises(ValueError, match=r"bins must be a positive int, got 0"):
        gate_stats(cells.gru(H), cells.gru(H).init(key, F), jnp.zeros((T, F)), bins=0)


@pytest.mark.parametrize("name", ["min_gru", "min_lstm"])
def test_gate_stats_of_the_input_gated_linear_cells(name, key, x64):
    """minGRU's z and minLSTM's f, i read only the input; the memory factor that keeps the
    state is 1 - z (minGRU) and f / (f + i) (minLSTM), from the Feng et al. 2024 equations."""
    cell = cells.get_cell(name, H, dtype=jnp.float64)
    k_p, k_x = jax.random.split(key)
    params = jax.tree.map(lambda a: a + 0.5, cell.init(k_p, F))
    xs = 3.0 * jax.random.normal(k_x, (T, F), jnp.float64)
    stats = gate_stats(cell, params, xs, length=LENGTH, bins=BINS)
    k = np.asarray(xs) @ np.asarray(params["w_i"]) + np.asarray(params["b"])
    if name == "min_gru":
        ref = {"z": _sigmoid(k[:, :H])}
        keep = 1.0 - ref["z"]
    else:
        ref = {"f": _sigmoid(k[:, :H]), "i": _sigmoid(k[:, H : 2 * H])}
        keep = ref["f"] / (ref["f"] + ref["i"])
    assert tuple(stats.values) == cell.gates
    for g, vals in ref.items():
        np.testing.assert_allclose(stats.values[g][:LENGTH], vals[:LENGTH], rtol=1e-12)
        np.testing.assert_array_equal(stats.values[g][LENGTH:], 0.0)
    keep = keep[:LENGTH].mean(axis=0)
    np.testing.assert_allclose(stats.timescale, 1.0 / (1.0 - keep), rtol=1e-10)
