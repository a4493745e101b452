"""Tests of `seqjax.unroll`: every option against an independent reference.

The references are plain Python loops over ``cell.step`` (the pseudocode of the unroll
docstring), the unpadded sequence for ``length``, the flipped sequence for ``reverse``, an
explicit loop with ``stop_gradient`` at every window boundary for ``truncate``, plain BPTT for
``remat`` and ``unroll``, and central finite differences in float64 for gradients.

The built-in cells carry a fused fast path (``Cell.scan``) that ``unroll`` takes by default, so
these tests check it against ``cell.step``; the ``*_autodiff`` cases (``fast=False``) check the
generic ``lax.scan`` over ``step``. Compiling is most of the cost here, so the jitted helpers
``run`` and ``run_grads`` are module-level with the cell and options static: calls that differ
only in values share one compiled program.
"""

import functools
import re
from types import SimpleNamespace

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from jaxpr_walk import all_eqns

from seqjax import cells, unroll
from seqjax.cells import Cell
from seqjax.unroll import AUTO_STEP_REMAT_MAX_HIDDEN, AUTO_STEP_REMAT_MIN_STEPS, auto_remat

H = 4  # hidden size
F = 3  # input size
T = 7  # sequence length: odd, so windows of 2, 3 and 4 leave a partial last window
T_MAX = 20.0  # chrono's longest expected dependency

# (id, factory): every cell and initialiser. A factory takes keyword arguments forwarded to the
# cell factory (``dtype`` in particular) and returns a `Cell`.
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
    ("lstm_lecun", lambda **kw: cells.lstm(H, input_init="lecun", **kw)),
    ("rnn_relu_autodiff", lambda **kw: cells.rnn(H, "relu", fast=False, **kw)),
    ("lstm_autodiff", lambda **kw: cells.lstm(H, fast=False, **kw)),
    ("gru_autodiff", lambda **kw: cells.gru(H, fast=False, **kw)),
]
FACTORIES = dict(CELLS_UNDER_TEST)
CASE_IDS = list(FACTORIES)
# For the costlier tests (gradients, Jacobians, windows): each fast path once, and the generic
# scan over `step` once. Initialisers change the starting values, not the code path.
CORE_CASE_IDS = ["rnn_tanh", "lstm", "gru", "lstm_autodiff"]


# ---------------------------------------------------------------------------------------------
# References and helpers.


def loop_unroll(cell, params, xs, carry=None, length=None, reverse=False):
    """The pseudocode of the `unroll` docstring, as a Python loop over ``cell.step``."""
    num_steps = xs.shape[0]
    num_valid = num_steps if length is None else length
    carry = cell.initial_carry() if carry is None else carry
    hs = [jnp.zeros((cell.hidden_size,), xs.dtype)] * num_steps
    order = range(num_valid)[::-1] if reverse else range(num_valid)
    for t in order:
        carry, hs[t] = cell.step(params, carry, xs[t])
    return carry, jnp.stack(hs) if hs else jnp.zeros((0, cell.hidden_size), xs.dtype)


def loop_truncated(cell, params, xs, carry, k):
    """Truncated BPTT(k, k) as a Python loop: the carry is cut at every window boundary."""
    hs = []
    for t in range(xs.shape[0]):
        if t > 0 and t % k == 0:
            carry = jax.tree.map(jax.lax.stop_gradient, carry)
        carry, h = cell.step(params, carry, xs[t])
        hs.append(h)
    return carry, jnp.stack(hs)


def per_step_loss(final_carry, hs):
    """A scalar sum_t L(h_t) plus a term on the final carry, with no symmetry to hide bugs."""
    num_steps = hs.shape[0]
    weights = jnp.cos(jnp.arange(num_steps * H).reshape(num_steps, H)).astype(hs.dtype)
    per_step = jnp.sum(jnp.sin(hs) * weights + 0.5 * hs**2, axis=-1)
    extra = sum(jnp.sum(leaf * (0.3 + i)) for i, leaf in enumerate(jax.tree.leaves(final_carry)))
    return jnp.sum(per_step) + extra


_STATIC = ("cell", "reverse", "unroll_factor", "truncate", "remat")


def _unroll(cell, params, xs, carry, length, reverse, unroll_factor, truncate, remat):
    return unroll(
        cell,
        params,
        xs,
        carry,
        length=length,
        reverse=reverse,
        unroll=unroll_factor,
        truncate=truncate,
        remat=remat,
    )


@functools.partial(jax.jit, static_argnames=_STATIC)
def _run(cell, params, xs, carry, length, reverse, unroll_factor, truncate, remat):
    return _unroll(cell, params, xs, carry, length, reverse, unroll_factor, truncate, remat)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _run_grads(cell, params, xs, carry, length, reverse, unroll_factor, truncate, remat):
    def loss(p, x, c):
        out = _unroll(cell, p, x, c, length, reverse, unroll_factor, truncate, remat)
        return per_step_loss(*out), out

    grad_fn = jax.grad(loss, argnums=(0, 1, 2), has_aux=True)
    grads, out = grad_fn(params, xs, carry)
    return out, grads


def _options(length=None, reverse=False, unroll=1, truncate=None, remat=False):
    return dict(
        length=length, reverse=reverse, unroll_factor=unroll, truncate=truncate, remat=remat
    )


def run(cell, params, xs, carry=None, **options):
    """`unroll`, jitted and cached by cell and options (``length`` is traced)."""
    return _run(cell, params, xs, carry, **_options(**options))


def run_grads(cell, params, xs, carry, **options):
    """``((carry, hs), grads)`` of `per_step_loss` wrt (params, xs, carry), jitted and cached."""
    return _run_grads(cell, params, xs, carry, **_options(**options))


def _perturbed(params, key, scale=0.5):
    """Adds noise to every leaf so that zero-initialised biases are exercised too."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    noisy = [
        leaf + scale * jax.random.normal(k, leaf.shape, leaf.dtype)
        for leaf, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(treedef, noisy)


def _random_carry(cell, key, dtype=jnp.float32):
    leaves, treedef = jax.tree.flatten(cell.initial_carry())
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef,
        [jax.random.normal(k, leaf.shape, dtype) for leaf, k in zip(leaves, keys, strict=True)],
    )


@functools.cache  # one cell object per case, so the jitted helpers' caches are shared
def _make_case(case_id, dtype=jnp.float32, seed=0):
    cell = FACTORIES[case_id](dtype=dtype)
    k_init, k_noise, k_x, k_junk, k_carry = jax.random.split(jax.random.key(seed), 5)
    return SimpleNamespace(
        id=case_id,
        cell=cell,
        params=_perturbed(cell.init(k_init, F), k_noise),
        xs=jax.random.normal(k_x, (T, F), dtype),
        junk=jax.random.normal(k_junk, (T, F), dtype) * 3.0,  # padding values
        carry=_random_carry(cell, k_carry, dtype),
    )


@pytest.fixture(scope="module", params=CASE_IDS)
def case(request):
    return _make_case(request.param)


@pytest.fixture(scope="module", params=CORE_CASE_IDS)
def core_case(request):
    return _make_case(request.param)


def _close(a, b, rtol=2e-6, atol=2e-6):
    chex.assert_trees_all_equal_structs(a, b)
    chex.assert_trees_all_close(a, b, rtol=rtol, atol=atol)


def _pad(c, length):
    """The first `length` inputs followed by junk: the junk must not matter."""
    return jnp.concatenate([c.xs[:length], c.junk[length:]])


def _index(tree, b):
    return jax.tree.map(lambda leaf: leaf[b], tree)


def _assert_zeros(hs):
    np.testing.assert_array_equal(hs, np.zeros(hs.shape, hs.dtype))


# ---------------------------------------------------------------------------------------------
# Every cell: unroll equals a Python loop over step, with lengths and reverse under jit + vmap.


LENGTHS = [0, 1, 4, T, 6]


@pytest.fixture(scope="module")
def case_outputs(case):
    """Everything the two tests below need from `unroll`, in one compiled program per cell."""
    padded = jnp.stack([_pad(case, n) for n in LENGTHS])

    @jax.jit
    def outputs(params, xs, carry, padded, lengths):
        def with_length(x, n, reverse):
            return unroll(case.cell, params, x, carry, length=n, reverse=reverse)

        return {
            "plain": unroll(case.cell, params, xs, carry),
            "no_carry": unroll(case.cell, params, xs),
            "lengths": jax.vmap(with_length, (0, 0, None))(padded, lengths, False),
            "lengths_reversed": jax.vmap(with_length, (0, 0, None))(padded, lengths, True),
        }

    return outputs(case.params, case.xs, case.carry, padded, jnp.array(LENGTHS))


def test_unroll_equals_python_loop(case, case_outputs):
    carry, hs = case_outputs["plain"]
    _close((carry, hs), loop_unroll(case.cell, case.params, case.xs, case.carry))
    assert hs.shape == (T, H) and hs.dtype == case.xs.dtype
    chex.assert_trees_all_equal_shapes_and_dtypes(carry, case.cell.initial_carry())
    # no carry: starts from cell.initial_carry()
    _close(case_outputs["no_carry"], loop_unroll(case.cell, case.params, case.xs))


def test_traced_lengths_and_reverse_under_jit_and_vmap(case, case_outputs):
    for b, n in enumerate(LENGTHS):
        valid = case.xs[:n]  # the unpadded sequence; the padding is junk, not zeros
        for name, reverse in (("lengths", False), ("lengths_reversed", True)):
            carry, hs = _index(case_outputs[name], b)
            ref_carry, ref_hs = loop_unroll(
                case.cell, case.params, valid, case.carry, None, reverse
            )
            _close(carry, ref_carry)
            _close(hs[:n], ref_hs)
            _assert_zeros(hs[n:])


def test_batched_carry_is_an_error_naming_vmap(case):
    batched = jax.tree.map(lambda leaf: jnp.stack([leaf, leaf]), case.carry)
    with pytest.raises(ValueError, match=rf"carry leaf has shape \(2, {H}\).*jax.vmap"):
        unroll(case.cell, case.params, case.xs, batched)


# ---------------------------------------------------------------------------------------------
# vmap, length and reverse against unroll itself on the unpadded / flipped sequence.


def test_vmap_over_a_batch_equals_per_example_calls(core_case):
    c = core_case
    xs = jnp.stack([c.xs, c.junk, c.xs[::-1]])
    carries = jax.tree.map(lambda leaf: jnp.stack([leaf, -leaf, 0.5 * leaf]), c.carry)
    carry_b, hs_b = jax.jit(jax.vmap(lambda x, k: unroll(c.cell, c.params, x, k)))(xs, carries)
    assert hs_b.shape == (3, T, H)
    for b in range(3):
        _close((_index(carry_b, b), hs_b[b]), run(c.cell, c.params, xs[b], _index(carries, b)))


@pytest.mark.parametrize("length", [4, T])
def test_length_equals_the_unpadded_sequence(core_case, length):
    c = core_case
    carry, hs = run(c.cell, c.params, _pad(c, length), c.carry, length=length)
    ref_carry, ref_hs = run(c.cell, c.params, c.xs[:length], c.carry)
    _close(carry, ref_carry)
    _close(hs[:length], ref_hs)
    _assert_zeros(hs[length:])


def test_reverse_equals_the_flipped_sequence(core_case):
    c = core_case
    carry, hs = run(c.cell, c.params, c.xs, c.carry, reverse=True)
    ref_carry, ref_hs = run(c.cell, c.params, c.xs[::-1], c.carry)
    _close(carry, ref_carry)
    _close(hs, ref_hs[::-1])


@pytest.mark.parametrize("length", [4, T])
def test_reverse_with_length_reverses_the_valid_prefix_only(core_case, length):
    c = core_case
    carry, hs = run(c.cell, c.params, _pad(c, length), c.carry, length=length, reverse=True)
    valid = c.xs[:length]
    _close((carry, hs[:length]), run(c.cell, c.params, valid, c.carry, reverse=True))
    ref_carry, ref_hs = run(c.cell, c.params, valid[::-1], c.carry)
    _close(carry, ref_carry)
    _close(hs[:length], ref_hs[::-1])
    _assert_zeros(hs[length:])


def test_empty_sequence(core_case):
    c = core_case
    carry, hs = unroll(c.cell, c.params, jnp.zeros((0, F)), c.carry, truncate=3)
    assert hs.shape == (0, H)
    _close(carry, c.carry, rtol=0, atol=0)


@pytest.mark.parametrize(
    "options",
    [{"unroll": 4, "length": 5}, {"unroll": 3, "length": 6, "reverse": True}],
    ids=str,
)
def test_unroll_factor_changes_nothing(core_case, options):
    c = core_case
    plain = {k: v for k, v in options.items() if k != "unroll"}
    xs = _pad(c, options.get("length", T))
    _close(
        run(c.cell, c.params, xs, c.carry, **options), run(c.cell, c.params, xs, c.carry, **plain)
    )


# ---------------------------------------------------------------------------------------------
# Gradients: truncate cuts exactly at window boundaries; remat changes nothing.

# (options, the options they must equal in forward values and in gradients)
# (remat with an int window and a length is also checked against finite differences below.)
SAME_GRADIENTS = [
    ({"remat": 3}, {}),
    ({"truncate": T}, {}),
    ({"remat": True, "length": 6, "reverse": True}, {"length": 6, "reverse": True}),
    ({"remat": 2, "truncate": 3}, {"truncate": 3}),
    ({"truncate": T + 5}, {}),
    ({"remat": "step"}, {"remat": False}),
    ({"remat": "step", "truncate": 3, "length": 6}, {"truncate": 3, "length": 6}),
]


@pytest.mark.parametrize(("options", "reference"), SAME_GRADIENTS, ids=str)
@pytest.mark.parametrize("case_id", ["lstm", "lstm_autodiff"])
def test_remat_and_long_truncation_give_the_same_values_and_gradients(case_id, options, reference):
    # Windows are unroll's own logic, around either path; the fast paths' gradients under
    # windows and masks are also checked against finite differences below.
    c = _make_case(case_id)
    args = (c.cell, c.params, c.xs, c.carry)
    _close(run_grads(*args, **options), run_grads(*args, **reference), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [2])
def test_truncate_equals_a_loop_with_stop_gradient(core_case, k):
    cell, params, xs, carry = core_case.cell, core_case.params, core_case.xs, core_case.carry
    out, grads = run_grads(cell, params, xs, carry, truncate=k)

    def ref_loss(p, x, c):
        return per_step_loss(*loop_truncated(cell, p, x, c, k))

    ref_grads = jax.grad(ref_loss, argnums=(0, 1, 2))(params, xs, carry)
    _close(grads, ref_grads, rtol=1e-5, atol=1e-6)
    _close(out, run(cell, params, xs, carry))  # truncation leaves the forward values alone


def test_truncate_jacobian_is_zero_across_windows(core_case):
    k = 3
    cell, params, carry = core_case.cell, core_case.params, core_case.carry
    xs = jnp.concatenate([core_case.xs, core_case.junk[:1]])  # 8 steps: windows 3, 3, 2
    num_steps = xs.shape[0]

    def jacobian(**options):  # d hs / d xs: [T, H, T, F]
        return np.asarray(jax.jacrev(lambda x: run(cell, params, x, carry, **options)[1])(xs))

    jac, full = jacobian(truncate=k), jacobian()
    assert jac.shape == (num_steps, H, num_steps, F)
    same_window_past = []
    for t in range(num_steps):
        for s in range(num_steps):
            block = jac[t, :, s, :]
            if t // k != s // k or s > t:  # includes every t - s >= k
                assert np.all(block == 0.0), (t, s)  # exactly zero, not small
            else:
                same_window_past.append(block)
                np.testing.assert_allclose(block, full[t, :, s, :], rtol=1e-5, atol=1e-6)
    assert all(np.any(block != 0.0) for block in same_window_past)
    # and the cut is real: full BPTT has non-zero blocks k or more steps back.
    assert all(np.any(full[t, :, t - k, :] != 0.0) for t in range(k, num_steps))

    ref = jax.jacrev(lambda x: loop_truncated(cell, params, x, carry, k)[1])(xs)
    np.testing.assert_allclose(jac, ref, rtol=1e-5, atol=1e-6)


def test_remat_is_rematerialised(core_case):
    # A remat unroll puts its windows under jax.checkpoint; a plain one has none.
    c = core_case

    def primitives(**options):
        def loss(p):
            return per_step_loss(*unroll(c.cell, p, c.xs, c.carry, **options))

        jaxpr = jax.make_jaxpr(jax.grad(loss))(c.params)
        return {eqn.primitive.name for eqn in all_eqns(jaxpr.jaxpr)}

    def has_checkpoint(names):
        return any(name.startswith(("remat", "checkpoint")) for name in names)

    assert has_checkpoint(primitives(remat=3))
    assert has_checkpoint(primitives(remat="step"))
    assert not has_checkpoint(primitives())  # "auto" at T=7: nothing to recompute
    assert not has_checkpoint(primitives(remat=False))


def test_auto_remat_follows_the_measured_rule():
    on_cpu = jax.default_backend() == "cpu"
    step = "step" if on_cpu else False
    wide = AUTO_STEP_REMAT_MAX_HIDDEN + 1
    n, n_gated = AUTO_STEP_REMAT_MIN_STEPS, 50
    for gated in (cells.lstm(H), cells.gru(H)):  # from 50 steps, their own threshold
        assert gated.remat_min_steps == n_gated
        assert auto_remat(gated, n_gated) == step
        assert auto_remat(gated, n_gated - 1) is False
    for plain in (cells.rnn(H), cells.irnn(H)):  # only on long sequences
        assert auto_remat(plain, n_gated) is False
        assert auto_remat(plain, n - 1) is False
        assert auto_remat(plain, n) == step
    for big in (cells.lstm(wide), cells.gru(wide), cells.rnn(wide)):
        assert auto_remat(big, n) is False
    assert auto_remat(cells.lstm(H, fast=True), n) is False  # own fast path
    assert auto_remat(cells.lstm(H, fast=True), n, unroll=2) == step
    assert auto_remat(cells.gru(H, fast=True), n_gated, unroll=2) == step


def test_auto_remat_reads_the_cells_threshold_not_its_name():
    step = "step" if jax.default_backend() == "cpu" else False
    plain = cells.rnn(H)
    own = plain._replace(remat_min_steps=10)
    assert auto_remat(own, 10) == step
    assert auto_remat(own, 9) is False
    # A cell built with only the five positional fields takes the generic threshold, whatever
    # its name.
    user = Cell(plain.init, plain.initial_carry, plain.step, H, "lstm")
    assert auto_remat(user, 50) is False
    assert auto_remat(user, AUTO_STEP_REMAT_MIN_STEPS) == step


def test_unknown_remat_string(lstm_case):
    with pytest.raises(ValueError, match=r"remat='steps'; expected .*'step' or 'auto'"):
        unroll(lstm_case.cell, lstm_case.params, lstm_case.xs, remat="steps")


# ---------------------------------------------------------------------------------------------
# Gradients against central finite differences, in float64.

# Each fast path (its hand-written backward pass) with the options that change the program.
FD_CASES = [
    ("lstm", {}),
    ("lstm", {"length": 5, "reverse": True, "remat": 3}),
    ("gru", {"length": 6, "reverse": True}),
    ("rnn_tanh", {"length": 4, "remat": True, "truncate": T}),
]


@pytest.mark.parametrize(("case_id", "options"), FD_CASES, ids=str)
def test_gradients_match_central_finite_differences(case_id, options, x64):
    c = _make_case(case_id, dtype=jnp.float64, seed=3)
    assert c.params["w_i"].dtype == jnp.float64
    theta, unravel = ravel_pytree((c.params, c.xs, c.carry))

    @jax.jit
    def grad_and_central_differences(directions, eps):
        def loss(flat):
            return per_step_loss(*unroll(c.cell, *unravel(flat), **options))

        def central(d):
            return (loss(theta + eps * d) - loss(theta - eps * d)) / (2 * eps)

        return jax.grad(loss)(theta), jax.vmap(central)(directions)

    # random directions, plus one coordinate of every leaf (params, xs and carry)
    sizes = [leaf.size for leaf in jax.tree.leaves((c.params, c.xs, c.carry))]
    starts = np.cumsum([0, *sizes[:-1]])
    directions = np.concatenate(
        [
            np.random.default_rng(0).normal(size=(4, theta.size)),
            np.eye(theta.size)[starts + np.array(sizes) // 2],
        ]
    )
    grad, numeric = grad_and_central_differences(jnp.asarray(directions), 1e-6)
    np.testing.assert_allclose(directions @ np.asarray(grad), numeric, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# Tracing and compilation.


def test_no_retrace_on_new_values(core_case):
    chex.clear_trace_counter()
    cell = core_case.cell

    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss_and_grad(params, xs, carry, length):
        def loss(p):
            return per_step_loss(*unroll(cell, p, xs, carry, length=length, truncate=3))

        return jax.value_and_grad(loss)(params)

    first = loss_and_grad(core_case.params, core_case.xs, core_case.carry, 5)
    new_params = jax.tree.map(lambda leaf: leaf * 0.5, core_case.params)
    second = loss_and_grad(new_params, core_case.junk, core_case.carry, 2)
    assert not np.allclose(first[0], second[0])  # the new values really went through


# (options, two sequence lengths). The lengths share their remainders modulo the windows and
# the unroll factor, which decide whether a padded last window or a scan remainder exists.
COMPILE_CASES = [
    ("lstm", {}, (10, 1000)),
    ("lstm", {"length": 4, "reverse": True}, (10, 1000)),
    ("lstm", {"truncate": 3}, (10, 1000)),
    ("lstm", {"remat": True}, (10, 1000)),
    ("lstm", {"unroll": 4}, (12, 1000)),
    ("lstm_autodiff", {"remat": 4, "length": 3}, (10, 1002)),
    ("rnn_tanh", {}, (10, 1000)),
    ("gru", {}, (10, 1000)),
    ("lstm", {"remat": "step", "length": 4}, (10, 1000)),
    ("gru", {"remat": "auto"}, (1000, 3000)),  # "step" at both lengths on the CPU
]


@pytest.mark.parametrize(("case_id", "options", "lengths"), COMPILE_CASES, ids=str)
def test_program_size_does_not_grow_with_length(case_id, options, lengths):
    cell = FACTORIES[case_id]()
    params = cell.init(jax.random.key(0), F)
    # The default remat="auto" switches to "step" from 1000 steps on the CPU: hold it fixed.
    options = {"remat": False, **options}

    def loss(p, xs):
        return per_step_loss(*unroll(cell, p, xs, **options))

    def sizes(num_steps):
        xs = jnp.zeros((num_steps, F))
        jaxpr = jax.make_jaxpr(jax.grad(loss))(params, xs)
        hlo = jax.jit(jax.grad(loss)).lower(params, xs).as_text()
        # numbers (shapes, constants, source lines) differ with T; the program must not.
        return sum(1 for _ in all_eqns(jaxpr.jaxpr)), len(re.sub(r"\d+", "0", hlo))

    short, long = sizes(lengths[0]), sizes(lengths[1])
    assert short == long
    assert short[0] < 400  # and it is small: a loop, not T copies of the step


# ---------------------------------------------------------------------------------------------
# Bad input: ValueError naming the argument and showing what was received.


@pytest.fixture(scope="module")
def lstm_case():
    return _make_case("lstm")


@pytest.mark.parametrize("shape", [(T,), (2, T, F), ()])
def test_xs_of_wrong_rank(lstm_case, shape):
    with pytest.raises(ValueError, match=r"xs has shape " + re.escape(str(shape)) + ".*jax.vmap"):
        unroll(lstm_case.cell, lstm_case.params, jnp.zeros(shape))


@pytest.mark.parametrize("case_id", ["rnn_tanh", "lstm", "gru", "lstm_autodiff"])
def test_xs_of_wrong_feature_size(case_id):
    c = _make_case(case_id)
    with pytest.raises(
        ValueError, match=r"xs has shape \(7, 5\).*x has shape \(5,\), expected .*feature size 3"
    ):
        unroll(c.cell, c.params, jnp.zeros((T, 5)))


def test_carry_of_wrong_structure(lstm_case):
    with pytest.raises(ValueError, match=r"carry has structure .*expected .*LSTMCarry"):
        unroll(lstm_case.cell, lstm_case.params, lstm_case.xs, jnp.zeros(H))
    rnn = cells.rnn(H)
    with pytest.raises(ValueError, match=r"carry has structure .*LSTMCarry.*expected"):
        unroll(rnn, rnn.init(jax.random.key(0), F), lstm_case.xs, lstm_case.carry)


@pytest.mark.parametrize("shape", [(2, H), (H + 1,), ()])
def test_carry_of_wrong_shape(lstm_case, shape):
    carry = cells.LSTMCarry(h=jnp.zeros(shape), c=jnp.zeros(shape))
    with pytest.raises(ValueError, match=r"carry leaf has shape " + re.escape(str(shape))):
        unroll(lstm_case.cell, lstm_case.params, lstm_case.xs, carry)


@pytest.mark.parametrize("length", [-1, T + 1, 100, np.int64(T + 1)])
def test_length_outside_the_sequence(lstm_case, length):
    with pytest.raises(ValueError, match=rf"length={length} is outside \[0, T={T}\]"):
        unroll(lstm_case.cell, lstm_case.params, lstm_case.xs, length=length)


@pytest.mark.parametrize("name", ["truncate", "remat", "unroll"])
@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_non_positive_window_options(lstm_case, name, bad):
    with pytest.raises(ValueError, match=rf"{name} must be a positive int, got {bad!r}"):
        unroll(lstm_case.cell, lstm_case.params, lstm_case.xs, **{name: bad})
