"""Gradient-flow diagnostics recorded during a run (their plots: `seqjax.experiment.report`).

A config with a ``diagnostics`` section (``diagnostics: {every: 100, batch_size: 16}``) makes
a run with a folder (``seqjax.run(..., out=...)``, ``seqjax train``) record `seqjax.diagnostics.model.model_diagnostics` of every seed's params
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

import io
import os
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from seqjax.cells import Cell
from seqjax.diagnostics.model import (
    MODEL_PATTERNS,
    gate_names,
    model_diagnostics,
    unsupported_cell,
)
from seqjax.experiment.builders import layer_from_config
from seqjax.experiment.program import Experiment
from seqjax.experiment.runs import write_atomic

DIAGNOSTICS_FILE = "diagnostics.npz"
DIAG_SEED_OFFSET = 2_000_003  # the diagnostics batch comes from a key no training step uses
_KEYS = ("loss", "grad_norm", "weight_radius", "gate_saturation")


def unsupported_reason(exp: Experiment) -> str | None:
    """Why the model of an `seqjax.experiment.Experiment` cannot be diagnosed, or None."""
    cfg = exp.cfg
    if cfg.model.kind != "recurrent":
        return f"model.kind={cfg.model.kind!r} is not recurrent"
    if exp.task.pattern not in MODEL_PATTERNS:
        return f"task pattern {exp.task.pattern!r} (supported: {list(MODEL_PATTERNS)})"
    layer = layer_from_config(cfg.model)
    if not isinstance(layer, Cell):
        return (
            "only a single cell is supported (no num_layers > 1, bidirectional, dropout, "
            "recurrent_dropout or zoneout)"
        )
    return unsupported_cell(layer)


def diagnostics_batch(task: Any, batch_size: int) -> Any:
    """The fixed batch a run records its diagnostics on (a key no training step uses).

    Sampled under `jax.jit`: one compiled program instead of each random op compiled on its
    own (the values of ``task.sample`` with that key; continuous tasks may differ from the
    eager ones by float rounding, as any fused program does).
    """
    return jax.jit(task.sample, static_argnums=1)(jax.random.key(DIAG_SEED_OFFSET), batch_size)


def write_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` of plain arrays, written with `seqjax.experiment.runs.write_atomic`."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getvalue())


def read_diagnostics(run_dir: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """The arrays of ``<run_dir>/diagnostics.npz`` (see the module doc), or None if absent."""
    path = Path(run_dir) / DIAGNOSTICS_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


class Recorder:
    """Records the diagnostics of a run's params, in memory and into ``diagnostics.npz``.

    Args:
      exp: the run's `seqjax.experiment.Experiment`.
      run_dir: the folder to write ``diagnostics.npz`` into (the run folder); None: in memory
        only (`arrays`).
      resume_step: the step the run resumes from (records after it are dropped), or None.

    Attributes:
      status: ``"diagnostics.npz"`` when recording, else ``"skipped: <reason>"``.
    """

    def __init__(
        self,
        exp: Experiment,
        run_dir: str | os.PathLike | None = None,
        resume_step: int | None = None,
    ):
        cfg = exp.cfg.diagnostics
        if cfg is None:
            raise ValueError("Recorder: the config has no diagnostics section (diagnostics: null)")
        self.every = cfg.every
        self.total = exp.cfg.train.steps
        self.path = None if run_dir is None else Path(run_dir) / DIAGNOSTICS_FILE
        seeds = np.asarray(exp.cfg.seeds, np.int64)  # runs are [grid * seeds] under a sweep
        self.seeds = np.tile(seeds, max(exp.num_runs // len(seeds), 1))
        self.records: dict[str, list[np.ndarray]] = {k: [] for k in ("step", *_KEYS)}
        reason = unsupported_reason(exp)
        self.status = DIAGNOSTICS_FILE if reason is None else f"skipped: {reason}"
        if reason is not None:
            warnings.warn(f"diagnostics {self.status}", stacklevel=2)
            self.fn = None
            return
        cell = layer_from_config(exp.cfg.model)
        self.gate_names = np.asarray(gate_names(cell), dtype=str)
        self.block_names = np.asarray(cell.weight_blocks, dtype=str)
        batch = diagnostics_batch(exp.task, cfg.batch_size)
        pattern, loss, eps = exp.task.pattern, exp.task.loss, cfg.eps
        self.fn = jax.jit(
            jax.vmap(lambda p: model_diagnostics(cell, pattern, loss, p, batch, eps=eps))
        )
        previous = None
        if resume_step is not None and self.path is not None:
            previous = read_diagnostics(self.path.parent)
        if previous is not None:
            keep = previous["step"] <= resume_step
            for k in self.records:
                self.records[k] = list(previous[k][keep])

    @property
    def active(self) -> bool:
        """Whether this run records diagnostics."""
        return self.fn is not None

    def arrays(self) -> dict[str, np.ndarray] | None:
        """The records so far as the arrays of ``diagnostics.npz`` (None when skipped)."""
        if self.fn is None:
            return None
        arrays = {k: np.stack(v) for k, v in self.records.items()}
        arrays.update(seed=self.seeds, gate_names=self.gate_names, block_names=self.block_names)
        return arrays

    def record(self, step: int, params: Any) -> None:
        """Records the diagnostics of ``params`` (leading run axis) at ``step``; rewrites the
        file."""
        if self.fn is None:
            return
        values = jax.device_get(self.fn(params)._asdict())
        if self.records["step"] and self.records["step"][-1] == step:
            for k in self.records:
                self.records[k].pop()
        self.records["step"].append(np.asarray(step, np.int64))
        for k in _KEYS:
            self.records[k].append(np.asarray(values[k]))
        if self.path is not None:
            write_npz_atomic(self.path, self.arrays())

    def finish(self, step: int, params: Any) -> None:
        """Records the final params unless ``step`` is already recorded (early stopping)."""
        if self.fn is not None and (not self.records["step"] or self.records["step"][-1] != step):
            self.record(step, params)

    def on_chunk(self, step: int, state: Any) -> None:
        """The `seqjax.train.fit` hook: records at multiples of ``every`` and at the end."""
        if step % self.every == 0 or step >= self.total:
            self.record(step, state.params)
