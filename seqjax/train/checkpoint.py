"""Orbax checkpoints of the whole `TrainState`, saved every N steps, keeping the last K.

Orbax writes each checkpoint into a temporary directory and renames it into place once it is
complete, so a process killed mid-write leaves the previous checkpoints intact; the half-written
temporary directory is ignored when listing steps.

Typed PRNG keys are stored as their raw key data (``jax.random.key_data``) and rewrapped with
the implementation of the template's key on restore. Host-side state that must survive a
resume (the early-stopping record) is saved beside the train state as JSON.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.checks import positive_int
from seqjax.train.state import TrainState

__all__ = [
    "checkpoint_manager",
    "restore_checkpoint",
    "save_checkpoint",
]


def _orbax() -> Any:
    """``orbax.checkpoint``, imported on first use: it is slow to import and only runs with
    checkpoints on."""
    import orbax.checkpoint as ocp

    return ocp


def checkpoint_manager(directory: str | os.PathLike[str], *, every: int, keep: int) -> Any:
    """An Orbax manager that keeps the last ``keep`` checkpoints.

    A save is taken when no checkpoint exists yet or at least ``every`` steps have passed since
    the last one (Orbax's interval policy), or when forced. Saving is synchronous: when
    `save_checkpoint` returns, the checkpoint is on disk.
    """
    positive_int(every, "every", "checkpoint_manager")
    positive_int(keep, "keep", "checkpoint_manager")
    ocp = _orbax()
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=every,
        max_to_keep=keep,
        create=True,
        enable_async_checkpointing=False,
    )
    return ocp.CheckpointManager(os.fspath(os.path.abspath(directory)), options=options)


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_storable(state: TrainState) -> TrainState:
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)


def _uncommit(x: Any) -> Any:
    """A single-device array as an uncommitted one, like a fresh state's, so that jitted
    functions called on the restored state reuse their compilation instead of compiling again
    for an explicitly placed argument."""
    if isinstance(x, jax.Array) and len(x.devices()) == 1:
        return jnp.asarray(np.asarray(x))
    return x


def save_checkpoint(
    manager: Any,
    state: TrainState,
    host: dict[str, Any] | None = None,
    *,
    force: bool = False,
) -> bool:
    """Saves ``state`` at step ``state.step`` if the manager's interval says so.

    Args:
      manager: from `checkpoint_manager`.
      state: the train state.
      host: JSON-serialisable host-side state to restore with it (e.g. early stopping).
      force: save whatever the interval.

    Returns:
      Whether a checkpoint was written.
    """
    ocp = _orbax()
    step = int(np.max(np.asarray(state.step)))  # a stack of seeds shares its step
    args = ocp.args.Composite(
        state=ocp.args.StandardSave(_to_storable(state)),
        host=ocp.args.JsonSave(host or {}),
    )
    saved = manager.save(step, args=args, force=force)
    manager.wait_until_finished()
    return bool(saved)


def restore_checkpoint(
    manager: Any, template: TrainState, step: int | None = None
) -> tuple[TrainState, dict[str, Any]]:
    """Restores the train state saved at ``step`` (the latest complete one when None).

    Args:
      manager: from `checkpoint_manager`.
      template: a state with the same structure, shapes and dtypes (e.g. a freshly initialised
        one); typed PRNG keys in it say which key implementation to rewrap with.
      step: the step to restore; None: the latest.

    Returns:
      ``(state, host)``: the restored state and the host-side dict saved with it.

    Raises:
      FileNotFoundError: when there is no checkpoint (at ``step``).
    """
    ocp = _orbax()
    steps = manager.all_steps()
    if step is None:
        step = manager.latest_step()
    if step is None or step not in steps:
        raise FileNotFoundError(
            f"restore_checkpoint: no checkpoint at step {step} in {manager.directory}; "
            f"saved steps: {sorted(steps)}"
        )
    storable = _to_storable(template)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, storable)
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), host=ocp.args.JsonRestore()
        ),
    )
    state = jax.tree.map(_uncommit, restored.state)
    state = jax.tree.map(
        lambda t, r: jax.random.wrap_key_data(r, impl=jax.random.key_impl(t)) if _is_key(t) else r,
        template,
        state,
    )
    return state, dict(restored.host or {})
