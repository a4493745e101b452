"""train_step / eval_step: metrics, clipping, every leaf moves, one trace, non-finite skipping."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import train_toy as toy

from seqjax.train import init_train_state, make_eval_step, make_train_step

LR, CLIP = 0.1, 0.05


@pytest.fixture(scope="module")
def setup():
    traces = []
    base_loss = toy.make_loss_fn()

    def loss_fn(params, batch, key):
        traces.append(1)  # runs only while tracing
        return base_loss(params, batch, key)

    optimizer = optax.sgd(LR, momentum=0.9)
    step = make_train_step(loss_fn, optimizer, clip=optax.clip_by_global_norm(CLIP))
    params = toy.init_params(jax.random.key(0))
    state = init_train_state(params, optimizer, jax.random.key(1))
    sample = toy.make_sampler()
    return step, state, sample, base_loss, traces


def test_step_metrics_clipping_and_update(setup):
    step, state, sample, loss_fn, _ = setup
    batch = sample(jax.random.key(2))
    new_state, metrics = step(state, batch)
    reference = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
    (loss, aux), grads = reference(state.params, batch, None)
    norm = float(np.sqrt(sum(np.sum(np.square(g)) for g in jax.tree.leaves(grads))))
    assert norm > CLIP  # so clipping fires
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-6)
    np.testing.assert_allclose(metrics["accuracy"], aux["accuracy"], rtol=1e-6)
    np.testing.assert_allclose(metrics["grad_norm"], norm, rtol=1e-5)
    np.testing.assert_allclose(metrics["grad_norm_clipped"], CLIP, rtol=1e-5)
    assert bool(metrics["clipped"]) and not bool(metrics["skipped"])
    # First momentum step is plain SGD on the clipped gradient g * c / ||g||.
    want = jax.tree.map(lambda p, g: p - LR * g * CLIP / norm, state.params, grads)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), new_state.params, want
    )
    # Every parameter leaf changes.
    moved = jax.tree.map(lambda a, b: bool(jnp.all(a != b)), new_state.params, state.params)
    assert all(jax.tree.leaves(moved)), moved
    assert int(new_state.step) == 1 and int(new_state.bad_steps) == 0
    assert not np.array_equal(jax.random.key_data(new_state.key), jax.random.key_data(state.key))


def test_step_is_traced_once(setup):
    step, state, sample, _, traces = setup
    step(state, sample(jax.random.key(3)))  # compiled already, or now
    n = len(traces)
    for i in range(3):
        state, _ = step(state, sample(jax.random.key(10 + i)))
    assert len(traces) == n


def test_non_finite_step_is_skipped_and_counted(setup):
    step, state, sample, _, _ = setup
    good = sample(jax.random.key(4))
    state, _ = step(state, good)  # momentum state is non-zero now
    bad = good._replace(inputs=good.inputs.at[0, 0, 0].set(jnp.nan))
    skipped, metrics = step(state, bad)
    assert bool(metrics["skipped"]) and int(metrics["bad_steps"]) == 1
    assert not np.isfinite(float(metrics["loss"]))
    jax.tree.map(np.testing.assert_array_equal, skipped.params, state.params)
    jax.tree.map(np.testing.assert_array_equal, skipped.opt_state, state.opt_state)
    assert int(skipped.step) == int(state.step) + 1 and int(skipped.num_skipped) == 1
    skipped, metrics = step(skipped, bad)
    assert int(skipped.bad_steps) == 2 and int(skipped.num_skipped) == 2
    recovered, metrics = step(skipped, good)
    assert int(recovered.bad_steps) == 0 and int(recovered.num_skipped) == 2
    assert not bool(metrics["skipped"])
    assert not np.array_equal(recovered.params["w_out"], state.params["w_out"])


def test_inf_gradient_with_finite_loss_is_skipped():
    def loss_fn(params, batch, key):
        del batch, key
        return jnp.sqrt(jnp.abs(params["w"])).sum(), {}  # d/dw sqrt|w| is inf at 0

    optimizer = optax.sgd(0.1)
    step = make_train_step(loss_fn, optimizer)
    state = init_train_state({"w": jnp.zeros(2)}, optimizer, jax.random.key(0))
    new_state, metrics = step(state, None)
    assert np.isfinite(float(metrics["loss"])) and bool(metrics["skipped"])
    np.testing.assert_array_equal(new_state.params["w"], 0.0)


def test_eval_step_is_deterministic_and_matches_loss(setup):
    _, state, sample, loss_fn, _ = setup
    batch = sample(jax.random.key(5))
    eval_step = make_eval_step(loss_fn)
    m = eval_step(state.params, batch)
    loss, aux = loss_fn(state.params, batch, None)
    np.testing.assert_allclose(m["loss"], loss, rtol=1e-6)
    np.testing.assert_allclose(m["accuracy"], aux["accuracy"], rtol=1e-6)


def test_bad_loss_fn_and_state_errors():
    optimizer = optax.sgd(0.1)
    state = init_train_state({"w": jnp.ones(2)}, optimizer, jax.random.key(0))

    def clashing(params, batch, key):
        return jnp.sum(params["w"]), {"grad_norm": jnp.ones(())}

    with pytest.raises(ValueError, match=r"aux metrics \['grad_norm'\] clash"):
        make_train_step(clashing, optimizer)(state, None)

    def streaming(params, batch, carry, key):
        return jnp.sum(params["w"]), ({}, carry)

    with pytest.raises(ValueError, match=r"state\.carry is None"):
        make_train_step(streaming, optimizer, streaming=True)(state, None)
