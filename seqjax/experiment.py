"""One experiment from a config: task + model + optimiser -> trained run folder.

This is where the layers meet (DESIGN.md: config -> task + model + optimiser -> jitted train
step -> metrics, checkpoints -> report). Every builder here is a ``*_from_config`` function;
everything else in seqjax takes explicit arguments.

    cfg = load_config("configs/adding/lstm.yaml", ["train.steps=200"])
    run_dir = run_experiment(cfg, "runs")

All seeds of ``cfg.seeds`` train together: the whole trainer is ``jax.vmap``-ed over the seed
axis, so one compiled program runs them all, and every metric carries a leading seed axis
(``parallel.seed_batch: k``: k at a time, the groups one after another in that program; with
the seeds over several devices, k at a time on each; ``"auto"``, the default, picks k by
`seqjax.parallel.seed_batch_for`).
"""

from __future__ import annotations

import datetime
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import yaml

from seqjax import losses
from seqjax.cells import get_cell
from seqjax.config import ExperimentConfig, ModelConfig, TaskConfig, check_bptt_fits, dump_config
from seqjax.layers import active_rate, bidirectional, stack
from seqjax.models import Model, many_to_many, many_to_one, seq2seq
from seqjax.parallel import (
    SEEDS,
    agree_on_path,
    is_main_process,
    map_runs,
    mesh_from_config,
    put_runs,
    replicated,
    seed_batch_for,
    shard_batch_fn,
    shard_trainer,
)
from seqjax.runs import CONFIG, MetricsLog, write_json_atomic, write_text_atomic
from seqjax.tasks import Batch, Task, get_task
from seqjax.train import (
    Trainer,
    bptt_from_config,
    checkpoint_manager_from_config,
    clipping_from_config,
    early_stopping_from_config,
    fit,
    make_trainer,
    optimizer_from_config,
)

EVAL_SEED_OFFSET = 1_000_003  # evaluation data comes from keys no training step uses


def task_from_config(cfg: TaskConfig) -> Task:
    """The task named by the ``task`` section, built with its options."""
    return get_task(cfg.name, **cfg.options)


def _cell_from_config(cfg: ModelConfig) -> Any:
    kwargs: dict[str, Any] = {
        "input_init": cfg.input_init,
        "recurrent_init": cfg.recurrent_init,
        "fast": cfg.fast,
    }
    if cfg.cell == "rnn":
        kwargs.update(activation=cfg.activation, recurrent_scale=cfg.recurrent_scale)
    elif cfg.cell == "irnn":
        kwargs.update(recurrent_scale=cfg.recurrent_scale)
        if cfg.recurrent_init == "orthogonal":  # the IRNN's own default is the identity
            kwargs["recurrent_init"] = "identity"
    elif cfg.cell == "lstm":
        kwargs.update(forget_bias=cfg.forget_bias, chrono=cfg.chrono)
    elif cfg.cell == "gru":
        kwargs.update(chrono=cfg.chrono)
    return get_cell(cfg.cell, cfg.hidden_size, **kwargs)


# The cell-specific keys of the model section, per cell.
_USES = {
    "rnn": {"activation", "recurrent_scale"},
    "irnn": {"recurrent_scale"},
    "lstm": {"forget_bias", "chrono"},
    "gru": {"chrono"},
}


def _check_model_options(cfg: ModelConfig) -> None:
    """Options that the chosen cell ignores are errors, so a config never lies about a run."""
    defaults = ModelConfig()
    used = _USES[cfg.cell]
    for name in ("activation", "recurrent_scale", "forget_bias", "chrono"):
        if name not in used and getattr(cfg, name) != getattr(defaults, name):
            raise ValueError(
                f"model.{name}={getattr(cfg, name)!r} has no effect on cell {cfg.cell!r} "
                f"(it applies to {sorted(c for c, u in _USES.items() if name in u)}); remove it"
            )
    if cfg.kind == "recurrent" and cfg.options:
        raise ValueError(
            f"model.options={cfg.options!r} is for the baselines (model.kind transformer / tcn); "
            f"recurrent models are configured by the other model keys"
        )


def layer_from_config(cfg: ModelConfig) -> Any:
    """The recurrent body: one cell, a stack, bidirectional layers, with regularisation."""
    _check_model_options(cfg)
    cells = [_cell_from_config(cfg) for _ in range(cfg.num_layers)]
    regular = {"recurrent_dropout": cfg.recurrent_dropout, "zoneout": cfg.zoneout}
    if cfg.bidirectional:
        items = [bidirectional(c, **regular) for c in cells]
        regular = {}
    else:
        items = cells
    edges = {"input_dropout": cfg.input_dropout, "output_dropout": cfg.output_dropout}
    rates = [cfg.dropout, *edges.values(), *regular.values()]
    if len(items) == 1 and not any(active_rate(r) for r in rates):
        return items[0]
    return stack(items, dropout=cfg.dropout, residual=cfg.residual, **regular, **edges)


def model_from_config(
    cfg: ModelConfig, task: Task, *, truncate: int | None = None, remat: bool | int | str = "auto"
) -> Model:
    """The model for ``task``'s pattern and sizes from the ``model`` section."""
    unroll_options: dict[str, Any] = {"truncate": truncate, "remat": remat}
    if cfg.kind != "recurrent":
        from seqjax import baselines

        builder = getattr(baselines, cfg.kind)
        if task.pattern not in ("many_to_one", "many_to_many"):
            raise ValueError(
                f"model.kind={cfg.kind!r} supports many_to_one and many_to_many tasks, not "
                f"task {task.name!r} ({task.pattern})"
            )
        return builder(task.input_size, task.output_size, pattern=task.pattern, **cfg.options)
    layer = layer_from_config(cfg)
    if task.pattern == "many_to_one":
        return many_to_one(layer, task.input_size, task.output_size, **unroll_options)
    if task.pattern == "many_to_many":
        return many_to_many(layer, task.input_size, task.output_size, **unroll_options)
    if task.pattern == "seq2seq":
        if cfg.bidirectional or cfg.num_layers > 1:
            raise ValueError(
                "model: seq2seq tasks take a single-layer unidirectional encoder and decoder "
                "(the encoder's carry starts the decoder); set model.num_layers=1 and "
                "model.bidirectional=false"
            )
        decoder = _cell_from_config(cfg)
        return seq2seq(layer, decoder, task.input_size, task.output_size, **unroll_options)
    raise ValueError(f"task {task.name!r} has pattern {task.pattern!r}, which no model serves")


def _task_loss(task: Task, outputs: jax.Array, batch: Batch) -> tuple[jax.Array, dict]:
    """The task's loss and metric of a batch of model outputs (mask-aware)."""
    mask = batch.mask > 0
    targets = batch.targets
    if task.loss == "mse":
        if targets.ndim == outputs.ndim - 1:
            targets = targets[..., None]
        loss = losses.mse(outputs, targets.astype(outputs.dtype), mask)
        return loss, {}
    if task.loss == "cross_entropy":
        loss = losses.softmax_cross_entropy(outputs, targets, mask)
        aux = {"accuracy": losses.accuracy(outputs, targets, mask)}
        return loss, aux
    raise ValueError(f"task {task.name!r}: unknown loss {task.loss!r}")


def make_loss_fn(model: Model, task: Task, *, streaming: bool = False) -> Callable[..., Any]:
    """``loss_fn(params, batch, key) -> (loss, aux)`` over a batch (vmap of ``model.apply``).

    ``key`` None means evaluation (no dropout). With ``streaming=True`` the signature is
    ``loss_fn(params, batch, carry, key) -> (loss, (aux, carry))``.
    """
    apply = jax.vmap(model.apply, in_axes=(None, 0, 0))

    def outputs_of(params, batch, carry, key):
        kwargs: dict[str, Any] = {}
        if key is not None:
            kwargs["key"] = jax.random.split(key, batch.inputs.shape[0])
        if task.pattern == "seq2seq":
            kwargs["targets"] = batch.targets
        if carry is not None:
            kwargs["carry"] = carry
        return apply(params, batch.inputs, batch.length, **kwargs)

    if streaming:

        def streaming_loss(params, batch, carry, key):
            outputs, carry = outputs_of(params, batch, carry, key)
            loss, aux = _task_loss(task, outputs, batch)
            return loss, (aux, carry)

        return streaming_loss

    def loss_fn(params, batch, key):
        outputs, _ = outputs_of(params, batch, None, key)
        return _task_loss(task, outputs, batch)

    return loss_fn


def make_eval_fn(
    model: Model, task: Task, *, batch_size: int, num_batches: int, seed: int
) -> Callable[[Any], dict[str, jax.Array]]:
    """``eval_fn(params) -> {"loss", metric...}``: the mean over held-out batches, no dropout.

    The batches are sampled from a fixed key derived from ``seed``, never used by training.
    """
    loss_fn = make_loss_fn(model, task)
    keys = jax.random.split(jax.random.key(seed + EVAL_SEED_OFFSET), num_batches)

    def eval_fn(params):
        def one(key):
            loss, aux = loss_fn(params, task.sample(key, batch_size), None)
            return {"loss": loss, **aux}

        return jax.tree.map(jnp.mean, jax.lax.map(one, keys))

    return eval_fn


class Experiment:
    """Everything built from one config, before any training: a value, cheap to make.

    Args:
      cfg: the experiment. A ``sweep`` over keys of ``seqjax.sweep.TRACED`` is one program:
        `vmapped_trainer` then maps the grid times the seeds (see `seqjax.sweep`).
      optimizer: the Optax optimiser to train with instead of
        ``optimizer_from_config(cfg.optimizer, include_clip=False)`` (`seqjax.sweep` passes
        one built from traced hyper-parameters).
    """

    def __init__(
        self, cfg: ExperimentConfig, *, optimizer: optax.GradientTransformation | None = None
    ):
        if cfg.sweep:
            from seqjax.sweep import check_one_program

            check_one_program(cfg)
        self.cfg = cfg
        self.task = task_from_config(cfg.task)
        bptt = bptt_from_config(cfg.train.bptt)
        shapes = jax.eval_shape(lambda k: self.task.sample(k, 1), jax.random.key(0))
        seq_len = int(shapes.inputs.shape[1])
        check_bptt_fits(cfg.train.bptt, seq_len)
        self.streaming = bptt.window is not None
        if self.streaming and self.task.pattern != "many_to_many":
            raise ValueError(
                f"train.bptt.mode=streaming needs a many_to_many task (a stream), not "
                f"{self.task.name!r} ({self.task.pattern})"
            )
        self.model = model_from_config(
            cfg.model, self.task, truncate=bptt.truncate, remat=bptt.remat
        )
        if optimizer is None:
            optimizer = optimizer_from_config(cfg.optimizer, include_clip=False)
        self.optimizer = optimizer
        self.clip = clipping_from_config(cfg.optimizer.clip)
        batch_size = cfg.train.batch_size
        self.mesh = mesh_from_config(cfg.parallel, batch_size=batch_size)
        initial_carry = None
        if self.streaming:
            one = self.model.initial_carry()
            initial_carry = jax.tree.map(lambda c: jnp.broadcast_to(c, (batch_size, *c.shape)), one)
        self.trainer = make_trainer(
            self.model.init,
            make_loss_fn(self.model, self.task, streaming=self.streaming),
            self.optimizer,
            shard_batch_fn(lambda key: self.task.sample(key, batch_size), self.mesh),
            clip=self.clip,
            window=bptt.window,
            initial_carry=initial_carry,
        )
        self.eval_fn = make_eval_fn(
            self.model,
            self.task,
            batch_size=cfg.log.eval_batch_size,
            num_batches=cfg.log.eval_batches,
            seed=0,
        )

    def seed_keys(self) -> jax.Array:
        """One key per run: ``[seeds]``, or ``[grid * seeds]`` (grid-major) under a sweep."""
        keys = jnp.stack([jax.random.key(s) for s in self.cfg.seeds])
        if self.cfg.sweep:
            from seqjax.sweep import grid_cells

            keys = jnp.concatenate([keys] * len(grid_cells(self.cfg)))
        return keys

    def vmapped_trainer(self) -> Trainer:
        """The trainer over a leading seed axis: one compiled program trains every seed.

        Under a ``sweep`` the axis is grid-major ``[grid * seeds]`` (`seqjax.sweep`). With a
        ``parallel`` mesh the axis is split over its devices (`seqjax.parallel`)."""
        axis = None if self.mesh is None else SEEDS
        if self.mesh is not None:
            mesh_from_config(
                self.cfg.parallel,
                batch_size=self.cfg.train.batch_size,
                num_runs=len(self.seed_keys()),
            )
        if self.cfg.sweep:
            from seqjax.sweep import grid_trainer

            return shard_trainer(grid_trainer(self.cfg, mesh=self.mesh), self.mesh)
        t = self.trainer
        batch = self.seed_batch()

        def run(state, data_key, num_steps):
            one = lambda s, k: t.run(s, k, num_steps)  # noqa: E731
            return map_runs(one, (state, data_key), batch=batch, mesh=self.mesh)

        trainer = t._replace(
            init=jax.jit(jax.vmap(t.init, spmd_axis_name=axis)),
            run=jax.jit(run, static_argnums=2),
        )
        return shard_trainer(trainer, self.mesh)

    def vmapped_eval_fn(self) -> Callable[[Any], dict[str, jax.Array]]:
        """``eval_fn`` over the leading run axis of the parameters, not jitted: every run at
        once, or ``parallel.seed_batch`` at a time like training (memory), split over the
        mesh's `SEEDS` axis when there is one."""
        batch = self.seed_batch()

        def eval_runs(params: Any) -> dict[str, jax.Array]:
            return map_runs(self.eval_fn, (params,), batch=batch, mesh=self.mesh)

        return eval_runs

    def seed_batch(self) -> int | None:
        """How many runs each device vmaps at once (None: all): ``parallel.seed_batch``
        resolved for this experiment's runs and mesh (`seqjax.parallel.seed_batch_for`)."""
        return seed_batch_for(self.cfg, len(self.seed_keys()), self.mesh)


def _grid_of(cfg: ExperimentConfig) -> list[dict[str, Any]] | None:
    if not cfg.sweep:
        return None
    from seqjax.sweep import grid_cells

    return grid_cells(cfg)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("seqjax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def new_run_dir(root: str | os.PathLike, name: str) -> Path:
    """A fresh folder ``<root>/<name>-<UTC timestamp>`` (suffixed if it exists)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{name}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)


def run_experiment(
    cfg: ExperimentConfig,
    out: str | os.PathLike = "runs",
    *,
    run_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> Path:
    """Trains ``cfg`` and writes its run folder; resumes when ``run_dir`` has checkpoints.

    Args:
      cfg: the experiment.
      out: the parent of a new run folder (ignored when ``run_dir`` is given).
      run_dir: an existing run folder to resume (its checkpoints and metrics are kept), or
        a new folder to create.
      progress: show the progress bar; None: ``cfg.log.progress``.

    Returns:
      The run folder.
    """
    exp = Experiment(cfg)  # every config error is raised here, before anything is written
    main = is_main_process()  # several hosts: process 0 writes the folder, all checkpoint
    if run_dir is None:
        run_dir = agree_on_path(new_run_dir(out, cfg.name) if main else None)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir = run_dir if main else Path(tempfile.mkdtemp(prefix="seqjax-process-"))
    write_text_atomic(log_dir / CONFIG, dump_config(cfg))
    trainer = exp.vmapped_trainer()
    keys = put_runs(exp.seed_keys(), exp.mesh)
    eval_fn = replicated(exp.vmapped_eval_fn(), exp.mesh)
    manager = None
    if cfg.train.checkpoint is not None:
        manager = checkpoint_manager_from_config(cfg.train.checkpoint, run_dir / "checkpoints")
    resume_step = None if manager is None else manager.latest_step()
    recorder = None
    if cfg.diagnostics is not None:
        from seqjax.diagnostics.record import Recorder

        recorder = Recorder(exp, log_dir, resume_step)
        if recorder.active and resume_step is None:
            recorder.record(0, trainer.init(keys)[0].params)
    baseline = exp.task.baseline
    bar = _progress(
        cfg.train.steps, resume_step or 0, cfg.log.progress if progress is None else progress
    )
    log_every = cfg.log.every or cfg.train.chunk_size
    start = time.perf_counter()
    last = {"time": start, "step": resume_step or 0}

    with MetricsLog(log_dir, resume_step=resume_step) as log:

        def log_fn(step: int, record: dict[str, Any]) -> None:
            now = time.perf_counter()
            rate = (step - last["step"]) / max(now - last["time"], 1e-9)
            last.update(time=now, step=step)
            if step % log_every == 0 or step == cfg.train.steps:
                log.write({"step": step, "split": "train", **record})
            loss = float(np.mean(record["loss"]))
            bar.set_postfix(loss=f"{loss:.4f}", vs_baseline=f"{loss / baseline:.3f}", refresh=False)
            bar.update(step - bar.n)
            bar.set_description(f"{rate:.0f} steps/s")

        result = fit(
            trainer,
            keys,
            cfg.train.steps,
            chunk_size=cfg.train.chunk_size,
            max_bad_steps=cfg.train.max_bad_steps,
            eval_fn=eval_fn if cfg.train.eval_every is not None else None,
            eval_every=cfg.train.eval_every,
            early_stopping=None
            if cfg.train.early_stopping is None
            else early_stopping_from_config(cfg.train.early_stopping),
            checkpoints=manager,
            checkpoint_every=None if cfg.train.checkpoint is None else cfg.train.checkpoint.every,
            log_fn=log_fn,
            on_chunk=None if recorder is None else recorder.on_chunk,
        )
        bar.close()
        wall = time.perf_counter() - start
        final_eval = jax.device_get(eval_fn(result.state.params))
        step = int(np.max(np.asarray(result.state.step)))
        log.write({"step": step, "split": "eval", **final_eval})
        if recorder is not None:
            recorder.finish(step, result.state.params)

    trained = step - (resume_step or 0)
    summary = {
        "name": cfg.name,
        "task": exp.task.name,
        "model": cfg.model.cell if cfg.model.kind == "recurrent" else cfg.model.kind,
        "hidden_size": cfg.model.hidden_size,
        "pattern": exp.task.pattern,
        "steps": step,
        "seeds": list(cfg.seeds),
        "sweep": _grid_of(cfg),  # runs are grid-major [grid * seeds] (seqjax.sweep)
        "stop_reason": result.stop_reason,
        "resumed_from": result.resumed_from,
        "baseline": baseline,
        "loss_name": exp.task.loss,
        "metric": "accuracy" if exp.task.loss == "cross_entropy" else "loss",
        "eval": final_eval,
        "eval_vs_baseline": float(np.mean(final_eval["loss"]) / baseline) if baseline else None,
        "skipped_steps": np.asarray(result.state.num_skipped).tolist(),
        "wall_time_s": wall,
        "steps_per_s": trained / wall if wall > 0 else 0.0,
        "num_params": int(sum(np.prod(p.shape[1:]) for p in jax.tree.leaves(result.state.params))),
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.default_backend(),
        # How the runs were laid out, which the timings above depend on (not the values).
        "mesh": None if exp.mesh is None else dict(exp.mesh.shape),
        "seed_batch": exp.seed_batch(),
        "versions": _versions(),
    }
    if recorder is not None:
        summary["diagnostics"] = recorder.status
    write_json_atomic(log_dir / "summary.json", summary)
    if cfg.log.plots and main:
        from seqjax.report import plot_runs

        runs = [(cfg.name, run_dir, summary)]
        plot_runs(runs, "loss", run_dir / "plots" / "loss.png", log=True)
        plot_runs(runs, "grad_norm", run_dir / "plots" / "grad_norm.png", log=True)
    return run_dir


def load_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The resolved config a run folder was written with, as plain data."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a seqjax run folder (no {CONFIG})")
    return yaml.safe_load(path.read_text())


def evaluate_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Evaluates the latest checkpoint of a run folder with its own config.

    Returns:
      ``{"step": s, "loss": [...], ...}``, one value per seed for each metric.
    """
    from seqjax.config import load_config
    from seqjax.train import checkpoint_manager, restore_checkpoint

    run_dir = Path(run_dir)
    cfg = load_config(run_dir / CONFIG)
    ckpt_dir = run_dir / "checkpoints"
    if not ckpt_dir.is_dir():
        raise FileNotFoundError(
            f"{run_dir}: no checkpoints/ folder; evaluation needs a run trained with "
            f"train.checkpoint set"
        )
    exp = Experiment(cfg)
    trainer = exp.vmapped_trainer()
    template, _ = trainer.init(exp.seed_keys())
    manager = checkpoint_manager(ckpt_dir, every=1, keep=1_000_000)
    state, _ = restore_checkpoint(manager, template)
    values = jax.device_get(jax.jit(exp.vmapped_eval_fn())(state.params))
    step = int(np.max(np.asarray(state.step)))
    return {"step": step, **{k: np.round(np.asarray(v), 5).tolist() for k, v in values.items()}}
