"""A whole training run as one function of a PRNG key, and the host loop around it.

Both drive the same update, so they give the same numbers::

    init_key, data_key, state_key = split(key, 3)
    state = init_train_state(init_params(init_key), optimizer, state_key, carry)
    for s in range(num_steps):
        batch = sample_batch(fold_in(data_key, s))          # streaming: see below
        state, metrics[s] = train_step(state, batch)

* `make_train` returns ``train(key) -> (state, metrics)``, a pure jittable function
  (``jax.jit(jax.vmap(train))(keys)`` trains many seeds at once) made of ``lax.scan`` over
  chunks of steps; an optional ``log_fn`` is called from inside it between chunks.
* `fit` runs the same chunks from the host, and between them logs, evaluates, stops early,
  checkpoints, resumes from the latest checkpoint, and stops on repeated non-finite steps.

Streaming BPTT (``window=k``): ``sample_batch`` returns a batch of long streams
``[B, T_total, F]``, cut into ``n = ceil(T_total / k)`` windows. Update s trains on window
``s % n`` of stream ``s // n`` (sampled from ``fold_in(data_key, s // n)``); the carry comes
from the previous window and is reset to ``initial_carry`` at the start of each stream. The
stream is re-sampled at every update (the price of stateless, exactly resumable data).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from seqjax.checks import positive_int
from seqjax.train.checkpoint import restore_checkpoint, save_checkpoint
from seqjax.train.state import TrainState, init_train_state
from seqjax.train.step import (
    Metrics,
    make_train_step,
    stream_num_windows,
    stream_window,
)

__all__ = [
    "BPTTOptions",
    "EarlyStopping",
    "EarlyStoppingState",
    "FitResult",
    "NonFiniteError",
    "Trainer",
    "TrainerShardings",
    "compile_trainer",
    "early_stopping_update",
    "fit",
    "make_train",
    "make_trainer",
]


class BPTTOptions(NamedTuple):
    """The BPTT mode as arguments: ``truncate`` and ``remat`` go to the unroll inside the loss
    function (``unroll(..., truncate=, remat=)``), ``window`` to `make_trainer`."""

    truncate: int | None
    remat: bool | int | str
    window: int | None


class Trainer(NamedTuple):
    """The pieces of a training run, as pure functions (`make_trainer`); `compile_trainer`
    jits them.

    Attributes:
      init: ``init(key) -> (state, data_key)``: the initial `TrainState` and the root key of
        the data stream.
      prepare: ``prepare(state, data_key) -> (state, batch)``: the batch of the next update
        (and, when streaming, the state with its carry reset at a stream's start).
      train_step: ``train_step(state, batch) -> (state, metrics)``.
      update: ``update(state, data_key) -> (state, metrics)``: ``prepare`` then the step
        (the body of the scans; never jitted on its own).
      run: ``run(state, data_key, num_steps) -> (state, metrics)``, ``num_steps`` static:
        ``lax.scan`` of ``update``; metrics are stacked ``[num_steps]``.
    """

    init: Callable[[jax.Array], tuple[TrainState, jax.Array]]
    prepare: Callable[[TrainState, jax.Array], tuple[TrainState, Any]]
    train_step: Callable[[TrainState, Any], tuple[TrainState, Metrics]]
    update: Callable[[TrainState, jax.Array], tuple[TrainState, Metrics]]
    run: Callable[[TrainState, jax.Array, int], tuple[TrainState, Metrics]]


def make_trainer(
    init_params: Callable[[jax.Array], Any],
    loss_fn: Callable[..., Any],
    optimizer: optax.GradientTransformation,
    sample_batch: Callable[[jax.Array], Any],
    *,
    clip: optax.GradientTransformation | None = None,
    window: int | None = None,
    initial_carry: Any = None,
    max_bad_steps: int | None = None,
) -> Trainer:
    """Builds a `Trainer` (see the module doc for the order of keys and batches).

    Args:
      init_params: ``init_params(key) -> params``.
      loss_fn: ``loss_fn(params, batch, key) -> (loss, aux)``; when streaming
        ``loss_fn(params, batch, carry, key) -> (loss, (aux, carry))``.
      optimizer: the Optax optimiser.
      sample_batch: ``sample_batch(key) -> batch`` (e.g. a task sampler with the batch size
        bound); when streaming, a ``Batch`` of streams ``inputs [B, T_total, F]``.
      clip: clipping applied and measured by the train step (see `make_train_step`).
      window: None for full / truncated BPTT (truncation lives in ``loss_fn``), or the window
        k of streaming BPTT.
      initial_carry: the carry ``[B, ...]`` at the start of every stream (streaming only).
      max_bad_steps: freeze a run after this many consecutive skipped updates (it is then
        diverged, see `make_train_step`); give `fit` the same value. None: never freeze.

    Returns:
      A `Trainer` of pure functions; ``compile_trainer(make_trainer(...))`` to run it step by
      step from Python, `make_train` to make a whole run one function.
    """
    streaming = window is not None
    if streaming and initial_carry is None:
        raise ValueError(
            f"make_trainer: window={window} (streaming BPTT) needs initial_carry, the carry "
            f"[B, ...] each stream starts from (e.g. jax.vmap of cell.initial_carry)"
        )
    if not streaming and initial_carry is not None:
        raise ValueError("make_trainer: initial_carry is only used with window=k (streaming)")
    train_step = make_train_step(
        loss_fn, optimizer, clip=clip, streaming=streaming, max_bad_steps=max_bad_steps, jit=False
    )
    num_windows = None
    if streaming:
        shapes = jax.eval_shape(sample_batch, jax.random.key(0))
        num_windows = stream_num_windows(shapes.inputs.shape[1], window)

    def init(key: jax.Array) -> tuple[TrainState, jax.Array]:
        init_key, data_key, state_key = jax.random.split(key, 3)
        state = init_train_state(init_params(init_key), optimizer, state_key, initial_carry)
        return state, data_key

    def prepare(state: TrainState, data_key: jax.Array) -> tuple[TrainState, Any]:
        if not streaming:
            return state, sample_batch(jax.random.fold_in(data_key, state.step))
        stream_index, window_index = jnp.divmod(state.step, num_windows)
        stream = sample_batch(jax.random.fold_in(data_key, stream_index))
        fresh = window_index == 0
        carry = jax.tree.map(lambda c0, c: jnp.where(fresh, c0, c), initial_carry, state.carry)
        return state._replace(carry=carry), stream_window(stream, window_index, window)

    def update(state: TrainState, data_key: jax.Array) -> tuple[TrainState, Metrics]:
        state, batch = prepare(state, data_key)
        return train_step(state, batch)

    def run(state: TrainState, data_key: jax.Array, num_steps: int):
        return jax.lax.scan(lambda s, _: update(s, data_key), state, None, length=num_steps)

    return Trainer(init=init, prepare=prepare, train_step=train_step, update=update, run=run)


class TrainerShardings(NamedTuple):
    """Where a trainer over a leading run axis keeps its values (`seqjax.parallel`).

    Attributes:
      state: a `TrainState` of shardings, one per field.
      runs: the sharding of per-run values (keys, data keys).
      replicated: the sharding of values every process reads (the metrics).
    """

    state: Any
    runs: Any
    replicated: Any


def compile_trainer(trainer: Trainer, shardings: TrainerShardings | None = None) -> Trainer:
    """The trainer with ``init``, ``prepare``, ``train_step`` and ``run`` jitted: the one place
    where seqjax compiles training steps, for a single run and for many runs over a mesh.

    Args:
      trainer: from `make_trainer`, or its pieces mapped over a leading run axis.
      shardings: with a device mesh (`seqjax.parallel.trainer_shardings`), ``init`` and ``run``
        keep every run's state on its devices and return the metrics replicated; None: one
        device, plain ``jax.jit``.
    """
    if shardings is None:
        init = jax.jit(trainer.init)
        run = jax.jit(trainer.run, static_argnums=2)
    else:
        init = jax.jit(
            trainer.init,
            in_shardings=shardings.runs,
            out_shardings=(shardings.state, shardings.runs),
        )
        run = jax.jit(
            trainer.run,
            static_argnums=2,
            in_shardings=(shardings.state, shardings.runs),
            out_shardings=(shardings.state, shardings.replicated),
        )
    return trainer._replace(
        init=init, prepare=jax.jit(trainer.prepare), train_step=jax.jit(trainer.train_step), run=run
    )


def _is_compiled(fn: Callable[..., Any]) -> bool:
    return hasattr(fn, "lower")  # what ``jax.jit`` returns


def make_train(
    trainer: Trainer,
    num_steps: int,
    *,
    chunk_size: int | None = None,
    log_fn: Callable[[jax.Array, Metrics], None] | None = None,
) -> Callable[[jax.Array], tuple[TrainState, Metrics]]:
    """A whole training run as one pure function of a PRNG key.

    Args:
      trainer: from `make_trainer`.
      num_steps: number of updates.
      chunk_size: updates per inner ``lax.scan``; None: one chunk.
      log_fn: called from the compiled program (``jax.debug.callback``) after each chunk with
        ``(step, metrics)``, the step count and the metrics of the chunk's steps
        ``[chunk_size]``; under ``vmap`` it is called once per seed.

    Returns:
      ``train(key) -> (state, metrics)`` with metrics stacked ``[num_steps]``. It never
      raises on non-finite steps (it cannot, being compiled): check ``metrics["skipped"]``
      and ``state.num_skipped``; `fit` stops on them.
    """
    positive_int(num_steps, "num_steps", "make_train")
    chunk = (
        num_steps if chunk_size is None else positive_int(chunk_size, "chunk_size", "make_train")
    )
    chunk = min(chunk, num_steps)
    num_chunks, rest = divmod(num_steps, chunk)

    def run_chunk(state: TrainState, data_key: jax.Array, length: int):
        state, metrics = jax.lax.scan(
            lambda s, _: trainer.update(s, data_key), state, None, length=length
        )
        if log_fn is not None:
            jax.debug.callback(log_fn, state.step, metrics)
        return state, metrics

    def train(key: jax.Array) -> tuple[TrainState, Metrics]:
        state, data_key = trainer.init(key)
        state, metrics = jax.lax.scan(
            lambda s, _: run_chunk(s, data_key, chunk), state, None, length=num_chunks
        )
        metrics = jax.tree.map(lambda m: m.reshape((num_chunks * chunk, *m.shape[2:])), metrics)
        if rest:
            state, last = run_chunk(state, data_key, rest)
            metrics = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), metrics, last)
        return state, metrics

    return train


# --------------------------------------------------------------------------- early stopping


class EarlyStopping(NamedTuple):
    """Stop when ``metric`` has not improved by more than ``min_delta`` for ``patience`` evals."""

    metric: str
    mode: str = "min"
    patience: int = 5
    min_delta: float = 0.0


class EarlyStoppingState(NamedTuple):
    """Host-side record: the best value, the step it was seen at, evaluations since."""

    best: float
    best_step: int
    evals_since_best: int


def early_stopping_update(
    rule: EarlyStopping, record: EarlyStoppingState | None, value: float, step: int
) -> tuple[EarlyStoppingState, bool]:
    """Folds one validation value into the record; returns ``(record, stop)``.

    A value improves on the best when it is lower by more than ``min_delta`` (``mode="min"``)
    or higher by more than ``min_delta`` (``"max"``); a NaN never improves.
    """
    if rule.mode not in ("min", "max"):
        raise ValueError(f"early stopping mode must be 'min' or 'max', got {rule.mode!r}")
    value = float(value)
    if record is None:
        improved = not math.isnan(value)
    elif rule.mode == "min":
        improved = value < record.best - rule.min_delta
    else:
        improved = value > record.best + rule.min_delta
    if improved:
        record = EarlyStoppingState(value, step, 0)
    elif record is None:
        record = EarlyStoppingState(math.inf if rule.mode == "min" else -math.inf, step, 1)
    else:
        record = record._replace(evals_since_best=record.evals_since_best + 1)
    return record, record.evals_since_best >= rule.patience


# --------------------------------------------------------------------------------- host loop


class NonFiniteError(RuntimeError):
    """Training saw too many consecutive non-finite steps (each was skipped)."""


class FitResult(NamedTuple):
    """What `fit` returns.

    Attributes:
      state: the final train state.
      metrics: per-step metrics of the steps this call ran, NumPy arrays ``[steps]`` (or
        ``[seeds, steps]`` for a trainer vmapped over seeds); a diverged run's floating-point
        metrics are NaN from the step it diverged at, marked by ``diverged``.
      evals: one dict per evaluation: ``{"step": s, **eval_metrics}``.
      stop_reason: ``"done"`` or ``"early_stopping"``.
      early_stopping: the early-stopping record (None without early stopping).
      resumed_from: the checkpoint step the run resumed from, or None.
      diverged: whether each run diverged (``max_bad_steps`` consecutive skipped updates; it
        was frozen from then on), a bool, or a bool array ``[seeds]`` under vmap.
    """

    state: TrainState
    metrics: dict[str, np.ndarray]
    evals: list[dict[str, float]]
    stop_reason: str
    early_stopping: EarlyStoppingState | None
    resumed_from: int | None
    diverged: Any = None


def _step_of(state: TrainState) -> int:
    """The step count of a state, or of a stack of states with a leading seed axis."""
    return int(np.max(np.asarray(state.step)))


def _host_value(value: Any) -> float | list[float]:
    """A float for a scalar, a list of floats for one value per seed."""
    value = np.asarray(value, dtype=np.float64)
    return float(value) if value.ndim == 0 else value.tolist()


def _chunk_stat(values: Any, live: np.ndarray | None, fn: Callable[..., Any]) -> Any:
    """``fn`` (``np.mean``, ``np.max``) over the last axis of ``values`` ``[chunk]`` or
    ``[seeds, chunk]``, taking only the steps where ``live``; NaN for a run with none."""
    values = np.asarray(values)
    if live is None or live.all():
        return fn(values, axis=-1)
    rows = values.reshape(-1, values.shape[-1])
    keep = np.broadcast_to(live, values.shape).reshape(rows.shape)
    out = [float(fn(r[k])) if k.any() else math.nan for r, k in zip(rows, keep, strict=True)]
    return np.asarray(out, np.float64).reshape(values.shape[:-1])


def _masked(value: Any, diverged: np.ndarray) -> Any:
    """An evaluated value (a scalar, or one per seed) with NaN for the diverged runs."""
    value = np.asarray(value, np.float64)
    if value.shape != diverged.shape or not diverged.any():
        return value
    return np.where(diverged, math.nan, value)


def _non_finite_message(at: np.ndarray, max_bad_steps: int, last: int | None) -> str:
    """The `NonFiniteError` text once every run (``at``: the step each one diverged at)
    has diverged."""
    stop = int(np.max(at))
    runs = (
        ""
        if at.size == 1
        else f"every run diverged (at steps {at.reshape(-1).tolist()}); the last one: "
    )
    return (
        f"training stopped at step {stop}: {runs}{max_bad_steps} consecutive steps had a "
        f"non-finite loss or gradient (steps {stop - max_bad_steps + 1}..{stop}, all "
        f"skipped); last good checkpoint: step {last}. Lower the learning rate, clip "
        f"gradients, or check the data."
    )


def _check_multiple(value: int | None, chunk: int, name: str) -> None:
    if value is not None and value % chunk:
        raise ValueError(f"fit: {name}={value} must be a multiple of chunk_size={chunk}")


def fit(
    trainer: Trainer,
    key: jax.Array,
    num_steps: int,
    *,
    chunk_size: int,
    max_bad_steps: int = 10,
    eval_fn: Callable[[Any], dict[str, Any]] | None = None,
    eval_every: int | None = None,
    early_stopping: EarlyStopping | None = None,
    checkpoints: Any = None,
    checkpoint_every: int | None = None,
    log_fn: Callable[[int, dict[str, float]], None] | None = None,
    on_chunk: Callable[[int, TrainState], None] | None = None,
) -> FitResult:
    """Trains from the host in compiled chunks: logs, evaluates, stops early, checkpoints.

    The trainer may be vmapped over seeds (``init`` and ``run`` mapping a leading seed axis,
    ``key`` a stack of keys): steps are shared, logged and evaluated values become one per
    seed, and early stopping follows their mean over the runs that have not diverged.

    A run diverges when ``max_bad_steps`` consecutive updates are skipped (non-finite loss or
    gradient). Made with ``make_trainer(..., max_bad_steps=)`` (the same value), the trainer
    freezes it inside the compiled chunks: its parameters stay at their last finite values and
    its per-step floating-point metrics are NaN (`make_train_step`). The other runs go on; the
    logged values leave out its diverged steps (NaN once it has no other step in a chunk; its
    ``val_`` values are NaN too, as are its entries in ``evals``), and ``log`` records carry
    ``diverged`` (1.0 for a diverged run). `NonFiniteError` is raised only when every run has
    diverged (a single run: as soon as it does).

    If ``checkpoints`` holds a checkpoint, the run resumes from the latest one and continues
    exactly as if it had never stopped (same keys, same batches, same numbers).

    Args:
      trainer: from `make_trainer` (compiled here with `compile_trainer` unless it already is).
      key: the run's PRNG key (the same one when resuming).
      num_steps: total updates of the run (including those before a resume).
      chunk_size: updates per compiled chunk; evaluations and checkpoints happen between.
      max_bad_steps: a run diverges after this many consecutive skipped steps; raise
        `NonFiniteError` when every run has.
      eval_fn: ``eval_fn(params) -> dict`` of validation metrics.
      eval_every: evaluate every this many steps (a multiple of ``chunk_size``).
      early_stopping: stop when ``eval_fn``'s metric stops improving.
      checkpoints: an Orbax ``CheckpointManager`` (`checkpoint_manager`), or None.
      checkpoint_every: offer a checkpoint every this many steps (a multiple of
        ``chunk_size``; default: every chunk); the manager's interval has the last word. The
        final state (end of run, early stop) is always saved. No checkpoint is written while
        the last step of a run that has not diverged was skipped, so the latest one is good.
      log_fn: ``log_fn(step, record)`` after each chunk with the chunk's mean metrics (so
        ``clipped`` is the fraction of clipped steps), ``grad_norm_max``, the largest gradient
        norm of the chunk, and the evaluation, prefixed ``val_``, when there was one.
      on_chunk: ``on_chunk(step, state)`` after each chunk (after ``log_fn``) with the train
        state, e.g. to record diagnostics of ``state.params``.

    Returns:
      A `FitResult`.

    Raises:
      NonFiniteError: when every run has diverged, naming the step at which the last one
        reached ``max_bad_steps`` consecutive bad steps.
    """
    positive_int(chunk_size, "chunk_size", "fit")
    _check_multiple(eval_every, chunk_size, "eval_every")
    _check_multiple(checkpoint_every, chunk_size, "checkpoint_every")
    if (eval_every is None) != (eval_fn is None):
        raise ValueError("fit: eval_fn and eval_every go together; give both or neither")
    if early_stopping is not None and eval_fn is None:
        raise ValueError("fit: early_stopping needs eval_fn and eval_every")

    if not _is_compiled(trainer.run):
        trainer = compile_trainer(trainer)
    state, data_key = trainer.init(key)
    record: EarlyStoppingState | None = None
    resumed_from = None
    if checkpoints is not None and checkpoints.latest_step() is not None:
        state, host = restore_checkpoint(checkpoints, state)
        resumed_from = _step_of(state)
        if host.get("early_stopping") is not None:
            record = EarlyStoppingState(*host["early_stopping"])

    chunks: list[Metrics] = []
    evals: list[dict[str, float]] = []
    stop_reason = "done"
    step = _step_of(state)
    # The step each run diverged at (0: it has not): a restored frozen run reached the limit
    # ``bad_steps - max_bad_steps`` steps before its state's step.
    bad_now = np.asarray(state.bad_steps)
    diverged_at = np.where(
        bad_now >= max_bad_steps, np.asarray(state.step) - bad_now + max_bad_steps, 0
    )
    while step < num_steps:
        length = min(chunk_size, num_steps - step)
        state, metrics = trainer.run(state, data_key, length)
        metrics = jax.device_get(metrics)
        chunks.append(metrics)
        first = step + 1
        step = _step_of(state)

        hit = np.asarray(metrics["bad_steps"]) >= max_bad_steps  # [chunk] or [seeds, chunk]
        new = hit.any(axis=-1) & (diverged_at == 0)
        diverged_at = np.where(new, first + np.argmax(hit, axis=-1), diverged_at)
        diverged = diverged_at > 0
        if diverged.all():
            last = None if checkpoints is None else checkpoints.latest_step()
            raise NonFiniteError(_non_finite_message(diverged_at, max_bad_steps, last))

        live = None if "diverged" not in metrics else ~np.asarray(metrics["diverged"], bool)
        log = {
            name: _host_value(_chunk_stat(v, live, np.mean))
            for name, v in metrics.items()
            if name != "diverged"
        }
        if "grad_norm" in metrics:  # a spike inside the chunk, which the mean hides
            log["grad_norm_max"] = _host_value(_chunk_stat(metrics["grad_norm"], live, np.max))
        log["diverged"] = _host_value(diverged)
        if eval_every is not None and step % eval_every == 0:
            values = {
                k: _host_value(_masked(v, diverged))
                for k, v in jax.device_get(eval_fn(state.params)).items()
            }
            evals.append({"step": step, **values})
            log.update({f"val_{k}": v for k, v in values.items()})
            if early_stopping is not None:
                if early_stopping.metric not in values:
                    raise ValueError(
                        f"fit: early_stopping.metric={early_stopping.metric!r} is not among "
                        f"the evaluation metrics {sorted(values)}"
                    )
                followed = np.asarray(values[early_stopping.metric], np.float64)
                if followed.shape == diverged.shape:
                    followed = followed[~diverged]
                record, stop = early_stopping_update(
                    early_stopping, record, float(np.mean(followed)), step
                )
                if stop:
                    stop_reason = "early_stopping"
        if log_fn is not None:
            log_fn(step, log)
        if on_chunk is not None:
            on_chunk(step, state)

        going = ~np.broadcast_to(diverged, np.shape(state.bad_steps))
        if checkpoints is not None and not np.any(np.asarray(state.bad_steps)[going]):
            final = stop_reason != "done" or step >= num_steps
            if final or checkpoint_every is None or step % checkpoint_every == 0:
                host = {"early_stopping": None if record is None else list(record)}
                save_checkpoint(checkpoints, state, host, force=final)
        if stop_reason != "done":
            break

    metrics_out = {
        name: np.concatenate([np.asarray(c[name]) for c in chunks], axis=-1)
        for name in (chunks[0] if chunks else {})
    }
    diverged = np.asarray(diverged_at > 0)
    return FitResult(
        state,
        metrics_out,
        evals,
        stop_reason,
        record,
        resumed_from,
        bool(diverged) if diverged.ndim == 0 else diverged,
    )
