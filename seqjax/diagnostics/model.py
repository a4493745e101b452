"""Diagnostics of a whole model: a dense readout over one cell, trained on a task's loss.

`model_diagnostics` gives what a training run records (`seqjax.diagnostics.record`) for the
models `seqjax.experiment` builds over a single `Cell` (``many_to_one`` and ``many_to_many``):

* ``grad_norm: [T]``: ``||dL_b/dh_t||`` where ``L_b`` is the task loss of example b (the
  readout of the cell's outputs, masked like training), averaged over the examples still valid
  at t (`seqjax.diagnostics.batch_hidden_grad_norms`);
* ``weight_radius: [k]``: the spectral radius of each gate block of the recurrent weights;
* ``gate_saturation: [G]``: for a gated cell (``cell.gates``: LSTM f, i, g, o; GRU r, z, n;
  minGRU z; minLSTM f, i), the fraction of saturated units, averaged over the valid steps of
  each example and then over examples.

The gradient is that of the full unrolled sequence (no truncation, no dropout): the quantity the
whitepaper's analysis is about, whatever BPTT mode the run trains with.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from seqjax import losses
from seqjax.cells.base import Cell
from seqjax.diagnostics._common import default_hidden_of_carry
from seqjax.diagnostics.gates import gate_stats
from seqjax.diagnostics.gradients import batch_hidden_grad_norms
from seqjax.diagnostics.jacobians import recurrent_spectral_radius
from seqjax.layers import last_step
from seqjax.models import dense

MODEL_PATTERNS = ("many_to_one", "many_to_many")
MODEL_LOSSES = losses.TASK_LOSSES


class ModelDiagnostics(NamedTuple):
    """Diagnostics of one model on one batch.

    Attributes:
      loss: the mean over examples of the per-example task loss.
      grad_norm: ``[T]``, the mean over valid examples of ``||dL_b/dh_t||`` (zero where no
        example is valid).
      weight_radius: ``[k]``, spectral radius of each recurrent gate block, in the order of
        ``cell.weight_blocks`` (k = 1 rnn / irnn, 4 lstm, 3 gru).
      gate_saturation: ``[G]``, saturated fraction per gate of ``cell.gates`` (``[0]`` for an
        ungated cell).
    """

    loss: jax.Array
    grad_norm: jax.Array
    weight_radius: jax.Array
    gate_saturation: jax.Array


def gate_names(cell: Cell) -> tuple[str, ...]:
    """The gates `model_diagnostics` reports for ``cell``: ``cell.gates`` (empty if ungated)."""
    return cell.gates


def example_loss(loss: str, outputs: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """The task loss of one example: `seqjax.losses.task_loss` with a batch of one.

    Args:
      loss: ``"mse"`` or ``"cross_entropy"``.
      outputs: ``[O]`` (many-to-one) or ``[T, O]`` (many-to-many).
      target: ``[]`` / ``[T]`` int classes, or ``[D]`` / ``[T, D]`` (or without ``D``) floats.
      mask: ``[]`` / ``[T]``, positive where the target counts.
    """
    value, _ = losses.task_loss(loss, outputs[None], target[None], mask[None])
    return value


def unsupported_cell(cell: Any) -> str | None:
    """Why `model_diagnostics` cannot diagnose ``cell``, or None when it can."""
    if not isinstance(cell, Cell):
        return "stacked and bidirectional layers are not supported (a single Cell is)"
    hidden = default_hidden_of_carry(cell.initial_carry())
    if hidden.shape != (cell.hidden_size,):
        return (
            f"the {cell.name} cell's carry has a hidden part of shape {hidden.shape}, not its "
            f"output's ({cell.hidden_size},): the gradient norms per hidden state need a cell "
            f"whose step outputs its carry's hidden state"
        )
    return None


def _check(cell: Any, pattern: str, loss: str, params: Any) -> None:
    if not isinstance(cell, Cell):
        raise TypeError(
            f"model_diagnostics: cell must be a seqjax Cell (the model's single recurrent layer), "
            f"got {type(cell).__name__}; stacked and bidirectional layers are not supported"
        )
    if pattern not in MODEL_PATTERNS:
        raise ValueError(
            f"model_diagnostics: pattern={pattern!r}, expected one of {list(MODEL_PATTERNS)}"
        )
    if loss not in MODEL_LOSSES:
        raise ValueError(f"model_diagnostics: loss={loss!r}, expected one of {list(MODEL_LOSSES)}")
    hidden = default_hidden_of_carry(cell.initial_carry())
    if hidden.shape != (cell.hidden_size,):
        raise ValueError(
            f"model_diagnostics: the {cell.name} cell's carry has a hidden part of shape "
            f"{hidden.shape}, expected its output's ({cell.hidden_size},): the gradient norms "
            f"per hidden state need a cell whose step outputs its carry's hidden state (the LRU "
            f"outputs a readout of a complex state); use hidden_grad_norms with its own "
            f"hidden_of_carry for such a cell"
        )
    if not isinstance(params, dict) or not {"encoder", "readout"} <= set(params):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(
            f"model_diagnostics: params has keys {got}, expected the params of a "
            f"seqjax.models many_to_one / many_to_many model: {{'encoder', 'readout'}}"
        )


def model_diagnostics(
    cell: Cell,
    pattern: str,
    loss: str,
    params: dict[str, Any],
    batch: Any,
    *,
    eps: float = 0.05,
) -> ModelDiagnostics:
    """Gradient norms per timestep, recurrent spectral radius and gate saturation of a model.

    Jittable (``cell``, ``pattern``, ``loss`` and ``eps`` static); vmap over a leading seed axis
    of ``params`` for a run trained with several seeds.

    Args:
      cell: the model's single recurrent layer (``model = many_to_one(cell, ...)``).
      pattern: ``"many_to_one"`` or ``"many_to_many"``.
      loss: the task loss, ``"mse"`` or ``"cross_entropy"`` (``task.loss``).
      params: the model params ``{"encoder": cell params, "readout": {"w", "b"}}``.
      batch: a `seqjax.tasks.Batch` (``inputs [B, T, F]``, ``targets``, ``mask``,
        ``length [B]``).
      eps: saturation threshold of the gates.

    Returns:
      A `ModelDiagnostics`.

    Example:
      >>> model = many_to_one(lstm(32), 2, 1)
      >>> diag = model_diagnostics(lstm(32), "many_to_one", "mse", params, task.sample(key, 16))
      >>> diag.grad_norm          # [T]
    """
    _check(cell, pattern, loss, params)
    encoder, readout = params["encoder"], params["readout"]

    def loss_fn(hs: jax.Array, final: Any, tgt: tuple[jax.Array, ...]) -> jax.Array:
        del final
        target, mask, length = tgt
        if pattern == "many_to_one":
            outputs = dense(readout, last_step(hs, length))
        else:
            valid = jnp.arange(hs.shape[0], dtype=jnp.int32) < length
            outputs = dense(readout, hs)
            outputs = jnp.where(valid[:, None], outputs, jnp.zeros_like(outputs))
        return example_loss(loss, outputs, target, mask)

    norms = batch_hidden_grad_norms(
        cell,
        encoder,
        batch.inputs,
        loss_fn,
        targets=(batch.targets, batch.mask, batch.length),
        length=batch.length,
    )
    dtype = norms.mean.h.dtype
    names = gate_names(cell)
    if names and cell.gate_spec is not None:
        stats = jax.vmap(lambda x, n: gate_stats(cell, encoder, x, length=n, eps=eps))(
            batch.inputs, batch.length
        )
        count = jnp.maximum(batch.length, 1).astype(dtype)
        saturation = jnp.stack(
            [jnp.mean(jnp.sum(stats.saturated[g], axis=-1) / count) for g in names]
        )
    else:
        saturation = jnp.zeros((0,), dtype)
    return ModelDiagnostics(
        loss=norms.mean.loss,
        grad_norm=norms.mean.h,
        # A cell without [H, H] recurrent blocks (LRU, minGRU: diagonal or no recurrent
        # weights) has no spectral radius to report.
        weight_radius=(
            recurrent_spectral_radius(encoder) if cell.weight_blocks else jnp.zeros((0,), dtype)
        ),
        gate_saturation=saturation,
    )
