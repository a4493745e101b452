"""Pure train and eval steps over a model-agnostic loss function.

The loss function is where the model lives; training only needs its value and gradient:

* full / truncated BPTT / remat: ``loss_fn(params, batch, key) -> (loss, aux)``, where ``aux``
  is a dict of scalar metrics (accuracy, bits per symbol, ...) and ``key`` is a PRNG key for
  dropout, None in evaluation (deterministic). Truncation and remat are options of the unroll
  inside it (``unroll(truncate=k, remat=...)``), fixed when the loss function is built.
* streaming BPTT: ``loss_fn(params, batch, carry, key) -> (loss, (aux, carry))``, where the
  batch is one window ``[B, k, F]`` of a longer stream and ``carry`` (``[B, ...]``) is the
  recurrent state at the window's start; it returns the carry at the window's end.

One train step, written out::

    key, loss_key = split(state.key)
    (loss, aux), g = value_and_grad(loss_fn)(params, batch, loss_key)
    g_c = clip(g)                                    # reported: ||g||, ||g_c||, clipped
    updates, opt_state = optimizer.update(g_c, opt_state, params)
    ok = isfinite(loss) and all(isfinite(g)) and not diverged
    params, opt_state = (params + updates, opt_state) if ok else (params, opt_state)

With ``max_bad_steps=N`` a run is *diverged* once ``N`` consecutive updates were skipped
(``bad_steps >= N``): from then on every update is skipped (its parameters stay at the last
finite values, inside a compiled scan as between chunks), ``bad_steps`` keeps counting, and the
step's floating-point metrics are NaN; the ``diverged`` metric marks those steps. Runs mapped
side by side (seeds, a traced sweep) diverge each on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from seqjax.checks import positive_int
from seqjax.train.state import TrainState

__all__ = [
    "Metrics",
    "all_finite",
    "is_diverged",
    "make_eval_step",
    "make_train_step",
    "stream_num_windows",
    "stream_window",
]

Metrics = dict[str, jax.Array]
LossFn = Callable[..., tuple[jax.Array, Any]]

_STEP_METRICS = (
    "loss",
    "grad_norm",
    "grad_norm_clipped",
    "clipped",
    "skipped",
    "bad_steps",
    "diverged",
)


def all_finite(tree: Any) -> jax.Array:
    """True (a bool scalar) when every element of every leaf of ``tree`` is finite."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.asarray(True)
    return jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]).all()


def is_diverged(bad_steps: jax.Array, max_bad_steps: int | None) -> jax.Array:
    """Whether a run is diverged: ``bad_steps`` (its consecutive skipped updates, a scalar or
    one per run) has reached ``max_bad_steps``; all False when ``max_bad_steps`` is None.

    A diverged run skips every later update (`make_train_step`), so ``bad_steps`` only grows
    and the flag stays set, through checkpoints too.
    """
    bad_steps = jnp.asarray(bad_steps)
    if max_bad_steps is None:
        return jnp.zeros(bad_steps.shape, bool)
    return bad_steps >= max_bad_steps


def _mask(frozen: jax.Array, value: jax.Array) -> jax.Array:
    """NaN where ``frozen``, for a floating-point metric; other metrics unchanged."""
    value = jnp.asarray(value)
    if not jnp.issubdtype(value.dtype, jnp.floating):
        return value
    return jnp.where(frozen, jnp.asarray(jnp.nan, value.dtype), value)


def _select(ok: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


def _merge_metrics(loss: jax.Array, aux: Any, extra: Metrics) -> Metrics:
    if aux is None:
        aux = {}
    if not isinstance(aux, dict):
        raise TypeError(
            f"loss_fn must return (loss, aux) with aux a dict of scalar metrics, got aux of "
            f"type {type(aux).__name__}"
        )
    clash = sorted(set(aux) & set(_STEP_METRICS))
    if clash:
        raise ValueError(
            f"loss_fn aux metrics {clash} clash with the train step's own metrics "
            f"{list(_STEP_METRICS)}; rename them"
        )
    return {"loss": loss, **aux, **extra}


def make_train_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    clip: optax.GradientTransformation | None = None,
    streaming: bool = False,
    max_bad_steps: int | None = None,
    jit: bool = True,
) -> Callable[[TrainState, Any], tuple[TrainState, Metrics]]:
    """Builds the pure ``train_step(state, batch) -> (state, metrics)``.

    Args:
      loss_fn: ``loss_fn(params, batch, key) -> (loss, aux)``, or with ``streaming=True``
        ``loss_fn(params, batch, carry, key) -> (loss, (aux, carry))`` (see the module doc).
      optimizer: the Optax optimiser.
      clip: a stateless clipping transformation applied to the gradient before ``optimizer``
        (``clipping_from_config``); the step reports the gradient norm before and after it.
        None: no clipping here (the optimiser may still clip inside, unreported).
      streaming: the batch is one window of a stream and the carry lives in ``state.carry``;
        the carry at the window's end goes into the new state (no gradient flows through it
        into the next update).
      max_bad_steps: freeze the run once this many consecutive updates were skipped
        (``state.bad_steps >= max_bad_steps``, see `is_diverged`): every later update is skipped
        and the step's floating-point metrics are NaN. None: never freeze.
      jit: return the step under ``jax.jit`` (compiled once per batch shape).

    Returns:
      ``train_step(state, batch) -> (state, metrics)``. Metrics are scalars: ``loss``, the
      aux metrics, ``grad_norm`` and ``grad_norm_clipped`` (global L2 norms), ``clipped``
      (clipping changed the gradient), ``skipped`` (the loss or the gradient was not finite,
      so params and optimiser state were left unchanged), ``bad_steps`` (consecutive
      skipped steps, this one included) and ``diverged`` (the run has reached
      ``max_bad_steps`` consecutive skipped steps, this one included; its floating-point
      metrics are then NaN).
    """
    if max_bad_steps is not None:
        positive_int(max_bad_steps, "max_bad_steps", "make_train_step")
    if clip is None:
        clip = optax.identity()

    def train_step(state: TrainState, batch: Any) -> tuple[TrainState, Metrics]:
        key, loss_key = jax.random.split(state.key)
        if streaming:
            if state.carry is None:
                raise ValueError(
                    "train_step(streaming=True): state.carry is None; build the state with "
                    "init_train_state(..., carry=initial_carry) (one carry per sequence, [B, ...])"
                )
            grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
            (loss, (aux, carry)), grads = grad_fn(state.params, batch, state.carry, loss_key)
            carry = jax.lax.stop_gradient(carry)
        else:
            grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
            (loss, aux), grads = grad_fn(state.params, batch, loss_key)
            carry = state.carry
        grad_norm = optax.tree.norm(grads)
        clipped_grads, _ = clip.update(grads, clip.init(state.params), state.params)
        grad_norm_clipped = optax.tree.norm(clipped_grads)
        updates, opt_state = optimizer.update(clipped_grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)

        ok = jnp.isfinite(loss) & all_finite(grads) & ~is_diverged(state.bad_steps, max_bad_steps)
        bad_steps = jnp.where(ok, jnp.zeros_like(state.bad_steps), state.bad_steps + 1)
        new_state = TrainState(
            params=_select(ok, params, state.params),
            opt_state=_select(ok, opt_state, state.opt_state),
            step=state.step + 1,
            key=key,
            bad_steps=bad_steps,
            num_skipped=state.num_skipped + (~ok).astype(state.num_skipped.dtype),
            carry=carry,
        )
        frozen = is_diverged(bad_steps, max_bad_steps)
        metrics = _merge_metrics(
            loss,
            aux,
            {
                "grad_norm": grad_norm,
                "grad_norm_clipped": grad_norm_clipped,
                "clipped": grad_norm_clipped < grad_norm,
                "skipped": ~ok,
                "bad_steps": bad_steps,
            },
        )
        if max_bad_steps is not None:
            metrics = {k: _mask(frozen, m) for k, m in metrics.items()}
        metrics["diverged"] = frozen
        return new_state, metrics

    return jax.jit(train_step) if jit else train_step


def make_eval_step(loss_fn: LossFn, *, streaming: bool = False, jit: bool = True):
    """Builds a deterministic evaluation step (the loss function gets ``key=None``).

    Returns:
      eval_step (Callable): ``eval_step(params, batch) -> metrics`` (``loss`` and the aux
        metrics), or with ``streaming=True``
        ``eval_step(params, batch, carry) -> (metrics, carry)``; jitted unless ``jit=False``.
    """

    def eval_step(params: Any, batch: Any) -> Metrics:
        loss, aux = loss_fn(params, batch, None)
        return _merge_metrics(loss, aux, {})

    def eval_stream_step(params: Any, batch: Any, carry: Any) -> tuple[Metrics, Any]:
        loss, (aux, carry) = loss_fn(params, batch, carry, None)
        return _merge_metrics(loss, aux, {}), carry

    fn = eval_stream_step if streaming else eval_step
    return jax.jit(fn) if jit else fn


# ---------------------------------------------------------------------------------- streams


def stream_num_windows(stream_steps: int, window: int) -> int:
    """Windows of ``window`` steps in a stream of ``stream_steps`` (the last may be partial)."""
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ValueError(f"streaming window must be a positive int, got {window!r}")
    if window > stream_steps:
        raise ValueError(
            f"streaming window={window} is longer than the stream (T={stream_steps} steps); "
            f"use window <= {stream_steps}"
        )
    return -(-stream_steps // window)


def stream_window(stream: Any, index: jax.Array | int, window: int) -> Any:
    """Window ``index`` (k = ``window`` steps) of a batch of streams.

    ``stream`` is a ``Batch``-like NamedTuple with fields ``inputs [B, T, F]``, ``targets``
    ``[B, T, ...]``, ``mask [B, T]`` and ``length [B]``. The window holds steps
    ``[index * k, (index + 1) * k)``: arrays with a time axis are sliced (a last partial window
    is padded with zeros and a False mask) and ``length`` becomes the number of valid steps
    inside the window, ``clip(length - index * k, 0, k)``.
    """
    num_steps = stream.inputs.shape[1]
    num_windows = stream_num_windows(num_steps, window)
    pad = num_windows * window - num_steps
    start = jnp.asarray(index, jnp.int32) * window

    def cut(x: jax.Array) -> jax.Array:
        if pad:
            x = jnp.pad(x, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 2))
        return jax.lax.dynamic_slice_in_dim(x, start, window, axis=1)

    fields = {}
    for name in ("inputs", "targets", "mask"):
        x = getattr(stream, name)
        if x is not None:
            fields[name] = cut(x)
    length = stream.length
    if length is not None:
        length = jnp.clip(length - start.astype(length.dtype), 0, window).astype(length.dtype)
        fields["length"] = length
    return stream._replace(**fields)
