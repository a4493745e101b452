"""Typed, frozen experiment configs, validated on construction.

Each section is a frozen ``pydantic`` dataclass: unknown keys, wrong types and bad values are
errors that name the dotted key path (``optimizer.learning_rate``), raised before anything is
compiled. Ints and floats are strict (``"0.1"`` or ``True`` is not a float), so a typo in a YAML
file cannot turn into a silently coerced value.

`ExperimentConfig` holds the sections: `TaskConfig`, `ModelConfig`, `OptimizerConfig` (with
`ClipConfig` and `ScheduleConfig`), `TrainConfig` (with `BPTTConfig`, `CheckpointConfig` and
`EarlyStoppingConfig`), `LogConfig`, `DiagnosticsConfig`, `ParallelConfig` and a ``sweep``.
Names of tasks, cells and baselines are checked against the live registries (``TASKS``,
``CELLS``, ``BASELINES``) when a config is loaded, so a cell registered by a user module
(``seqjax train CONFIG --import MODULE``) can be named in a config.

Only the ``*_from_config`` functions of `seqjax.experiment` read these records (house style,
rule 5). Build one from plain
data (a dict parsed from YAML) with `parse_config`, which turns pydantic's error into a
`ConfigError` listing every bad key::

    cfg = parse_config(OptimizerConfig, {"name": "adam", "learning_rate": 3e-4},
                       path="optimizer")

Derive a changed copy with ``dataclasses.replace(cfg, learning_rate=1e-3)``: it validates again.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import os
import re
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
import pydantic
import yaml
from pydantic import AfterValidator, ConfigDict, Field, Strict, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass

from seqjax.baselines import BASELINES
from seqjax.cells import CELLS
from seqjax.tasks import TASKS
from seqjax.train import CLIPPINGS, OPTIMIZERS, SCHEDULES

__all__ = [
    "BPTTConfig",
    "CheckpointConfig",
    "ClipConfig",
    "ConfigError",
    "DiagnosticsConfig",
    "EarlyStoppingConfig",
    "ExperimentConfig",
    "LogConfig",
    "ModelConfig",
    "OptimizerConfig",
    "ParallelConfig",
    "ScheduleConfig",
    "TaskConfig",
    "TrainConfig",
    "WandbConfig",
    "apply_overrides",
    "check_bptt_fits",
    "config_from_data",
    "dump_config",
    "load_config",
    "parse_config",
    "parse_yaml",
    "resolve_config",
]

SECTION = ConfigDict(extra="forbid")
"""The pydantic settings of every section: ``@dataclass(frozen=True, config=SECTION)``."""

# Strict numbers: an int is accepted where a float is expected, nothing else is coerced.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
PositiveInt = Annotated[int, Strict(), Field(ge=1)]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
PositiveFloat = Annotated[float, Strict(), Field(gt=0)]
NonNegativeFloat = Annotated[float, Strict(), Field(ge=0)]
UnitInterval = Annotated[float, Strict(), Field(ge=0, lt=1)]  # [0, 1)
OpenUnitInterval = Annotated[float, Strict(), Field(gt=0, lt=1)]  # (0, 1)


def _registered(table: dict[str, Any], what: str) -> AfterValidator:
    """A name checked against a live registry when the config is validated."""

    def check(name: str) -> str:
        if name not in table:
            raise ValueError(f"unknown {what} {name!r}; registered: {sorted(table)}")
        return name

    return AfterValidator(check)


OptimizerName = Annotated[str, Strict(), _registered(OPTIMIZERS, "optimizer")]
ScheduleName = Annotated[str, Strict(), _registered(SCHEDULES, "schedule")]
ClipMethod = Annotated[str, Strict(), _registered(CLIPPINGS, "clipping method")]
BPTTMode = Literal["full", "truncated", "streaming"]


class ConfigError(ValueError):
    """A config value is missing, unknown, of the wrong type or out of range.

    Attributes:
      errors: ``(dotted_key, message)`` pairs, one per bad value.
    """

    def __init__(self, errors: list[tuple[str, str]], section: str = "config"):
        self.errors = errors
        lines = [f"  {key}: {msg}" for key, msg in errors]
        super().__init__(
            f"invalid {section} ({len(errors)} error{'s' if len(errors) > 1 else ''}):\n"
            + "\n".join(lines)
        )


def _dotted(prefix: str, loc: tuple[Any, ...]) -> str:
    parts = [prefix] if prefix else []
    parts += [str(p) for p in loc]
    return ".".join(parts) or "<root>"


T = TypeVar("T")


def _field_names(cls: Any, loc: tuple[Any, ...]) -> list[str]:
    """The field names of the section at ``loc`` below ``cls`` (empty if it cannot tell)."""
    for part in loc:
        if not dataclasses.is_dataclass(cls):
            return []
        hint = typing.get_type_hints(cls).get(str(part))
        candidates = [a for a in typing.get_args(hint) if dataclasses.is_dataclass(a)]
        cls = hint if dataclasses.is_dataclass(hint) else (candidates[0] if candidates else None)
    if not dataclasses.is_dataclass(cls):
        return []
    return [f.name for f in dataclasses.fields(cls)]


def parse_config(cls: type[T], data: Any, *, path: str = "") -> T:
    """Validates plain data (dicts, lists, numbers, strings) into the config record ``cls``.

    Args:
      cls: a config section, e.g. `OptimizerConfig`.
      data: a dict of its fields (nested sections as nested dicts), or an instance of ``cls``.
      path: the dotted key of this section inside the whole config (``"optimizer"``), used to
        name bad keys in the error.

    Returns:
      The validated, frozen ``cls`` instance.

    Raises:
      ConfigError: naming every bad key by its dotted path, what was received and what was
        expected.
    """
    try:
        return pydantic.TypeAdapter(cls).validate_python(data)
    except pydantic.ValidationError as e:
        errors = []
        for err in e.errors(include_url=False):
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
                valid = _field_names(cls, err["loc"][:-1])
                msg = "unknown key" + (f"; valid keys: {valid}" if valid else "")
            elif err["type"] != "missing":
                msg += f" (got {err['input']!r})"
            errors.append((_dotted(path, err["loc"]), msg))
        raise ConfigError(errors, section=path or cls.__name__) from None


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain nested dicts, e.g. to write the resolved config of a run."""
    return dataclasses.asdict(cfg)


# ---------------------------------------------------------------------------------- optimiser


@dataclass(frozen=True, config=SECTION)
class ClipConfig:
    """Gradient clipping, applied before the optimiser.

    Attributes:
      method: ``"global_norm"`` (``g := g * min(1, threshold / ||g||)`` over all leaves),
        ``"value"`` (each element into ``[-threshold, threshold]``) or ``"none"``.
      threshold: the clipping threshold c, > 0.
    """

    method: ClipMethod = "none"
    threshold: PositiveFloat = 1.0


@dataclass(frozen=True, config=SECTION)
class ScheduleConfig:
    """Learning-rate schedule; the peak value is ``OptimizerConfig.learning_rate``.

    Attributes:
      name: ``"constant"``, ``"warmup_cosine"`` (linear warmup from ``init_value`` to the
        learning rate over ``warmup_steps``, then cosine decay to ``end_value`` at
        ``decay_steps``, counted from step 0) or ``"exponential"``
        (``lr * decay_rate ** (step / transition_steps)``, floored at ``end_value``).
      warmup_steps: warmup length (warmup_cosine).
      decay_steps: total schedule length including warmup (warmup_cosine); > warmup_steps.
      init_value: learning rate at step 0 (warmup_cosine).
      end_value: final / lowest learning rate (warmup_cosine, exponential).
      transition_steps: steps per factor ``decay_rate`` (exponential).
      decay_rate: multiplicative decay per ``transition_steps`` (exponential), in (0, 1).
      staircase: decay in discrete jumps (exponential).
    """

    name: ScheduleName = "constant"
    warmup_steps: NonNegativeInt = 0
    decay_steps: PositiveInt = 1000
    init_value: NonNegativeFloat = 0.0
    end_value: NonNegativeFloat = 0.0
    transition_steps: PositiveInt = 1000
    decay_rate: OpenUnitInterval = 0.5
    staircase: bool = False

    @field_validator("decay_steps")
    @classmethod
    def _decay_after_warmup(cls, v: int, info: ValidationInfo) -> int:
        warmup = info.data.get("warmup_steps", 0)
        if info.data.get("name") == "warmup_cosine" and v <= warmup:
            raise ValueError(
                f"decay_steps={v} must exceed warmup_steps={warmup} "
                f"(decay_steps counts the whole schedule, warmup included)"
            )
        return v


@dataclass(frozen=True, config=SECTION)
class OptimizerConfig:
    """The optimiser: an Optax chain ``clip -> [L2 weight decay] -> optimiser(schedule)``.

    Attributes:
      name: one of ``seqjax.train.OPTIMIZERS``: sgd, momentum, adam, adamw, rmsprop.
      learning_rate: the (peak) learning rate, > 0.
      momentum: heavy-ball momentum of the "momentum" optimiser, in [0, 1).
      nesterov: Nesterov momentum (momentum).
      b1: Adam's first-moment decay, in [0, 1).
      b2: Adam's second-moment decay, in [0, 1).
      decay: RMSProp's squared-gradient decay, in (0, 1) (plain RMSProp, no momentum).
      eps: numerical stabiliser (adam, adamw, rmsprop), > 0.
      weight_decay: >= 0. Decoupled (scaled by the learning rate, as ``optax.adamw``) for adamw;
        an L2 term ``weight_decay * params`` added to the gradient for the others.
      clip: gradient clipping.
      schedule: learning-rate schedule.
    """

    name: OptimizerName = "adam"
    learning_rate: PositiveFloat = 1e-3
    momentum: UnitInterval = 0.9
    nesterov: bool = False
    b1: UnitInterval = 0.9
    b2: UnitInterval = 0.999
    decay: OpenUnitInterval = 0.9
    eps: PositiveFloat = 1e-8
    weight_decay: NonNegativeFloat = 0.0
    clip: ClipConfig = ClipConfig()
    schedule: ScheduleConfig = ScheduleConfig()


# ---------------------------------------------------------------------------------- training


@dataclass(frozen=True, config=SECTION)
class BPTTConfig:
    """How far gradients flow back in time.

    Attributes:
      mode: ``"full"`` (through the whole sequence), ``"truncated"`` (inside each sequence,
        at most ``truncate`` steps back: ``unroll(truncate=k)``) or ``"streaming"`` (a long
        stream cut into windows of ``window`` steps, one update per window, the carry passed
        on without gradient: Williams & Peng's BPTT(k, k) across updates).
      truncate: k of ``"truncated"``; required there and not allowed otherwise.
      window: k of ``"streaming"``; required there and not allowed otherwise.
      remat: rematerialise the unroll in the backward pass (``unroll(remat=...)``): False,
        True (windows of about sqrt(T) steps), a window size, ``"step"`` (every step) or
        ``"auto"`` (``"step"`` where it measured faster, `seqjax.unroll.auto_remat`).
    """

    mode: BPTTMode = "full"
    truncate: PositiveInt | None = Field(default=None, validate_default=True)
    window: PositiveInt | None = Field(default=None, validate_default=True)
    remat: bool | PositiveInt | Literal["step", "auto"] = "auto"

    @field_validator("truncate")
    @classmethod
    def _truncate_iff_truncated(cls, v: int | None, info: ValidationInfo) -> int | None:
        mode = info.data.get("mode")
        if mode == "truncated" and v is None:
            raise ValueError("mode 'truncated' needs truncate: k (gradient horizon in steps)")
        if mode is not None and mode != "truncated" and v is not None:
            raise ValueError(f"truncate is only used with mode 'truncated', not {mode!r}")
        return v

    @field_validator("window")
    @classmethod
    def _window_iff_streaming(cls, v: int | None, info: ValidationInfo) -> int | None:
        mode = info.data.get("mode")
        if mode == "streaming" and v is None:
            raise ValueError("mode 'streaming' needs window: k (steps per update)")
        if mode is not None and mode != "streaming" and v is not None:
            raise ValueError(f"window is only used with mode 'streaming', not {mode!r}")
        return v


@dataclass(frozen=True, config=SECTION)
class CheckpointConfig:
    """Orbax checkpoints of the whole train state.

    Attributes:
      every: save every this many steps (a multiple of ``TrainConfig.chunk_size``).
      keep: how many of the latest checkpoints to keep.
    """

    every: PositiveInt = 1000
    keep: PositiveInt = 3


@dataclass(frozen=True, config=SECTION)
class EarlyStoppingConfig:
    """Stop when a validation metric has not improved for ``patience`` evaluations.

    Attributes:
      metric: the name of a metric returned by evaluation (``"loss"``, ``"accuracy"``, ...).
      mode: ``"min"`` (lower is better) or ``"max"``.
      patience: evaluations without improvement before stopping.
      min_delta: the least change that counts as an improvement, >= 0.
    """

    metric: str = "loss"
    mode: Literal["min", "max"] = "min"
    patience: PositiveInt = 5
    min_delta: NonNegativeFloat = 0.0


@dataclass(frozen=True, config=SECTION)
class TrainConfig:
    """The training loop.

    Attributes:
      steps: number of optimiser updates.
      batch_size: sequences per update.
      chunk_size: updates per compiled ``lax.scan`` chunk; the host logs, evaluates and
        checkpoints between chunks.
      bptt: gradient flow in time.
      max_bad_steps: after this many consecutive updates with a non-finite loss or gradient
        (each is skipped), a run is frozen and marked diverged while the other runs of its
        program go on; the training stops with an error once every run has diverged.
      eval_every: evaluate every this many steps (a multiple of ``chunk_size``); None: never.
      early_stopping: stop on a validation metric (needs ``eval_every``); None: never.
      checkpoint: save the train state; None: never.
    """

    steps: PositiveInt = 1000
    batch_size: PositiveInt = 32
    chunk_size: PositiveInt = 100
    bptt: BPTTConfig = BPTTConfig()
    max_bad_steps: PositiveInt = 10
    eval_every: PositiveInt | None = None
    early_stopping: EarlyStoppingConfig | None = None
    checkpoint: CheckpointConfig | None = None

    @field_validator("eval_every")
    @classmethod
    def _eval_on_chunk(cls, v: int | None, info: ValidationInfo) -> int | None:
        chunk = info.data.get("chunk_size")
        if v is not None and chunk is not None and v % chunk:
            raise ValueError(f"eval_every={v} must be a multiple of chunk_size={chunk}")
        return v

    @field_validator("early_stopping")
    @classmethod
    def _early_stopping_needs_eval(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None and info.data.get("eval_every", 0) is None:
            raise ValueError("early_stopping needs eval_every (how often to evaluate)")
        return v

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint_on_chunk(cls, v: Any, info: ValidationInfo) -> Any:
        chunk = info.data.get("chunk_size")
        if v is not None and chunk is not None and v.every % chunk:
            raise ValueError(f"checkpoint.every={v.every} must be a multiple of chunk_size={chunk}")
        return v


def check_bptt_fits(bptt: BPTTConfig, seq_len: int, *, path: str = "train.bptt") -> None:
    """Checks the BPTT window against a known sequence length (call it once the task is known).

    Raises:
      ConfigError: naming ``{path}.window`` / ``{path}.truncate`` when it exceeds ``seq_len``.
    """
    errors = []
    if bptt.window is not None and bptt.window > seq_len:
        errors.append(
            (
                f"{path}.window",
                f"window={bptt.window} is longer than the sequence (T={seq_len}); "
                f"use window <= {seq_len}",
            )
        )
    if bptt.truncate is not None and bptt.truncate > seq_len:
        errors.append(
            (
                f"{path}.truncate",
                f"truncate={bptt.truncate} is longer than the sequence (T={seq_len}), which is "
                f"full BPTT; use mode 'full' or truncate <= {seq_len}",
            )
        )
    if errors:
        raise ConfigError(errors, section=path)


# -------------------------------------------------------------------------- experiment sections

CELL_KEYS = (
    "activation",
    "forget_bias",
    "chrono",
    "input_init",
    "recurrent_init",
    "recurrent_scale",
    "fast",
)
"""Keys of the ``model`` section that are keyword arguments of cell factories. Each is passed
to the cell when it differs from its default here; a cell whose factory does not take it
makes that an error (`cell_options`)."""


@dataclass(frozen=True, config=SECTION)
class TaskConfig:
    """The task: a name from ``seqjax.tasks.TASKS`` and the keyword arguments of its factory.

    In YAML the arguments sit next to the name (``task: {name: adding, length: 150}``);
    `load_config` checks them against the factory's signature and types, so a misspelt
    argument is an error naming ``task.<argument>``.

    Attributes:
      name: the task's registry name.
      options: its factory's keyword arguments (the resolved config lists every one).
    """

    name: str = "adding"
    options: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, config=SECTION)
class ModelConfig:
    """The model. The sequence pattern (many-to-one, many-to-many, seq2seq) is the task's.

    The cell keys (`CELL_KEYS`) default to None, "the cell's own default"; each one set goes
    to the cell factory, and one that the chosen cell's factory does not take is an error.

    Attributes:
      kind: ``"recurrent"`` (cells below), or a baseline of ``seqjax.baselines.BASELINES``
        (``"transformer"``, ``"tcn"``), configured by ``options``.
      cell: a name in ``seqjax.cells.CELLS`` (cells registered by ``--import`` included).
      hidden_size: H of every layer.
      num_layers: stacked layers (a deep RNN).
      bidirectional: each layer runs forward and backward (outputs concatenated).
      activation: of the ``rnn`` cell, ``"tanh"`` or ``"relu"``.
      forget_bias: LSTM forget-gate bias at initialisation.
      chrono: T_max of chrono initialisation (LSTM, GRU), or None.
      input_init: ``"glorot"`` or ``"lecun"``; None: the cell's default.
      recurrent_init: ``"orthogonal"``, ``"identity"``, ``"glorot"`` or ``"lecun"``; None: the
        cell's default (the identity for ``irnn``, orthogonal for the others).
      recurrent_scale: factor on the recurrent weights of the ``rnn`` and ``irnn`` cells.
      dropout: between stacked layers, in training only.
      recurrent_dropout: variational dropout on the recurrent state (Gal & Ghahramani 2016).
      zoneout: zoneout probability on the carry (Krueger et al. 2017).
      input_dropout: dropout on the model's input sequence, in training only.
      output_dropout: dropout on the recurrent output before the readout, in training only.
      residual: residual connections between stacked layers of equal size.
      fast: run each cell through its fused whole-sequence kernel (``cells.lstm(...,
        fast=True)``, `seqjax.cells.fused`): a hand-written backward pass, the same values and
        gradients, faster on some small models (docs/pages/performance.md), no forward-mode
        autodiff.
      options: keyword arguments of the baseline builder (``kind`` transformer / tcn), or
        further keyword arguments of the cell factory (a user cell's own options).
    """

    kind: str = "recurrent"
    cell: str = "lstm"
    hidden_size: PositiveInt = 64
    num_layers: PositiveInt = 1
    bidirectional: bool = False
    activation: Literal["tanh", "relu"] | None = None
    forget_bias: Float | None = None
    chrono: PositiveFloat | None = None
    input_init: Literal["glorot", "lecun"] | None = None
    recurrent_init: Literal["orthogonal", "identity", "glorot", "lecun"] | None = None
    recurrent_scale: PositiveFloat | None = None
    dropout: UnitInterval = 0.0
    recurrent_dropout: UnitInterval = 0.0
    zoneout: UnitInterval = 0.0
    input_dropout: UnitInterval = 0.0
    output_dropout: UnitInterval = 0.0
    residual: bool = False
    fast: bool = False
    options: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, config=SECTION)
class WandbConfig:
    """Weights & Biases logging (the ``wandb`` extra: ``pip install 'seqjax[wandb]'``).

    Attributes:
      project: the W&B project.
      entity: the W&B user or team (None: your default).
      name: the W&B run's name (None: the run folder's name).
      group: a W&B group, e.g. one per sweep.
      tags: W&B tags.
      mode: ``"online"``, ``"offline"`` (files only, ``wandb sync`` later) or ``"disabled"``.
    """

    project: Annotated[str, Strict(), Field(min_length=1)]
    entity: str | None = None
    name: str | None = None
    group: str | None = None
    tags: list[str] = Field(default_factory=list)
    mode: Literal["online", "offline", "disabled"] = "online"


@dataclass(frozen=True, config=SECTION)
class LogConfig:
    """Logging and evaluation of a run.

    Attributes:
      every: log training metrics every this many steps (a multiple of ``train.chunk_size``;
        None: every chunk).
      eval_batch_size: sequences per evaluation batch.
      eval_batches: batches per evaluation (held-out samples from a key never used in
        training).
      progress: show progress: a bar on a terminal or in a notebook, else one line per logged
        chunk.
      plots: write ``plots/*.png`` at the end of the run.
      tensorboard: write TensorBoard event files into the run folder (``tensorboard/``).
      wandb: log to Weights & Biases as well (`WandbConfig`); None: off.
    """

    every: PositiveInt | None = None
    eval_batch_size: PositiveInt = 256
    eval_batches: PositiveInt = 4
    progress: bool = True
    plots: bool = True
    tensorboard: bool = True
    wandb: WandbConfig | None = None


@dataclass(frozen=True, config=SECTION)
class DiagnosticsConfig:
    """Gradient-flow diagnostics recorded during training (`seqjax.diagnostics.record`).

    Off unless the section is present (``diagnostics: {every: 100}``). At step 0 and every
    ``every`` steps the run records, on one fixed batch of the task, ``||dL/dh_t||`` per
    timestep, the spectral radius of the recurrent weights and the gate saturation (LSTM,
    GRU) into ``diagnostics.npz`` in the run folder; ``seqjax report`` plots them.

    Attributes:
      every: record every this many steps (a multiple of ``train.chunk_size``).
      batch_size: examples of the fixed diagnostics batch.
      eps: gate saturation threshold: a sigmoid unit outside ``[eps, 1 - eps]`` is saturated.
    """

    every: PositiveInt
    batch_size: PositiveInt = 16
    eps: Annotated[float, Strict(), Field(gt=0, lt=0.5)] = 0.05


@dataclass(frozen=True, config=SECTION)
class ParallelConfig:
    """How one program spreads over devices (``seqjax.parallel``).

    Attributes:
      data: devices that split each batch (data parallel; the parameters are replicated), or
        ``"auto"``: every device not used by ``seeds``. 1: no data parallelism.
      seeds: devices that split the seed axis (each trains its share of the seeds, vmapped),
        or ``"auto"``: every device not used by ``data``. 1: every seed on each device.
      seed_batch: how many runs (seeds, times the grid of a sweep) train at once: the runs go
        through in groups of this many, each group vmapped and the groups one after another
        in the same program (``jax.lax.map(..., batch_size=seed_batch)``). It bounds the
        memory of many runs, and on a small CPU it avoids vmapping models whose vmapped
        steps XLA:CPU splits over its threads at a loss (README, "Scaling up"). None: all
        runs at once. ``"auto"`` (the default): `seqjax.parallel.seed_batch_for`, all at
        once except for larger recurrent models on the CPU, where groups of 2 measured
        faster. With ``seeds`` over several devices, each device trains its share of the
        runs this many at a time. A k that does not divide the runs (per device) adds a
        last, smaller group, for which the training program is compiled a second time.
    """

    data: PositiveInt | Literal["auto"] = 1
    seeds: PositiveInt | Literal["auto"] = 1
    seed_batch: PositiveInt | Literal["auto"] | None = "auto"

    @field_validator("seeds")
    @classmethod
    def _one_auto(cls, v: Any, info: ValidationInfo) -> Any:
        if v == "auto" and info.data.get("data") == "auto":
            raise ValueError("data and seeds cannot both be 'auto'; fix one to a number")
        return v


@dataclass(frozen=True, config=SECTION)
class ExperimentConfig:
    """A whole experiment, one YAML file.

    Attributes:
      name: the run's name (the run folder is ``<out>/<name>-<timestamp>``).
      seeds: PRNG seeds; all are trained with ``jax.vmap`` in one program, at once or in
        vmapped groups (``parallel.seed_batch``, by default groups of 2 for larger recurrent
        models on the CPU).
      task, model, optimizer, train, log: the sections above.
      diagnostics: gradient-flow diagnostics during training, or None (off).
      sweep: dotted config key -> list of values (``{"optimizer.learning_rate": [1e-3,
        1e-2]}``); the grid is their product. Keys in ``seqjax.sweep.TRACED`` are vmapped in
        one program with the seeds; any other key makes separate programs (``seqjax sweep``).
      parallel: devices per program (data parallel, seeds over devices).
    """

    name: str = "run"
    seeds: list[NonNegativeInt] = Field(default_factory=lambda: [0], min_length=1)
    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    train: TrainConfig = TrainConfig()
    log: LogConfig = LogConfig()
    diagnostics: DiagnosticsConfig | None = None
    sweep: dict[str, list[Any]] = Field(default_factory=dict)
    parallel: ParallelConfig = ParallelConfig()

    @field_validator("sweep")
    @classmethod
    def _sweep_lists(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"sweep.{key}: give at least one value, got {values!r}")
            if len(values) != len({repr(x) for x in values}):
                raise ValueError(f"sweep.{key}: values must be distinct, got {values!r}")
        return v

    @field_validator("diagnostics")
    @classmethod
    def _diagnostics_on_chunk(cls, v: Any, info: ValidationInfo) -> Any:
        train = info.data.get("train")
        if v is not None and train is not None and v.every % train.chunk_size:
            raise ValueError(
                f"diagnostics.every={v.every} must be a multiple of "
                f"train.chunk_size={train.chunk_size}"
            )
        return v

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {v}")
        return v


# ------------------------------------------------------------------------------ YAML files


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """``yaml.safe_load`` semantics (no Python objects), plus exponent floats like ``3e-4``."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError([(f"{source}{where}", f"bad YAML: {problem}")], "YAML") from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Applies ``key.path=value`` overrides (values parsed as YAML) to a copy of ``data``."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError([(f"--set {item}", "expected KEY=VALUE, e.g. train.steps=500")])
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError([(f"--set {item}", f"{where} is a value, not a section")])
            node = child
        node[parts[-1]] = parse_yaml(raw, f"--set {item}")
    return data


def _check_call_options(
    factory: Any, options: dict[str, Any], path: str, what: str, skip: int = 0
) -> dict[str, Any]:
    """Checks keyword options against a factory's signature and types; fills the defaults."""
    params = list(inspect.signature(factory).parameters.values())[skip:]
    params = [p for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    hints = typing.get_type_hints(factory)
    names = [p.name for p in params]
    errors = []
    resolved = {}
    for name, value in options.items():
        if name not in names:
            errors.append((f"{path}.{name}", f"unknown argument of {what}; valid: {names}"))
            continue
        try:
            resolved[name] = pydantic.TypeAdapter(hints.get(name, Any)).validate_python(
                value, strict=True
            )
        except pydantic.ValidationError:
            errors.append((f"{path}.{name}", f"expected {hints.get(name)}, got {value!r}"))
    for p in params:
        if p.name not in resolved and p.name not in options:
            if p.default is inspect.Parameter.empty:
                errors.append((f"{path}.{p.name}", f"required argument of {what} is missing"))
            else:
                resolved[p.name] = p.default
    if errors:
        raise ConfigError(errors, path)
    return resolved


def _resolve_task(data: Any) -> dict[str, Any]:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("task", f"expected a mapping with a name, got {data!r}")])
    data = dict(data)
    if "options" in data:
        raise ConfigError([("task.options", "put task arguments next to task.name")])
    name = data.pop("name", TaskConfig().name)
    if name not in TASKS:
        raise ConfigError([("task.name", f"unknown task {name!r}; valid: {sorted(TASKS)}")])
    options = _check_call_options(TASKS[name], data, "task", f"task {name!r}")
    try:
        TASKS[name](**options)  # the factory's own range checks, before anything runs
    except ValueError as e:
        raise ConfigError([("task", str(e))]) from None
    return {"name": name, "options": options}


def factory_takes(factory: Any) -> set[str]:
    """The keyword arguments a registered factory takes (by its signature)."""
    params = inspect.signature(factory).parameters.values()
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def cell_options(model: ModelConfig | dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments the ``model`` section gives its cell factory: every key of
    `CELL_KEYS` that differs from its default, and ``options``.

    Raises:
      ConfigError: naming ``model.<key>`` when the cell's factory does not take it (the key
        would have no effect), with the registered cells that do.
    """
    data = model if isinstance(model, dict) else dataclasses.asdict(model)
    defaults = ModelConfig()
    name = data.get("cell", defaults.cell)
    takes = factory_takes(CELLS[name])
    out: dict[str, Any] = {}
    errors = []
    for key in CELL_KEYS:
        value = data.get(key, getattr(defaults, key))
        if value is None or value == getattr(defaults, key):
            continue
        if key in takes:
            out[key] = value
        else:
            users = sorted(c for c, f in CELLS.items() if key in factory_takes(f))
            errors.append(
                (
                    f"model.{key}",
                    f"has no effect on cell {name!r} (it applies to {users}); remove it",
                )
            )
    if errors:
        raise ConfigError(errors, "model")
    options = dict(data.get("options") or {})
    if options:
        extra = _check_call_options(CELLS[name], options, "model.options", f"cell {name!r}", skip=1)
        out.update({k: v for k, v in extra.items() if k in options})
    return out


def _resolve_model(data: Any) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return data  # pydantic names the bad type
    kind = data.get("kind", "recurrent")
    if kind == "recurrent":
        name = data.get("cell", ModelConfig().cell)
        if name not in CELLS:
            raise ConfigError(
                [("model.cell", f"unknown cell {name!r}; registered cells: {sorted(CELLS)}")]
            )
        cell_options(data)
        return data
    if kind not in BASELINES:
        valid = ["recurrent", *sorted(BASELINES)]
        raise ConfigError([("model.kind", f"unknown model kind {kind!r}; valid: {valid}")])
    builder = BASELINES[kind]
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError([("model.options", f"expected a mapping, got {options!r}")])
    options = {k: v for k, v in options.items() if k != "pattern"}
    resolved = _check_call_options(builder, options, "model.options", f"model {kind!r}", skip=2)
    resolved.pop("pattern", None)
    if "dtype" in resolved:  # a dtype by name, so the resolved config is plain YAML
        resolved["dtype"] = np.dtype(resolved["dtype"]).name
    return {**data, "options": resolved}


def config_from_data(data: Any, source: str = "config") -> ExperimentConfig:
    """An `ExperimentConfig` from plain data (a parsed YAML mapping)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([(source, f"expected a mapping of sections, got {type(data).__name__}")])
    data = dict(data)
    try:
        data["task"] = _resolve_task(data.get("task"))
        if "model" in data:
            data["model"] = _resolve_model(data["model"])
        return parse_config(ExperimentConfig, data)
    except ConfigError as e:
        raise ConfigError(e.errors, source) from None


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> ExperimentConfig:
    """Reads a YAML experiment config, applies ``--set`` overrides, validates everything.

    Raises:
      FileNotFoundError: naming the file.
      ConfigError: naming the file and every bad key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    data = parse_yaml(path.read_text(), str(path))
    if data is not None and not isinstance(data, dict):
        raise ConfigError([(str(path), "expected a mapping of sections at the top level")])
    data = apply_overrides(data or {}, list(overrides or []))
    return config_from_data(data, f"config {path}")


CONFIG_SOURCES = str | os.PathLike | dict | ExperimentConfig
"""What `resolve_config` (and so ``seqjax.run``) takes as a config."""


def resolve_config(config: CONFIG_SOURCES, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """An `ExperimentConfig` from a YAML file's path, a dict of sections or a config, with
    ``--set``-style ``overrides`` applied and everything validated.

    Raises:
      FileNotFoundError: naming a missing file.
      ConfigError: naming every bad key (and the file).
      TypeError: for anything else given as ``config``.
    """
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise TypeError(f"overrides must be a sequence of KEY=VALUE strings, got {overrides!r}")
    overrides = list(overrides)
    if isinstance(config, ExperimentConfig):
        if not overrides:
            return config
        data = parse_yaml(dump_config(config))
        return config_from_data(apply_overrides(data, overrides), "config")
    if isinstance(config, dict):
        return config_from_data(apply_overrides(config, overrides), "config")
    if isinstance(config, str | os.PathLike):
        return load_config(config, overrides)
    raise TypeError(
        f"config must be a YAML file's path, a dict of sections or an ExperimentConfig, got "
        f"{type(config).__name__}"
    )


def dump_config(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML that `load_config` reads back to an equal config."""
    data = config_to_dict(cfg)
    task = data.pop("task")
    data["task"] = {"name": task["name"], **task["options"]}
    if data["model"]["kind"] == "recurrent" and not data["model"]["options"]:
        data["model"].pop("options")
    order = ["name", "seeds", "task", "model", "optimizer", "train", "log", "diagnostics"]
    order += ["sweep", "parallel"]
    data = {k: data[k] for k in order}
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
