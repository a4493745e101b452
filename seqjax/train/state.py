"""`TrainState`: everything a training run carries from one update to the next."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["TrainState", "init_train_state"]


class TrainState(NamedTuple):
    """The whole state of a training run, a pytree (checkpoint it and resume exactly).

    Attributes:
      params: the model parameters.
      opt_state: the optimiser state.
      step: int32 scalar, the number of train steps taken (skipped ones included).
      key: a PRNG key, split at every step for the loss (dropout and the like).
      bad_steps: int32 scalar, the number of consecutive steps, up to now, whose loss or
        gradient was not finite (their update was skipped); 0 after a good step. Once it
        reaches the trainer's ``max_bad_steps`` the run is diverged (`is_diverged` in
        `seqjax.train.step`): every later update is skipped, so it keeps counting and the
        flag survives checkpoints.
      num_skipped: int32 scalar, all skipped steps so far.
      carry: the recurrent carry ``[B, ...]`` passed between windows of a stream (streaming
        BPTT); None otherwise.
    """

    params: Any
    opt_state: optax.OptState
    step: jax.Array
    key: jax.Array
    bad_steps: jax.Array
    num_skipped: jax.Array
    carry: Any = None


def init_train_state(
    params: Any,
    optimizer: optax.GradientTransformation,
    key: jax.Array,
    carry: Any = None,
) -> TrainState:
    """A fresh `TrainState` at step 0.

    Args:
      params: initial model parameters.
      optimizer: the optimiser (its ``init`` makes the optimiser state).
      key: a PRNG key for the steps (typed, from ``jax.random.key``).
      carry: the initial streaming carry ``[B, ...]``, or None when not streaming.
    """
    zero = jnp.zeros((), jnp.int32)
    return TrainState(
        params=params,
        opt_state=optimizer.init(params),
        step=zero,
        key=key,
        bad_steps=zero,
        num_skipped=zero,
        carry=carry,
    )
