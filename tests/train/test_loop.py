"""make_train equals a step-by-step loop; vmap over seeds; learning; early stopping; faults."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import train_toy as toy

from seqjax.train import (
    EarlyStopping,
    NonFiniteError,
    checkpoint_manager,
    compile_trainer,
    early_stopping_update,
    fit,
    get_clipping,
    make_optimizer,
    make_train,
    make_trainer,
    restore_checkpoint,
)


@pytest.fixture(scope="module")
def trainer():
    return compile_trainer(
        make_trainer(
            toy.init_params,
            toy.make_loss_fn(truncate=None, remat="auto"),
            make_optimizer("momentum", 0.2, momentum=0.9, nesterov=False),
            toy.make_sampler(),
            clip=get_clipping("global_norm", 1.0),
        )
    )


def test_make_train_equals_step_by_step_loop(trainer):
    logged = []
    train = jax.jit(
        make_train(trainer, 7, chunk_size=3, log_fn=lambda s, m: logged.append((int(s), m)))
    )
    key = jax.random.key(0)
    state, metrics = train(key)
    jax.effects_barrier()

    loop_state, data_key = trainer.init(key)
    losses = []
    for _ in range(7):
        loop_state, batch = trainer.prepare(loop_state, data_key)
        loop_state, m = trainer.train_step(loop_state, batch)
        losses.append(float(m["loss"]))

    jax.tree.map(np.testing.assert_array_equal, state.params, loop_state.params)
    jax.tree.map(np.testing.assert_array_equal, state.opt_state, loop_state.opt_state)
    # Same parameters bit for bit; the reported loss may differ in the last bit (XLA fuses the
    # loss differently inside the scan), which feeds nothing.
    np.testing.assert_allclose(metrics["loss"], np.asarray(losses, np.float32), rtol=1e-6)
    assert metrics["grad_norm"].shape == (7,) and int(state.step) == 7
    assert [s for s, _ in logged] == [3, 6, 7]
    assert [m["loss"].shape for _, m in logged] == [(3,), (3,), (1,)]

    # Many seeds at once (in one chunk): vmap equals the separate runs, chunking changes nothing.
    keys = jnp.stack([jax.random.split(jax.random.key(1), 2)[0], key])
    states, seed_metrics = jax.jit(jax.vmap(make_train(trainer, 7)))(keys)
    np.testing.assert_allclose(seed_metrics["loss"][1], metrics["loss"], rtol=1e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a[1], b, rtol=1e-5, atol=1e-6),
        states.params,
        state.params,
    )
    assert not np.allclose(seed_metrics["loss"][0], seed_metrics["loss"][1])


def test_loss_falls_on_toy_task():
    with jax.numpy_dtype_promotion("standard"):  # Optax's Adam mixes int counts and floats
        trainer = make_trainer(
            toy.init_params, toy.make_loss_fn(), optax.adam(0.03), toy.make_sampler(16, 8)
        )
        state, data_key = trainer.init(jax.random.key(2))
        _, metrics = trainer.run(state, data_key, 300)
    first, last = metrics["loss"][:20].mean(), metrics["loss"][-20:].mean()
    assert last < 0.6 * first, (first, last)
    assert metrics["accuracy"][-20:].mean() > 0.75  # the majority class is 50%


def test_early_stopping_rule():
    rule = EarlyStopping(metric="loss", patience=2, min_delta=0.1)
    record, stop = early_stopping_update(rule, None, 1.0, 10)
    assert record.best == 1.0 and not stop
    record, stop = early_stopping_update(rule, record, 0.95, 20)  # within min_delta: no gain
    assert record.evals_since_best == 1 and not stop
    record, stop = early_stopping_update(rule, record, 0.5, 30)
    assert (record.best, record.best_step, record.evals_since_best) == (0.5, 30, 0)
    record, stop = early_stopping_update(rule, record, math.nan, 40)
    record, stop = early_stopping_update(rule, record, 0.45, 50)
    assert stop and record.best_step == 30
    up = EarlyStopping("accuracy", mode="max", patience=1)
    record, _ = early_stopping_update(up, None, 0.5, 1)
    record, stop = early_stopping_update(up, record, 0.6, 2)
    assert record.best == 0.6 and not stop


def test_fit_stops_early_on_validation_metric(trainer, tmp_path):
    values = iter([3.0, 2.0, 2.5, 2.1, 2.2, 0.0])
    result = fit(
        trainer,
        jax.random.key(3),
        100,
        chunk_size=2,
        eval_fn=lambda params: {"loss": next(values)},
        eval_every=2,
        early_stopping=EarlyStopping(metric="loss", patience=3),
        checkpoints=checkpoint_manager(tmp_path, every=4, keep=2),
        checkpoint_every=4,
    )
    assert result.stop_reason == "early_stopping"
    assert int(result.state.step) == 10  # evals at 2, 4 (best), 6, 8, 10
    assert result.early_stopping.best_step == 4
    assert [e["step"] for e in result.evals] == [2, 4, 6, 8, 10]
    assert result.metrics["loss"].shape == (10,)
    # Saved every 4 steps, and the state where it stopped; the last two kept.
    assert checkpoint_manager(tmp_path, every=4, keep=2).all_steps() == [8, 10]


def test_consecutive_non_finite_steps_stop_with_the_step(tmp_path):
    # loss = -2w + sqrt(4.5 - w): SGD with lr 0.5 moves w by a bit over 1 per step (1.12, 2.25,
    # 3.42, 4.66), so at step 5 w > 4.5 makes loss and gradient NaN; skipped updates leave w
    # there, so every later step is bad too.
    def loss_fn(params, batch, key):
        del batch, key
        w = params["w"]
        return -2.0 * w + jnp.sqrt(4.5 - w), {}

    trainer = make_trainer(lambda k: {"w": jnp.zeros(())}, loss_fn, optax.sgd(0.5), lambda k: None)
    manager = checkpoint_manager(tmp_path, every=2, keep=5)
    with pytest.raises(
        NonFiniteError, match=r"stopped at step 7: 3 consecutive.*steps 5\.\.7"
    ) as e:
        fit(trainer, jax.random.key(0), 20, chunk_size=2, max_bad_steps=3, checkpoints=manager)
    assert "last good checkpoint: step 4" in str(e.value)
    assert manager.all_steps() == [2, 4]  # nothing saved after the first bad step
    state, _ = restore_checkpoint(manager, trainer.init(jax.random.key(0))[0])
    assert int(state.step) == 4 and np.isfinite(float(state.params["w"]))


def test_fit_argument_errors(trainer):
    with pytest.raises(ValueError, match="eval_every=3 must be a multiple of chunk_size=2"):
        fit(trainer, jax.random.key(0), 4, chunk_size=2, eval_fn=lambda p: {}, eval_every=3)
    with pytest.raises(ValueError, match="needs initial_carry"):
        make_trainer(
            toy.init_params, toy.make_loss_fn(), optax.sgd(0.1), toy.make_sampler(), window=3
        )
    with pytest.raises(ValueError, match="window=9 is longer than the stream"):
        make_trainer(
            toy.init_params,
            toy.make_stream_loss_fn(),
            optax.sgd(0.1),
            toy.make_sampler(num_steps=6),
            window=9,
            initial_carry=toy.initial_carry(4),
        )


def _sqrt_loss(params, batch, key):
    # As above: with SGD lr 0.5 the loss and gradient are NaN from step 5 on.
    del batch, key
    w = params["w"]
    return -2.0 * w + jnp.sqrt(4.5 - w), {}


def _runs_trainer(learning_rates, max_bad_steps):
    """A trainer of one run per learning rate, mapped over a leading run axis."""
    lrs = jnp.asarray(learning_rates)

    def one(lr):
        return make_trainer(
            lambda k: {"w": jnp.zeros(())},
            _sqrt_loss,
            optax.sgd(lr),
            lambda k: None,
            max_bad_steps=max_bad_steps,
        )

    def over(name, *static):
        def mapped(*args):
            return jax.vmap(lambda *a: getattr(one(a[-1]), name)(*a[:-1], *static))(*args, lrs)

        return mapped

    pieces = {n: over(n) for n in ("init", "prepare", "train_step", "update")}
    return compile_trainer(
        make_trainer(
            lambda k: {"w": jnp.zeros(())}, _sqrt_loss, optax.sgd(0.1), lambda k: None
        )._replace(**pieces, run=lambda s, d, n: over("run", n)(s, d))
    )


def test_a_diverged_run_is_frozen_while_the_other_goes_on(tmp_path):
    trainer = _runs_trainer([0.5, 0.01], max_bad_steps=3)
    keys = jnp.stack([jax.random.key(0), jax.random.key(0)])
    logged = []
    manager = checkpoint_manager(tmp_path, every=2, keep=2)
    result = fit(
        trainer,
        keys,
        12,
        chunk_size=2,
        max_bad_steps=3,
        checkpoints=manager,
        log_fn=lambda s, r: logged.append((s, r)),
    )
    assert result.diverged.tolist() == [True, False]
    # Reference: a Python loop of SGD in float64, skipping the steps where w >= 4.5 (NaN).
    w = []
    for lr in (0.5, 0.01):
        w.append(0.0)
        for _ in range(12):
            if w[-1] < 4.5:
                w[-1] -= lr * (-2.0 - 0.5 / math.sqrt(4.5 - w[-1]))
    np.testing.assert_allclose(result.state.params["w"], w, rtol=1e-5)
    assert 4.6 < w[0] < 4.7  # the last finite value, after step 4 (see above)
    loss, diverged = result.metrics["loss"], result.metrics["diverged"]
    np.testing.assert_array_equal(diverged[0], np.arange(1, 13) >= 7)
    assert not diverged[1].any() and np.isfinite(loss[1]).all()
    assert np.isnan(loss[0, 4:]).all() and np.isfinite(loss[0, :4]).all()
    np.testing.assert_array_equal(result.state.bad_steps, [8, 0])  # steps 5..12 skipped
    # Logs: the diverged run is flagged and its masked chunk means are NaN.
    assert logged[-1][1]["diverged"] == [1.0, 0.0] and math.isnan(logged[-1][1]["loss"][0])
    assert logged[2][1]["diverged"] == [0.0, 0.0]  # steps 5..6: bad, not yet diverged
    # Checkpoints go on for the other run, and a resumed run stays diverged and frozen.
    assert manager.all_steps() == [10, 12]
    again = fit(trainer, keys, 16, chunk_size=2, max_bad_steps=3, checkpoints=manager)
    assert again.resumed_from == 12 and again.diverged.tolist() == [True, False]
    assert float(again.state.params["w"][0]) == float(result.state.params["w"][0])
    assert np.isnan(again.metrics["loss"][0]).all() and np.isfinite(again.metrics["loss"][1]).all()


def test_fit_raises_when_every_run_has_diverged():
    trainer = _runs_trainer([0.5, 0.6], max_bad_steps=3)
    keys = jnp.stack([jax.random.key(0), jax.random.key(0)])
    with pytest.raises(NonFiniteError, match=r"stopped at step 7: every run diverged"):
        fit(trainer, keys, 12, chunk_size=2, max_bad_steps=3)
