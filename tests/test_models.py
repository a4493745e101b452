"""Tests of seqjax.models against NumPy references: plain loops over the cell equations, the
readout, and greedy/sampled decoding written out step by step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import gru, lstm, rnn
from seqjax.layers import bidirectional, stack
from seqjax.models import MODELS, PATTERNS, many_to_many, many_to_one, one_to_many, seq2seq

T, F = 6, 3


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_step(name, p, carry, x):
    """One step of the textbook cell equations in NumPy (independent of seqjax's gate code)."""
    if name == "rnn":
        h = np.tanh(x @ p["w_i"] + carry @ p["w_h"] + p["b"])
        return h, h
    if name == "lstm":
        h, c = carry
        f, i, g, o = np.split(x @ p["w_i"] + h @ p["w_h"] + p["b"], 4)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        return (h, c), h
    H = carry.shape[0]
    zx, zh = x @ p["w_i"] + p["b_i"], carry @ p["w_h"]
    r = _sigmoid(zx[:H] + zh[:H])
    z = _sigmoid(zx[H : 2 * H] + zh[H : 2 * H])
    n = np.tanh(zx[2 * H :] + r * (zh[2 * H :] + p["b_hn"]))
    h = (1 - z) * n + z * carry
    return h, h


def np_zero_carry(name, H):
    return (np.zeros(H), np.zeros(H)) if name == "lstm" else np.zeros(H)


def np_unroll(name, p, xs, carry=None):
    p = jax.tree.map(np.asarray, p)
    carry = np_zero_carry(name, p["w_h"].shape[0]) if carry is None else carry
    hs = []
    for x in np.asarray(xs):
        carry, h = np_step(name, p, carry, x)
        hs.append(h)
    return carry, np.array(hs)


def np_dense(p, h):
    return h @ np.asarray(p["w"]) + np.asarray(p["b"])


def _xs(seed, shape=(T, F), dtype=jnp.float32):
    return jax.random.normal(jax.random.key(seed), shape, dtype)


# ------------------------------------------------------------------------------------ many_to_one


def test_many_to_one_reads_last_valid_state_batched(key):
    model = many_to_one(gru(4), input_size=F, output_size=2)
    params = model.init(key)
    assert set(params) == {"encoder", "readout"} and params["readout"]["w"].shape == (4, 2)
    xs, lengths = _xs(1, (3, T, F)), jnp.array([6, 3, 1])
    out, carry = jax.jit(jax.vmap(model.apply, in_axes=(None, 0, 0)))(params, xs, lengths)
    assert out.shape == (3, 2)
    for b, n in enumerate(lengths.tolist()):
        c, hs = np_unroll("gru", params["encoder"], xs[b, :n])  # the unpadded sequence
        np.testing.assert_allclose(out[b], np_dense(params["readout"], hs[-1]), atol=1e-5)
        np.testing.assert_allclose(carry[b], c, atol=1e-5)


def test_many_to_one_bidirectional_reads_both_ends(key):
    model = many_to_one(bidirectional(rnn(3)), input_size=F, output_size=2)
    params = model.init(key)
    xs, n = _xs(2), 4
    out, _ = jax.jit(model.apply)(params, xs, n)
    _, h_fw = np_unroll("rnn", params["encoder"]["fw"], xs[:n])
    _, h_bw = np_unroll("rnn", params["encoder"]["bw"], xs[:n][::-1])
    summary = np.concatenate([h_fw[n - 1], h_bw[-1]])  # backward state at step 0
    np.testing.assert_allclose(out, np_dense(params["readout"], summary), atol=1e-5)


# ----------------------------------------------------------------------------------- many_to_many


def test_many_to_many_padded_equals_unpadded_and_zero_past_length(key):
    model = many_to_many(stack([rnn(4), gru(4)], residual=True), input_size=F, output_size=5)
    params = model.init(key)
    xs, lengths = _xs(3, (2, T, F)), jnp.array([6, 4])
    out, _ = jax.jit(jax.vmap(model.apply, in_axes=(None, 0, 0)))(params, xs, lengths)
    assert out.shape == (2, T, 5)
    for b, n in enumerate(lengths.tolist()):
        _, h1 = np_unroll("rnn", params["encoder"][0], xs[b, :n])
        _, h2 = np_unroll("gru", params["encoder"][1], h1)
        np.testing.assert_allclose(out[b, :n], np_dense(params["readout"], h2 + h1), atol=1e-5)
        assert jnp.all(out[b, n:] == 0)


def test_many_to_many_streaming_carry(key):
    model = many_to_many(lstm(4), input_size=F, output_size=2, truncate=2)
    params = model.init(key)
    xs = _xs(4)
    run = jax.jit(model.apply)
    whole, c_whole = run(params, xs, None)
    first, c = run(params, xs[:3], None)
    second, c2 = run(params, xs[3:], None, carry=c)
    np.testing.assert_allclose(jnp.concatenate([first, second]), whole, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), c2, c_whole)


# ------------------------------------------------------------------------------------ one_to_many


def test_one_to_many_greedy_generate_equals_python_loop(key):
    V, H, steps = 5, 6, 7
    model = one_to_many(gru(H), vocab_size=V)
    params = model.init(key)
    first = jax.nn.one_hot(0, V)
    tokens = jax.jit(model.generate, static_argnums=(3,), static_argnames="greedy")(
        params, None, first, steps, greedy=True
    )
    p = jax.tree.map(np.asarray, params["decoder"])
    h, x, ref = np.zeros(H), np.asarray(first), []
    for _ in range(steps):
        h, _ = np_step("gru", p, h, x)
        y = int(np.argmax(np_dense(params["readout"], h)))
        ref.append(y)
        x = np.eye(V)[y]
    assert tokens.dtype == jnp.int32 and tokens.shape == (steps,)
    np.testing.assert_array_equal(tokens, ref)

    # Teacher forcing on the greedy tokens reproduces them, and equals the loop's logits.
    inputs = jnp.broadcast_to(first, (steps, V))
    logits, _ = jax.jit(model.apply)(params, inputs, steps, targets=tokens)
    np.testing.assert_array_equal(jnp.argmax(logits, -1), ref)
    tf_inputs = np.concatenate([np.asarray(first)[None], np.eye(V)[ref[:-1]]])
    _, hs = np_unroll("gru", params["decoder"], tf_inputs)
    np.testing.assert_allclose(logits, np_dense(params["readout"], hs), atol=1e-5)


def test_one_to_many_sampling_equals_python_loop(key):
    V, H, steps, temp = 4, 5, 6, 0.7
    model = one_to_many(rnn(H), vocab_size=V)
    params = model.init(key)
    first = jax.nn.one_hot(1, V)
    sample = jax.jit(model.generate, static_argnums=(3,))
    tokens = sample(params, jax.random.key(3), first, steps, temp)
    np.testing.assert_array_equal(sample(params, jax.random.key(3), first, steps, temp), tokens)
    assert not np.array_equal(sample(params, jax.random.key(4), first, steps, temp), tokens)
    # Reference: one key per step from split(key, steps), categorical at the temperature.
    p = jax.tree.map(np.asarray, params["decoder"])
    h, x = np.zeros(H), np.asarray(first)
    for t, k in enumerate(jax.random.split(jax.random.key(3), steps)):
        h, _ = np_step("rnn", p, h, x)
        logits = np_dense(params["readout"], h).astype(np.float32)
        y = int(jax.random.categorical(k, jnp.asarray(logits) / temp))
        assert int(tokens[t]) == y
        x = np.eye(V, dtype=np.float32)[y]


# ---------------------------------------------------------------------------------------- seq2seq


@pytest.fixture(scope="module")
def s2s():
    V = 5
    model = seq2seq(lstm(4), lstm(4), src_size=F, tgt_vocab=V)
    params = model.init(jax.random.key(1))
    return model, params, V


def _np_encode(params, src):
    carry, _ = np_unroll("lstm", params["encoder"], src)
    return carry


def test_seq2seq_teacher_forcing_equals_python_loop(s2s):
    model, params, V = s2s
    src, n = _xs(5), 4
    tgt = jnp.array([3, 1, 4], jnp.int32)  # T_out = 3 != T_src = 6
    logits, _ = jax.jit(model.apply)(params, src, n, targets=tgt)
    assert logits.shape == (3, V)
    carry = _np_encode(params, src[:n])
    dec_in = np.eye(V)[[0, 3, 1]]  # start symbol 0, then the targets shifted right
    _, hs = np_unroll("lstm", params["decoder"], dec_in, carry)
    np.testing.assert_allclose(logits, np_dense(params["readout"], hs), atol=1e-5)


def test_seq2seq_greedy_decode_equals_python_loop(s2s):
    model, params, V = s2s
    src, n, max_len = _xs(6), 5, 7
    tokens = jax.jit(model.decode, static_argnums=(3,))(params, src, n, max_len)
    carry, x, ref = _np_encode(params, src[:n]), np.eye(V)[0], []
    p = jax.tree.map(np.asarray, params["decoder"])
    for _ in range(max_len):
        carry, h = np_step("lstm", p, carry, x)
        y = int(np.argmax(np_dense(params["readout"], h)))
        ref.append(y)
        x = np.eye(V)[y]
    np.testing.assert_array_equal(tokens, ref)
    sampled = model.decode(params, src, n, max_len, key=jax.random.key(0), greedy=False)
    assert sampled.shape == (max_len,) and bool(jnp.all((sampled >= 0) & (sampled < V)))


def test_seq2seq_vmap_equals_per_example(s2s):
    model, params, _ = s2s
    src, lengths = _xs(7, (3, T, F)), jnp.array([6, 2, 4])
    tgt = jnp.array([[1, 2, 3, 4], [4, 4, 1, 0], [2, 0, 0, 0]], jnp.int32)
    batched, _ = jax.jit(jax.vmap(model.apply, in_axes=(None, 0, 0)))(
        params, src, lengths, targets=tgt
    )
    single = jax.jit(model.apply)
    for b in range(3):
        logits, _ = single(params, src[b], lengths[b], targets=tgt[b])
        np.testing.assert_allclose(batched[b], logits, atol=1e-6)


# -------------------------------------------------------------------------------------- gradients


def test_gradients_match_finite_differences(x64):
    """<grad, v> against central differences along random directions v (float64)."""
    f64 = jnp.float64
    model = seq2seq(gru(3, dtype=f64), gru(3, dtype=f64), src_size=F, tgt_vocab=4)
    params = model.init(jax.random.key(3))
    assert params["readout"]["w"].dtype == f64
    src, tgt = _xs(8, dtype=f64), jnp.array([1, 3, 2], jnp.int32)

    def loss(params):
        logits, _ = model.apply(params, src, 5, targets=tgt)
        return -jnp.sum(jnp.take_along_axis(jax.nn.log_softmax(logits), tgt[:, None], axis=1))

    value_and_grad = jax.jit(jax.value_and_grad(loss))  # one compiled function for both
    _, grads = value_and_grad(params)
    leaves, treedef = jax.tree.flatten(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads["encoder"]["w_h"]).sum()) > 0  # reaches through the encoder
    eps = 1e-6
    for i in range(3):
        keys = jax.random.split(jax.random.key(10 + i), len(leaves))
        v = [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)]
        plus = jax.tree.unflatten(treedef, [a + eps * b for a, b in zip(leaves, v, strict=True)])
        minus = jax.tree.unflatten(treedef, [a - eps * b for a, b in zip(leaves, v, strict=True)])
        fd = (float(value_and_grad(plus)[0]) - float(value_and_grad(minus)[0])) / (2 * eps)
        analytic = sum(
            float(jnp.vdot(g, d)) for g, d in zip(jax.tree.leaves(grads), v, strict=True)
        )
        np.testing.assert_allclose(analytic, fd, rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_clear_errors(key, s2s):
    assert set(MODELS) == set(PATTERNS)
    model = many_to_one(gru(4), input_size=F, output_size=2)
    params = model.init(key)
    with pytest.raises(ValueError, match=r"shape \(6, 5\), expected one sequence \[T, 3\]"):
        model.apply(params, jnp.ones((T, 5)), 3)
    with pytest.raises(ValueError, match=r"jax\.vmap"):
        model.apply(params, jnp.ones((2, T, F)), 3)
    with pytest.raises(TypeError, match="layer must be a seqjax Cell or Layer"):
        many_to_one("gru", F, 2)
    with pytest.raises(ValueError, match="output_size must be a positive int, got 0"):
        many_to_many(gru(4), F, 0)
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        many_to_many(gru(4), F, 2, truncation=3)
    with pytest.raises(TypeError, match="cell must be a seqjax Cell"):
        one_to_many(stack([gru(4)]), 5)
    with pytest.raises(ValueError, match="carries must match"):
        seq2seq(lstm(4), gru(4), F, 5)
    with pytest.raises(ValueError, match="carries must match"):
        seq2seq(lstm(4), lstm(3), F, 5)
    with pytest.raises(ValueError, match="start_id"):
        seq2seq(gru(4), gru(4), F, 5, start_id=5)
    s2s_model, s2s_params, _ = s2s
    with pytest.raises(ValueError, match="targets are required"):
        s2s_model.apply(s2s_params, jnp.ones((T, F)), 3)
    with pytest.raises(ValueError, match=r"src has shape \(6, 4\)"):
        s2s_model.decode(s2s_params, jnp.ones((T, 4)), 3, 5)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        s2s_model.decode(s2s_params, jnp.ones((T, F)), 3, 5, greedy=False)
    gen = one_to_many(gru(4), 5)
    gen_params = gen.init(key)
    with pytest.raises(ValueError, match=r"first_input has shape \(4,\), expected \[5\]"):
        gen.generate(gen_params, key, jnp.ones(4), 3)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        gen.generate(gen_params, key, jnp.ones(5), 3, temperature=0.0)
    with pytest.raises(ValueError, match="num_steps must be a positive int"):
        gen.generate(gen_params, key, jnp.ones(5), 0)
