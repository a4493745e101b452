"""The fused ``Cell.scan`` paths (hand-written backward) against the ``step``-based reference.

Every comparison is in float64, against a plain Python loop over ``cell.step`` (values and
autodiff gradients), against ``unroll`` with ``fast=False`` for the windowed options, and
against central finite differences for the custom backward pass itself.
"""

from __future__ import annotations

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax import xla
from seqjax.cells import fused

T, F, H, B = 7, 3, 4, 3

CELLS_UNDER_TEST = {
    "lstm": lambda fast: seqjax.lstm(H, dtype=jnp.float64, fast=fast),
    "gru": lambda fast: seqjax.gru(H, dtype=jnp.float64, fast=fast),
    "rnn_tanh": lambda fast: seqjax.rnn(H, "tanh", dtype=jnp.float64, fast=fast),
    "irnn": lambda fast: seqjax.irnn(H, dtype=jnp.float64, fast=fast),
}
NAMES = sorted(CELLS_UNDER_TEST)


def _problem(name: str, seed: int = 0):
    fast, slow = CELLS_UNDER_TEST[name](True), CELLS_UNDER_TEST[name](False)
    k_p, k_x, k_c = jax.random.split(jax.random.key(seed), 3)
    params = slow.init(k_p, F)
    if name == "irnn":  # an identity start is too symmetric to exercise every gradient path
        params["w_h"] = params["w_h"] + 0.3 * jax.random.normal(k_c, (H, H), jnp.float64)
    xs = jax.random.normal(k_x, (B, T, F), jnp.float64)
    carry = jax.tree.map(
        lambda c: 0.5 * jax.random.normal(k_c, (B, *c.shape), jnp.float64), slow.initial_carry()
    )
    return fast, slow, params, xs, carry


def _loop_reference(cell, params, carry, xs, valid):
    """A Python loop over ``cell.step``: invalid steps keep the carry and output zeros."""
    hs = []
    for t in range(xs.shape[0]):
        new, h = cell.step(params, carry, xs[t])
        v = True if valid is None else valid[t]
        carry = jax.tree.map(lambda n, o, v=v: jnp.where(v, n, o), new, carry)
        hs.append(jnp.where(v, h, jnp.zeros_like(h)))
    return carry, jnp.stack(hs)


def _scalar(carry, hs):
    # Weights every output and carry entry differently so that no gradient term cancels.
    w = jnp.sin(jnp.arange(hs.size, dtype=hs.dtype)).reshape(hs.shape)
    total = jnp.sum(w * jnp.tanh(hs))
    for leaf in jax.tree.leaves(carry):
        u = jnp.cos(jnp.arange(leaf.size, dtype=leaf.dtype)).reshape(leaf.shape)
        total = total + jnp.sum(u * jnp.sin(leaf))
    return total


def _max_diff(a, b) -> float:
    return max(
        float(jnp.max(jnp.abs(x - y)))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.mark.parametrize(
    ("name", "masked"), [("lstm", False), ("lstm", True), ("gru", True), ("irnn", True)]
)
def test_scan_hook_matches_python_loop_values_and_gradients(x64, name, masked):
    fast, slow, params, xs, carry = _problem(name)
    valid = jnp.array([True, True, False, True, False, False, True]) if masked else None

    c0, x0 = jax.tree.map(lambda a: a[0], carry), xs[0]

    @jax.jit
    def both(p, c, x):
        def run(scan_fn):
            out = scan_fn(p, c, x)
            g = jax.grad(lambda *a: _scalar(*scan_fn(*a)), argnums=(0, 1, 2))(p, c, x)
            return out, g

        return run(lambda *a: fast.scan(*a, valid)), run(
            lambda *a: _loop_reference(slow, *a, valid)
        )

    (got, g_got), (want, g_want) = both(params, c0, x0)
    assert _max_diff(got, want) < 1e-12
    if masked:
        np.testing.assert_array_equal(np.asarray(got[1])[~np.asarray(valid)], 0.0)
    assert _max_diff(g_got, g_want) < 1e-11


UNROLL_OPTIONS = [
    {},
    {"truncate": 3, "length": 6},
    {"remat": 2, "reverse": True, "length": 5},
]


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_unroll_under_vmap_equals_step_path(x64, name):
    # lengths, reverse, truncated-BPTT and remat windows all call the hook through unroll.
    fast, slow, params, xs, carry = _problem(name, seed=1)

    @jax.jit
    def all_options(p, c, x):
        out = []
        for options in UNROLL_OPTIONS:
            for cell in (fast, slow):

                def loss(p, c, x, cell=cell, options=options):
                    run = lambda ci, xi: seqjax.unroll(cell, p, xi, carry=ci, **options)  # noqa: E731
                    return _scalar(*jax.vmap(run)(c, x))

                out.append(jax.value_and_grad(loss, argnums=(0, 1, 2))(p, c, x))
        return out

    results = all_options(params, carry, xs)
    for options, got, want in zip(UNROLL_OPTIONS, results[::2], results[1::2], strict=True):
        assert _max_diff(got, want) < 1e-11, options


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_traced_lengths_per_example_under_jit_and_vmap(x64, name):
    fast, slow, params, xs, _ = _problem(name, seed=2)
    lengths = jnp.array([7, 3, 0])

    @jax.jit
    def loss_and_grad(p, x, n):
        def f(cell, p):
            carry, hs = jax.vmap(lambda xi, ni: seqjax.unroll(cell, p, xi, length=ni))(x, n)
            return _scalar(carry, hs)

        return jax.value_and_grad(lambda p: f(fast, p))(p), jax.value_and_grad(
            lambda p: f(slow, p)
        )(p)

    got, want = loss_and_grad(params, xs, lengths)
    assert _max_diff(got, want) < 1e-11


@pytest.mark.parametrize("name", NAMES)
def test_custom_backward_matches_central_finite_differences(x64, name):
    fast, _, params, xs, carry = _problem(name, seed=3)
    valid = jnp.array([True, False, True, True, True, False, True])
    c0, x0 = jax.tree.map(lambda a: a[0], carry), xs[0]

    def f(p, c, x):
        return _scalar(*fast.scan(p, c, x, valid))

    f = jax.jit(f)
    grads = jax.jit(jax.grad(f, argnums=(0, 1, 2)))(params, c0, x0)
    keys = jax.random.split(jax.random.key(4), 3)
    direction = tuple(
        jax.tree.map(lambda a, k=k: jax.random.normal(k, a.shape, a.dtype), tree)
        for tree, k in zip((params, c0, x0), keys, strict=True)
    )
    eps = 1e-6
    plus = jax.tree.map(lambda a, d: a + eps * d, (params, c0, x0), direction)
    minus = jax.tree.map(lambda a, d: a - eps * d, (params, c0, x0), direction)
    numeric = (f(*plus) - f(*minus)) / (2 * eps)
    analytic = sum(
        jnp.vdot(g, d)
        for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction), strict=True)
    )
    assert abs(float(numeric - analytic)) < 1e-7 * max(1.0, abs(float(analytic)))


@pytest.mark.parametrize("name", ["lstm"])
def test_reverse_over_reverse_matches_step_path(x64, name):
    # A Hessian-vector product through jax.grad of a vmapped unroll: the custom backward is
    # itself differentiated by autodiff.
    fast, slow, params, xs, _ = _problem(name, seed=5)
    v = jax.tree.map(lambda a: jnp.cos(jnp.arange(a.size, dtype=a.dtype)).reshape(a.shape), params)

    def hvp(cell):
        def loss(p):
            carry, hs = jax.vmap(lambda x: seqjax.unroll(cell, p, x, length=5))(xs)
            return _scalar(carry, hs)

        def gv(p):
            g = jax.grad(loss)(p)
            return sum(jnp.vdot(g[k], v[k]) for k in g)

        return jax.jit(jax.grad(gv))(params)

    assert _max_diff(hvp(fast), hvp(slow)) < 1e-10


def test_float32_under_strict_promotion_keeps_dtype():
    cell = seqjax.lstm(H, fast=True)
    params = cell.init(jax.random.key(0), F)
    xs = jnp.ones((T, F), jnp.float32)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(seqjax.unroll(cell, p, xs, length=4)[1])))(params)
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))


def test_forward_mode_is_unsupported_and_says_so():
    cell = seqjax.gru(H, fast=True)
    params = cell.init(jax.random.key(0), F)
    xs = jnp.ones((T, F), jnp.float32)
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda x: seqjax.unroll(cell, params, x)[1], (xs,), (xs,))


def test_factories_attach_the_fast_path_only_when_asked():
    assert seqjax.lstm(H).scan is None and seqjax.gru(H).scan is None
    assert seqjax.rnn(H).scan is None
    for cell in (seqjax.lstm(H, fast=True), seqjax.gru(H, fast=True), seqjax.irnn(H, fast=True)):
        assert callable(cell.scan)


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(ValueError, match="activation='gelu'"):
        fused.rnn_scan("gelu")


# The batched kernel behind the per-example hook ----------------------------------------------


def test_vmapped_here_sees_only_the_innermost_vmap():
    seen = {}

    def probe(name):
        def f(x):
            seen[name] = xla.vmapped_here(x)
            return jnp.sum(x)

        return f

    xs = jnp.ones((3, 4))
    probe("plain")(xs[0])
    jax.vmap(probe("vmap"))(xs)
    jax.jit(jax.vmap(probe("jit(vmap)")))(xs)
    jax.grad(lambda x: jnp.sum(jax.vmap(probe("grad(vmap)"))(x)))(xs)
    jax.vmap(jax.grad(probe("vmap(grad)")))(xs)
    jax.vmap(lambda x: probe("vmap, unbatched arg")(jnp.ones(4)))(xs)
    assert seen == {
        "plain": False,
        "vmap": True,
        "jit(vmap)": True,
        "grad(vmap)": True,
        "vmap(grad)": False,
        "vmap, unbatched arg": False,
    }


def _batch_sums(jaxpr, batch: int) -> list:
    """The shapes summed by ``reduce_sum`` over axis 0 alone, with that axis the batch, in a
    jaxpr and the jaxprs nested in it: JAX's sum of per-example ``[B, ., .]`` gradients."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "reduce_sum":
            shape = eqn.invars[0].aval.shape
            if len(shape) == 3 and shape[0] == batch and tuple(eqn.params["axes"]) == (0,):
                found.append(shape)
        for value in eqn.params.values():
            for sub in value if isinstance(value, list | tuple) else [value]:
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    found += _batch_sums(sub.jaxpr, batch)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    found += _batch_sums(sub, batch)
    return found


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh"])
def test_training_gradient_contracts_over_the_batch_once(x64, name):
    # Under jax.grad(jax.vmap(...)) the weight gradients must come from one product over
    # batch and time, not from per-example gradients that JAX then sums over the batch (a
    # reduction XLA:CPU runs ~30x slower than the product).
    fast, _, params, xs, carry = _problem(name)

    def grad_of(batched):
        def loss(p):
            def one(c, x):
                return seqjax.unroll(fast, p, x, carry=c)

            return _scalar(*batched(one)(carry, xs))

        return jax.make_jaxpr(jax.grad(loss))(params).jaxpr

    assert _batch_sums(grad_of(jax.vmap), B) == []
    # The check can fail: under vmap(jit(.)) the hook is traced for one example, and the
    # per-example weight gradients are summed by JAX.
    assert _batch_sums(grad_of(lambda f: jax.vmap(jax.jit(f))), B) != []


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_per_example_gradients_under_vmap_of_grad(x64, name):
    fast, slow, params, xs, carry = _problem(name, seed=6)
    valid_lengths = jnp.array([7, 4, 1])

    def per_example(cell):
        def loss(p, c, x, n):
            return _scalar(*seqjax.unroll(cell, p, x, carry=c, length=n))

        return jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1, 2)), in_axes=(None, 0, 0, 0)))(
            params, carry, xs, valid_lengths
        )

    got, want = per_example(fast), per_example(slow)
    assert jax.tree.leaves(got)[0].shape[0] == B  # one gradient per example
    assert _max_diff(got, want) < 1e-11


def test_parameters_batched_over_seeds_outside_the_batch(x64):
    # vmap over seeds (parameters batched) of grad of vmap over the batch: what `seeds: [...]`
    # compiles.
    fast, slow, params, xs, carry = _problem("lstm", seed=7)
    seeds = jax.tree.map(lambda a: jnp.stack([a, 0.5 * a, -a]), params)

    def run(cell):
        def loss(p):
            carry_t, hs = jax.vmap(lambda c, x: seqjax.unroll(cell, p, x, carry=c))(carry, xs)
            return _scalar(carry_t, hs)

        return jax.jit(jax.vmap(jax.value_and_grad(loss)))(seeds)

    assert _max_diff(run(fast), run(slow)) < 1e-11


def test_parameters_batched_with_the_examples(x64):
    # Per-example parameters under one vmap: the rule falls back to the per-example kernel.
    fast, slow, params, xs, carry = _problem("gru", seed=8)
    per = jax.tree.map(lambda a: jnp.stack([a, 2.0 * a, -a]), params)

    def run(cell):
        def loss(p):
            carry_t, hs = jax.vmap(lambda q, c, x: seqjax.unroll(cell, q, x, carry=c))(p, carry, xs)
            return _scalar(carry_t, hs)

        return jax.jit(jax.value_and_grad(loss))(per)

    assert _max_diff(run(fast), run(slow)) < 1e-11


@pytest.mark.parametrize("k", [1, 2, 7])
def test_truncation_inside_the_kernel_equals_windows_of_the_step_path(x64, k):
    # unroll hands truncate=k to the kernel (no scan over windows): values and gradients,
    # batched and on one example, equal the step path's windows.
    fast, slow, params, xs, carry = _problem("lstm", seed=9)
    assert fast.scan.truncates
    lengths = jnp.array([7, 5, 2])

    def grads(cell):
        def one(p, c, x, n):
            return _scalar(*seqjax.unroll(cell, p, x, carry=c, length=n, truncate=k))

        def batch(p, c, x):
            run = lambda ci, xi, ni: seqjax.unroll(cell, p, xi, carry=ci, length=ni, truncate=k)  # noqa: E731
            return _scalar(*jax.vmap(run)(c, x, lengths))

        c0 = jax.tree.map(lambda a: a[0], carry)
        return jax.jit(
            lambda: (
                jax.value_and_grad(batch, argnums=(0, 1, 2))(params, carry, xs),
                jax.value_and_grad(one, argnums=(0, 1, 2))(params, c0, xs[0], 6),
            )
        )()

    assert _max_diff(grads(fast), grads(slow)) < 1e-11


def test_truncated_kernel_contracts_over_the_batch_once(x64):
    fast, _, params, xs, carry = _problem("gru")

    def grad_jaxpr(**options):
        def loss(p):
            run = lambda c, x: seqjax.unroll(fast, p, x, carry=c, **options)  # noqa: E731
            return _scalar(*jax.vmap(run)(carry, xs))

        return jax.make_jaxpr(jax.grad(loss))(params).jaxpr

    assert _batch_sums(grad_jaxpr(truncate=3), B) == []
    # remat windows still call the hook inside unroll's scan over windows (per example).
    assert _batch_sums(grad_jaxpr(remat=2), B) != []
