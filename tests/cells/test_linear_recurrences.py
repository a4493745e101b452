"""The linear recurrences LRU, minGRU and minLSTM: ``step`` against an independent float64
reference, ``unroll`` against a Python loop, the parallel ``Cell.scan`` against the sequential
loop (values and gradients, with lengths, reverse, truncation and remat windows), finite
differences, float32 stability at T = 100000, the rule that picks the path, clear errors, and
training from their configs."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from seqjax import cells
from seqjax.cells.lru import lru_lambda
from seqjax.unroll import auto_remat, unroll, use_scan

H, F, T = 3, 2, 7

CASES = {
    "lru": lambda **kw: cells.lru(H, **kw),
    "lru_state_5": lambda **kw: cells.lru(H, state_size=5, r_min=0.5, r_max=0.95, **kw),
    "min_gru": lambda **kw: cells.min_gru(H, **kw),
    "min_gru_linear": lambda **kw: cells.min_gru(H, log_space=False, **kw),
    "min_lstm": lambda **kw: cells.min_lstm(H, **kw),
    "min_lstm_linear": lambda **kw: cells.min_lstm(H, log_space=False, **kw),
}


def _sequential(cell):
    return cell._replace(scan=None)


def _parallel(cell):
    return cell._replace(scan_on_cpu=True)


def _perturbed_params(cell, key):
    """Parameters moved off their initial values (zero biases would hide bias bugs)."""
    params = cell.init(key, F)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    return jax.tree.unflatten(
        tree,
        [
            p + 0.3 * jax.random.normal(k, p.shape, p.dtype)
            for p, k in zip(leaves, keys, strict=True)
        ],
    )


# ---------------------------------------------------------------------------------------------
# Independent NumPy float64 references of one step, written from the docstrings.


def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def _g(a):
    return np.where(a >= 0, a + 0.5, _sig(a))


def _np_step(case, p, h, x):
    """``(carry, output)`` of one step, float64 NumPy."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    if case.startswith("lru"):
        n = p["nu_log"].shape[0]
        lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
        gamma = np.sqrt(1.0 - np.abs(lam) ** 2)
        state = h[:n] + 1j * h[n:]
        state = lam * state + gamma * (x @ (p["b_re"] + 1j * p["b_im"]))
        y = np.real(state @ (p["c_re"] + 1j * p["c_im"])) + x @ p["d"]
        return np.concatenate([state.real, state.imag]), y
    k = x @ p["w_i"] + p["b"]
    cand = (lambda a: a) if case.endswith("linear") else _g
    if case.startswith("min_gru"):
        z = _sig(k[:H])
        h = (1.0 - z) * h + z * cand(k[H:])
    else:
        f, i = _sig(k[:H]), _sig(k[H : 2 * H])
        h = f / (f + i) * h + i / (f + i) * cand(k[2 * H :])
    return h, h


@pytest.mark.parametrize("case", sorted(CASES))
def test_step_equals_the_numpy_equations(case, key, x64):
    cell = CASES[case](dtype=jnp.float64)
    params = _perturbed_params(cell, key)
    carry = jax.random.normal(key, cell.initial_carry().shape, jnp.float64)
    x = 3.0 * jax.random.normal(jax.random.fold_in(key, 2), (F,), jnp.float64)  # both g branches
    new, y = cell.step(params, carry, x)
    ref_new, ref_y = _np_step(case, params, np.asarray(carry), np.asarray(x))
    np.testing.assert_allclose(new, ref_new, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, ref_y, rtol=1e-12, atol=1e-12)
    assert y.shape == (H,) and y.dtype == jnp.float64


# ---------------------------------------------------------------------------------------------
# unroll, both paths, against a Python loop over step.


def _loop(cell, params, xs, length, reverse):
    n = xs.shape[0] if length is None else length
    carry, hs = cell.initial_carry(), [jnp.zeros((H,), xs.dtype)] * xs.shape[0]
    for t in range(n)[::-1] if reverse else range(n):
        carry, hs[t] = cell.step(params, carry, xs[t])
    return carry, jnp.stack(hs)


def _loss(carry, hs):
    return jnp.sum(jnp.sin(hs)) + jnp.sum(carry**2)


LOOP_CASES = [(c, "parallel") for c in sorted(CASES)] + [
    (c, "sequential") for c in ("lru", "min_gru")
]


@pytest.mark.parametrize(("case", "path"), LOOP_CASES, ids=[f"{c}-{p}" for c, p in LOOP_CASES])
def test_unroll_equals_a_python_loop(case, path, key, x64):
    cell = CASES[case](dtype=jnp.float64)
    run = _parallel(cell) if path == "parallel" else _sequential(cell)
    params = _perturbed_params(cell, key)
    xs = jax.random.normal(jax.random.fold_in(key, 3), (T, F), jnp.float64)
    for length, reverse in [(None, False), (5, True), (0, False)]:
        got = jax.jit(
            jax.value_and_grad(
                lambda p, x: _loss(*unroll(run, p, x, length=length, reverse=reverse)),  # noqa: B023
                (0, 1),
            )
        )
        want = jax.jit(
            jax.value_and_grad(lambda p, x: _loss(*_loop(cell, p, x, length, reverse)), (0, 1))  # noqa: B023
        )
        (v_got, g_got), (v_want, g_want) = got(params, xs), want(params, xs)
        np.testing.assert_allclose(v_got, v_want, rtol=1e-12)
        for a, b in zip(jax.tree.leaves(g_got), jax.tree.leaves(g_want), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        if length is not None:
            _, hs = unroll(run, params, xs, length=length, reverse=reverse)
            np.testing.assert_array_equal(hs[length:], 0.0)


@pytest.mark.parametrize("case", ["lru", "min_gru", "min_lstm_linear"])
def test_gradients_match_finite_differences(case, key, x64):
    cell = _parallel(CASES[case](dtype=jnp.float64))
    params = _perturbed_params(cell, key)
    xs = jax.random.normal(jax.random.fold_in(key, 4), (T, F), jnp.float64)
    check_grads(
        jax.jit(lambda p, x: _loss(*unroll(cell, p, x, length=6, reverse=True))),
        (params, xs),
        order=1,
        modes=["rev"],
        eps=1e-6,
    )


@pytest.mark.parametrize("case", ["lru_state_5", "min_gru", "min_lstm_linear"])
def test_parallel_equals_sequential_with_windows_and_a_batch(case, key, x64):
    """Lengths, reverse, truncated BPTT and remat windows, under jax.vmap: the parallel scan
    (inside unroll's windows, one per truncation window) equals lax.scan over step."""
    cell = CASES[case](dtype=jnp.float64)
    params = _perturbed_params(cell, key)
    xs = jax.random.normal(jax.random.fold_in(key, 5), (3, 11, F), jnp.float64)
    lengths = jnp.array([11, 7, 0], jnp.int32)

    def loss(run, p, x, **kw):
        carry, hs = jax.vmap(lambda x, n: unroll(run, p, x, length=n, reverse=True, **kw))(
            x, lengths
        )
        return _loss(carry, hs)

    for kw in [{}, {"truncate": 4}, {"truncate": 4, "remat": True}]:
        seq = jax.jit(jax.value_and_grad(lambda p, x: loss(_sequential(cell), p, x, **kw), (0, 1)))  # noqa: B023
        par = jax.jit(jax.value_and_grad(lambda p, x: loss(_parallel(cell), p, x, **kw), (0, 1)))  # noqa: B023
        (v_s, g_s), (v_p, g_p) = seq(params, xs), par(params, xs)
        np.testing.assert_allclose(v_p, v_s, rtol=1e-12)
        for a, b in zip(jax.tree.leaves(g_p), jax.tree.leaves(g_s), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # Truncation changes the gradient (the windows are not a no-op).
    full = jax.jit(jax.grad(lambda p: loss(_parallel(cell), p, xs)))(params)
    cut = jax.jit(jax.grad(lambda p: loss(_parallel(cell), p, xs, truncate=2)))(params)
    assert not all(
        np.allclose(a, b) for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(cut), strict=True)
    )


# ---------------------------------------------------------------------------------------------
# Long sequences in float32.


@pytest.mark.parametrize("case", ["lru", "min_gru", "min_lstm", "min_gru_linear"])
def test_float32_parallel_scan_is_stable_at_100000_steps(case, key):
    """The float32 parallel path against the float64 sequential loop at T = 100000: finite,
    and close (loosely: float32 rounding over a long recurrence)."""
    long_t = 100_000
    xs64 = np.asarray(jax.random.normal(jax.random.fold_in(key, 6), (long_t, F)), np.float64)
    cell32 = _parallel(CASES[case]())
    params32 = cell32.init(key, F)
    carry32, hs32 = jax.jit(lambda p, x: unroll(cell32, p, x))(
        params32, jnp.asarray(xs64, jnp.float32)
    )
    with jax.enable_x64(True):
        cell64 = _sequential(CASES[case](dtype=jnp.float64))
        params64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params32)
        carry64, hs64 = jax.jit(lambda p, x: unroll(cell64, p, x))(params64, jnp.asarray(xs64))
        hs64, carry64 = np.asarray(hs64), np.asarray(carry64)
    hs32 = np.asarray(hs32, np.float64)
    assert np.all(np.isfinite(hs32))
    scale = np.max(np.abs(hs64))
    assert 0.0 < scale < 1e3
    np.testing.assert_allclose(hs32[-1000:], hs64[-1000:], atol=1e-3 * scale)
    np.testing.assert_allclose(np.asarray(carry32, np.float64), carry64, atol=1e-3 * scale)


# ---------------------------------------------------------------------------------------------
# The measured rule: which path unroll runs.


def test_use_scan_follows_the_measured_rule():
    for name in ("lru", "min_gru", "min_lstm"):
        cell = cells.get_cell(name, H)
        assert cell.scan is not None and cell.scan_on_cpu is False
        assert not use_scan(cell, backend="cpu")  # measured slower on XLA:CPU
        assert use_scan(cell, backend="gpu") and use_scan(cell, backend="tpu")
        assert not use_scan(cell, unroll=2, backend="gpu")  # unroll > 1 asks for the loop
        assert not use_scan(cell._replace(scan=None), backend="gpu")
    fused = cells.lstm(H, fast=True)
    assert use_scan(fused, backend="cpu") and use_scan(fused, backend="gpu")
    if jax.default_backend() == "cpu":
        # The sequential loop the rule picks gets the generic remat rule of a cell without scan.
        cell = cells.min_gru(H)
        assert auto_remat(cell, 10_000) == auto_remat(cell._replace(scan=None), 10_000) == "step"


def test_unroll_takes_the_path_the_rule_picks(key):
    """A scan that marks its output shows which path ran."""
    cell = cells.min_gru(H)
    marked = cell._replace(scan=lambda p, c, x, v: (c, jnp.full((x.shape[0], H), 7.0)))
    params = cell.init(key, F)
    _, hs = unroll(marked, params, jnp.ones((4, F)))
    assert bool(jnp.all(hs == 7.0)) == (jax.default_backend() != "cpu")
    _, hs = unroll(marked._replace(scan_on_cpu=True), params, jnp.ones((4, F)))
    assert bool(jnp.all(hs == 7.0))


# ---------------------------------------------------------------------------------------------
# Initialisation, facts, errors.


def test_lru_ring_initialisation_and_normalisation(key):
    cell = cells.lru(H, state_size=4000, r_min=0.4, r_max=0.9, max_phase=math.pi / 4)
    params = cell.init(key, F)
    lam, gamma = lru_lambda(params)
    radius, phase = np.abs(lam), np.exp(np.asarray(params["theta_log"]))
    assert radius.min() >= 0.4 - 1e-6 and radius.max() <= 0.9 + 1e-6
    assert phase.min() >= 0.0 and phase.max() <= math.pi / 4
    # |lambda|^2 uniform on [r_min^2, r_max^2]: the ring's area, not its radius, is uniform.
    np.testing.assert_allclose(np.mean(radius**2), (0.4**2 + 0.9**2) / 2, atol=0.01)
    np.testing.assert_allclose(gamma, np.sqrt(1.0 - radius**2), rtol=1e-5)
    assert params["b_re"].shape == (F, 4000) and params["c_im"].shape == (4000, H)
    assert params["d"].shape == (F, H) and cell.initial_carry().shape == (8000,)


def test_facts_of_the_linear_cells():
    for name, gates in [("lru", ()), ("min_gru", ("z",)), ("min_lstm", ("f", "i"))]:
        cell = cells.get_cell(name, H)
        assert cell.name == name and cell.scan is not None
        assert cell.gates == gates and (cell.gate_spec is not None) == bool(gates)
        assert cell.weight_blocks == ()


@pytest.mark.parametrize(
    ("build", "error", "pattern"),
    [
        (lambda: cells.lru(H, r_min=0.9, r_max=0.5), ValueError, r"r_min=0.9, r_max=0.5.*r_min <"),
        (lambda: cells.lru(H, r_max=1.5), ValueError, r"r_max=1.5; expected 0 <= r_min"),
        (lambda: cells.lru(H, max_phase=0.0), ValueError, r"max_phase=0.0; expected a positive"),
        (lambda: cells.lru(H, state_size=0), ValueError, r"state_size must be a positive int"),
        (lambda: cells.lru(0), ValueError, r"hidden_size must be a positive int, got 0"),
        (lambda: cells.min_gru(H, log_space="yes"), TypeError, r"log_space must be True or"),
        (lambda: cells.min_lstm(-1), ValueError, r"hidden_size must be a positive int, got -1"),
        (lambda: cells.min_gru(H, input_init="he"), ValueError, r"input_init='he'"),
    ],
)
def test_bad_arguments_are_clear_errors(build, error, pattern):
    with pytest.raises(error, match=pattern):
        build()


@pytest.mark.parametrize("name", ["lru", "min_gru", "min_lstm"])
def test_wrong_feature_size_is_a_clear_error(name, key):
    cell = cells.get_cell(name, H)
    params = cell.init(key, F)
    with pytest.raises(ValueError, match=rf"{name}.step: input x has shape \(5,\), expected"):
        cell.step(params, cell.initial_carry(), jnp.zeros((5,)))
    with pytest.raises(ValueError, match=r"unroll: xs has shape \(4, 5\)"):
        unroll(cell, params, jnp.zeros((4, 5)))


# ---------------------------------------------------------------------------------------------
# Training from the configs.


# Each cell's config, configs/adding/{lru,min_gru,min_lstm}.yaml, trains through the ``seqjax``
# command in tests/test_experiment.py (test_every_config_trains_shrunken_through_the_cli).
