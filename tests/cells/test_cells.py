"""Tests of the recurrent cells: parameter layout, initialisers, and one step against NumPy.

Every numerical claim is checked against an independent reference: the step equations are
re-implemented here in plain NumPy float64 from the cell docstrings (not by calling seqjax), and
the initialisers are checked against the properties they claim (orthogonality, the identity,
bias values, chrono ranges, fan-based scales).
"""

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxpr_walk import all_eqns

from seqjax import cells

H = 4  # hidden size used throughout: small, and a multiple-gate layout is still visible
F = 3  # input size
T_MAX = 20.0  # chrono's longest expected dependency

# (id, factory): every cell and every initialiser choice. A factory takes keyword arguments
# forwarded to the cell factory (``dtype`` in particular) and returns a `Cell`.
CELLS_UNDER_TEST = [
    ("rnn_tanh", lambda **kw: cells.rnn(H, "tanh", **kw)),
    ("rnn_relu", lambda **kw: cells.rnn(H, "relu", **kw)),
    ("irnn", lambda **kw: cells.irnn(H, **kw)),
    ("lstm", lambda **kw: cells.lstm(H, **kw)),
    ("lstm_forget_bias_0", lambda **kw: cells.lstm(H, forget_bias=0.0, **kw)),
    ("lstm_chrono", lambda **kw: cells.lstm(H, chrono=T_MAX, **kw)),
    ("gru", lambda **kw: cells.gru(H, **kw)),
    ("gru_chrono", lambda **kw: cells.gru(H, chrono=T_MAX, **kw)),
    ("rnn_tanh_lecun", lambda **kw: cells.rnn(H, "tanh", input_init="lecun", **kw)),
    ("lstm_glorot", lambda **kw: cells.lstm(H, input_init="glorot", **kw)),
    ("lstm_lecun", lambda **kw: cells.lstm(H, input_init="lecun", **kw)),
    ("gru_lecun", lambda **kw: cells.gru(H, input_init="lecun", **kw)),
]
CASE_IDS = [case_id for case_id, _ in CELLS_UNDER_TEST]
FACTORIES = dict(CELLS_UNDER_TEST)

# Cases whose recurrent weights use the default "orthogonal" initialiser.
ORTHOGONAL_CASES = [case_id for case_id in CASE_IDS if case_id != "irnn"]


def _params_case(case_id):
    return pytest.param(case_id, id=case_id)


ALL_CASES = [_params_case(case_id) for case_id in CASE_IDS]
_NO_QR = jax.nn.initializers.zeros  # for tests of the input weights on large matrices


# ---------------------------------------------------------------------------------------------
# Independent NumPy float64 references, written from the docstring equations.


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _relu(z):
    return np.maximum(z, 0.0)


def _np_rnn_step(phi):
    def step(p, h, x):
        # h_t = phi(x_t @ w_i + h_{t-1} @ w_h + b)
        h_new = phi(x @ p["w_i"] + h @ p["w_h"] + p["b"])
        return h_new, h_new

    return step


def _np_lstm_step(p, carry, x):
    h, c = carry
    n = h.shape[0]

    def pre(k):  # the k-th gate block, in the order f, i, g, o
        cols = slice(k * n, (k + 1) * n)
        return x @ p["w_i"][:, cols] + h @ p["w_h"][:, cols] + p["b"][cols]

    f, i, g, o = _sigmoid(pre(0)), _sigmoid(pre(1)), np.tanh(pre(2)), _sigmoid(pre(3))
    c_new = f * c + i * g
    h_new = o * np.tanh(c_new)
    return (h_new, c_new), h_new


def _np_gru_step(p, h, x):
    n = h.shape[0]
    blk = [slice(k * n, (k + 1) * n) for k in range(3)]  # r, z, n
    w_r, w_z, w_n = (p["w_i"][:, s] for s in blk)
    u_r, u_z, u_n = (p["w_h"][:, s] for s in blk)
    b_r, b_z, b_n = (p["b_i"][s] for s in blk)
    r = _sigmoid(x @ w_r + b_r + h @ u_r)
    z = _sigmoid(x @ w_z + b_z + h @ u_z)
    cand = np.tanh(x @ w_n + b_n + r * (h @ u_n + p["b_hn"]))
    h_new = (1.0 - z) * cand + z * h
    return h_new, h_new


NUMPY_STEP = {
    "rnn_tanh": _np_rnn_step(np.tanh),
    "rnn_relu": _np_rnn_step(_relu),
    "irnn": _np_rnn_step(_relu),
    "lstm": _np_lstm_step,
    "lstm_forget_bias_0": _np_lstm_step,
    "lstm_chrono": _np_lstm_step,
    "gru": _np_gru_step,
    "gru_chrono": _np_gru_step,
    "rnn_tanh_lecun": _np_rnn_step(np.tanh),
    "lstm_glorot": _np_lstm_step,
    "lstm_lecun": _np_lstm_step,
    "gru_lecun": _np_gru_step,
}

# Documented parameter layout per cell name: key -> shape, from the cell docstrings.
EXPECTED_SHAPES = {
    "rnn": {"w_i": (F, H), "w_h": (H, H), "b": (H,)},
    "lstm": {"w_i": (F, 4 * H), "w_h": (H, 4 * H), "b": (4 * H,)},
    "gru": {"w_i": (F, 3 * H), "w_h": (H, 3 * H), "b_i": (3 * H,), "b_hn": (H,)},
}
NUM_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _carry_to_numpy(cell, carry):
    if cell.name == "lstm":
        return (np.asarray(carry.h, np.float64), np.asarray(carry.c, np.float64))
    return np.asarray(carry, np.float64)


def _perturbed(params, key, scale=0.5):
    """Adds noise to every leaf so that zero-initialised biases are exercised too."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    noisy = [
        leaf + scale * jax.random.normal(k, leaf.shape, leaf.dtype)
        for leaf, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(treedef, noisy)


def _random_carry(cell, key, dtype):
    leaves, treedef = jax.tree.flatten(cell.initial_carry())
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef,
        [jax.random.normal(k, leaf.shape, dtype) for leaf, k in zip(leaves, keys, strict=True)],
    )


# ---------------------------------------------------------------------------------------------
# Parameter layout and the Cell record.


@pytest.mark.parametrize("case_id", ALL_CASES)
def test_param_keys_shapes_and_dtype(case_id, key):
    cell = FACTORIES[case_id]()
    params = cell.init(key, F)
    expected = EXPECTED_SHAPES[cell.name]
    assert set(params) == set(expected)
    for name, shape in expected.items():
        assert params[name].shape == shape, name
        assert params[name].dtype == jnp.float32, name
    assert cell.hidden_size == H
    assert cell.name in cells.CELLS


@pytest.mark.parametrize("case_id", ALL_CASES)
def test_float64_params_and_carry(case_id, key, x64):
    cell = FACTORIES[case_id](dtype=jnp.float64)
    params = cell.init(key, F)
    for leaf in jax.tree.leaves(params) + jax.tree.leaves(cell.initial_carry()):
        assert leaf.dtype == jnp.float64


@pytest.mark.parametrize("case_id", ALL_CASES)
def test_initial_carry_is_zeros_for_one_example(case_id):
    cell = FACTORIES[case_id]()
    carry = cell.initial_carry()
    if cell.name == "lstm":
        assert isinstance(carry, cells.LSTMCarry)
        chex.assert_trees_all_equal(carry, cells.LSTMCarry(h=jnp.zeros(H), c=jnp.zeros(H)))
    else:
        chex.assert_trees_all_equal(carry, jnp.zeros(H))


@pytest.mark.parametrize("case_id", ALL_CASES)
def test_init_is_deterministic_in_the_key(case_id):
    cell = FACTORIES[case_id]()
    a = cell.init(jax.random.key(1), F)
    b = cell.init(jax.random.key(1), F)
    c = cell.init(jax.random.key(2), F)
    chex.assert_trees_all_equal(a, b)
    assert not np.array_equal(a["w_i"], c["w_i"])


# ---------------------------------------------------------------------------------------------
# Initialisers do what they claim.


@pytest.mark.parametrize("case_id", [_params_case(c) for c in ORTHOGONAL_CASES])
def test_orthogonal_recurrent_blocks(case_id, key, x64):
    cell = FACTORIES[case_id](dtype=jnp.float64)
    w_h = np.asarray(cell.init(key, F)["w_h"])
    blocks = np.split(w_h, NUM_GATES[cell.name], axis=1)
    for block in blocks:
        np.testing.assert_allclose(block.T @ block, np.eye(H), atol=1e-12)
    if len(blocks) > 1:  # each block drawn independently, not one matrix repeated
        assert not np.allclose(blocks[0], blocks[1])


QR_PRIMITIVES = ("qr", "geqrf", "householder_product")


def _qr_operand_ranks(jaxpr) -> list[int]:
    """The rank of the operand of every QR in a jaxpr, sub-jaxprs (scan bodies...) included."""
    return [e.invars[0].aval.ndim for e in all_eqns(jaxpr) if e.primitive.name in QR_PRIMITIVES]


def test_vmapped_orthogonal_init_runs_one_qr_at_a_time_with_the_same_values(key):
    # Batched QRs deadlock XLA:CPU's thread pool when several devices run them at once
    # (seqjax.cells.base.one_at_a_time); vmap over seeds must leave each QR unbatched.
    init = cells.base.RECURRENT_INITS["orthogonal"]()
    keys = jax.random.split(key, 3)
    batched = jax.jit(jax.vmap(lambda k: init(k, (H, 4 * H))))(keys)
    for k, w_h in zip(keys, batched, strict=True):
        blocks = [jax.nn.initializers.orthogonal()(b, (H, H)) for b in jax.random.split(k, 4)]
        np.testing.assert_array_equal(w_h, np.concatenate(blocks, axis=1))
    cell = cells.lstm(H)
    ranks = _qr_operand_ranks(jax.make_jaxpr(jax.vmap(lambda k: cell.init(k, F)))(keys).jaxpr)
    assert ranks and set(ranks) == {2}, ranks
    # Positive control: the plain initialiser under vmap is one batched QR.
    plain = jax.vmap(lambda k: jax.nn.initializers.orthogonal()(k, (H, H)))
    assert _qr_operand_ranks(jax.make_jaxpr(plain)(keys).jaxpr) == [3]


def test_irnn_recurrence_is_the_identity(key):
    params = cells.irnn(H).init(key, F)
    np.testing.assert_array_equal(params["w_h"], np.eye(H, dtype=np.float32))
    np.testing.assert_array_equal(params["b"], np.zeros(H, np.float32))
    # and the activation is ReLU: a negative pre-activation gives zero.
    cell = cells.irnn(H)
    _, h = cell.step(params, -jnp.ones(H), jnp.zeros(F))
    np.testing.assert_array_equal(h, np.zeros(H, np.float32))


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_identity_init_is_identity_per_gate_block(name, key):
    cell = cells.get_cell(name, H, recurrent_init="identity")
    w_h = np.asarray(cell.init(key, F)["w_h"])
    for block in np.split(w_h, NUM_GATES[name], axis=1):
        np.testing.assert_array_equal(block, np.eye(H, dtype=np.float32))


@pytest.mark.parametrize("recurrent_init", ["orthogonal", "identity"])
def test_rnn_recurrent_scale_sets_the_spectral_radius(recurrent_init, key, x64):
    w_h = cells.rnn(H, recurrent_init=recurrent_init, recurrent_scale=1.5, dtype=jnp.float64)
    w_h = np.asarray(w_h.init(key, F)["w_h"])
    np.testing.assert_allclose(np.linalg.svd(w_h, compute_uv=False), np.full(H, 1.5), atol=1e-12)
    np.testing.assert_allclose(np.abs(np.linalg.eigvals(w_h)), np.full(H, 1.5), atol=1e-12)


@pytest.mark.parametrize("forget_bias", [1.0, 0.0, 2.5])
def test_lstm_forget_gate_bias(forget_bias, key):
    b = np.asarray(cells.lstm(H, forget_bias=forget_bias).init(key, F)["b"])
    b_f, b_i, b_g, b_o = np.split(b, 4)
    np.testing.assert_array_equal(b_f, np.full(H, forget_bias, np.float32))
    for rest in (b_i, b_g, b_o):
        np.testing.assert_array_equal(rest, np.zeros(H, np.float32))


def test_lstm_default_forget_bias_is_one(key):
    b = np.asarray(cells.lstm(H).init(key, F)["b"])
    np.testing.assert_array_equal(b[:H], np.ones(H, np.float32))


def test_lstm_chrono_biases(key):
    hidden = 256  # enough units to see the range being used
    cell = cells.lstm(hidden, forget_bias=7.0, chrono=T_MAX, recurrent_init=_NO_QR)
    b = np.asarray(cell.init(key, F)["b"])
    b_f, b_i, b_g, b_o = np.split(b, 4)
    assert np.all(b_f >= 0.0) and np.all(b_f <= np.log(T_MAX - 1.0) + 1e-6)
    np.testing.assert_array_equal(b_i, -b_f)
    np.testing.assert_array_equal(b_g, np.zeros(hidden, np.float32))
    np.testing.assert_array_equal(b_o, np.zeros(hidden, np.float32))
    # log of a uniform on [1, T_max - 1]: spread across the range, forget_bias ignored.
    assert b_f.min() < 0.5 and b_f.max() > np.log(T_MAX - 1.0) - 0.5
    assert not np.any(b_f == 7.0)
    # the mean of log(U) for U ~ U[1, M] is (M log M - M + 1) / (M - 1)
    m = T_MAX - 1.0
    assert abs(b_f.mean() - (m * np.log(m) - m + 1.0) / (m - 1.0)) < 0.15


def test_gru_chrono_update_gate_bias(key):
    hidden = 256
    params = cells.gru(hidden, chrono=T_MAX, recurrent_init=_NO_QR).init(key, F)
    b_r, b_z, b_n = np.split(np.asarray(params["b_i"]), 3)
    assert np.all(b_z >= 0.0) and np.all(b_z <= np.log(T_MAX - 1.0) + 1e-6)
    assert b_z.min() < 0.5 and b_z.max() > np.log(T_MAX - 1.0) - 0.5
    np.testing.assert_array_equal(b_r, np.zeros(hidden, np.float32))
    np.testing.assert_array_equal(b_n, np.zeros(hidden, np.float32))
    np.testing.assert_array_equal(params["b_hn"], np.zeros(hidden, np.float32))


def test_gru_default_biases_are_zero(key):
    params = cells.gru(H).init(key, F)
    np.testing.assert_array_equal(params["b_i"], np.zeros(3 * H, np.float32))
    np.testing.assert_array_equal(params["b_hn"], np.zeros(H, np.float32))


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_glorot_uniform_input_init(name, key):
    hidden, fan_in = 64, 96
    cell = cells.get_cell(name, hidden, input_init="glorot", recurrent_init=_NO_QR)
    w_i = np.asarray(cell.init(key, fan_in)["w_i"])
    fan_out = w_i.shape[1]
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    assert np.all(np.abs(w_i) <= limit)
    assert np.abs(w_i).max() > 0.95 * limit  # uniform on the whole interval
    np.testing.assert_allclose(w_i.std(), limit / np.sqrt(3.0), rtol=0.05)
    assert abs(w_i.mean()) < 0.05 * limit


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_lecun_normal_input_init(name, key):
    hidden, fan_in = 64, 96
    cell = cells.get_cell(name, hidden, input_init="lecun", recurrent_init=_NO_QR)
    w_i = np.asarray(cell.init(key, fan_in)["w_i"])
    np.testing.assert_allclose(w_i.std(), 1.0 / np.sqrt(fan_in), rtol=0.05)
    assert abs(w_i.mean()) < 0.05 / np.sqrt(fan_in)
    # a normal truncated at two (untruncated) standard deviations, rescaled to keep the variance
    # 1 / fan_in: bounded, and with kurtosis ~2.36 (a uniform's is 1.8, a normal's 3).
    untruncated_std = 1.0 / np.sqrt(fan_in) / 0.87962566103423978
    assert np.all(np.abs(w_i) <= 2.0 * untruncated_std + 1e-6)
    z = (w_i - w_i.mean()) / w_i.std()
    assert 2.15 < np.mean(z**4) < 2.6


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_callable_initialisers_are_used(name, key):
    def fives(key, shape, dtype=jnp.float32):
        del key
        return jnp.full(shape, 5.0, dtype)

    cell = cells.get_cell(name, H, input_init=jax.nn.initializers.zeros, recurrent_init=fives)
    params = cell.init(key, F)
    np.testing.assert_array_equal(params["w_i"], np.zeros_like(params["w_i"]))
    np.testing.assert_array_equal(params["w_h"], np.full_like(params["w_h"], 5.0))


# ---------------------------------------------------------------------------------------------
# One step against the NumPy reference.


@pytest.mark.parametrize("case_id", ALL_CASES)
def test_step_matches_numpy_reference(case_id, key, x64):
    cell = FACTORIES[case_id](dtype=jnp.float64)
    k_init, k_noise, k_carry, k_x = jax.random.split(key, 4)
    params = _perturbed(cell.init(k_init, F), k_noise)
    carry = _random_carry(cell, k_carry, jnp.float64)
    x = jax.random.normal(k_x, (F,), jnp.float64)

    new_carry, h = cell.step(params, carry, x)

    np_params = {name: np.asarray(value, np.float64) for name, value in params.items()}
    ref_carry, ref_h = NUMPY_STEP[case_id](np_params, _carry_to_numpy(cell, carry), np.asarray(x))
    np.testing.assert_allclose(h, ref_h, rtol=1e-12, atol=1e-12)
    got = _carry_to_numpy(cell, new_carry)
    for got_leaf, ref_leaf in zip(np.atleast_2d(got), np.atleast_2d(ref_carry), strict=True):
        np.testing.assert_allclose(got_leaf, ref_leaf, rtol=1e-12, atol=1e-12)
    chex.assert_trees_all_equal_structs(new_carry, carry)
    assert h.shape == (H,) and h.dtype == jnp.float64


@pytest.mark.parametrize("case_id", ALL_CASES)
def test_step_float32_close_to_numpy_float64(case_id, key):
    cell = FACTORIES[case_id]()
    k_init, k_noise, k_carry, k_x = jax.random.split(key, 4)
    params = _perturbed(cell.init(k_init, F), k_noise)
    carry = _random_carry(cell, k_carry, jnp.float32)
    x = jax.random.normal(k_x, (F,), jnp.float32)
    _, h = cell.step(params, carry, x)
    np_params = {name: np.asarray(value, np.float64) for name, value in params.items()}
    _, ref_h = NUMPY_STEP[case_id](np_params, _carry_to_numpy(cell, carry), np.asarray(x, float))
    assert h.dtype == jnp.float32
    np.testing.assert_allclose(h, ref_h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case_id", ALL_CASES)
def test_vmapped_step_equals_per_example_steps(case_id, key):
    batch = 3
    cell = FACTORIES[case_id]()
    k_init, k_noise, k_carry, k_x = jax.random.split(key, 4)
    params = _perturbed(cell.init(k_init, F), k_noise)
    carries = jax.vmap(lambda k: _random_carry(cell, k, jnp.float32))(
        jax.random.split(k_carry, batch)
    )
    xs = jax.random.normal(k_x, (batch, F))
    new_carries, hs = jax.vmap(cell.step, in_axes=(None, 0, 0))(params, carries, xs)
    assert hs.shape == (batch, H)
    for b in range(batch):
        carry_b = jax.tree.map(lambda leaf, b=b: leaf[b], carries)
        ref_carry, ref_h = cell.step(params, carry_b, xs[b])
        np.testing.assert_allclose(hs[b], ref_h, rtol=1e-6, atol=1e-6)
        chex.assert_trees_all_close(
            jax.tree.map(lambda leaf, b=b: leaf[b], new_carries), ref_carry, rtol=1e-6, atol=1e-6
        )


def test_lstm_gates_match_reference(key, x64):
    cell = cells.lstm(H, dtype=jnp.float64)
    params = _perturbed(cell.init(key, F), jax.random.key(1))
    h = jax.random.normal(jax.random.key(2), (H,), jnp.float64)
    x = jax.random.normal(jax.random.key(3), (F,), jnp.float64)
    gates = cells.lstm_gates(params, h, x)
    p = {name: np.asarray(v) for name, v in params.items()}
    z = np.asarray(x) @ p["w_i"] + np.asarray(h) @ p["w_h"] + p["b"]
    np.testing.assert_allclose(gates.f, _sigmoid(z[:H]), atol=1e-12)
    np.testing.assert_allclose(gates.i, _sigmoid(z[H : 2 * H]), atol=1e-12)
    np.testing.assert_allclose(gates.g, np.tanh(z[2 * H : 3 * H]), atol=1e-12)
    np.testing.assert_allclose(gates.o, _sigmoid(z[3 * H :]), atol=1e-12)


def test_gru_gates_match_reference(key, x64):
    cell = cells.gru(H, dtype=jnp.float64)
    params = _perturbed(cell.init(key, F), jax.random.key(1))
    h = jax.random.normal(jax.random.key(2), (H,), jnp.float64)
    x = jax.random.normal(jax.random.key(3), (F,), jnp.float64)
    gates = cells.gru_gates(params, h, x)
    p = {name: np.asarray(v) for name, v in params.items()}
    zx = np.asarray(x) @ p["w_i"] + p["b_i"]
    zh = np.asarray(h) @ p["w_h"]
    r = _sigmoid(zx[:H] + zh[:H])
    np.testing.assert_allclose(gates.r, r, atol=1e-12)
    np.testing.assert_allclose(gates.z, _sigmoid(zx[H : 2 * H] + zh[H : 2 * H]), atol=1e-12)
    np.testing.assert_allclose(gates.n, np.tanh(zx[2 * H :] + r * (zh[2 * H :] + p["b_hn"])))


# ---------------------------------------------------------------------------------------------
# Registry and bad input.


@pytest.mark.parametrize("name", ["rnn", "irnn", "lstm", "gru"])
def test_get_cell_builds_the_registered_cell(name, key):
    cell = cells.get_cell(name, H)
    assert cell.hidden_size == H
    assert cell.name == ("rnn" if name == "irnn" else name)
    reference = cells.CELLS[name](H)
    chex.assert_trees_all_equal(cell.init(key, F), reference.init(key, F))


def test_get_cell_unknown_name_lists_valid_names():
    listed = re.escape(str(sorted(cells.CELLS)))
    with pytest.raises(ValueError, match=rf"'transformer'.*{listed}"):
        cells.get_cell("transformer", H)


def test_unknown_activation():
    with pytest.raises(ValueError, match=r"activation='sigmoid'.*\['relu', 'tanh'\]"):
        cells.rnn(H, "sigmoid")


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("arg", ["input_init", "recurrent_init"])
def test_unknown_initialiser(name, arg):
    with pytest.raises(ValueError, match=rf"{arg}='he_uniform'.*'glorot'"):
        cells.get_cell(name, H, **{arg: "he_uniform"})


@pytest.mark.parametrize("name", ["rnn", "irnn", "lstm", "gru"])
@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_non_positive_hidden_size(name, bad):
    with pytest.raises(ValueError, match=rf"hidden_size must be a positive int, got {bad!r}"):
        cells.get_cell(name, bad)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bad", [0, -1, 3.0])
def test_non_positive_input_size(name, bad, key):
    with pytest.raises(ValueError, match=rf"input_size must be a positive int, got {bad!r}"):
        cells.get_cell(name, H).init(key, bad)


@pytest.mark.parametrize("name", ["lstm", "gru"])
@pytest.mark.parametrize("bad", [2.0, 1, -5.0])
def test_chrono_needs_t_max_above_two(name, bad, key):
    with pytest.raises(ValueError, match=rf"chrono.*T_max > 2, got {bad!r}"):
        cells.get_cell(name, H, chrono=bad).init(key, F)


def test_identity_init_needs_a_whole_number_of_square_blocks(key):
    identity = cells.RECURRENT_INITS["identity"]()
    with pytest.raises(ValueError, match=r"identity.*shape \(4, 6\)"):
        identity(key, (4, 6))


@pytest.mark.parametrize("case_id", ALL_CASES)
@pytest.mark.parametrize("bad_shape", [(F + 2,), (2, F + 1), ()])
def test_step_wrong_feature_size(case_id, bad_shape, key):
    cell = FACTORIES[case_id]()
    params = cell.init(key, F)
    with pytest.raises(ValueError, match=r"x has shape " + re.escape(str(bad_shape))):
        cell.step(params, cell.initial_carry(), jnp.zeros(bad_shape))
