"""Plots of gradient-flow diagnostics; each function takes arrays and returns a Figure.

matplotlib is imported inside the functions, so ``import seqjax`` (and
``import seqjax.diagnostics``) never loads it. Figures are built with
``matplotlib.figure.Figure`` directly, not pyplot: no window ever opens, nothing is kept in a
global figure registry, and ``fig.savefig("x.png")`` renders with Agg.

    fig = plot_grad_norms({"tanh RNN": rnn_norms.h, "LSTM": lstm_norms.h})
    fig.savefig("grad_norms.png")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from seqjax.diagnostics.gates import GateStats


_GATE_ORDER = "figorzn"  # LSTM f, i, g, o; GRU r, z, n


def new_figure(figsize: tuple[float, float]) -> Figure:
    """An empty Figure of ``figsize`` inches, constrained layout, outside pyplot's registry."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _curve(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(
            f"plot: curve {name!r} has shape {arr.shape}, expected [T] (one norm per timestep); "
            f"for a batch pass the mean over examples, e.g. BatchGradNorms.mean.h"
        )
    return arr


def plot_grad_norms(
    curves: Mapping[str, Any],
    *,
    title: str | None = "Gradient norm vs timestep",
    ylabel: str = r"$\|\partial L / \partial h_t\|$",
    figsize: tuple[float, float] = (6.0, 4.0),
) -> Figure:
    """Gradient norm against timestep for several models on one log-scale axis.

    In the style of Arjovsky, Shah and Bengio (2016), Fig. 4: one line per model; entries
    that are zero (past the length) or not finite are left out of the line.

    Args:
      curves: ``{label: [T] norms}``, e.g. ``{"LSTM": hidden_grad_norms(...).h}``.
      title: the axes title, or None.
      ylabel: the y-axis label.
      figsize: the figure size in inches.

    Returns:
      A Figure with one axes and one line per entry of ``curves``.
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError(
            f"plot_grad_norms: curves must be a non-empty mapping {{label: [T] norms}}, "
            f"got {type(curves).__name__}"
        )
    fig = new_figure(figsize)
    ax = fig.add_subplot()
    for name, values in curves.items():
        arr = _curve(name, values)
        arr = np.where((arr > 0) & np.isfinite(arr), arr, np.nan)
        ax.plot(np.arange(arr.shape[0]), arr, label=str(name))
    ax.set_yscale("log")
    ax.set_xlabel("timestep t")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend()
    ax.grid(True, which="major", alpha=0.3)
    return fig


def plot_eigenvalues(
    eigenvalues: Any | Mapping[str, Any],
    *,
    title: str | None = "Jacobian eigenvalues",
    figsize: tuple[float, float] = (5.0, 5.0),
) -> Figure:
    """Eigenvalues in the complex plane with the unit circle.

    Args:
      eigenvalues: a complex array of any shape (flattened; e.g. ``JacobianNorms
        .step_eigenvalues [T, S]`` or `recurrent_eigenvalues`), or ``{label: array}`` for
        several sets, one colour each.
      title: the axes title, or None.
      figsize: the figure size in inches.

    Returns:
      A Figure with one axes: one scatter collection per set, and the unit circle as a line.
    """
    sets = eigenvalues if isinstance(eigenvalues, Mapping) else {"eigenvalues": eigenvalues}
    if not sets:
        raise ValueError("plot_eigenvalues: got an empty mapping; expected {label: array}")
    fig = new_figure(figsize)
    ax = fig.add_subplot()
    theta = np.linspace(0.0, 2.0 * np.pi, 256)
    ax.plot(np.cos(theta), np.sin(theta), color="0.5", linestyle="--", label="unit circle")
    extent = 1.0
    for name, values in sets.items():
        z = np.asarray(values).astype(np.complex128).ravel()
        extent = max(extent, float(np.max(np.abs(z), initial=0.0)))
        ax.scatter(z.real, z.imag, s=12, alpha=0.7, label=str(name))
    lim = 1.05 * extent
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("Re")
    ax.set_ylabel("Im")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper right", fontsize="small")
    return fig


def plot_gate_histograms(
    stats: GateStats,
    *,
    gates: Sequence[str] | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Histograms of gate activations, summed over valid timesteps; one axes per gate.

    Each axes title gives the mean fraction of saturated units over the sequence.

    Args:
      stats: a `GateStats` from `gate_stats` (one sequence, unbatched).
      gates: which gates to show, in order (e.g. ``cell.gates``); all of them when None
        (LSTM f, i, g, o; GRU r, z, n).
      figsize: the figure size in inches; scales with the number of gates when None.

    Returns:
      A Figure with one axes per gate, each with one bar per histogram bin.
    """
    # The cells' own gate order (a dict returned by jax.jit comes back with sorted keys).
    available = sorted(stats.hist, key=lambda g: (_GATE_ORDER.find(g) % 99, g))
    names = available if gates is None else list(gates)
    if not names or any(g not in stats.hist for g in names):
        raise ValueError(
            f"plot_gate_histograms: gates={names!r}; expected a non-empty subset of {available}"
        )
    fig = new_figure(figsize or (3.0 * len(names), 3.0))
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        counts = np.asarray(stats.hist[name], dtype=np.float64)
        if counts.ndim != 2:
            raise ValueError(
                f"plot_gate_histograms: hist[{name!r}] has shape {counts.shape}, expected "
                f"[T, bins]; pass the stats of one sequence (index a vmapped batch first)"
            )
        edges = np.asarray(stats.bin_edges[name], dtype=np.float64)
        total = counts.sum(axis=0)
        ax.bar(edges[:-1], total / max(total.sum(), 1.0), width=np.diff(edges), align="edge")
        saturated = np.asarray(stats.saturated[name], dtype=np.float64)
        valid = counts.sum(axis=1) > 0
        frac = float(saturated[valid].mean()) if valid.any() else 0.0
        ax.set_title(f"{name}: {100 * frac:.0f}% saturated")
        ax.set_xlabel("activation")
    axes[0].set_ylabel("fraction of units")
    return fig
