"""Gate statistics of a gated cell along one sequence: means, histograms, saturation, and the
effective memory timescale of the gate that keeps the state (LSTM f, GRU z, minGRU 1 - z).

The gates are recomputed from the carry entering each step with the cell's own gate function
(``cell.gate_spec``, a `GateSpec`; `seqjax.cells.lstm_gates` for the LSTM), so they are
exactly the ones ``cell.step`` uses.

Saturation: a sigmoid gate unit is saturated when its value is above ``1 - eps`` or below
``eps`` (``eps = 0.05`` by default: outside [0.05, 0.95]). A tanh gate (the LSTM candidate g,
the GRU candidate n) is saturated when ``|value| > 1 - 2 eps``, the same condition since
``tanh(a) = 2 sigmoid(2a) - 1``.

Memory timescale: with a forget gate f held constant, ``c_t = f c_{t-1} + ...`` forgets as
``f^k = exp(-k / tau)`` with ``tau = -1 / log f ~ 1 / (1 - f)``; seqjax reports
``1 / (1 - mean_t f)`` per unit. For a GRU, ``h_t = z h_{t-1} + (1 - z) n``, so the update
gate z plays the part of f; for minGRU, ``1 - z``; for minLSTM, ``f / (f + i)``
(`GateSpec.memory`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from seqjax.cells.base import Carry, Cell, GateSpec, Params
from seqjax.checks import positive_int
from seqjax.diagnostics._common import (
    check_sequence,
    masked_scan,
    resolve_carry,
    resolve_length,
    valid_steps,
)


class GateStats(NamedTuple):
    """Gate statistics of one sequence; every per-step entry is zero for ``t >= length``.

    Attributes:
      values: ``{gate: [T, H]}`` the gate activations.
      mean: ``{gate: [T]}`` the mean over units at each step.
      saturated: ``{gate: [T]}`` the fraction of units saturated at each step.
      hist: ``{gate: [T, bins]}`` histogram counts over units at each step.
      bin_edges: ``{gate: [bins + 1]}`` ([0, 1] for sigmoid gates, [-1, 1] for tanh gates).
      timescale: ``[H]``, ``1 / (1 - mean_t g)`` per unit for the memory factor g
        (`GateSpec.memory`: LSTM f, GRU z), the mean over valid steps.
    """

    values: dict[str, jax.Array]
    mean: dict[str, jax.Array]
    saturated: dict[str, jax.Array]
    hist: dict[str, jax.Array]
    bin_edges: dict[str, jax.Array]
    timescale: jax.Array


def _resolve_spec(cell: Cell, spec: GateSpec | None) -> GateSpec:
    if spec is not None:
        return spec
    if cell.gate_spec is None:
        raise ValueError(
            f"gate_stats: the {cell.name!r} cell has no gates (cell.gate_spec is None); pass "
            f"spec=GateSpec(...) for a custom gated cell, or set gate_spec on its Cell"
        )
    return cell.gate_spec


def gate_stats(
    cell: Cell,
    params: Params,
    xs: jax.Array,
    *,
    length: int | jax.Array | None = None,
    carry: Carry | None = None,
    bins: int = 20,
    eps: float = 0.05,
    spec: GateSpec | None = None,
) -> GateStats:
    """Per-timestep gate statistics of a gated cell (``cell.gate_spec``) along one sequence.

    Args:
      cell: a gated `Cell` (lstm, gru, min_gru, min_lstm; any cell with ``spec``).
      params: its parameters.
      xs: inputs ``[T, F]``.
      length: the number of valid steps, or None for all T.
      carry: the initial carry, ``cell.initial_carry()`` when None.
      bins: the number of histogram bins.
      eps: saturation threshold: a sigmoid unit outside ``[eps, 1 - eps]`` is saturated.
      spec: how to read the gates; ``cell.gate_spec`` when None.

    Returns:
      A `GateStats`. For a batch, ``jax.vmap`` it over ``xs`` (and ``length``).

    Example:
      >>> stats = gate_stats(seqjax.lstm(32, forget_bias=3.0), params, xs)
      >>> stats.mean["f"]          # [T], close to sigmoid(3) = 0.95 at initialisation
    """
    xs = check_sequence(xs, "gate_stats")
    positive_int(bins, "bins", "gate_stats")
    if not 0.0 < eps < 0.5:
        raise ValueError(f"gate_stats: eps must be in (0, 0.5), got {eps!r}")
    spec = _resolve_spec(cell, spec)
    num_steps = xs.shape[0]
    carry = resolve_carry(cell, carry, "gate_stats")
    n_valid = resolve_length(length, num_steps, "gate_stats")
    valid = valid_steps(num_steps, n_valid)
    _, _, before = masked_scan(cell, params, xs, carry, valid)
    gates = jax.vmap(lambda c, x: spec.gates(params, c, x))(before, xs)
    gates = dict(gates._asdict() if hasattr(gates, "_asdict") else gates)

    values, mean, saturated, hist, bin_edges = {}, {}, {}, {}, {}
    for name in [g for g in gates if g in spec.sigmoid or g in spec.tanh]:
        g = gates[name]
        g = jnp.where(valid[:, None], g, jnp.zeros_like(g))
        lo = 0.0 if name in spec.sigmoid else -1.0
        if name in spec.sigmoid:
            sat = (g > 1.0 - eps) | (g < eps)
        else:
            sat = jnp.abs(g) > 1.0 - 2.0 * eps
        counts, edges = jax.vmap(lambda v, lo=lo: jnp.histogram(v, bins, range=(lo, 1.0)))(g)
        values[name] = g
        mean[name] = jnp.mean(g, axis=-1)
        saturated[name] = jnp.where(valid, jnp.mean(sat.astype(g.dtype), axis=-1), 0.0)
        hist[name] = jnp.where(valid[:, None], counts, jnp.zeros_like(counts))
        bin_edges[name] = edges[0]

    memory = values[spec.memory] if isinstance(spec.memory, str) else spec.memory(values)
    memory = jnp.where(valid[:, None], memory, jnp.zeros_like(memory))
    count = jnp.maximum(n_valid, 1).astype(memory.dtype)
    keep = jnp.sum(memory, axis=0) / count
    return GateStats(
        values=values,
        mean=mean,
        saturated=saturated,
        hist=hist,
        bin_edges=bin_edges,
        timescale=1.0 / (1.0 - keep),
    )
