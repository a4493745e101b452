"""BPTT modes against explicit Python loops over ``cell.step`` with ``stop_gradient``."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import train_toy as toy

from seqjax.train import init_train_state, make_train_step, make_trainer, stream_window


def ce(logits, label):
    return -jax.nn.log_softmax(logits)[label]


def reference_sequence_loss(params, xs, ys, length, carry, steps, truncate=None):
    """Sum of per-step CE over ``steps`` of one sequence, as a plain loop (carry in, out)."""
    cell = toy.make_cell(xs.dtype)
    h, total = carry, jnp.zeros((), xs.dtype)
    for n, t in enumerate(steps):
        if truncate is not None and n > 0 and n % truncate == 0:
            h = jax.lax.stop_gradient(h)
        new_h, out = cell.step(params["cell"], h, xs[t])
        valid = t < length  # steps past the length change nothing
        h = jnp.where(valid, new_h, h)
        step_loss = ce(out @ params["w_out"] + params["b_out"], ys[t])
        total = total + jnp.where(valid, step_loss, jnp.zeros_like(step_loss))
    return total, h


@pytest.mark.parametrize("truncate", [1, 3])
def test_truncated_gradients_equal_stop_gradient_loop(truncate, x64):
    sample = toy.make_sampler(batch_size=2, num_steps=6, dtype=jnp.float64)
    batch = sample(jax.random.key(1))
    params = toy.init_params(jax.random.key(2), jnp.float64)
    loss_fn = toy.make_loss_fn(truncate=truncate, reduction="sum")
    got = jax.jit(jax.grad(lambda p: loss_fn(p, batch, None)[0]))(params)

    def ref(p):
        return sum(
            reference_sequence_loss(
                p,
                batch.inputs[b],
                batch.targets[b],
                batch.length[b],
                jnp.zeros(toy.H, jnp.float64),
                range(6),
                truncate,
            )[0]
            for b in range(2)
        )

    want = jax.jit(jax.grad(ref))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), got, want)
    if truncate < int(batch.length.max()):  # truncation really changes the gradient
        full_loss = toy.make_loss_fn(reduction="sum")
        full = jax.jit(jax.grad(lambda p: full_loss(p, batch, None)[0]))(params)
        diff = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), full, got)
        assert diff["cell"]["w_h"] > 1e-6


def test_remat_gives_full_bptt_gradients(x64):
    batch = toy.make_sampler(batch_size=2, num_steps=6, dtype=jnp.float64)(jax.random.key(1))
    params = toy.init_params(jax.random.key(2), jnp.float64)
    full = jax.jit(jax.grad(lambda p: toy.make_loss_fn()(p, batch, None)[0]))(params)
    remat = jax.jit(jax.grad(lambda p: toy.make_loss_fn(remat=True)(p, batch, None)[0]))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), full, remat)


def test_stream_window_slices_and_pads():
    batch = toy.make_sampler(batch_size=3, num_steps=7)(jax.random.key(0))
    batch = batch._replace(length=jnp.array([7, 4, 2], jnp.int32))
    w = stream_window(batch, 2, 3)  # steps 6, 7, 8 of a 7-step stream: one real, two padding
    np.testing.assert_array_equal(w.inputs[:, 0], batch.inputs[:, 6])
    np.testing.assert_array_equal(w.inputs[:, 1:], 0.0)
    np.testing.assert_array_equal(w.length, [1, 0, 0])
    w = stream_window(batch, 1, 3)
    np.testing.assert_array_equal(w.targets, batch.targets[:, 3:6])
    np.testing.assert_array_equal(w.length, [3, 1, 0])
    with pytest.raises(ValueError, match="window=8 is longer than the stream"):
        stream_window(batch, 0, 8)


@pytest.mark.parametrize(("total", "window"), [(7, 3)])
def test_streaming_equals_explicit_stop_gradient_loop(total, window, x64):
    batch_size, lr, num_updates = 2, 0.1, 2 * -(-total // window)  # two whole streams
    sample = toy.make_sampler(batch_size=batch_size, num_steps=total, dtype=jnp.float64)
    trainer = make_trainer(
        lambda k: toy.init_params(k, jnp.float64),
        toy.make_stream_loss_fn(reduction="sum"),
        optax.sgd(lr),
        sample,
        window=window,
        initial_carry=toy.initial_carry(batch_size, jnp.float64),
    )
    key = jax.random.key(5)
    state, data_key = trainer.init(key)
    losses = []
    for _ in range(num_updates):
        state, metrics = trainer.run(state, data_key, 1)
        losses.append(float(metrics["loss"][0]))

    # Reference: windows cut by hand; one SGD update per window; the carry is a constant input
    # to the next window's loss (no gradient flows through it); reset at each new stream.
    @functools.partial(jax.jit, static_argnums=3)
    def window_grad(params, stream, carry, steps):
        def window_loss(p):
            outs = [
                reference_sequence_loss(
                    p, stream.inputs[b], stream.targets[b], stream.length[b], carry[b], steps
                )
                for b in range(batch_size)
            ]
            return sum(o[0] for o in outs), [o[1] for o in outs]

        return jax.value_and_grad(window_loss, has_aux=True)(params)

    params = toy.init_params(jax.random.split(key, 3)[0], jnp.float64)
    ref_losses, num_windows = [], -(-total // window)
    for s in range(num_updates):
        stream_index, w = divmod(s, num_windows)
        stream = sample(jax.random.fold_in(data_key, stream_index))
        if w == 0:
            carry = [jnp.zeros(toy.H, jnp.float64) for _ in range(batch_size)]
        steps = tuple(range(w * window, min((w + 1) * window, total)))
        (loss, carry), grads = window_grad(params, stream, carry, steps)
        params = jax.tree.map(lambda p, g: p - lr * g, params, grads)
        ref_losses.append(float(loss))

    np.testing.assert_allclose(losses, ref_losses, rtol=1e-10)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), state.params, params
    )


def test_streaming_with_window_t_equals_full_bptt(x64):
    sample = toy.make_sampler(batch_size=3, num_steps=5, dtype=jnp.float64)
    optimizer = optax.sgd(0.3)
    streaming = make_train_step(
        toy.make_stream_loss_fn(reduction="mean"), optimizer, streaming=True
    )
    full = make_train_step(toy.make_loss_fn(), optimizer)
    params = toy.init_params(jax.random.key(9), jnp.float64)
    carry = toy.initial_carry(3, jnp.float64)
    s_state = init_train_state(params, optimizer, jax.random.key(0), carry)
    f_state = init_train_state(params, optimizer, jax.random.key(0))
    for i in range(3):  # one window = the whole sequence; each update starts a new stream
        batch = sample(jax.random.key(i))
        s_state, s_metrics = streaming(s_state._replace(carry=carry), batch)
        f_state, f_metrics = full(f_state, batch)
        np.testing.assert_allclose(s_metrics["loss"], f_metrics["loss"], rtol=1e-12)
        np.testing.assert_allclose(s_metrics["grad_norm"], f_metrics["grad_norm"], rtol=1e-12)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), s_state.params, f_state.params
    )
