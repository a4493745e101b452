"""Tests of the non-recurrent baselines (seqjax.baselines) against NumPy references: a loop
implementation of dilated causal convolution, attention written head by head and step by step,
whole transformer and TCN forward passes, and float64 finite differences."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.baselines import (
    BASELINES,
    causal_conv1d,
    causal_self_attention,
    sinusoidal_positions,
    tcn,
    tcn_num_levels,
    tcn_receptive_field,
    transformer,
)

T, F, OUT = 7, 3, 2
PATTERNS = ("many_to_one", "many_to_many")

BUILDERS = {
    # two pre-norm blocks, sinusoidal positions
    "transformer": lambda pattern, **kw: transformer(
        F, OUT, pattern=pattern, d_model=8, num_heads=2, num_layers=2, d_ff=8, **kw
    ),
    # one block, a learned position table of length T
    "transformer_learned": lambda pattern, **kw: transformer(
        F,
        OUT,
        pattern=pattern,
        d_model=8,
        num_heads=2,
        num_layers=1,
        positions="learned",
        max_len=T,
        **kw,
    ),
    # three levels (dilations 1, 2, 4), receptive field 15; a 1x1 residual on block 0 only
    "tcn": lambda pattern, **kw: tcn(
        F, OUT, pattern=pattern, channels=[4, 4, 4], kernel_size=2, **kw
    ),
}
CASES = [(name, pattern) for name in BUILDERS for pattern in PATTERNS]


def _xs(seed, shape=(T, F), dtype=np.float32):
    """Random inputs from NumPy (cheap: no JAX compile per shape)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


def _np(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


class Built:
    """One builder: its two models, one shared parameter set, jitted applies per pattern."""

    def __init__(self, name):
        self.models = {p: BUILDERS[name](p) for p in PATTERNS}
        # both patterns have the same parameter layout, so one init serves both
        self.params = self.models["many_to_many"].init(jax.random.key(1))
        self.single = {p: jax.jit(m.apply) for p, m in self.models.items()}
        self.batched = {
            p: jax.jit(jax.vmap(m.apply, in_axes=(None, 0, 0))) for p, m in self.models.items()
        }


@pytest.fixture(scope="module")
def built():
    return {name: Built(name) for name in BUILDERS}


# ----------------------------------------------------------------------------- NumPy references


def np_causal_conv(x, w, b, dilation):
    """``y[t] = b + sum_j x[t - (K - 1 - j) d] @ w[j]`` with zeros before step 0, as a loop."""
    num_steps, K = x.shape[0], w.shape[0]
    y = np.zeros((num_steps, w.shape[2]))
    for t in range(num_steps):
        y[t] = b
        for j in range(K):
            s = t - (K - 1 - j) * dilation
            if s >= 0:
                y[t] += x[s] @ w[j]
    return y


def np_layer_norm(p, x, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def np_attention(p, x, length, num_heads):
    """Causal multi-head attention, one head and one query step at a time."""
    num_steps, D = x.shape
    dh = D // num_heads
    q, k, v = (x @ p[n]["w"] + p[n]["b"] for n in ("q", "k", "v"))
    out = np.zeros((num_steps, D))
    for h in range(num_heads):
        cols = slice(h * dh, (h + 1) * dh)
        for t in range(num_steps):
            allowed = [s for s in range(t + 1) if s < length]
            scores = np.array([q[t, cols] @ k[s, cols] / math.sqrt(dh) for s in allowed])
            weights = np.exp(scores - scores.max())
            weights /= weights.sum()
            out[t, cols] = sum(wt * v[s, cols] for wt, s in zip(weights, allowed, strict=True))
    return out @ p["o"]["w"] + p["o"]["b"]


def np_gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def np_transformer(params, xs, length, num_heads, pos):
    enc = params["encoder"]
    z = xs @ enc["embed"]["w"] + enc["embed"]["b"] + pos
    for blk in enc["blocks"]:
        z = z + np_attention(blk["attn"], np_layer_norm(blk["ln1"], z), length, num_heads)
        u = np_layer_norm(blk["ln2"], z)
        hid = np_gelu(u @ blk["mlp"]["fc"]["w"] + blk["mlp"]["fc"]["b"])
        z = z + hid @ blk["mlp"]["proj"]["w"] + blk["mlp"]["proj"]["b"]
    z = np_layer_norm(enc["ln_f"], z)
    return z @ params["readout"]["w"] + params["readout"]["b"]


def np_tcn(params, xs):
    h = xs
    for i, blk in enumerate(params["encoder"]["blocks"]):
        d = 2**i
        u = np.maximum(np_causal_conv(h, blk["conv1"]["w"], blk["conv1"]["b"], d), 0)
        u = np.maximum(np_causal_conv(u, blk["conv2"]["w"], blk["conv2"]["b"], d), 0)
        res = h @ blk["down"]["w"] + blk["down"]["b"] if "down" in blk else h
        h = np.maximum(u + res, 0)
    return h @ params["readout"]["w"] + params["readout"]["b"]


# ------------------------------------------------------------------------- shapes and batching


@pytest.mark.parametrize("name,pattern", CASES)
def test_shapes_and_vmap_equals_per_example(built, name, pattern):
    b = built[name]
    model, params = b.models[pattern], b.params
    assert model.pattern == pattern and model.initial_carry() == ()
    assert (model.input_size, model.output_size) == (F, OUT)
    assert set(params) == {"encoder", "readout"}
    xs, lengths = _xs(2, (3, T, F)), jnp.array([T, 4, 1])
    out, carry = b.batched[pattern](params, xs, lengths)
    assert out.shape == ((3, OUT) if pattern == "many_to_one" else (3, T, OUT))
    assert carry == ()
    for i, n in enumerate(lengths.tolist()):
        one, c = b.single[pattern](params, xs[i], n)
        assert c == ()
        assert np.all(np.isfinite(one))
        np.testing.assert_allclose(out[i], one, atol=1e-5)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_padding_gives_unpadded_outputs_and_zeros_past_length(built, name):
    b, n = built[name], 4
    xs = _xs(3)
    garbage = xs.at[n:].set(100.0 * _xs(4)[n:])  # anything may sit past the length
    ys, _ = b.single["many_to_many"](b.params, garbage, n)
    ref, _ = b.single["many_to_many"](b.params, xs[:n])  # the unpadded sequence
    np.testing.assert_allclose(ys[:n], ref, atol=1e-5)
    np.testing.assert_array_equal(ys[n:], np.zeros((T - n, OUT)))
    last, _ = b.single["many_to_one"](b.params, garbage, n)
    full, _ = b.single["many_to_one"](b.params, xs[:n])
    np.testing.assert_allclose(last, full, atol=1e-5)
    np.testing.assert_allclose(last, ref[n - 1], atol=1e-5)  # the two patterns agree


# -------------------------------------------------------------------------------------- causality


def _influence(model, params, xs, **kw):
    """``|d out_t / d x_s|`` summed over output and input features and over a batch of inputs
    ``xs: [B, T, F]``, as ``[t, s]``; the batch makes a zero by chance (a ReLU that is off for
    one input) vanishingly unlikely, so zeros mean no dependence at all."""
    jac = jax.jacrev(lambda x: model.apply(params, x, **kw)[0])
    jacs = jax.jit(jax.vmap(jac))(xs)  # [B, T, O, T, F]
    return np.abs(np.asarray(jacs)).sum(axis=(0, 2, 4))


@pytest.mark.parametrize("name", list(BUILDERS))
def test_output_at_t_does_not_depend_on_later_inputs(built, name):
    b = built[name]
    influence = _influence(b.models["many_to_many"], b.params, _xs(5, (4, T, F)))
    future = np.triu(np.ones((T, T), bool), k=1)
    np.testing.assert_array_equal(influence[future], 0.0)  # exactly zero, not just small
    assert np.all(influence[~future] > 0)  # T = 7 lies within every receptive field here


def test_tcn_jacobian_is_nonzero_exactly_within_receptive_field(built):
    b = built["tcn"]
    R = tcn_receptive_field(2, 3)
    assert R == 15
    num_steps = R + 6
    xs = _xs(8, (16, num_steps, F))
    influence = _influence(b.models["many_to_many"], b.params, xs)
    t, s = np.meshgrid(np.arange(num_steps), np.arange(num_steps), indexing="ij")
    inside = (s <= t) & (s > t - R)
    assert np.all(influence[inside] > 0)
    np.testing.assert_array_equal(influence[~inside], 0.0)


def test_receptive_field_formula_and_levels():
    # 1 + 2 (K - 1)(2^L - 1), and the level count that first covers max_len
    assert [tcn_receptive_field(3, L) for L in range(1, 7)] == [5, 13, 29, 61, 125, 253]
    assert tcn_receptive_field(2, 1) == 3
    assert tcn_num_levels(3, 100) == 5 and tcn_num_levels(3, 125) == 5
    assert tcn_num_levels(3, 126) == 6 and tcn_num_levels(2, 1) == 1
    shapes = jax.eval_shape(
        tcn(1, 1, channels=2, kernel_size=3, max_len=100).init, jax.random.key(0)
    )
    assert len(shapes["encoder"]["blocks"]) == 5


# ---------------------------------------------------------------------------- NumPy references


@pytest.mark.parametrize(
    "K,d,c_in,c_out,num_steps", [(3, 1, 2, 4, 9), (2, 4, 3, 3, 9), (3, 8, 1, 2, 6), (1, 1, 2, 2, 4)]
)
def test_causal_conv_equals_numpy_loop(K, d, c_in, c_out, num_steps):
    params = {"w": _xs(K * d, (K, c_in, c_out)), "b": _xs(c_in, (c_out,))}
    x = _xs(num_steps, (num_steps, c_in))
    y = jax.jit(causal_conv1d, static_argnums=2)(params, x, d)
    ref = np_causal_conv(*(_np(v) for v in (x, params["w"], params["b"])), d)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_attention_equals_numpy_reference():
    D, heads = 6, 3
    params = {n: {"w": _xs(10 + i, (D, D)), "b": _xs(20 + i, (D,))} for i, n in enumerate("qkvo")}
    x = _xs(9, (T, D))
    attend = jax.jit(lambda p, x, n: causal_self_attention(p, x, n, num_heads=heads))
    for length in (T, 4, 1):
        y = attend(params, x, length)
        ref = np_attention(_np(params), np.asarray(x, np.float64), length, heads)
        np.testing.assert_allclose(y[:length], ref[:length], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["transformer", "transformer_learned"])
def test_transformer_equals_numpy(built, name):
    b, n, D = built[name], 5, 8
    params = jax.tree.map(lambda a: a, b.params)  # a copy whose dicts we may change
    # give the norms non-trivial scale and bias so the reference checks they are used
    for blk in params["encoder"]["blocks"]:
        for ln in ("ln1", "ln2"):
            blk[ln] = {"scale": jnp.linspace(0.5, 1.5, D), "bias": jnp.linspace(-0.2, 0.3, D)}
    xs = _xs(12)
    ys, _ = b.single["many_to_many"](params, xs, n)
    if name == "transformer_learned":
        pos = np.asarray(params["encoder"]["pos"], np.float64)
    else:  # Vaswani et al.: sin at even, cos at odd features
        i = np.arange(D)
        angles = np.arange(T)[:, None] / 10000.0 ** ((i - i % 2) / D)[None, :]
        pos = np.where(i % 2 == 0, np.sin(angles), np.cos(angles))
        np.testing.assert_allclose(sinusoidal_positions(T, D), pos, atol=1e-5)
    ref = np_transformer(_np(params), np.asarray(xs, np.float64), n, 2, pos)
    np.testing.assert_allclose(ys[:n], ref[:n], rtol=1e-4, atol=1e-4)


def test_sinusoidal_positions_odd_width():
    pos = sinusoidal_positions(4, 5)
    assert pos.shape == (4, 5)
    np.testing.assert_allclose(pos[:, 4], np.sin(np.arange(4) / 10000.0 ** (4 / 5)), atol=1e-6)


def test_tcn_equals_numpy(built):
    b = built["tcn"]
    blocks = b.params["encoder"]["blocks"]
    assert ["down" in blk for blk in blocks] == [True, False, False]
    xs = _xs(14)
    ys, _ = b.single["many_to_many"](b.params, xs)
    np.testing.assert_allclose(ys, np_tcn(_np(b.params), np.asarray(xs, np.float64)), atol=1e-5)


# ------------------------------------------------------------------------------ parameter layout


def _size(tree):
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def test_parameter_layout_and_counts(x64):
    D, d_ff, L, V = 16, 24, 3, 5
    model = transformer(
        F,
        V,
        d_model=D,
        num_heads=4,
        num_layers=L,
        d_ff=d_ff,
        positions="learned",
        max_len=11,
        dtype=jnp.float64,
    )
    shapes = jax.eval_shape(model.init, jax.random.key(0))  # no compile, no values
    enc = shapes["encoder"]
    assert set(enc) == {"embed", "pos", "blocks", "ln_f"} and len(enc["blocks"]) == L
    assert enc["embed"]["w"].shape == (F, D) and enc["pos"].shape == (11, D)
    blk = enc["blocks"][0]
    assert {n: blk["attn"][n]["w"].shape for n in "qkvo"} == {n: (D, D) for n in "qkvo"}
    assert blk["mlp"]["fc"]["w"].shape == (D, d_ff) and blk["mlp"]["proj"]["w"].shape == (d_ff, D)
    assert shapes["readout"]["w"].shape == (D, V)
    assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(shapes))
    per_block = 4 * D * D + 4 * D + 2 * D * d_ff + d_ff + D + 4 * D  # attention, MLP, norms
    assert _size(enc["blocks"]) == L * per_block
    assert _size(shapes) == L * per_block + (F + 1) * D + 11 * D + 2 * D + (D + 1) * V
    # the documented default: 99,968 parameters in the blocks; sinusoidal positions add none
    default = jax.eval_shape(transformer(F, V).init, jax.random.key(0))
    assert _size(default["encoder"]["blocks"]) == 99_968 and "pos" not in default["encoder"]

    K, chans = 3, [4, 6, 6]
    net = jax.eval_shape(tcn(F, V, channels=chans, kernel_size=K).init, jax.random.key(0))
    blocks = net["encoder"]["blocks"]
    assert ["down" in b for b in blocks] == [True, True, False]
    assert [b["conv1"]["w"].shape for b in blocks] == [(K, F, 4), (K, 4, 6), (K, 6, 6)]
    assert [b["conv2"]["w"].shape for b in blocks] == [(K, 4, 4), (K, 6, 6), (K, 6, 6)]
    assert blocks[1]["down"]["w"].shape == (4, 6) and net["readout"]["w"].shape == (6, V)


# ------------------------------------------------------------------------------------ gradients


@pytest.mark.parametrize(
    "name,pattern",
    [
        ("transformer", "many_to_many"),
        ("transformer_learned", "many_to_one"),
        ("tcn", "many_to_many"),
        ("tcn", "many_to_one"),
    ],
)
def test_gradients_match_finite_differences(x64, built, name, pattern):
    model = BUILDERS[name](pattern, dtype=jnp.float64)
    shapes = jax.eval_shape(model.init, jax.random.key(0))
    assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(shapes))
    # the shared float32 params, widened: same layout as model.init gives in float64
    params = jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), built[name].params)
    xs, n = _xs(16, dtype=np.float64), 5
    target = _xs(17, (T, OUT), np.float64)[0 if pattern == "many_to_one" else slice(None)]

    def loss(p):
        out, _ = model.apply(p, xs, n)
        return jnp.sum(jnp.square(out - target) * 0.5) + jnp.sum(jnp.sin(out))

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    _, grads = value_and_grad(params)
    assert all(g.dtype == jnp.float64 and np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(18)
    v = [jnp.asarray(rng.standard_normal(leaf.shape)) for leaf in leaves]
    eps = 1e-6

    def shifted(sign):
        moved = [leaf + sign * eps * d for leaf, d in zip(leaves, v, strict=True)]
        return float(value_and_grad(jax.tree.unflatten(treedef, moved))[0])

    fd = (shifted(1.0) - shifted(-1.0)) / (2 * eps)
    analytic = sum(float(jnp.vdot(g, d)) for g, d in zip(jax.tree.leaves(grads), v, strict=True))
    np.testing.assert_allclose(analytic, fd, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------- dropout and carry


@pytest.mark.parametrize("name", ["transformer_learned", "tcn"])
def test_dropout_only_with_a_key(built, name):
    b = built[name]
    model = BUILDERS[name]("many_to_many", dropout=0.5)
    apply = jax.jit(model.apply)
    xs = _xs(20)
    eval_out, _ = apply(b.params, xs)
    # without a key the model is the dropout-free one
    np.testing.assert_array_equal(eval_out, b.single["many_to_many"](b.params, xs)[0])
    a, _ = apply(b.params, xs, key=jax.random.key(1))
    a_again, _ = apply(b.params, xs, key=jax.random.key(1))
    c, _ = apply(b.params, xs, key=jax.random.key(2))
    assert not np.allclose(a, eval_out) and not np.allclose(a, c)
    np.testing.assert_array_equal(a, a_again)
    # with a key the masks are drawn per step and never mix steps: still causal
    influence = _influence(model, b.params, xs[None], key=jax.random.key(3))
    np.testing.assert_array_equal(influence[np.triu(np.ones((T, T), bool), k=1)], 0.0)


def test_carry_is_empty_and_rejects_state(built):
    b = built["tcn"]
    apply = b.single["many_to_many"]
    out, carry = apply(b.params, _xs(21), 5, carry=())
    np.testing.assert_array_equal(out, apply(b.params, _xs(21), 5)[0])
    assert carry == ()
    with pytest.raises(ValueError, match="keeps no state between calls, so carry must be None"):
        b.models["many_to_many"].apply(b.params, _xs(21), 5, carry=jnp.zeros(4))


# ----------------------------------------------------------------------------------- bad inputs


def test_bad_arguments_raise_clear_errors(built):
    assert set(BASELINES) == {"transformer", "tcn"}
    with pytest.raises(
        ValueError, match=r"d_model=10 must be divisible by num_heads=4.*d_model=12"
    ):
        transformer(F, OUT, d_model=10, num_heads=4)
    with pytest.raises(ValueError, match=r"unknown positions='rotary'; expected one of"):
        transformer(F, OUT, positions="rotary")
    with pytest.raises(ValueError, match=r"positions='learned' needs max_len"):
        transformer(F, OUT, positions="learned")
    for builder in (transformer, tcn):
        with pytest.raises(ValueError, match=r"unknown pattern='seq2seq'; expected one of"):
            builder(F, OUT, pattern="seq2seq", max_len=8)
        with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\), got 1.0"):
            builder(F, OUT, dropout=1.0, max_len=8)
        with pytest.raises(ValueError, match="output_size must be a positive int, got 0"):
            builder(F, 0, max_len=8)
    with pytest.raises(ValueError, match="give num_levels, or max_len"):
        tcn(F, OUT)
    with pytest.raises(ValueError, match="kernel_size must be an int >= 2, got 1"):
        tcn(F, OUT, kernel_size=1, max_len=8)
    with pytest.raises(ValueError, match=r"num_levels=3 entries"):
        tcn(F, OUT, channels=[4, 4], num_levels=3)
    b = built["transformer_learned"]
    model = b.models["many_to_many"]
    with pytest.raises(ValueError, match=r"T=9 steps but the model was built with max_len=7"):
        model.apply(b.params, jnp.ones((9, F)))
    with pytest.raises(ValueError, match=r"shape \(7, 5\), expected one sequence \[T, 3\]"):
        model.apply(b.params, jnp.ones((T, 5)))
