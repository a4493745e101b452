"""From a config to results: `run` (in memory, or into a run folder), `run_sweep`,
`evaluate_run`.

    result = seqjax.run("configs/adding/lstm.yaml", overrides=["train.steps=500"])
    result.params, result.metrics, result.summary   # run_dir: None unless out=... is given

A run trains every run of its config (the seeds, times a traced sweep's grid) in one compiled
program (`seqjax.experiment.Experiment`), from the host in chunks of ``train.chunk_size``
updates (`seqjax.train.fit`): between chunks it logs, evaluates, stops early and
checkpoints. With ``out`` it writes a run folder (`seqjax.experiment.runs`); without, it
writes nothing.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from seqjax.experiment.builders import checkpoint_manager_from_config, early_stopping_from_config
from seqjax.experiment.config import (
    CONFIG_SOURCES,
    dump_config,
    resolve_config,
)
from seqjax.experiment.program import Experiment
from seqjax.experiment.recorder import Recorder
from seqjax.experiment.report import plot_runs, write_sweep_report
from seqjax.experiment.runs import (
    CONFIG,
    MetricsLog,
    new_run_dir,
    versions,
    write_atomic,
    write_json_atomic,
)
from seqjax.experiment.sweep import grid_cells, program_configs
from seqjax.parallel import agree_on_path, is_main_process, put_runs, replicated
from seqjax.train import checkpoint_manager, fit, restore_checkpoint

__all__ = ["RunResult", "evaluate_run", "run", "run_sweep"]


class RunResult(NamedTuple):
    """What `run` returns.

    Attributes:
      params: the final parameters, every leaf with a leading ``[runs]`` axis (the seeds, or
        ``[grid * seeds]`` grid-major under a traced sweep).
      metrics: every update's training metrics (``loss``, ``grad_norm``, ...) as NumPy arrays
        ``[runs, steps]`` (the steps this call trained, after a resume only the new ones).
      evals: one record per evaluation during training, ``{"step": s, name: [runs]...}``.
      summary: the final evaluation, the task's baseline, timings, versions (``summary.json``).
      run_dir: the run folder, or None when nothing was written (``out`` not given).
      diagnostics: with a ``diagnostics`` section, the arrays of ``diagnostics.npz``
        (`seqjax.experiment.recorder`); else None.
    """

    params: Any
    metrics: dict[str, np.ndarray]
    evals: list[dict[str, Any]]
    summary: dict[str, Any]
    run_dir: Path | None
    diagnostics: dict[str, np.ndarray] | None = None


def _progress(total: int, initial: int, enabled: bool) -> Any:
    if enabled:  # tqdm.auto picks the notebook widget in Jupyter, the text bar elsewhere
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)


def run(
    config: CONFIG_SOURCES,
    *,
    overrides: Sequence[str] = (),
    out: str | os.PathLike | None = None,
    progress: bool = True,
    run_dir: str | os.PathLike | None = None,
) -> RunResult:
    """Trains a config and returns its results; with ``out``, also writes a run folder.

    Args:
      config: a YAML file's path, a dict of sections, or an `ExperimentConfig`.
      overrides: ``KEY=VALUE`` strings, as ``--set`` takes them (``"train.steps=500"``).
      out: the parent of a new run folder ``<out>/<name>-<timestamp>`` (config, metrics,
        checkpoints, diagnostics, summary, plots); None: nothing is written (the config's
        ``train.checkpoint`` section is not used; diagnostics are kept in memory).
      progress: show a progress bar (and the config's ``log.progress`` allows it).
      run_dir: an existing run folder to resume from its latest checkpoint (its metrics are
        kept up to that step), or a new folder to write; takes the place of ``out``.

    Returns:
      A `RunResult`.

    Raises:
      ConfigError, ValueError: for a bad config, before anything is written or compiled.
    """
    cfg = resolve_config(config, overrides)
    program = Experiment(cfg)  # every config error is raised here, before anything is written
    main = is_main_process()  # several hosts: process 0 writes the folder, all checkpoint
    folder: Path | None = None
    log_dir: Path | None = None
    if run_dir is not None or out is not None:
        if run_dir is None:
            run_dir = agree_on_path(new_run_dir(out, cfg.name) if main else None)
        folder = Path(run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        log_dir = folder if main else Path(tempfile.mkdtemp(prefix="seqjax-process-"))
        write_atomic(log_dir / CONFIG, dump_config(cfg))
    trainer = program.trainer
    keys = put_runs(program.run_keys(), program.mesh)
    eval_fn = replicated(program.runs_eval_fn(), program.mesh)
    manager = None
    if folder is not None and cfg.train.checkpoint is not None:
        manager = checkpoint_manager_from_config(cfg.train.checkpoint, folder / "checkpoints")
    resume_step = None if manager is None else manager.latest_step()
    recorder = None
    if cfg.diagnostics is not None:
        recorder = Recorder(program, log_dir, resume_step)
        if recorder.active and resume_step is None:
            recorder.record(0, trainer.init(keys)[0].params)
    baseline = program.task.baseline
    bar = _progress(cfg.train.steps, resume_step or 0, progress and cfg.log.progress)
    log_every = cfg.log.every or cfg.train.chunk_size
    start = time.perf_counter()
    last = {"time": start, "step": resume_step or 0}
    log = None if log_dir is None else MetricsLog(log_dir, resume_step=resume_step)

    def log_fn(step: int, record: dict[str, Any]) -> None:
        now = time.perf_counter()
        rate = (step - last["step"]) / max(now - last["time"], 1e-9)
        last.update(time=now, step=step)
        if log is not None and (step % log_every == 0 or step == cfg.train.steps):
            log.write({"step": step, "split": "train", **record})
        loss = float(np.mean(record["loss"]))
        bar.set_postfix(loss=f"{loss:.4f}", vs_baseline=f"{loss / baseline:.3f}", refresh=False)
        bar.update(step - bar.n)
        bar.set_description(f"{rate:.0f} steps/s")

    try:
        result = fit(
            trainer,
            keys,
            cfg.train.steps,
            chunk_size=cfg.train.chunk_size,
            max_bad_steps=cfg.train.max_bad_steps,
            eval_fn=eval_fn if cfg.train.eval_every is not None else None,
            eval_every=cfg.train.eval_every,
            early_stopping=early_stopping_from_config(cfg.train.early_stopping),
            checkpoints=manager,
            checkpoint_every=None if cfg.train.checkpoint is None else cfg.train.checkpoint.every,
            log_fn=log_fn,
            on_chunk=None if recorder is None else recorder.on_chunk,
        )
        bar.close()
        wall = time.perf_counter() - start
        final_eval = jax.device_get(eval_fn(result.state.params))
        step = int(np.max(np.asarray(result.state.step)))
        if log is not None:
            log.write({"step": step, "split": "eval", **final_eval})
        if recorder is not None:
            recorder.finish(step, result.state.params)
    finally:
        if log is not None:
            log.close()

    trained = step - (resume_step or 0)
    summary = {
        "name": cfg.name,
        "task": program.task.name,
        "model": cfg.model.cell if cfg.model.kind == "recurrent" else cfg.model.kind,
        "hidden_size": cfg.model.hidden_size,
        "pattern": program.task.pattern,
        "steps": step,
        "seeds": list(cfg.seeds),
        "sweep": grid_cells(cfg) if cfg.sweep else None,  # runs are grid-major [grid * seeds]
        "stop_reason": result.stop_reason,
        "resumed_from": result.resumed_from,
        "baseline": baseline,
        "loss_name": program.task.loss,
        "metric": "accuracy" if program.task.loss == "cross_entropy" else "loss",
        "eval": final_eval,
        "eval_vs_baseline": float(np.mean(final_eval["loss"]) / baseline) if baseline else None,
        "skipped_steps": np.asarray(result.state.num_skipped).tolist(),
        "wall_time_s": wall,
        "steps_per_s": trained / wall if wall > 0 else 0.0,
        "num_params": int(sum(np.prod(p.shape[1:]) for p in jax.tree.leaves(result.state.params))),
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.default_backend(),
        # How the runs were laid out, which the timings above depend on (not the values).
        "mesh": None if program.mesh is None else dict(program.mesh.shape),
        "seed_batch": program.seed_batch,
        "versions": versions(),
    }
    if recorder is not None:
        summary["diagnostics"] = recorder.status
    if log_dir is not None:
        write_json_atomic(log_dir / "summary.json", summary)
    if folder is not None and cfg.log.plots and main:
        runs = [(cfg.name, folder, summary)]
        plot_runs(runs, "loss", folder / "plots" / "loss.png", log=True)
        plot_runs(runs, "grad_norm", folder / "plots" / "grad_norm.png", log=True)
    diagnostics = None if recorder is None else recorder.arrays()
    return RunResult(
        result.state.params, result.metrics, result.evals, summary, folder, diagnostics
    )


def _folder_name(index: int, values: dict[str, Any]) -> str:
    parts = [f"{k.rsplit('.', 1)[-1]}={v}" for k, v in values.items()]
    name = "-".join([f"{index:02d}", *parts])
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", name)


def run_sweep(
    config: CONFIG_SOURCES,
    *,
    overrides: Sequence[str] = (),
    out: str | os.PathLike = "runs",
    progress: bool = True,
) -> Path:
    """Runs every program of a config's ``sweep`` one after another and writes a report.

    Writes ``<out>/<name>-sweep-<timestamp>/``: one run folder per program (``00-...``,
    ``01-...``, each as `run` writes it, with a leading ``[grid * seeds]`` axis on its
    metrics, see `seqjax.experiment.sweep`), ``sweep.json`` (one row per grid cell and
    program), ``report.md`` and ``plots/sweep.png`` (final metric against a swept value).

    Returns:
      The sweep folder.
    """
    cfg = resolve_config(config, overrides)
    if not cfg.sweep:
        raise ValueError("run_sweep: the config has no sweep section; use seqjax.run")
    programs = program_configs(cfg)
    for _, program in programs:  # every error before anything is written or trained
        Experiment(program)
    main = is_main_process()  # several hosts: process 0 writes, every process trains
    root = agree_on_path(new_run_dir(out, f"{cfg.name}-sweep") if main else None)
    if main:
        write_atomic(root / CONFIG, dump_config(cfg))
    folders = []
    for i, (values, program) in enumerate(programs):
        folder = root / _folder_name(i, values)
        run(program, run_dir=folder, progress=progress)
        folders.append((values, program, folder))
    if main:
        write_sweep_report(root, folders)
    return root


def evaluate_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Evaluates the latest checkpoint of a run folder with its own config.

    Returns:
      ``{"step": s, "loss": [...], ...}``, one value per run for each metric.
    """
    run_dir = Path(run_dir)
    cfg = resolve_config(run_dir / CONFIG)
    ckpt_dir = run_dir / "checkpoints"
    if not ckpt_dir.is_dir():
        raise FileNotFoundError(
            f"{run_dir}: no checkpoints/ folder; evaluation needs a run trained with "
            f"train.checkpoint set"
        )
    program = Experiment(cfg)
    template, _ = program.trainer.init(program.run_keys())
    manager = checkpoint_manager(ckpt_dir, every=1, keep=1_000_000)
    state, _ = restore_checkpoint(manager, template)
    values = jax.device_get(jax.jit(program.runs_eval_fn())(state.params))
    step = int(np.max(np.asarray(state.step)))
    return {"step": step, **{k: np.round(np.asarray(v), 5).tolist() for k, v in values.items()}}
