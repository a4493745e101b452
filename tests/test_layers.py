"""Tests of seqjax.layers against independent references: hand-chained unrolls, Python loops over
cell steps, and masks recovered from the outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax import gru, lstm, rnn, unroll
from seqjax.layers import (
    BidirectionalCarry,
    Layer,
    as_layer,
    bidirectional,
    dropout,
    last_step,
    recurrent_dropout_cell,
    stack,
)

T, F = 6, 3


def _xs(seed: int, shape=(T, F), dtype=jnp.float32) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), shape, dtype)


def _identity_layer(size: int) -> Layer:
    """A parameter-free layer that returns its input: a probe for the dropout between layers."""
    return Layer(
        init=lambda key, n: {},
        apply=lambda params, xs, **kwargs: ((), xs),
        output_size=size,
        initial_carry=lambda: (),
        last=lambda carry, hs, length: last_step(hs, length),
        name="identity",
    )


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _np(params):
    return jax.tree.map(np.asarray, params)


def np_lstm_gates(p, h, x):
    """The LSTM gates f, i, g, o in NumPy (textbook equations, fused order f, i, g, o)."""
    f, i, g, o = np.split(x @ p["w_i"] + h @ p["w_h"] + p["b"], 4)
    return _sigmoid(f), _sigmoid(i), np.tanh(g), _sigmoid(o)


def np_gru_gates(p, h, x):
    """The GRU gates r, z, n in NumPy (reset applied after the recurrent product)."""
    H = p["b_hn"].shape[0]
    zx, zh = x @ p["w_i"] + p["b_i"], h @ p["w_h"]
    r = _sigmoid(zx[:H] + zh[:H])
    z = _sigmoid(zx[H : 2 * H] + zh[H : 2 * H])
    return r, z, np.tanh(zx[2 * H :] + r * (zh[2 * H :] + p["b_hn"]))


def np_loop(name, params, xs):
    """A plain NumPy loop over one cell's equations: ``[n, F] -> [n, H]``."""
    p, hs = _np(params), []
    h = c = np.zeros(p["w_h"].shape[0])
    for x in np.asarray(xs):
        if name == "lstm":
            f, i, g, o = np_lstm_gates(p, h, x)
            c = f * c + i * g
            h = o * np.tanh(c)
        elif name == "gru":
            _, z, n = np_gru_gates(p, h, x)
            h = (1 - z) * n + z * h
        else:
            h = np.tanh(x @ p["w_i"] + h @ p["w_h"] + p["b"])
        hs.append(h)
    return np.array(hs).reshape(len(hs), p["w_h"].shape[0])


# ------------------------------------------------------------------------------------------ stack


def test_stack_equals_manual_chain(key):
    cells = [lstm(4), gru(5), rnn(2)]
    layer = stack(cells)
    params = layer.init(key, F)
    xs = _xs(1)

    @jax.jit
    def both(params, xs):
        out = []
        for length in (None, 4):
            carry, hs = layer.apply(params, xs, length=length)
            u, ref_carries = xs, []
            for cell, p in zip(cells, params, strict=True):
                c, u = unroll(cell, p, u, length=length)
                ref_carries.append(c)
            out.append((carry, hs, tuple(ref_carries), u))
        return out

    for length, (carry, hs, ref_carries, ref) in zip((None, 4), both(params, xs), strict=True):
        assert layer.output_size == 2 and hs.shape == (T, 2)
        np.testing.assert_allclose(hs, ref, rtol=1e-6, atol=1e-6)
        for got, want in zip(carry, ref_carries, strict=True):
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), got, want)
        if length is not None:
            assert jnp.all(hs[length:] == 0)


def test_stack_passes_unroll_options(key):
    cells = [lstm(4), lstm(4)]
    layer = stack(cells)
    params = layer.init(key, F)
    xs = _xs(2)

    @jax.jit
    def run(params, xs):
        _, ref = layer.apply(params, xs, length=5)
        _, got = layer.apply(params, xs, length=5, truncate=2, remat=True, unroll=2)

        # truncate reaches unroll: the last output's gradient w.r.t. early inputs vanishes.
        def out_last(x, **kw):
            return layer.apply(params, x, **kw)[1][-1].sum()

        return ref, got, jax.grad(out_last)(xs), jax.grad(lambda x: out_last(x, truncate=2))(xs)

    ref, got, g_full, g_trunc = run(params, xs)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
    assert jnp.abs(g_full[0]).sum() > 0
    assert jnp.all(g_trunc[: T - 2] == 0)
    with pytest.raises(TypeError, match="truncation"):
        layer.apply(params, xs, truncation=2)


def test_stack_residual_adds_input(key):
    c1, c2, c3 = rnn(4), gru(4), lstm(4)
    layer = stack([c1, c2, c3], residual=True)
    params = layer.init(key, F)
    xs = _xs(3)

    @jax.jit
    def run(params, xs):
        _, hs = layer.apply(params, xs, length=5)
        _, h1 = unroll(c1, params[0], xs, length=5)  # the first layer: no residual (3 != 4)
        _, h2 = unroll(c2, params[1], h1, length=5)
        h2 = h2 + h1
        _, h3 = unroll(c3, params[2], h2, length=5)
        return hs, h2, h3

    hs, h2, h3 = run(params, xs)
    np.testing.assert_allclose(hs, h3 + h2, rtol=1e-6, atol=1e-6)
    assert jnp.all(hs[5:] == 0)


def test_stack_residual_size_mismatch_names_layer():
    with pytest.raises(ValueError, match=r"layer 2 .*size 4.*size 5"):
        stack([rnn(4), rnn(4), rnn(5)], residual=True)


def test_dropout_without_key_is_deterministic_and_equals_no_dropout(key):
    cells = [lstm(4), lstm(4)]
    plain, dropped = stack(cells), stack(cells, dropout=0.5, recurrent_dropout=0.3)
    params = plain.init(key, F)
    xs = _xs(4)

    @jax.jit
    def run(params, xs, k):
        return (
            plain.apply(params, xs)[1],
            dropped.apply(params, xs)[1],
            dropped.apply(params, xs, key=k)[1],
        )

    ref, got, with_key = run(params, xs, jax.random.key(7))
    np.testing.assert_array_equal(got, ref)
    assert not np.allclose(with_key, ref)


def test_dropout_between_layers_mask_statistics(key):
    H, rate, steps = 64, 0.3, 40
    layer = stack([rnn(H), _identity_layer(H)], dropout=rate)
    params = layer.init(key, F)
    xs = _xs(5, (steps, F))
    run = jax.jit(lambda params, xs, k: layer.apply(params, xs, key=k)[1])
    _, h1 = unroll(rnn(H), params[0], xs)
    out = run(params, xs, jax.random.key(11))
    ratio = np.asarray(out / h1)
    kept = ratio != 0
    np.testing.assert_allclose(ratio[kept], 1.0 / (1.0 - rate), rtol=1e-5)
    assert abs((1.0 - kept.mean()) - rate) < 0.04  # 2560 draws, std of the rate ~0.009
    assert not np.all(kept == kept[0:1])  # a fresh mask at every step (not variational)

    again = run(params, xs, jax.random.key(11))
    other = run(params, xs, jax.random.key(12))
    np.testing.assert_array_equal(again, out)
    assert not np.array_equal(other, out)


def test_dropout_function_statistics():
    x = jnp.ones((20000,))
    y = dropout(jax.random.key(0), x, 0.25)
    np.testing.assert_allclose(np.unique(np.asarray(y)), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs(float(jnp.mean(y == 0)) - 0.25) < 0.015
    assert abs(float(jnp.mean(y)) - 1.0) < 0.02
    np.testing.assert_array_equal(dropout(None, x, 0.25), x)
    with pytest.raises(ValueError, match="rate"):
        dropout(jax.random.key(0), x, 1.0)


def test_traced_rates_equal_python_rates(key):
    # A swept rate arrives as a traced scalar (seqjax.sweep): same keys, same masks.
    x = jax.random.normal(key, (6, 5))
    k = jax.random.key(4)
    traced = jax.jit(lambda r: dropout(k, x, r))
    np.testing.assert_array_equal(traced(jnp.float32(0.0)), x)  # keeps everything
    np.testing.assert_allclose(traced(jnp.float32(0.4)), dropout(k, x, 0.4), rtol=1e-6)
    cells = [seqjax.lstm(4), seqjax.lstm(4)]
    params = stack(cells).init(key, 5)

    def run(rate, recurrent):
        layer = stack(cells, dropout=rate, recurrent_dropout=recurrent)
        return layer.apply(params, x, key=k)[1]

    np.testing.assert_allclose(
        jax.jit(run)(jnp.float32(0.3), jnp.float32(0.2)), run(0.3, 0.2), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="float scalar array"):
        dropout(k, x, jnp.zeros(2))
    with pytest.raises(ValueError, match="zoneout must be a Python probability"):
        stack(cells, zoneout=jnp.float32(0.1))


# ------------------------------------------------------------------------------ recurrent dropout


def test_recurrent_dropout_same_mask_every_step(key, x64):
    """Recover m * h_{t-1} from a tanh RNN's outputs and check m is one fixed mask."""
    H, steps, rate = 8, 7, 0.5
    cell = rnn(H, dtype=jnp.float64)
    layer = stack([cell], recurrent_dropout=rate)
    params = layer.init(key, F)
    p = jax.tree.map(np.asarray, params[0])
    xs = _xs(6, (steps, F), jnp.float64)
    _, hs = layer.apply(params, xs, key=jax.random.key(3))
    hs, xs = np.asarray(hs), np.asarray(xs)
    masked_prev = (np.arctanh(hs[1:]) - xs[1:] @ p["w_i"] - p["b"]) @ np.linalg.inv(p["w_h"])
    masks = masked_prev / hs[:-1]
    np.testing.assert_allclose(masks, np.broadcast_to(masks[0], masks.shape), atol=1e-6)
    values = set(np.round(masks[0], 6))
    assert values == {0.0, 2.0}  # 1 / (1 - rate); this key draws both


def test_recurrent_dropout_cell_lstm_equals_python_loop(key, x64):
    H = 5
    cell = lstm(H, dtype=jnp.float64)
    params = cell.init(key, F)
    mask = jnp.array([2.0, 0.0, 2.0, 2.0, 0.0], jnp.float64)
    xs = _xs(7, dtype=jnp.float64)
    _, hs = unroll(recurrent_dropout_cell(cell, mask), params, xs)
    p, m, h, c = _np(params), np.asarray(mask), np.zeros(H), np.zeros(H)
    for t in range(T):
        f, i, g, o = np_lstm_gates(p, m * h, np.asarray(xs[t]))  # h masked in the gates only
        c = f * c + i * g
        h = o * np.tanh(c)
        np.testing.assert_allclose(hs[t], h, rtol=1e-12)


def test_recurrent_dropout_cell_gru_equals_python_loop(key, x64):
    H = 4
    cell = gru(H, dtype=jnp.float64)
    params = cell.init(key, F)
    mask = jnp.array([0.0, 2.0, 2.0, 0.0], jnp.float64)
    xs = _xs(8, dtype=jnp.float64)
    _, hs = unroll(recurrent_dropout_cell(cell, mask), params, xs)
    p, m, h = _np(params), np.asarray(mask), np.zeros(H)
    for t in range(T):
        _, z, n = np_gru_gates(p, m * h, np.asarray(xs[t]))
        h = (1 - z) * n + z * h  # the interpolation reads the unmasked state
        np.testing.assert_allclose(hs[t], h, rtol=1e-12)


# ---------------------------------------------------------------------------------------- zoneout


def test_zoneout_rate_zero_equals_plain(key):
    cells = [lstm(4), gru(4)]
    params = stack(cells).init(key, F)
    xs = _xs(9)
    zoned = stack(cells, zoneout=0.0)

    @jax.jit
    def run(params, xs, k):
        return stack(cells).apply(params, xs, length=5)[1], zoned.apply(
            params, xs, length=5, key=k
        )[1]

    ref, got = run(params, xs, jax.random.key(1))
    np.testing.assert_array_equal(got, ref)


def test_zoneout_eval_equals_expectation(key, x64):
    H, p = 4, 0.3
    cell = lstm(H, dtype=jnp.float64)
    layer = stack([cell], zoneout=p)
    params = layer.init(key, F)
    xs = _xs(10, dtype=jnp.float64)
    carry, hs = layer.apply(params, xs, length=5)
    w, h, c = _np(params[0]), np.zeros(H), np.zeros(H)
    for t in range(5):
        f, i, g, o = np_lstm_gates(w, h, np.asarray(xs[t]))
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        c = p * c + (1 - p) * c_new
        h = p * h + (1 - p) * h_new
        np.testing.assert_allclose(hs[t], h, rtol=1e-12)
    assert jnp.all(hs[5:] == 0)
    np.testing.assert_allclose(carry[0].h, h, rtol=1e-12)
    np.testing.assert_allclose(carry[0].c, c, rtol=1e-12)


def test_zoneout_training_keeps_units_with_probability_p(key, x64):
    H, steps, p = 32, 40, 0.3
    cell = rnn(H, dtype=jnp.float64)
    layer = stack([cell], zoneout=p)
    params = layer.init(key, F)
    xs = _xs(11, (steps, F), jnp.float64)
    run = jax.jit(lambda params, xs, k: layer.apply(params, xs, key=k)[1])
    hs = run(params, xs, jax.random.key(5))
    hs, prev = np.asarray(hs), np.concatenate([np.zeros((1, H)), np.asarray(hs[:-1])])
    w = jax.tree.map(np.asarray, params[0])
    candidate = np.tanh(np.asarray(xs) @ w["w_i"] + prev @ w["w_h"] + w["b"])
    kept = np.isclose(hs, prev, rtol=0, atol=1e-12)
    updated = np.isclose(hs, candidate, rtol=0, atol=1e-12)
    assert np.all(kept | updated)  # every unit either keeps its value or takes the step's
    assert abs(kept[1:].mean() - p) < 0.06
    again = run(params, xs, jax.random.key(5))
    np.testing.assert_array_equal(again, hs)


def test_regularised_stack_jits_and_differentiates(key):
    layer = stack([rnn(4), gru(4)], dropout=0.2, recurrent_dropout=0.2, zoneout=0.1)
    params = layer.init(key, F)
    xs = _xs(12)

    @jax.jit
    def loss(params, k):
        return jnp.sum(layer.apply(params, xs, length=4, key=k, truncate=2)[1] ** 2)

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    v0, grads = value_and_grad(params, jax.random.key(0))
    v1, _ = value_and_grad(params, jax.random.key(1))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads[1]["w_h"]).sum()) > 0
    assert float(v0) != float(v1)


# ---------------------------------------------------------------------------------- bidirectional


def _bi_reference(cell_fw, cell_bw, params, x, n):
    x = x[:n]
    h_fw = np_loop(cell_fw.name, params["fw"], x)
    h_bw = np_loop(cell_bw.name, params["bw"], x[::-1])
    return h_fw, h_bw[::-1]


def test_bidirectional_padded_batch_equals_unpadded(key):
    cell_fw, cell_bw = lstm(4), gru(3)
    layer = bidirectional(cell_fw, cell_bw)
    params = layer.init(key, F)
    lengths = jnp.array([6, 2, 4, 0])
    xs = _xs(13, (4, T, F))
    run = jax.jit(jax.vmap(lambda x, n: layer.apply(params, x, length=n)))
    carry, hs = run(xs, lengths)
    assert hs.shape == (4, T, 7) and layer.output_size == 7
    for b, n in enumerate(lengths.tolist()):
        h_fw, h_bw = _bi_reference(cell_fw, cell_bw, params, xs[b], n)
        np.testing.assert_allclose(hs[b, :n], np.concatenate([h_fw, h_bw], -1), atol=1e-5)
        assert jnp.all(hs[b, n:] == 0)
        if n:
            c = jax.tree.map(lambda a, b=b: a[b], carry)
            last = layer.last(c, hs[b], n)
            np.testing.assert_allclose(last, np.concatenate([h_fw[n - 1], h_bw[0]]), atol=1e-5)


def test_bidirectional_sum_and_shared_architecture(key):
    concat = bidirectional(rnn(4))
    summed = bidirectional(rnn(4), merge="sum")
    params = concat.init(key, F)
    assert set(params) == {"fw", "bw"}
    assert not np.allclose(params["fw"]["w_h"], params["bw"]["w_h"])  # own parameters
    xs = _xs(14)
    _, hc = concat.apply(params, xs, length=5)
    carry, hsum = summed.apply(params, xs, length=5)
    assert summed.output_size == 4
    np.testing.assert_allclose(hsum, hc[:, :4] + hc[:, 4:], rtol=1e-6)
    assert isinstance(carry, BidirectionalCarry)


def test_bidirectional_regularisation_uses_key(key):
    layer = bidirectional(lstm(4), recurrent_dropout=0.4, zoneout=0.2)
    params = layer.init(key, F)
    xs = _xs(15)
    run = jax.jit(lambda k: layer.apply(params, xs, key=k)[1])
    evaluate = jax.jit(lambda: layer.apply(params, xs)[1])
    a, b = run(jax.random.key(1)), run(jax.random.key(1))
    e1, e2 = evaluate(), evaluate()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(e1, e2)
    assert not np.allclose(a, e1)


def test_stack_of_bidirectional_layers(key):
    b1, b2 = bidirectional(gru(3)), bidirectional(gru(3))
    layer = stack([b1, b2], residual=True, dropout=0.1)
    params = layer.init(key, F)
    xs = _xs(16)
    carry, hs = layer.apply(params, xs, length=4)
    _, u = b1.apply(params[0], xs, length=4)
    _, v = b2.apply(params[1], u, length=4)
    np.testing.assert_allclose(hs, v + u, atol=1e-6)
    assert layer.last(carry, hs, 4).shape == (6,)


# ----------------------------------------------------------------------------------- as_layer, io


def test_as_layer_equals_unroll(key):
    cell = gru(4)
    layer = as_layer(cell)
    assert as_layer(layer) is layer
    params = layer.init(key, F)
    xs = _xs(17)
    c, hs = layer.apply(params, xs, length=3, key=jax.random.key(0))
    rc, rhs = unroll(cell, params, xs, length=3)
    np.testing.assert_array_equal(hs, rhs)
    np.testing.assert_array_equal(c, rc)
    np.testing.assert_array_equal(layer.last(c, hs, 3), rhs[2])


def test_bad_inputs_raise_clear_errors(key):
    layer = stack([lstm(4), lstm(4)], zoneout=0.1)
    params = layer.init(key, F)
    with pytest.raises(ValueError, match=r"shape \(5,\).*expected trailing feature size 3"):
        layer.apply(params, jnp.ones((T, 5)), key=jax.random.key(0))
    with pytest.raises(ValueError, match="one sequence"):
        layer.apply(params, jnp.ones((2, T, F)))
    with pytest.raises(ValueError, match="expected 2"):
        layer.apply(params[:1], jnp.ones((T, F)))
    with pytest.raises(ValueError, match=r"unknown merge='max'.*\['concat', 'sum'\]"):
        bidirectional(lstm(4), merge="max")
    with pytest.raises(ValueError, match="equal hidden sizes"):
        bidirectional(lstm(4), lstm(3), merge="sum")
    with pytest.raises(TypeError, match="cell_fw"):
        bidirectional(stack([lstm(4)]))
    with pytest.raises(TypeError, match="non-empty list"):
        stack([])
    with pytest.raises(TypeError, match="non-empty list"):
        stack(lstm(4))
    with pytest.raises(TypeError, match=r"cells\[1\]"):
        stack([lstm(4), "gru"])
    with pytest.raises(ValueError, match="dropout must be a probability"):
        stack([lstm(4)], dropout=1.5)
    with pytest.raises(ValueError, match=r"cells\[0\] is the Layer"):
        stack([bidirectional(lstm(4))], zoneout=0.1)
    with pytest.raises(TypeError, match="Cell"):
        as_layer("lstm")


def test_input_and_output_dropout(key):
    cells = [seqjax.gru(6), seqjax.gru(6)]
    xs = jax.random.normal(jax.random.key(3), (40, 5))
    plain = stack(cells)
    params = plain.init(key, 5)
    rate = 0.5
    layer = stack(cells, input_dropout=rate, output_dropout=rate)
    k = jax.random.key(7)
    # No key: evaluation, exactly the plain stack.
    np.testing.assert_array_equal(layer.apply(params, xs)[1], plain.apply(params, xs)[1])
    _, hs = layer.apply(params, xs, key=k)
    # The input mask is drawn from fold_in(key, num_layers), the output mask from + 1.
    dropped_in = seqjax.layers.dropout(jax.random.fold_in(k, 2), xs, rate)
    assert 0.3 < float(jnp.mean(dropped_in == 0)) < 0.7
    _, ref = plain.apply(params, dropped_in)
    zero = np.asarray(hs) == 0
    assert 0.35 < zero.mean() < 0.65
    np.testing.assert_allclose(
        np.asarray(hs)[~zero], np.asarray(ref)[~zero] / (1 - rate), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="output_dropout"):
        stack(cells, output_dropout=1.5)
