"""optimizer_from_config: clipping formula, first steps of each optimiser, decay, schedules."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.experiment import optimizer_from_config, schedule_from_config
from seqjax.experiment.config import ClipConfig, OptimizerConfig, ScheduleConfig
from seqjax.train import OPTIMIZERS, get_optimizer


@pytest.fixture(autouse=True)
def optax_promotion():
    """Optax's Adam bias correction and schedules mix int32 step counts with floats, which the
    suite's strict dtype promotion rejects; that is Optax's code, so allow it here."""
    with jax.numpy_dtype_promotion("standard"):
        yield


PARAMS = {"a": jnp.array([1.0, -2.0]), "b": jnp.array([[0.5]])}
GRAD = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([[4.0]])}  # ||g|| = 5


def first_update(cfg, grads=GRAD, params=PARAMS):
    opt = optimizer_from_config(cfg)
    updates, _ = opt.update(grads, opt.init(params), params)
    return {k: np.asarray(v) for k, v in updates.items()}


@pytest.mark.parametrize("threshold", [1.0, 2.5, 5.0, 10.0])
def test_global_norm_clipping_formula(threshold):
    cfg = OptimizerConfig(
        name="sgd", learning_rate=1.0, clip=ClipConfig(method="global_norm", threshold=threshold)
    )
    upd = first_update(cfg)
    scale = min(1.0, threshold / 5.0)  # ||g|| = sqrt(3^2 + 4^2) = 5, by hand
    np.testing.assert_allclose(upd["a"], -scale * np.array([3.0, 0.0]), rtol=1e-6)
    np.testing.assert_allclose(upd["b"], -scale * np.array([[4.0]]), rtol=1e-6)


def test_value_clipping_and_none():
    cfg = OptimizerConfig(name="sgd", learning_rate=1.0, clip=ClipConfig("value", 3.5))
    upd = first_update(cfg)
    np.testing.assert_array_equal(upd["a"], [-3.0, 0.0])
    np.testing.assert_array_equal(upd["b"], [[-3.5]])
    upd = first_update(OptimizerConfig(name="sgd", learning_rate=1.0))
    np.testing.assert_array_equal(upd["b"], [[-4.0]])


def test_first_step_of_each_optimizer_matches_hand_formula():
    lr, g = 0.1, np.concatenate([np.asarray(GRAD["a"]), np.asarray(GRAD["b"]).ravel()])
    expected = {
        "sgd": -lr * g,
        "momentum": -lr * g,  # trace starts at zero: first step is plain SGD
        "adam": -lr * g / (np.abs(g) + 1e-8),  # bias-corrected m/sqrt(v) = g/|g|
        "adamw": -lr * g / (np.abs(g) + 1e-8),
        "rmsprop": -lr * g / np.sqrt(0.1 * g**2 + 1e-8),  # nu = (1 - 0.9) g^2
    }
    assert set(expected) == set(OPTIMIZERS)
    for name, want in expected.items():
        upd = first_update(OptimizerConfig(name=name, learning_rate=lr))
        got = np.concatenate([upd["a"], upd["b"].ravel()])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer_minimises_a_quadratic(name):
    cfg = OptimizerConfig(name=name, learning_rate=0.05, weight_decay=1e-3)
    opt = optimizer_from_config(cfg)
    target = jnp.array([1.0, -1.0, 2.0])

    def loss(p):
        return jnp.sum(jnp.square(p - target))

    @jax.jit
    def run(p):
        def body(carry, _):
            p, s = carry
            u, s = opt.update(jax.grad(loss)(p), s, p)
            return (p + u, s), None

        (p, _), _ = jax.lax.scan(body, (p, opt.init(p)), None, length=60)
        return p

    p0 = jnp.zeros(3)
    assert float(loss(run(p0))) < 0.5 * float(loss(p0))


def test_weight_decay_coupled_and_decoupled():
    lr, wd = 0.1, 0.01
    p = np.concatenate([np.asarray(PARAMS["a"]), np.asarray(PARAMS["b"]).ravel()])
    g = np.concatenate([np.asarray(GRAD["a"]), np.asarray(GRAD["b"]).ravel()])
    flat = lambda u: np.concatenate([u["a"], u["b"].ravel()])  # noqa: E731
    sgd = flat(first_update(OptimizerConfig(name="sgd", learning_rate=lr, weight_decay=wd)))
    np.testing.assert_allclose(sgd, -lr * (g + wd * p), rtol=1e-6)  # L2 added to the gradient
    adamw = flat(first_update(OptimizerConfig(name="adamw", learning_rate=lr, weight_decay=wd)))
    np.testing.assert_allclose(adamw, -lr * (g / (np.abs(g) + 1e-8) + wd * p), rtol=1e-5)


def test_schedules_match_formulas():
    lr = 0.2
    const = schedule_from_config(ScheduleConfig(), lr)
    assert float(const(1234)) == pytest.approx(lr)
    cos = schedule_from_config(
        ScheduleConfig(name="warmup_cosine", warmup_steps=10, decay_steps=110, end_value=0.02), lr
    )
    for step in [0, 5, 10, 60, 110, 200]:
        if step <= 10:
            want = lr * step / 10
        else:
            frac = min(step - 10, 100) / 100
            want = 0.02 + (lr - 0.02) * 0.5 * (1 + math.cos(math.pi * frac))
        assert float(cos(step)) == pytest.approx(want, rel=1e-5, abs=1e-7), step
    exp = schedule_from_config(
        ScheduleConfig(name="exponential", transition_steps=50, decay_rate=0.5), lr
    )
    for step in [0, 25, 50, 100]:
        assert float(exp(step)) == pytest.approx(lr * 0.5 ** (step / 50), rel=1e-5)
    # The schedule drives the optimiser: SGD's step-0 update uses lr(0) = 0 with warmup.
    cfg = OptimizerConfig(
        name="sgd",
        learning_rate=lr,
        schedule=ScheduleConfig(name="warmup_cosine", warmup_steps=10, decay_steps=20),
    )
    assert np.all(first_update(cfg)["a"] == 0.0)


def test_unknown_optimizer_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamax'; expected one of \['adam'"):
        get_optimizer("adamax", 0.1)
