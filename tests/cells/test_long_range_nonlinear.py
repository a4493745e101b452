"""The nonlinear long-range cells IndRNN, expRNN and coRNN, table-driven.

Each numerical claim has an independent reference: the step equations re-written here in NumPy
float64 from the cell docstrings (SciPy's ``expm`` for expRNN), a plain Python loop over
``step`` for `seqjax.unroll` (values and gradients, lengths and reverse), central finite
differences for the gradients, and the sequential ``lax.scan`` over ``step`` for expRNN's
``scan`` fast path.
"""

import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg
from jaxpr_walk import all_eqns

import seqjax
from seqjax import cells
from seqjax.experiment.config import cell_options
from seqjax.unroll import unroll

H, F, T = 4, 3, 7

# (id, factory): each cell, and the options that change its code path (a bound on |u| that
# clips, tanh, the other skew initialisation, odd H, the adding problem's oscillators).
CELLS_UNDER_TEST = [
    ("indrnn", lambda **kw: cells.indrnn(H, **kw)),
    ("indrnn_bound_tanh", lambda **kw: cells.indrnn(H, "tanh", u_bound=0.8, u_min=0.2, **kw)),
    ("exprnn_henaff", lambda **kw: cells.exprnn(H, **kw)),
    ("exprnn_cayley_odd", lambda **kw: cells.exprnn(H + 1, init="cayley", **kw)),
    ("cornn", lambda **kw: cells.cornn(H, **kw)),
    ("cornn_adding", lambda **kw: cells.cornn(H, dt=0.06, gamma=66.0, epsilon=15.0, **kw)),
]
FACTORIES = dict(CELLS_UNDER_TEST)
CASE_IDS = list(FACTORIES)


# ---------------------------------------------------------------------------------------------
# NumPy float64 references, written from the docstrings.


def _np_indrnn(phi, bound):
    def step(p, h, x):
        u = p["u"] if bound is None else np.clip(p["u"], -bound, bound)
        h = phi(x @ p["w_i"] + u * h + p["b"])
        return h, h

    return step


def _np_exprnn(p, h, x):
    rec = scipy.linalg.expm(p["a"] - p["a"].T)
    z = x @ p["w_i"] + h @ rec
    h = np.sign(z) * np.maximum(np.abs(z) + p["b"], 0.0)
    return h, h


def _np_cornn(dt, gamma, eps):
    def step(p, carry, x):
        y, z = carry
        n = y.shape[0]
        drive = np.tanh(y @ p["w_h"][:, :n] + z @ p["w_h"][:, n:] + x @ p["w_i"] + p["b"])
        z = z + dt * (drive - gamma * y - eps * z)
        y = y + dt * z
        return (y, z), y

    return step


NUMPY_STEP = {
    "indrnn": _np_indrnn(lambda a: np.maximum(a, 0.0), None),
    "indrnn_bound_tanh": _np_indrnn(np.tanh, 0.8),
    "exprnn_henaff": _np_exprnn,
    "exprnn_cayley_odd": _np_exprnn,
    "cornn": _np_cornn(0.042, 2.7, 4.7),
    "cornn_adding": _np_cornn(0.06, 66.0, 15.0),
}


def _to_np(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def _perturbed(params, key, scale=0.5):
    """Noise on every leaf, so zero biases are exercised and ``u`` leaves its bound."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef,
        [
            a + scale * jax.random.normal(k, a.shape, a.dtype)
            for a, k in zip(leaves, keys, strict=True)
        ],
    )


def _random_carry(cell, key, dtype):
    leaves, treedef = jax.tree.flatten(cell.initial_carry())
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef, [jax.random.normal(k, a.shape, dtype) for a, k in zip(leaves, keys, strict=True)]
    )


def _setup(case_id, key, dtype=jnp.float64, steps=T):
    cell = FACTORIES[case_id](dtype=dtype)
    k_init, k_noise, k_carry, k_x = jax.random.split(key, 4)
    params = _perturbed(cell.init(k_init, F), k_noise)
    carry = _random_carry(cell, k_carry, dtype)
    xs = jax.random.normal(k_x, (steps, F), dtype)
    return cell, params, carry, xs


# ---------------------------------------------------------------------------------------------
# Layout, facts, initialisation.

EXPECTED_SHAPES = {
    "indrnn": lambda h: {"w_i": (F, h), "u": (h,), "b": (h,)},
    "exprnn": lambda h: {"w_i": (F, h), "a": (h, h), "b": (h,)},
    "cornn": lambda h: {"w_i": (F, h), "w_h": (h, 2 * h), "b": (h,)},
}


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_layout_dtype_and_facts(case_id, key, x64):
    cell = FACTORIES[case_id]()
    params = cell.init(key, F)
    assert jax.tree.map(jnp.shape, params) == EXPECTED_SHAPES[cell.name](cell.hidden_size)
    assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(params))
    params64 = FACTORIES[case_id](dtype=jnp.float64).init(key, F)
    carry64 = FACTORIES[case_id](dtype=jnp.float64).initial_carry()
    assert all(a.dtype == jnp.float64 for a in jax.tree.leaves((params64, carry64)))
    assert cells.CELLS[cell.name] is getattr(cells, cell.name)
    assert cell.gates == () and cell.masked_step is None and cell.remat_min_steps is None
    carry = cell.initial_carry()
    if cell.name == "cornn":
        assert isinstance(carry, cells.CoRNNCarry)
        assert cell.weight_blocks == ("W", "W_z")  # one name per [H, H] block of w_h
        assert params["w_h"].shape[1] // cell.hidden_size == len(cell.weight_blocks)
    else:
        assert cell.weight_blocks == ()
    chex.assert_trees_all_equal(carry, jax.tree.map(jnp.zeros_like, carry))
    assert (cell.scan is not None) == (cell.name == "exprnn")


def test_indrnn_u_init_and_bound(key):
    wide = 2000
    u = np.asarray(cells.indrnn(wide).init(key, F)["u"])
    assert u.min() >= 0.0 and u.max() <= 1.0 and u.min() < 0.01 and u.max() > 0.99
    bound = cells.indrnn_bound(100)
    assert bound == pytest.approx(2.0 ** (1 / 100))
    u = np.asarray(cells.indrnn(wide, u_bound=bound, u_min=0.99).init(key, F)["u"])
    assert u.min() >= 0.99 and u.max() <= bound
    assert np.abs(u.mean() - (0.99 + bound) / 2) < 1e-3
    # The step clips |u|: a state of 1 and u = 5 gives relu(u_bound) with no input.
    cell = cells.indrnn(2, u_bound=1.5)
    params = {"w_i": jnp.zeros((F, 2)), "u": jnp.array([5.0, -0.5]), "b": jnp.zeros(2)}
    _, h = cell.step(params, jnp.ones(2), jnp.zeros(F))
    np.testing.assert_array_equal(h, np.array([1.5, 0.0], np.float32))


@pytest.mark.parametrize(("init", "hidden"), [("henaff", 6), ("cayley", 6), ("cayley", 5)])
def test_exprnn_initialisations(init, hidden, key, x64):
    params = cells.exprnn(hidden, init=init, dtype=jnp.float64).init(key, F)
    a = np.asarray(params["a"])
    # Strictly upper triangular, non-zero only at (2i, 2i+1): a - a^T is block-diagonal 2x2.
    rows = np.arange(hidden // 2) * 2
    s = a[rows, rows + 1]
    rest = a.copy()
    rest[rows, rows + 1] = 0.0
    np.testing.assert_array_equal(rest, 0.0)
    if init == "henaff":
        assert np.all(np.abs(s) <= math.pi)
    else:  # -tan(theta / 2) for theta in [0, pi/2]
        assert np.all((s <= 0.0) & (s >= -1.0))
    rec = np.asarray(cells.exprnn_recurrent_matrix(params))
    np.testing.assert_allclose(rec.T @ rec, np.eye(hidden), atol=1e-12)
    assert np.linalg.det(rec) == pytest.approx(1.0)
    # Each 2x2 block of B is the rotation by angle s.
    for i, angle in zip(rows, s, strict=True):
        block = rec[i : i + 2, i : i + 2]
        np.testing.assert_allclose(
            block,
            [[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]],
            atol=1e-12,
        )
    b = np.asarray(params["b"])
    assert np.all(np.abs(b) <= 0.01)
    w_i = np.asarray(cells.exprnn(512, dtype=jnp.float64).init(key, 256)["w_i"])
    np.testing.assert_allclose(w_i.std(), math.sqrt(2.0 / 256), rtol=0.05)  # He (Kaiming)


def test_cornn_init_is_fan_in_uniform(key):
    hidden, fan = 64, 10
    params = cells.cornn(hidden).init(key, fan)
    lim = 1.0 / math.sqrt(fan + 2 * hidden)
    for name, leaf in params.items():
        leaf = np.asarray(leaf)
        assert np.all(np.abs(leaf) <= lim), name
        assert np.abs(leaf).max() > 0.9 * lim, name


def test_modrelu():
    z = jnp.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_allclose(
        cells.modrelu(z, jnp.full(5, -1.0)), np.array([-1.0, 0.0, 0.0, 0.0, 1.0]), atol=0
    )
    np.testing.assert_allclose(cells.modrelu(z, jnp.full(5, 0.5)), np.array([-2.5, -1, 0, 1, 2.5]))


# ---------------------------------------------------------------------------------------------
# One step, and unroll against a Python loop over step.


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_step_matches_numpy_reference(case_id, key, x64):
    cell, params, carry, xs = _setup(case_id, key)
    new_carry, h = cell.step(params, carry, xs[0])
    ref_carry, ref_h = NUMPY_STEP[case_id](
        _to_np(params),
        _to_np(tuple(carry) if isinstance(carry, tuple) else carry),
        np.asarray(xs[0]),
    )
    np.testing.assert_allclose(h, ref_h, rtol=1e-12, atol=1e-12)
    for got, want in zip(jax.tree.leaves(new_carry), jax.tree.leaves(ref_carry), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    chex.assert_trees_all_equal_structs(new_carry, carry)


def _python_loop(cell, params, xs, carry, length, reverse):
    """What `seqjax.unroll` documents, written as a Python loop over ``cell.step``."""
    num = xs.shape[0] if length is None else length
    order = range(num)[::-1] if reverse else range(num)
    hs = [jnp.zeros((cell.hidden_size,), xs.dtype)] * xs.shape[0]
    for t in order:
        carry, hs[t] = cell.step(params, carry, xs[t])
    return carry, jnp.stack(hs)


def _loss(out):
    carry, hs = out
    weights = jnp.cos(jnp.arange(hs.size, dtype=hs.dtype)).reshape(hs.shape)
    return jnp.sum(weights * hs) + sum(jnp.sum(jnp.sin(c)) for c in jax.tree.leaves(carry))


@pytest.mark.parametrize("length", [None, 4, 0])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_unroll_equals_python_loop_values_and_gradients(case_id, reverse, length, key, x64):
    cell, params, carry, xs = _setup(case_id, key)

    def ours(p, c, x):
        return unroll(cell, p, x, carry=c, length=length, reverse=reverse)

    def ref(p, c, x):
        return _python_loop(cell, p, x, c, length, reverse)

    got, want = ours(params, carry, xs), ref(params, carry, xs)
    chex.assert_trees_all_close(got, want, rtol=1e-12, atol=1e-12)
    if length is not None:
        np.testing.assert_array_equal(got[1][length:], 0.0)
    g_got = jax.grad(lambda *a: _loss(ours(*a)), argnums=(0, 1, 2))(params, carry, xs)
    g_want = jax.grad(lambda *a: _loss(ref(*a)), argnums=(0, 1, 2))(params, carry, xs)
    chex.assert_trees_all_close(g_got, g_want, rtol=1e-10, atol=1e-12)
    if length != 0:
        assert float(jnp.abs(g_got[0]["w_i"]).max()) > 0


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_gradients_match_finite_differences(case_id, key, x64):
    cell, params, carry, xs = _setup(case_id, key, steps=5)
    jax.test_util.check_grads(
        lambda p, c, x: _loss(unroll(cell, p, x, carry=c, length=4)),
        (params, carry, xs),
        order=1,
        modes=["rev"],
        eps=1e-6,
        atol=1e-6,
        rtol=1e-6,
    )


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_batched_unroll_is_per_example(case_id, key):
    cell, params, _, _ = _setup(case_id, key, dtype=jnp.float32)
    xs = jax.random.normal(key, (3, T, F))
    lengths = jnp.array([T, 2, 5])
    _, hs = jax.vmap(lambda x, n: unroll(cell, params, x, length=n))(xs, lengths)
    assert hs.shape == (3, T, cell.hidden_size)
    for b in range(3):
        _, want = unroll(cell, params, xs[b], length=int(lengths[b]))
        np.testing.assert_allclose(hs[b], want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# expRNN: the scan fast path.


def _sequential(cell):
    return cell._replace(scan=None)  # unroll then runs lax.scan over cell.step


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"length": 5},
        {"length": 5, "reverse": True},
        {"truncate": 3},
        {"truncate": 2, "length": 6, "reverse": True},
        {"truncate": 3, "remat": True},
        {"remat": 2, "length": 4},
    ],
    ids=["plain", "length", "reverse", "truncate", "truncate_reverse", "truncate_remat", "remat"],
)
def test_exprnn_scan_equals_sequential_step_path(options, key, x64):
    # (the odd-H Cayley case runs through the same scan in the Python-loop test above)
    cell, params, carry, xs = _setup("exprnn_henaff", key)
    fast = lambda p, c, x: unroll(cell, p, x, carry=c, **options)  # noqa: E731
    slow = lambda p, c, x: unroll(_sequential(cell), p, x, carry=c, **options)  # noqa: E731
    chex.assert_trees_all_close(fast(params, carry, xs), slow(params, carry, xs), rtol=1e-12)
    g_fast = jax.grad(lambda *a: _loss(fast(*a)), argnums=(0, 1, 2))(params, carry, xs)
    g_slow = jax.grad(lambda *a: _loss(slow(*a)), argnums=(0, 1, 2))(params, carry, xs)
    chex.assert_trees_all_close(g_fast, g_slow, rtol=1e-10, atol=1e-12)
    if "truncate" in options:  # truncation cuts the path from the first inputs to the end
        full = jax.grad(lambda x: _loss(unroll(cell, params, x, carry=carry)))(xs)
        assert not np.allclose(g_fast[2], full)


def _lu_per_time_loop(fn, *args) -> list[int]:
    """For each top-level ``scan`` of ``fn``'s jaxpr (the loop over time): how many LU
    factorisations (the Pade solve inside ``expm``) its body holds, nested jaxprs included."""
    counts = []
    for eqn in jax.make_jaxpr(fn)(*args).jaxpr.eqns:
        if eqn.primitive.name == "scan":
            body = eqn.params["jaxpr"].jaxpr
            counts.append(sum(e.primitive.name == "lu" for e in all_eqns(body)))
    return counts


def test_exprnn_scan_computes_the_matrix_exponential_once_outside_the_loop(key):
    cell, params, _, xs = _setup("exprnn_henaff", key, dtype=jnp.float32)
    fast = jax.make_jaxpr(lambda p: unroll(cell, p, xs, length=5))(params).jaxpr
    assert sum(e.primitive.name == "lu" for e in all_eqns(fast)) == 1
    assert _lu_per_time_loop(lambda p: unroll(cell, p, xs, length=5), params) == [0]
    # Positive control: the sequential path computes expm inside the loop, at every step.
    slow = _lu_per_time_loop(lambda p: unroll(_sequential(cell), p, xs, length=5), params)
    assert slow == [1]


def test_exprnn_recurrent_matrix_stays_orthogonal_under_adam(key, x64):
    cell = cells.exprnn(H, dtype=jnp.float64)
    k_p, k_x = jax.random.split(key)
    params = cell.init(k_p, F)
    xs = jax.random.normal(k_x, (T, F), jnp.float64)
    opt = optax.adam(0.1)
    with jax.numpy_dtype_promotion("standard"):
        state = opt.init(params)

    @jax.jit
    def update(params, state):
        grads = jax.grad(lambda p: jnp.sum((unroll(cell, p, xs)[1] - 1.0) ** 2))(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    start = params
    with jax.numpy_dtype_promotion("standard"):  # optax mixes its int32 step count with floats
        for _ in range(5):
            params, state = update(params, state)
    a0, a = np.asarray(start["a"]), np.asarray(params["a"])
    assert np.abs(a - a0).max() > 0.1  # the log-parameter moved, off its block structure
    assert np.abs(np.tril(a - a.T, -2)).max() > 0.01
    rec = np.asarray(cells.exprnn_recurrent_matrix(params))
    np.testing.assert_allclose(rec.T @ rec, np.eye(H), atol=1e-6)
    np.testing.assert_allclose(rec @ rec.T, np.eye(H), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Bad arguments.


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        (cells.indrnn, {"hidden_size": 0}, "hidden_size must be a positive int, got 0"),
        (cells.indrnn, {"hidden_size": H, "activation": "gelu"}, "activation='gelu'.*'relu'"),
        (cells.indrnn, {"hidden_size": H, "u_bound": 0.0}, "u_bound must be a positive finite"),
        (cells.indrnn, {"hidden_size": H, "u_bound": math.inf}, "u_bound.*got inf"),
        (cells.indrnn, {"hidden_size": H, "u_bound": True}, "u_bound.*got True"),
        (
            cells.indrnn,
            {"hidden_size": H, "u_min": 1.0},
            re.escape("u_min must be a number in [0, 1.0)"),
        ),
        (cells.indrnn, {"hidden_size": H, "u_bound": 0.5, "u_min": 0.7}, "u_min.*got 0.7"),
        (cells.indrnn, {"hidden_size": H, "u_min": -0.1}, "u_min.*got -0.1"),
        (cells.indrnn, {"hidden_size": H, "input_init": "he"}, "input_init='he'.*'glorot'"),
        (cells.exprnn, {"hidden_size": -1}, "hidden_size must be a positive int, got -1"),
        (cells.exprnn, {"hidden_size": H, "init": "haar"}, "init='haar'.*'henaff', 'cayley'"),
        (cells.exprnn, {"hidden_size": H, "input_init": "x"}, "input_init='x'.*'he'"),
        (cells.cornn, {"hidden_size": 2.0}, "hidden_size must be a positive int, got 2.0"),
        (cells.cornn, {"hidden_size": H, "dt": 0.0}, "dt must be a positive finite number, got 0"),
        (cells.cornn, {"hidden_size": H, "gamma": -1.0}, "gamma must be.*got -1.0"),
        (cells.cornn, {"hidden_size": H, "epsilon": math.nan}, "epsilon must be.*got nan"),
    ],
)
def test_bad_arguments_are_clear_errors(factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        factory(**kwargs)


def test_indrnn_bound_checks_its_arguments():
    with pytest.raises(ValueError, match="num_steps must be a positive int, got 0"):
        cells.indrnn_bound(0)
    with pytest.raises(ValueError, match="gamma must be a positive number, got -2"):
        cells.indrnn_bound(10, -2)


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_wrong_input_size_is_a_clear_error(case_id, key):
    cell = FACTORIES[case_id]()
    params = cell.init(key, F)
    with pytest.raises(ValueError, match=r"x has shape \(5,\), expected trailing feature size 3"):
        cell.step(params, cell.initial_carry(), jnp.zeros(5))
    with pytest.raises(ValueError, match=r"xs has shape \(7, 5\)"):
        unroll(cell, params, jnp.zeros((T, 5)))
    with pytest.raises(ValueError, match="input_size must be a positive int, got 0"):
        cell.init(key, 0)


def test_exprnn_scan_refuses_unsupported_options(key):
    cell = cells.exprnn(H)
    params = cell.init(key, F)
    xs = jnp.zeros((T, F))
    with pytest.raises(TypeError, match=r"unsupported options \['unroll'\]"):
        cell.scan(params, cell.initial_carry(), xs, None, unroll=2)
    with pytest.raises(ValueError, match="truncate must be a positive int, got 0"):
        cell.scan(params, cell.initial_carry(), xs, None, truncate=0)
    with pytest.raises(ValueError, match=r"valid has shape \(3,\), expected \[T\] = \(7,\)"):
        cell.scan(params, cell.initial_carry(), xs, jnp.ones(3, bool))
    with pytest.raises(ValueError, match=r"xs has shape \(7, 2\).*F = 3"):
        cell.scan(params, cell.initial_carry(), jnp.zeros((T, 2)), None)


# ---------------------------------------------------------------------------------------------
# From a config.

SHRINK = [
    "task.length=12",
    "model.hidden_size=6",
    "train.steps=3",
    "train.chunk_size=3",
    "train.eval_every=null",
    "train.checkpoint=null",
    "train.batch_size=4",
    "log.eval_batch_size=4",
    "log.eval_batches=1",
    "log.plots=false",
]


@pytest.mark.parametrize("name", ["indrnn", "exprnn", "cornn"])
def test_trains_a_few_steps_from_its_config(name):
    path = f"configs/adding/{name}.yaml"
    cfg = seqjax.load_config(path)
    assert cfg.model.cell == name
    with jax.numpy_dtype_promotion("standard"):
        result = seqjax.run(path, overrides=SHRINK, progress=False)
    loss = result.metrics["loss"]
    assert loss.shape == (1, 3) and np.all(np.isfinite(loss))
    assert np.all(np.isfinite(result.summary["eval"]["loss"]))
    assert set(EXPECTED_SHAPES[name](6)) <= _leaf_keys(result.params["encoder"])
    # The factory's own options reach the cell.
    assert cell_options(cfg.model) == dict(cfg.model.options)


def _leaf_keys(tree) -> set[str]:
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {getattr(path[-1], "key", None) for path, _ in paths}


# ---------------------------------------------------------------------------------------------
# Flax: the generic wrapper (`seqjax.flax.NNXCell`) runs each cell in nnx.RNN.


@pytest.mark.parametrize("name", ["indrnn", "exprnn", "cornn"])
def test_nnx_cell_in_nnx_rnn_equals_unroll(name, key):
    from flax import nnx

    from seqjax.flax import NNXCell

    cell = cells.get_cell(name, H)
    params = _perturbed(cell.init(key, F), jax.random.key(1), scale=0.2)
    xs = jax.random.normal(key, (2, T, F))
    carry, hs = nnx.RNN(NNXCell(cell, params=params), return_carry=True)(xs)
    want_carry, want_hs = jax.vmap(lambda x: unroll(cell, params, x))(xs)
    np.testing.assert_allclose(hs, want_hs, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(carry, want_carry, rtol=1e-5, atol=1e-6)
