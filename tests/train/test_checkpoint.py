"""Checkpoints: exact resume, keep-last-K, and a process SIGKILLed mid-write."""

import os
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import train_toy as toy

from seqjax.train import (
    EarlyStopping,
    checkpoint_manager,
    fit,
    init_train_state,
    make_trainer,
    restore_checkpoint,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def trainer():
    # Adam (step counts, moments) and streaming (carry, window position) exercise every part
    # of the state; Optax's Adam needs standard dtype promotion (see test_optim.py).
    with jax.numpy_dtype_promotion("standard"):
        yield make_trainer(
            toy.init_params,
            toy.make_stream_loss_fn(),
            optax.adam(0.05),
            toy.make_sampler(batch_size=3, num_steps=6),
            clip=optax.clip_by_global_norm(1.0),
            window=2,
            initial_carry=toy.initial_carry(3),
        )


def run(trainer, directory, num_steps):
    with jax.numpy_dtype_promotion("standard"):
        return fit(
            trainer,
            jax.random.key(7),
            num_steps,
            chunk_size=2,
            checkpoints=checkpoint_manager(directory, every=2, keep=2),
            eval_fn=lambda params: {"loss": jnp.sum(jnp.square(params["w_out"]))},
            eval_every=4,
            early_stopping=EarlyStopping("loss", patience=10),
        )


def test_resumed_run_is_bit_identical(trainer, tmp_path):
    full = run(trainer, tmp_path / "full", 10)
    assert full.resumed_from is None
    assert checkpoint_manager(tmp_path / "full", every=2, keep=2).all_steps() == [8, 10]

    first = run(trainer, tmp_path / "cut", 4)  # stops mid-stream: the carry matters
    resumed = run(trainer, tmp_path / "cut", 10)
    assert (first.resumed_from, resumed.resumed_from) == (None, 4)
    assert resumed.early_stopping == full.early_stopping  # host state came back too
    for name in full.metrics:
        np.testing.assert_array_equal(
            np.concatenate([first.metrics[name], resumed.metrics[name]]), full.metrics[name]
        )
    for a, b in zip(jax.tree.leaves(resumed.state), jax.tree.leaves(full.state), strict=True):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(a, b)


def test_restore_missing_step_errors(tmp_path):
    manager = checkpoint_manager(tmp_path, every=1, keep=1)
    state = init_train_state({"w": jnp.ones(2)}, optax.sgd(0.1), jax.random.key(0))
    with pytest.raises(FileNotFoundError, match="no checkpoint at step None"):
        restore_checkpoint(manager, state)
    with pytest.raises(ValueError, match="every must be a positive int, got 0"):
        checkpoint_manager(tmp_path, every=0, keep=1)


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    import jax, jax.numpy as jnp, optax
    from orbax.checkpoint._src.path import atomicity
    from seqjax.train import checkpoint_manager, init_train_state, save_checkpoint

    manager = checkpoint_manager(sys.argv[1], every=1, keep=5)
    params = {"w": jnp.arange(1000.0)}
    state = init_train_state(params, optax.sgd(0.1), jax.random.key(3))
    save_checkpoint(manager, state._replace(step=jnp.asarray(1, jnp.int32)))

    async def hang(self):
        # The data of the new checkpoint is written, the commit has not happened: say so and
        # wait to be killed.
        print("writing", flush=True)
        await asyncio.to_thread(sys.stdin.readline)

    atomicity.AtomicRenameTemporaryPath.finalize = hang
    atomicity.CommitFileTemporaryPath.finalize = hang
    doubled = {"w": 2 * params["w"]}
    save_checkpoint(manager, state._replace(params=doubled, step=jnp.asarray(2, jnp.int32)))
    print("finished", flush=True)
    """
)


def test_sigkill_during_save_leaves_previous_checkpoint_usable(tmp_path):
    directory = tmp_path / "ckpt"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    try:
        line = child.stdout.readline()  # blocks until the second save is mid-write
        assert line.strip() == "writing", line
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    leftovers = [p.name for p in directory.iterdir()]
    assert any("tmp" in name for name in leftovers), leftovers  # the half-written step 2

    manager = checkpoint_manager(directory, every=1, keep=5)
    assert manager.latest_step() == 1 and manager.all_steps() == [1]
    template = init_train_state({"w": jnp.zeros(1000)}, optax.sgd(0.1), jax.random.key(0))
    state, _ = restore_checkpoint(manager, template)
    np.testing.assert_array_equal(state.params["w"], np.arange(1000.0))
    np.testing.assert_array_equal(jax.random.key_data(state.key), [0, 3])
    assert int(state.step) == 1
    # The run can go on saving after the crash.
    assert save_checkpoint(manager, state._replace(step=jnp.asarray(2, jnp.int32)))
    assert manager.all_steps() == [1, 2]
