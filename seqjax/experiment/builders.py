"""The ``*_from_config`` builders: each maps one config section onto the config-free library.

Every builder takes an optional `Hyper`: the traced hyper-parameters of one run of a sweep
(`seqjax.experiment.sweep`). A field that is None comes from the config; a field that holds a
(traced) scalar replaces the config's value, so a swept run computes what the run with that
value written in its config computes (up to float rounding: a traced scalar can change how
XLA fuses the arithmetic around it). No traced value is ever written into a config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from seqjax.baselines import BASELINES
from seqjax.cells import CELLS, Cell
from seqjax.experiment.config import (
    BPTTConfig,
    CheckpointConfig,
    ClipConfig,
    EarlyStoppingConfig,
    ExperimentConfig,
    ModelConfig,
    OptimizerConfig,
    ParallelConfig,
    ScheduleConfig,
    TaskConfig,
    cell_options,
)
from seqjax.layers import Layer, active_rate, bidirectional, stack
from seqjax.losses import task_loss
from seqjax.models import Model, many_to_many, many_to_one, seq2seq
from seqjax.parallel import auto_seed_batch, check_mesh_fits, make_mesh
from seqjax.tasks import Batch, Task, get_task
from seqjax.train import (
    BPTTOptions,
    EarlyStopping,
    checkpoint_manager,
    get_clipping,
    get_schedule,
    make_optimizer,
)

__all__ = [
    "EVAL_SEED_OFFSET",
    "NO_HYPER",
    "TRACED",
    "Hyper",
    "bptt_from_config",
    "cell_from_config",
    "checkpoint_manager_from_config",
    "clipping_from_config",
    "early_stopping_from_config",
    "layer_from_config",
    "make_eval_fn",
    "make_loss_fn",
    "mesh_from_config",
    "model_from_config",
    "optimizer_from_config",
    "schedule_from_config",
    "seed_batch_from_config",
    "task_from_config",
]

EVAL_SEED_OFFSET = 1_000_003  # evaluation data comes from keys no training step uses


class Hyper(NamedTuple):
    """Hyper-parameters of one run that a sweep traces (None: the config's value).

    Under ``jax.vmap`` each field holds one run's value of a leading ``[runs]`` array.
    """

    learning_rate: Any = None
    clip_threshold: Any = None
    weight_decay: Any = None
    forget_bias: Any = None
    recurrent_scale: Any = None
    dropout: Any = None
    input_dropout: Any = None
    output_dropout: Any = None
    recurrent_dropout: Any = None


TRACED: dict[str, str] = {
    "optimizer.learning_rate": "learning_rate",
    "optimizer.clip.threshold": "clip_threshold",
    "optimizer.weight_decay": "weight_decay",
    "model.forget_bias": "forget_bias",
    "model.recurrent_scale": "recurrent_scale",
    "model.dropout": "dropout",
    "model.input_dropout": "input_dropout",
    "model.output_dropout": "output_dropout",
    "model.recurrent_dropout": "recurrent_dropout",
}
"""Sweepable config keys that change no shape, and the `Hyper` field each one fills."""

NO_HYPER = Hyper()


def _pick(hyper_value: Any, config_value: Any) -> Any:
    return config_value if hyper_value is None else hyper_value


# ---------------------------------------------------------------------------------- task, model


def task_from_config(cfg: TaskConfig) -> Task:
    """The task named by the ``task`` section, built with its options."""
    return get_task(cfg.name, **cfg.options)


def cell_from_config(cfg: ModelConfig, hyper: Hyper = NO_HYPER) -> Cell:
    """One cell of the ``model`` section (`seqjax.experiment.config.cell_options`)."""
    options = cell_options(cfg)
    for key in ("forget_bias", "recurrent_scale"):
        if getattr(hyper, key) is not None:
            options[key] = getattr(hyper, key)
    return CELLS[cfg.cell](cfg.hidden_size, **options)


def layer_from_config(cfg: ModelConfig, hyper: Hyper = NO_HYPER) -> Cell | Layer:
    """The recurrent body: one cell, a stack, bidirectional layers, with regularisation."""
    cells = [cell_from_config(cfg, hyper) for _ in range(cfg.num_layers)]
    regular = {
        "recurrent_dropout": _pick(hyper.recurrent_dropout, cfg.recurrent_dropout),
        "zoneout": cfg.zoneout,
    }
    if cfg.bidirectional:
        items = [bidirectional(c, **regular) for c in cells]
        regular = {}
    else:
        items = cells
    edges = {
        "input_dropout": _pick(hyper.input_dropout, cfg.input_dropout),
        "output_dropout": _pick(hyper.output_dropout, cfg.output_dropout),
    }
    dropout = _pick(hyper.dropout, cfg.dropout)
    rates = [dropout, *edges.values(), *regular.values()]
    if len(items) == 1 and not any(active_rate(r) for r in rates):
        return items[0]
    return stack(items, dropout=dropout, residual=cfg.residual, **regular, **edges)


def model_from_config(
    cfg: ModelConfig, task: Task, bptt: BPTTOptions | None = None, hyper: Hyper = NO_HYPER
) -> Model:
    """The model for ``task``'s pattern and sizes from the ``model`` section.

    ``bptt``'s ``truncate`` and ``remat`` go to the unroll (`bptt_from_config`).
    """
    unroll_options: dict[str, Any] = {"truncate": None, "remat": "auto"}
    if bptt is not None:
        unroll_options = {"truncate": bptt.truncate, "remat": bptt.remat}
    if cfg.kind != "recurrent":
        if task.pattern not in ("many_to_one", "many_to_many"):
            raise ValueError(
                f"model.kind={cfg.kind!r} supports many_to_one and many_to_many tasks, not "
                f"task {task.name!r} ({task.pattern})"
            )
        builder = BASELINES[cfg.kind]
        return builder(task.input_size, task.output_size, pattern=task.pattern, **cfg.options)
    layer = layer_from_config(cfg, hyper)
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
        decoder = cell_from_config(cfg, hyper)
        return seq2seq(layer, decoder, task.input_size, task.output_size, **unroll_options)
    raise ValueError(f"task {task.name!r} has pattern {task.pattern!r}, which no model serves")


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

    def batch_loss(outputs: jax.Array, batch: Batch) -> tuple[jax.Array, dict]:
        counted = None if task.metric_mask is None else task.metric_mask(batch)
        return task_loss(task.loss, outputs, batch.targets, batch.mask, counted)

    if streaming:

        def streaming_loss(params, batch, carry, key):
            outputs, carry = outputs_of(params, batch, carry, key)
            loss, aux = batch_loss(outputs, batch)
            return loss, (aux, carry)

        return streaming_loss

    def loss_fn(params, batch, key):
        outputs, _ = outputs_of(params, batch, None, key)
        return batch_loss(outputs, batch)

    return loss_fn


def make_eval_fn(
    model: Model, task: Task, *, batch_size: int, num_batches: int, seed: int = 0
) -> Callable[[Any], dict[str, jax.Array]]:
    """``eval_fn(params) -> {"loss", metric...}``: the mean over held-out batches, no dropout.

    The batches are sampled from a fixed key derived from ``seed``, never used by training,
    with ``task.sample_eval`` where the task holds out evaluation data (else ``task.sample``).
    """
    loss_fn = make_loss_fn(model, task)
    sample = task.sample if task.sample_eval is None else task.sample_eval
    keys = jax.random.split(jax.random.key(seed + EVAL_SEED_OFFSET), num_batches)

    def eval_fn(params):
        def one(key):
            loss, aux = loss_fn(params, sample(key, batch_size), None)
            return {"loss": loss, **aux}

        return jax.tree.map(jnp.mean, jax.lax.map(one, keys))

    return eval_fn


# ---------------------------------------------------------------------------------- optimiser


def schedule_from_config(cfg: ScheduleConfig, learning_rate: Any) -> optax.Schedule:
    """The learning-rate schedule ``step -> lr`` with peak ``learning_rate``."""
    make = get_schedule(cfg.name)
    if cfg.name == "constant":
        return make(learning_rate)
    if cfg.name == "warmup_cosine":
        return make(
            init_value=cfg.init_value,
            peak_value=learning_rate,
            warmup_steps=cfg.warmup_steps,
            decay_steps=cfg.decay_steps,
            end_value=cfg.end_value,
        )
    return make(
        init_value=learning_rate,
        transition_steps=cfg.transition_steps,
        decay_rate=cfg.decay_rate,
        staircase=cfg.staircase,
        end_value=cfg.end_value if cfg.end_value > 0 else None,
    )


def clipping_from_config(cfg: ClipConfig, hyper: Hyper = NO_HYPER) -> optax.GradientTransformation:
    """Gradient clipping of the ``optimizer.clip`` section (`seqjax.train.get_clipping`)."""
    return get_clipping(cfg.method, _pick(hyper.clip_threshold, cfg.threshold))


def optimizer_from_config(
    cfg: OptimizerConfig, hyper: Hyper = NO_HYPER, *, include_clip: bool = True
) -> optax.GradientTransformation:
    """The Optax chain ``clip -> [L2 weight decay] -> optimiser(schedule)`` of the section
    (`seqjax.train.make_optimizer`).

    Args:
      cfg: the ``optimizer`` section.
      hyper: traced learning rate, weight decay or clipping threshold of a sweep's run.
      include_clip: put the clipping at the head of the chain. The experiment's train step
        applies the clipping itself, to report gradient norms after clipping: it builds the
        optimiser with ``include_clip=False`` and passes `clipping_from_config` to
        ``make_trainer(..., clip=...)``; the updates are the same.
    """
    options: dict[str, Any] = {}
    if cfg.name == "momentum":
        options = {"momentum": cfg.momentum, "nesterov": cfg.nesterov}
    elif cfg.name in ("adam", "adamw"):
        options = {"b1": cfg.b1, "b2": cfg.b2, "eps": cfg.eps}
    elif cfg.name == "rmsprop":
        options = {"decay": cfg.decay, "eps": cfg.eps}
    return make_optimizer(
        cfg.name,
        schedule_from_config(cfg.schedule, _pick(hyper.learning_rate, cfg.learning_rate)),
        weight_decay=_pick(hyper.weight_decay, cfg.weight_decay),
        clip=clipping_from_config(cfg.clip, hyper) if include_clip else None,
        **options,
    )


# ---------------------------------------------------------------------------------- training


def bptt_from_config(cfg: BPTTConfig) -> BPTTOptions:
    """`seqjax.train.BPTTOptions` from the ``train.bptt`` section."""
    return BPTTOptions(truncate=cfg.truncate, remat=cfg.remat, window=cfg.window)


def early_stopping_from_config(cfg: EarlyStoppingConfig | None) -> EarlyStopping | None:
    """`seqjax.train.EarlyStopping` from its section (None when the section is absent)."""
    if cfg is None:
        return None
    return EarlyStopping(cfg.metric, cfg.mode, cfg.patience, cfg.min_delta)


def checkpoint_manager_from_config(cfg: CheckpointConfig, directory: Any) -> Any:
    """`seqjax.train.checkpoint_manager` with ``every`` and ``keep`` from the section."""
    return checkpoint_manager(directory, every=cfg.every, keep=cfg.keep)


def mesh_from_config(
    cfg: ParallelConfig, *, batch_size: int, num_runs: int | None = None
) -> Mesh | None:
    """The mesh of the ``parallel`` section, or None when it asks for a single device.

    Raises:
      ValueError: naming ``parallel.seeds`` / ``parallel.data`` when it does not divide the
        runs or the batch (`seqjax.parallel.check_mesh_fits`).
    """
    mesh = make_mesh(cfg.data, cfg.seeds)
    if mesh.size == 1:
        return None
    check_mesh_fits(mesh, batch_size=batch_size, num_runs=num_runs)
    return mesh


def seed_batch_from_config(cfg: ExperimentConfig, num_runs: int, mesh: Mesh | None) -> int | None:
    """What ``parallel.seed_batch`` means for ``num_runs`` runs: a group size, or None (all at
    once); ``"auto"`` is `seqjax.parallel.auto_seed_batch` for recurrent models, all at once
    for the baselines."""
    value = cfg.parallel.seed_batch
    if value != "auto":
        return value
    if cfg.model.kind != "recurrent":
        return None
    return auto_seed_batch(
        num_runs, batch_size=cfg.train.batch_size, hidden_size=cfg.model.hidden_size, mesh=mesh
    )
