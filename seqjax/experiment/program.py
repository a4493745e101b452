"""One program from a config: every run of it (seeds, times a traced sweep's grid) trained
together, and `train_from_config`, the whole training as one function of the run keys.

    program = Experiment(load_config("configs/adding/lstm.yaml"))
    state, data_keys = program.trainer.init(program.run_keys())
    state, metrics = program.trainer.run(state, data_keys, 100)     # metrics [runs, 100]

The per-run trainer (`seqjax.train.make_trainer`, pure functions) is mapped over the leading
run axis by `seqjax.parallel.map_runs` (all runs vmapped, or ``parallel.seed_batch`` at a
time, split over the mesh's seed devices) and compiled once by
`seqjax.train.compile_trainer`, with the mesh's shardings when there is one. A sweep passes
each run's traced values (`seqjax.experiment.builders.Hyper`) to the same builders a single
run uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from seqjax.experiment.builders import (
    NO_HYPER,
    Hyper,
    bptt_from_config,
    clipping_from_config,
    make_eval_fn,
    make_loss_fn,
    mesh_from_config,
    model_from_config,
    optimizer_from_config,
    seed_batch_from_config,
    task_from_config,
)
from seqjax.experiment.config import ExperimentConfig, check_bptt_fits
from seqjax.experiment.sweep import check_one_program, grid_cells, grid_hyper
from seqjax.models import Model
from seqjax.parallel import map_runs, shard_batch_fn, trainer_shardings
from seqjax.tasks import Task
from seqjax.train import Metrics, Trainer, TrainState, compile_trainer, make_trainer

__all__ = ["Experiment", "train_from_config"]


class Experiment:
    """Everything built from one config before any training: a value, cheap to make.

    Every config error is raised here, before anything compiles or is written.

    Attributes:
      cfg: the config (a ``sweep`` holds only traced keys: one program).
      task: the `seqjax.tasks.Task`.
      model: the `seqjax.models.Model` at the config's values.
      mesh: the device mesh (None: one device).
      hyper: the traced values of every run, ``[runs]`` arrays (empty without a sweep).
      trainer: the compiled `seqjax.train.Trainer` over the leading run axis.
      eval_fn: ``eval_fn(params) -> {"loss", metric...}`` of one run (held-out batches).
    """

    def __init__(self, cfg: ExperimentConfig):
        check_one_program(cfg)
        self.cfg = cfg
        self.task: Task = task_from_config(cfg.task)
        shapes = jax.eval_shape(lambda k: self.task.sample(k, 1), jax.random.key(0))
        check_bptt_fits(cfg.train.bptt, int(shapes.inputs.shape[1]))
        self.bptt = bptt_from_config(cfg.train.bptt)
        if self.bptt.window is not None and self.task.pattern != "many_to_many":
            raise ValueError(
                f"train.bptt.mode=streaming needs a many_to_many task (a stream), not "
                f"{self.task.name!r} ({self.task.pattern})"
            )
        self.model: Model = model_from_config(cfg.model, self.task, self.bptt)
        self.hyper = grid_hyper(cfg)
        batch_size = cfg.train.batch_size
        self.mesh = mesh_from_config(cfg.parallel, batch_size=batch_size, num_runs=self.num_runs)
        self.seed_batch = seed_batch_from_config(cfg, self.num_runs, self.mesh)
        self.trainer = self._runs_trainer()
        self.eval_fn = make_eval_fn(
            self.model,
            self.task,
            batch_size=cfg.log.eval_batch_size,
            num_batches=cfg.log.eval_batches,
        )

    @property
    def num_runs(self) -> int:
        """Seeds times the cells of a traced sweep's grid."""
        return len(self.cfg.seeds) * len(grid_cells(self.cfg))

    def run_keys(self) -> jax.Array:
        """One key per run: ``[seeds]``, or ``[grid * seeds]`` (grid-major) under a sweep."""
        keys = jnp.stack([jax.random.key(s) for s in self.cfg.seeds])
        return jnp.concatenate([keys] * len(grid_cells(self.cfg)))

    def run_trainer(self, hyper: Hyper = NO_HYPER) -> Trainer:
        """The pure trainer of one run with the traced values ``hyper`` (`make_trainer`)."""
        cfg = self.cfg
        traced = any(v is not None for v in hyper)
        model = model_from_config(cfg.model, self.task, self.bptt, hyper) if traced else self.model
        batch_size = cfg.train.batch_size
        streaming = self.bptt.window is not None
        initial_carry = None
        if streaming:
            one = model.initial_carry()
            initial_carry = jax.tree.map(lambda c: jnp.broadcast_to(c, (batch_size, *c.shape)), one)
        return make_trainer(
            model.init,
            make_loss_fn(model, self.task, streaming=streaming),
            optimizer_from_config(cfg.optimizer, hyper, include_clip=False),
            shard_batch_fn(lambda key: self.task.sample(key, batch_size), self.mesh),
            clip=clipping_from_config(cfg.optimizer.clip, hyper),
            window=self.bptt.window,
            initial_carry=initial_carry,
            max_bad_steps=cfg.train.max_bad_steps,
        )

    def _runs_trainer(self) -> Trainer:
        hyper, mesh, batch = self.hyper, self.mesh, self.seed_batch

        def over_runs(fn: Callable[..., Any], *args: Any, grouped: bool = False) -> Any:
            return map_runs(fn, (*args, hyper), batch=batch if grouped else None, mesh=mesh)

        def init(keys: jax.Array) -> tuple[TrainState, jax.Array]:
            return over_runs(lambda k, h: self.run_trainer(h).init(k), keys)

        def prepare(state: TrainState, data_keys: jax.Array) -> tuple[TrainState, Any]:
            return over_runs(lambda s, d, h: self.run_trainer(h).prepare(s, d), state, data_keys)

        def train_step(state: TrainState, batch: Any) -> tuple[TrainState, Metrics]:
            return over_runs(lambda s, b, h: self.run_trainer(h).train_step(s, b), state, batch)

        def update(state: TrainState, data_keys: jax.Array) -> tuple[TrainState, Metrics]:
            return over_runs(lambda s, d, h: self.run_trainer(h).update(s, d), state, data_keys)

        def run(state: TrainState, data_keys: jax.Array, num_steps: int):
            def one(s, d, h):
                return self.run_trainer(h).run(s, d, num_steps)

            return over_runs(one, state, data_keys, grouped=True)

        pure = Trainer(init=init, prepare=prepare, train_step=train_step, update=update, run=run)
        return compile_trainer(pure, trainer_shardings(mesh))

    def runs_eval_fn(self) -> Callable[[Any], dict[str, jax.Array]]:
        """``eval_fn`` over the leading run axis of the parameters, not jitted: in the groups
        and on the devices the runs train on."""

        def eval_runs(params: Any) -> dict[str, jax.Array]:
            return map_runs(self.eval_fn, (params,), batch=self.seed_batch, mesh=self.mesh)

        return eval_runs


def train_from_config(cfg: ExperimentConfig) -> Callable[[jax.Array], tuple[TrainState, Metrics]]:
    """The whole training of ``cfg`` as one function of the run keys (PureJaxRL's shape).

    Returns:
      ``train(keys) -> (state, metrics)``: ``keys [runs]`` (e.g. ``Experiment(cfg).run_keys()``),
      the final `seqjax.train.TrainState` and every update's metrics ``[runs, train.steps]``.
      The host loop of `seqjax.run` (logging, evaluation, early stopping, checkpoints) runs the
      same updates in chunks.
    """
    program = Experiment(cfg)
    steps = cfg.train.steps

    def train(keys: jax.Array) -> tuple[TrainState, Metrics]:
        state, data_keys = program.trainer.init(keys)
        return program.trainer.run(state, data_keys, steps)

    return train
