"""Gradient-flow diagnostics recorded during training, and their plots in ``seqjax report``.

A config with a ``diagnostics`` section (``diagnostics: {every: 100, batch_size: 16}``) makes
``run_experiment`` record `seqjax.diagnostics.model.model_diagnostics` of every seed's params
at step 0 and every ``every`` steps (and at the last step), on one fixed batch of the task,
into ``<run>/diagnostics.npz`` (rewritten atomically at each record; plain arrays, no pickle)::

    step             [N]          int64, the training step of each record
    seed             [S]          int64, the seed of each run (S = seeds, or grid * seeds
                                  grid-major under a ``sweep``)
    loss             [N, S]       mean per-example task loss on the diagnostics batch
    grad_norm        [N, S, T]    ||dL_b/dh_t||, mean over valid examples
    weight_radius    [N, S, k]    spectral radius of each recurrent gate block
    gate_saturation  [N, S, G]    saturated fraction of each gate (G = 0 for rnn / irnn)
    gate_names       [G]          str, the gates of the last axis (LSTM f i g o, GRU r z n)
    block_names      [k]          str, the gate blocks of weight_radius

Read it with `read_diagnostics` (``np.load(..., allow_pickle=False)``). Models the recorder
does not support (stacked, bidirectional or regularised layers, baselines, seq2seq) are
skipped with a reason (`Recorder.status`, also in the run's ``summary.json``); a run never
fails because of its diagnostics.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from seqjax.cells.base import Cell
from seqjax.diagnostics.model import MODEL_PATTERNS, gate_names, model_diagnostics

DIAGNOSTICS_FILE = "diagnostics.npz"
DIAG_SEED_OFFSET = 2_000_003  # the diagnostics batch comes from a key no training step uses
_BLOCK_NAMES = {"rnn": ("W_h",), "irnn": ("W_h",), "lstm": ("f", "i", "g", "o")}
_BLOCK_NAMES["gru"] = ("r", "z", "n")
_KEYS = ("loss", "grad_norm", "weight_radius", "gate_saturation")


def unsupported_reason(exp: Any) -> str | None:
    """Why the model of an `seqjax.experiment.Experiment` cannot be diagnosed, or None."""
    from seqjax.experiment import layer_from_config

    cfg = exp.cfg
    if cfg.model.kind != "recurrent":
        return f"model.kind={cfg.model.kind!r} is not recurrent"
    if exp.task.pattern not in MODEL_PATTERNS:
        return f"task pattern {exp.task.pattern!r} (supported: {list(MODEL_PATTERNS)})"
    if not isinstance(layer_from_config(cfg.model), Cell):
        return (
            "only a single cell is supported (no num_layers > 1, bidirectional, dropout, "
            "recurrent_dropout or zoneout)"
        )
    return None


def diagnostics_batch(task: Any, batch_size: int) -> Any:
    """The fixed batch a run records its diagnostics on (a key no training step uses)."""
    return task.sample(jax.random.key(DIAG_SEED_OFFSET), batch_size)


def write_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` to a temporary file in the same folder, then an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_diagnostics(run_dir: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """The arrays of ``<run_dir>/diagnostics.npz`` (see the module doc), or None if absent."""
    path = Path(run_dir) / DIAGNOSTICS_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


class Recorder:
    """Records the diagnostics of a run's params into ``diagnostics.npz``.

    Args:
      exp: the run's `seqjax.experiment.Experiment`.
      run_dir: the folder to write ``diagnostics.npz`` into (the run folder).
      resume_step: the step the run resumes from (records after it are dropped), or None.

    Attributes:
      status: ``"diagnostics.npz"`` when recording, else ``"skipped: <reason>"``.
    """

    def __init__(self, exp: Any, run_dir: str | os.PathLike, resume_step: int | None = None):
        cfg = exp.cfg.diagnostics
        if cfg is None:
            raise ValueError("Recorder: the config has no diagnostics section (diagnostics: null)")
        self.every = cfg.every
        self.total = exp.cfg.train.steps
        self.path = Path(run_dir) / DIAGNOSTICS_FILE
        seeds = np.asarray(exp.cfg.seeds, np.int64)  # runs are [grid * seeds] under a sweep
        self.seeds = np.tile(seeds, max(len(exp.seed_keys()) // len(seeds), 1))
        self.records: dict[str, list[np.ndarray]] = {k: [] for k in ("step", *_KEYS)}
        reason = unsupported_reason(exp)
        self.status = DIAGNOSTICS_FILE if reason is None else f"skipped: {reason}"
        if reason is not None:
            warnings.warn(f"diagnostics {self.status}", stacklevel=2)
            self.fn = None
            return
        from seqjax.experiment import layer_from_config

        cell = layer_from_config(exp.cfg.model)
        self.gate_names = np.asarray(gate_names(cell), dtype=str)
        self.block_names = np.asarray(_BLOCK_NAMES.get(cell.name, ()), dtype=str)
        batch = diagnostics_batch(exp.task, cfg.batch_size)
        pattern, loss, eps = exp.task.pattern, exp.task.loss, cfg.eps
        self.fn = jax.jit(
            jax.vmap(lambda p: model_diagnostics(cell, pattern, loss, p, batch, eps=eps))
        )
        previous = read_diagnostics(self.path.parent) if resume_step is not None else None
        if previous is not None:
            keep = previous["step"] <= resume_step
            for k in self.records:
                self.records[k] = list(previous[k][keep])

    @property
    def active(self) -> bool:
        """Whether this run records diagnostics."""
        return self.fn is not None

    def record(self, step: int, params: Any) -> None:
        """Records the diagnostics of ``params`` (leading seed axis) at ``step``; rewrites the file."""
        if self.fn is None:
            return
        values = jax.device_get(self.fn(params)._asdict())
        if self.records["step"] and self.records["step"][-1] == step:
            for k in self.records:
                self.records[k].pop()
        self.records["step"].append(np.asarray(step, np.int64))
        for k in _KEYS:
            self.records[k].append(np.asarray(values[k]))
        arrays = {k: np.stack(v) for k, v in self.records.items()}
        arrays.update(seed=self.seeds, gate_names=self.gate_names, block_names=self.block_names)
        write_npz_atomic(self.path, arrays)

    def finish(self, step: int, params: Any) -> None:
        """Records the final params unless ``step`` is already recorded (early stopping)."""
        if self.fn is not None and (not self.records["step"] or self.records["step"][-1] != step):
            self.record(step, params)

    def on_chunk(self, step: int, state: Any) -> None:
        """The `seqjax.train.fit` hook: records at multiples of ``every`` and at the end."""
        if step % self.every == 0 or step >= self.total:
            self.record(step, state.params)


# ------------------------------------------------------------------------------------ plots


def _pick_records(num: int, most: int = 5) -> list[int]:
    return sorted(set(np.linspace(0, num - 1, min(num, most)).round().astype(int).tolist()))


def _over_training(steps, values, names, title, ylabel, path, log):
    from seqjax.diagnostics.plot import _figure

    fig = _figure((6.0, 4.0))
    ax = fig.add_subplot()
    for j, name in enumerate(names):
        v = values[:, :, j]  # [N, S]
        ax.plot(steps, v.mean(axis=1), marker="o", markersize=3, label=str(name), color=f"C{j}")
        if v.shape[1] > 1:
            ax.fill_between(steps, v.min(axis=1), v.max(axis=1), alpha=0.2, color=f"C{j}")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=100)
    return path


def plot_diagnostics(run_dir: str | os.PathLike, out_dir: str | os.PathLike, label: str):
    """Writes a run's diagnostics plots; returns ``[(title, path)]`` (empty without the file).

    Plots: gradient norm vs timestep at up to five training steps (log scale, mean over
    seeds), the recurrent spectral radius over training, and (LSTM / GRU) gate saturation
    over training (mean over seeds, min-max band).
    """
    from seqjax.diagnostics.plot import plot_grad_norms

    data = read_diagnostics(run_dir)
    if data is None or data["step"].size == 0:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(run_dir).resolve().name
    steps = data["step"]
    curves = {
        f"step {steps[i]}": data["grad_norm"][i].mean(axis=0) for i in _pick_records(len(steps))
    }
    fig = plot_grad_norms(curves, title=f"{label}: gradient norm vs timestep")
    grad_png = out_dir / f"{stem}_diag_grad_norms.png"
    fig.savefig(grad_png, dpi=100)
    out = [("gradient norm vs timestep", grad_png)]
    blocks = [str(b) for b in data["block_names"]] or [
        str(j) for j in range(data["weight_radius"].shape[-1])
    ]
    out.append(
        (
            "spectral radius of the recurrent weights",
            _over_training(
                steps,
                data["weight_radius"],
                blocks,
                f"{label}: recurrent spectral radius",
                "spectral radius",
                out_dir / f"{stem}_diag_spectral_radius.png",
                log=False,
            ),
        )
    )
    if data["gate_saturation"].shape[-1] > 0:
        out.append(
            (
                "gate saturation",
                _over_training(
                    steps,
                    data["gate_saturation"],
                    [str(g) for g in data["gate_names"]],
                    f"{label}: gate saturation",
                    "fraction of saturated units",
                    out_dir / f"{stem}_diag_gate_saturation.png",
                    log=False,
                ),
            )
        )
    return out
