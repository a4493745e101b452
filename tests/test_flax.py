"""Tests of the Flax interop: Flax's own cells as references for the weight mapping, and seqjax
cells wrapped as Flax modules inside ``flax.linen.RNN`` and ``flax.nnx.RNN``.

The independent reference is Flax itself: its ``LSTMCell``, ``OptimizedLSTMCell``, ``GRUCell``
and ``SimpleCell`` (linen and NNX) are given random weights with every bias moved away from zero,
converted with ``seqjax.flax``, and run side by side with seqjax on the same inputs and a
random (non-zero) initial carry, one step and a whole sequence, carries included.
"""

import sys

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import seqjax
import seqjax.flax as sf

B, T, F, H = 2, 6, 3, 4
ATOL = 1e-5

# Every Flax cell that from_flax supports, by id; EXPECTED_NAME is the seqjax cell it maps to.
LINEN_CASES = {
    "LSTMCell": lambda: nn.LSTMCell(features=H),
    "OptimizedLSTMCell": lambda: nn.OptimizedLSTMCell(features=H),
    "GRUCell": lambda: nn.GRUCell(features=H),
    "SimpleCell": lambda: nn.SimpleCell(features=H),
    "SimpleCell_relu": lambda: nn.SimpleCell(features=H, activation_fn=nn.relu),
}
NNX_CASES = {
    "LSTMCell": lambda rngs: nnx.LSTMCell(F, H, rngs=rngs),
    "OptimizedLSTMCell": lambda rngs: nnx.OptimizedLSTMCell(F, H, rngs=rngs),
    "GRUCell": lambda rngs: nnx.GRUCell(F, H, rngs=rngs),
    "SimpleCell": lambda rngs: nnx.SimpleCell(F, H, rngs=rngs),
    "SimpleCell_relu": lambda rngs: nnx.SimpleCell(F, H, activation_fn=nnx.relu, rngs=rngs),
}
EXPECTED_NAME = {
    "LSTMCell": "lstm",
    "OptimizedLSTMCell": "lstm",
    "GRUCell": "gru",
    "SimpleCell": "rnn",
    "SimpleCell_relu": "rnn",
}
SEQJAX_CASES = {
    "lstm": lambda: seqjax.lstm(H),
    "gru": lambda: seqjax.gru(H),
    "irnn": lambda: seqjax.irnn(H),
}


def _random_like(abstract, seed, scale=0.5):
    """Normal random leaves (NumPy, nothing to compile) with the shapes and dtypes of
    ``abstract``. Every parameter, biases included, is drawn this way: no bias is left at zero.
    """
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda leaf: jnp.asarray(scale * rng.standard_normal(leaf.shape), leaf.dtype), abstract
    )


def _random_params(cell, seed):
    return _random_like(jax.eval_shape(lambda k: cell.init(k, F), jax.random.key(0)), seed)


def _is_lstm(case_id):
    return "LSTM" in case_id


def _flax_carry(case_id, seed, dtype=jnp.float32):
    """A random (non-zero) Flax carry ``[B, H]``: ``(c, h)`` for an LSTM, ``h`` otherwise."""
    shape = jax.ShapeDtypeStruct((B, H), dtype)
    return _random_like((shape, shape) if _is_lstm(case_id) else shape, seed, scale=1.0)


def _to_seqjax_carry(case_id, carry):
    return sf.lstm_carry_from_flax(carry) if _is_lstm(case_id) else carry


def _assert_trees_close(got, want, atol=ATOL):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.shape == w.shape
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=atol, rtol=0)


def _batched_unroll(cell, params, xs, carry):
    """seqjax over a batch ``[B, T, F]``: ``unroll`` (one sequence) vmapped."""
    return jax.vmap(lambda c, x: seqjax.unroll(cell, params, x, carry=c))(carry, xs)


@pytest.fixture(scope="module")
def data():
    return {
        "xs": _random_like(jax.ShapeDtypeStruct((B, T, F), jnp.float32), 42, scale=1.0),
        "x": _random_like(jax.ShapeDtypeStruct((B, F), jnp.float32), 43, scale=1.0),
    }


def _linen_variables(module, seed, dtype=jnp.float32):
    """Random variables for a linen cell: the shapes of ``module.init``, random values."""
    key = jax.random.key(0)
    carry = jax.eval_shape(lambda k: module.initialize_carry(k, (B, F)), key)
    abstract = jax.eval_shape(module.init, key, carry, jax.ShapeDtypeStruct((B, F), dtype))
    return _random_like(abstract, seed)


@pytest.fixture(scope="module")
def linen_cases():
    """For each linen case: the module, its random variables, and from_flax's output."""
    out = {}
    for n, (case_id, make) in enumerate(LINEN_CASES.items()):
        module = make()
        variables = _linen_variables(module, n)
        cell, params = sf.from_flax(module, variables)
        out[case_id] = (module, variables, cell, params)
    return out


@pytest.fixture(scope="module")
def nnx_cases():
    """For each NNX case: the module with random params, and from_flax's output."""
    out = {}
    for n, (case_id, make) in enumerate(NNX_CASES.items()):
        graphdef, abstract = nnx.split(nnx.eval_shape(lambda make=make: make(nnx.Rngs(0))))
        module = nnx.merge(graphdef, _random_like(abstract, 100 + n))
        cell, params = sf.from_flax(module)
        out[case_id] = (module, cell, params)
    return out


# ---------------------------------------------------------------------------------------------
# Flax cells -> seqjax: one step and a whole sequence, against Flax itself.


@pytest.mark.parametrize("case_id", list(LINEN_CASES))
def test_linen_step_and_sequence_match_flax(case_id, linen_cases, data):
    module, variables, cell, params = linen_cases[case_id]
    assert cell.name == EXPECTED_NAME[case_id]
    rnn_layer = nn.RNN(module, return_carry=True)

    def run(carry, x, xs):
        step = module.apply(variables, carry, x)
        seq = rnn_layer.apply({"params": {"cell": variables["params"]}}, xs, initial_carry=carry)
        sj_carry = _to_seqjax_carry(case_id, carry)
        sj_step = jax.vmap(cell.step, in_axes=(None, 0, 0))(params, sj_carry, x)
        sj_seq = _batched_unroll(cell, params, xs, sj_carry)
        return step, seq, sj_step, sj_seq

    carry = _flax_carry(case_id, 7)
    step, seq, sj_step, sj_seq = run(carry, data["x"], data["xs"])
    for (want_carry, want_h), (got_carry, got_h) in [(step, sj_step), (seq, sj_seq)]:
        _assert_trees_close(got_h, want_h)
        _assert_trees_close(got_carry, _to_seqjax_carry(case_id, want_carry))
    assert sj_seq[1].shape == (B, T, H)


@pytest.mark.parametrize("case_id", list(NNX_CASES))
def test_nnx_step_and_sequence_match_flax(case_id, nnx_cases, data):
    module, cell, params = nnx_cases[case_id]
    assert cell.name == EXPECTED_NAME[case_id]

    def run(module, carry, x, xs):
        step = module(carry, x)
        seq = nnx.RNN(module, return_carry=True)(xs, initial_carry=carry)
        sj_carry = _to_seqjax_carry(case_id, carry)
        sj_step = jax.vmap(cell.step, in_axes=(None, 0, 0))(params, sj_carry, x)
        sj_seq = _batched_unroll(cell, params, xs, sj_carry)
        return step, seq, sj_step, sj_seq

    carry = _flax_carry(case_id, 9)
    step, seq, sj_step, sj_seq = run(module, carry, data["x"], data["xs"])
    for (want_carry, want_h), (got_carry, got_h) in [(step, sj_step), (seq, sj_seq)]:
        _assert_trees_close(got_h, want_h)
        _assert_trees_close(got_carry, _to_seqjax_carry(case_id, want_carry))


@pytest.mark.parametrize("case_id", ["LSTMCell", "GRUCell"])
def test_mapping_is_exact_in_float64(case_id, x64):
    # A pure re-arrangement of weights: in float64 seqjax and Flax agree to rounding.
    module = LINEN_CASES[case_id]().copy(param_dtype=jnp.float64)
    x = _random_like(jax.ShapeDtypeStruct((B, F), jnp.float64), 3, scale=1.0)
    carry = _flax_carry(case_id, 4, dtype=jnp.float64)
    variables = _linen_variables(module, 5, jnp.float64)
    cell, params = sf.from_flax(module, variables)
    assert params["w_i"].dtype == jnp.float64
    assert jax.tree.leaves(cell.initial_carry())[0].dtype == jnp.float64

    def run(carry, x):
        sj_carry = _to_seqjax_carry(case_id, carry)
        sj_step = jax.vmap(cell.step, in_axes=(None, 0, 0))(params, sj_carry, x)
        return module.apply(variables, carry, x), sj_step

    (want_carry, want_h), (got_carry, got_h) = run(carry, x)
    _assert_trees_close(got_h, want_h, atol=1e-12)
    _assert_trees_close(got_carry, _to_seqjax_carry(case_id, want_carry), atol=1e-12)


@pytest.mark.parametrize(
    ("case_id", "from_flax", "to_flax"),
    [
        ("LSTMCell", sf.lstm_params_from_flax, sf.lstm_params_to_flax),
        ("GRUCell", sf.gru_params_from_flax, sf.gru_params_to_flax),
        ("SimpleCell", sf.rnn_params_from_flax, sf.rnn_params_to_flax),
    ],
)
def test_params_round_trip(case_id, from_flax, to_flax, linen_cases):
    _, variables, _, params = linen_cases[case_id]
    back = to_flax(params)
    _assert_trees_close(back, variables["params"], atol=0)
    _assert_trees_close(from_flax(back), params, atol=0)


def test_lstm_params_layout_gate_order(linen_cases):
    # seqjax fuses f, i, g, o; Flax names the forget gate's layers "if"/"hf".
    _, variables, _, params = linen_cases["LSTMCell"]
    p = variables["params"]
    np.testing.assert_array_equal(params["w_i"][:, :H], p["if"]["kernel"])
    np.testing.assert_array_equal(params["w_h"][:, H : 2 * H], p["hi"]["kernel"])
    np.testing.assert_array_equal(params["b"][3 * H :], p["ho"]["bias"])


@pytest.mark.parametrize(
    ("cell", "module", "to_flax", "case_id"),
    [
        (seqjax.lstm(H), nn.OptimizedLSTMCell(H), sf.lstm_params_to_flax, "LSTMCell"),
        (seqjax.gru(H), nn.GRUCell(H), sf.gru_params_to_flax, "GRUCell"),
        (seqjax.rnn(H), nn.SimpleCell(H), sf.rnn_params_to_flax, "SimpleCell"),
    ],
    ids=["lstm", "gru", "rnn"],
)
def test_seqjax_params_drive_flax_cells(cell, module, to_flax, case_id, data):
    # The other direction: seqjax params, converted, run in Flax's own cells.
    params = _random_params(cell, 50)

    def run(carry, xs):
        flax_vars = {"params": {"cell": to_flax(params)}}
        want = nn.RNN(module, return_carry=True).apply(flax_vars, xs, initial_carry=carry)
        got = _batched_unroll(cell, params, xs, _to_seqjax_carry(case_id, carry))
        return want, got

    (want_carry, want_hs), (got_carry, got_hs) = run(_flax_carry(case_id, 60), data["xs"])
    _assert_trees_close(got_hs, want_hs)
    _assert_trees_close(got_carry, _to_seqjax_carry(case_id, want_carry))


def test_lstm_carry_conversion():
    c, h = jnp.arange(3.0), jnp.arange(3.0) + 10.0
    carry = sf.lstm_carry_from_flax((c, h))
    assert isinstance(carry, seqjax.LSTMCarry)
    np.testing.assert_array_equal(carry.h, h)
    np.testing.assert_array_equal(carry.c, c)
    c2, h2 = sf.lstm_carry_to_flax(carry)
    np.testing.assert_array_equal(c2, c)
    np.testing.assert_array_equal(h2, h)


# ---------------------------------------------------------------------------------------------
# seqjax cells as Flax modules.


def _loss(carry, hs):
    return jnp.sum(hs**2) + sum(jnp.sum(leaf) for leaf in jax.tree.leaves(carry))


@pytest.mark.parametrize("case_id", list(SEQJAX_CASES))
def test_linen_cell_in_flax_rnn_equals_unroll(case_id, data):
    cell = SEQJAX_CASES[case_id]()
    layer = nn.RNN(sf.LinenCell(cell), return_carry=True)
    # The params are the seqjax params: the keys and shapes of cell.init.
    abstract = jax.eval_shape(layer.init, jax.random.key(0), data["xs"])
    assert jax.tree.map(lambda s: s.shape, abstract["params"]["cell"]) == jax.tree.map(
        lambda s: s.shape, jax.eval_shape(lambda k: cell.init(k, F), jax.random.key(0))
    )
    params = _random_params(cell, 1)
    carry0 = _random_like(
        jax.tree.map(lambda a: jnp.broadcast_to(a, (B, *a.shape)), cell.initial_carry()),
        2,
    )

    def flax_loss(p, xs):
        carry, hs = layer.apply({"params": {"cell": p}}, xs, initial_carry=carry0)
        return _loss(carry, hs), (carry, hs)

    def seqjax_loss(p, xs):
        carry, hs = _batched_unroll(cell, p, xs, carry0)
        return _loss(carry, hs), (carry, hs)

    def run(p, xs):
        return (
            jax.value_and_grad(flax_loss, has_aux=True)(p, xs),
            jax.value_and_grad(seqjax_loss, has_aux=True)(p, xs),
        )

    ((_, (got_carry, got_hs)), got_grads), ((_, (want_carry, want_hs)), want_grads) = run(
        params, data["xs"]
    )
    _assert_trees_close(got_hs, want_hs)
    _assert_trees_close(got_carry, want_carry)
    _assert_trees_close(got_grads, want_grads)
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(got_grads))


def test_linen_cell_init_is_cell_init():
    # New params come from cell.init: the LSTM's forget-gate bias starts at forget_bias.
    cell = seqjax.lstm(H, forget_bias=2.0, recurrent_init="glorot")
    variables = sf.LinenCell(cell).init(jax.random.key(0), cell.initial_carry(), jnp.ones(F))
    params = variables["params"]
    assert set(params) == {"w_i", "w_h", "b"}
    np.testing.assert_array_equal(params["b"], np.r_[np.full(H, 2.0), np.zeros(3 * H)])
    assert params["w_i"].shape == (F, 4 * H)
    assert float(jnp.std(params["w_h"])) > 0


@pytest.mark.parametrize("case_id", ["lstm", "gru"])
def test_nnx_cell_in_nnx_rnn_equals_unroll(case_id, data):
    cell = SEQJAX_CASES[case_id]()
    module = sf.NNXCell(cell, F, rngs=nnx.Rngs(0))
    assert jax.tree.map(jnp.shape, module.seqjax_params()) == jax.tree.map(
        lambda s: s.shape, jax.eval_shape(lambda k: cell.init(k, F), jax.random.key(0))
    )
    # Given params through the second construction path, NNXCell(params=...).
    params = _random_params(cell, 5)
    module = sf.NNXCell(cell, params=params)

    def nnx_loss(m, xs):
        carry, hs = nnx.RNN(m, return_carry=True)(xs)
        return _loss(carry, hs), (carry, hs)

    def seqjax_loss(p, xs):
        carry0 = jax.tree.map(lambda a: jnp.broadcast_to(a, (B, *a.shape)), cell.initial_carry())
        carry, hs = _batched_unroll(cell, p, xs, carry0)
        return _loss(carry, hs), (carry, hs)

    def run(m, p, xs):
        return (
            nnx.value_and_grad(nnx_loss, has_aux=True)(m, xs),
            jax.value_and_grad(seqjax_loss, has_aux=True)(p, xs),
        )

    ((_, (got_carry, got_hs)), got_grads), ((_, (want_carry, want_hs)), want_grads) = run(
        module, params, data["xs"]
    )
    _assert_trees_close(got_hs, want_hs)
    _assert_trees_close(got_carry, want_carry)
    _assert_trees_close(nnx.to_pure_dict(got_grads)["params"], want_grads)


def test_wrappers_accept_any_batch_dims():
    cell = seqjax.lstm(H)
    params = _random_params(cell, 0)
    x = _random_like(jax.ShapeDtypeStruct((2, 3, F), jnp.float32), 2, scale=1.0)
    linen = sf.LinenCell(cell)
    nnx_cell = sf.NNXCell(cell, params=params)
    step1 = jax.vmap(cell.step, in_axes=(None, 0, 0))
    steps = {0: cell.step, 1: step1, 2: jax.vmap(step1, in_axes=(None, 0, 0))}
    for batch in [(), (3,), (2, 3)]:
        xb = x[(0,) * (2 - len(batch))]
        carry = linen.initialize_carry(jax.random.key(0), xb.shape)
        assert carry.h.shape == (*batch, H)
        assert jax.tree.map(jnp.shape, nnx_cell.initialize_carry(xb.shape)) == jax.tree.map(
            jnp.shape, carry
        )
        carry = _random_like(carry, 3)

        def run(m, carry, xb):
            return linen.apply({"params": params}, carry, xb), m(carry, xb)

        got_linen, got_nnx = run(nnx_cell, carry, xb)
        want = steps[len(batch)](params, carry, xb)
        _assert_trees_close(got_linen, want)
        _assert_trees_close(got_nnx, want)


# ---------------------------------------------------------------------------------------------
# Errors name what was received and what was expected.


def test_from_flax_errors(linen_cases):
    _, variables, _, _ = linen_cases["LSTMCell"]
    with pytest.raises(TypeError, match=r"MGUCell.*flax\.linen\.GRUCell"):
        sf.from_flax(nn.MGUCell(H), variables)
    with pytest.raises(ValueError, match="pass its variables"):
        sf.from_flax(nn.LSTMCell(H))
    with pytest.raises(ValueError, match="gate_fn"):
        sf.from_flax(nn.LSTMCell(H, gate_fn=nn.hard_sigmoid), variables)
    with pytest.raises(ValueError, match="residual"):
        sf.from_flax(nn.SimpleCell(H, residual=True), linen_cases["SimpleCell"][1])
    with pytest.raises(ValueError, match="activation_fn"):
        sf.from_flax(nn.SimpleCell(H, activation_fn=nn.gelu), linen_cases["SimpleCell"][1])
    with pytest.raises(ValueError, match=r"missing 'iz'/'kernel'; received \{'ir'"):
        sf.gru_params_from_flax({"ir": {"kernel": jnp.zeros((F, H))}})
    with pytest.raises(ValueError, match=r"expected \['b', 'w_h', 'w_i'\]"):
        sf.lstm_params_to_flax({"w_i": jnp.zeros((F, 4 * H))})
    with pytest.raises(ValueError, match="holds its own params"):
        sf.from_flax(nnx.GRUCell(F, H, rngs=nnx.Rngs(0)), variables)


def test_wrapper_errors():
    cell = seqjax.gru(H)
    with pytest.raises(TypeError, match="seqjax Cell"):
        sf.NNXCell(nn.GRUCell(H), F, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="seqjax Cell"):
        sf.LinenCell(nn.GRUCell(H)).init(jax.random.key(0), jnp.zeros(H), jnp.zeros(F))
    with pytest.raises(ValueError, match="pass both"):
        sf.NNXCell(cell, F)
    with pytest.raises(ValueError, match=r"expected .*'w_i': \(3, 12\)"):
        sf.NNXCell(cell, params={"w_i": jnp.zeros((F, 3 * H))})
    with pytest.raises(ValueError, match="in_features=5"):
        sf.NNXCell(cell, 5, params=cell.init(jax.random.key(0), F))
    module = sf.NNXCell(cell, F, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"carry has shapes \(2, 4\), expected \(3, 4\)"):
        module(jnp.zeros((2, H)), jnp.zeros((3, F)))


def test_module_name_does_not_shadow_flax():
    # seqjax/flax.py imports the real Flax, and importing it leaves `flax` untouched.
    assert sf.nn is flax.linen
    assert sf.nnx is flax.nnx
    assert sys.modules["flax"] is flax
    assert "seqjax" not in flax.__file__
    assert seqjax.flax is sf
