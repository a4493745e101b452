"""Typed, frozen experiment configs, validated on construction.

Each section is a frozen ``pydantic`` dataclass: unknown keys, wrong types and bad values are
errors that name the dotted key path (``optimizer.learning_rate``), raised before anything is
compiled. Ints and floats are strict (``"0.1"`` or ``True`` is not a float), so a typo in a YAML
file cannot turn into a silently coerced value.

Sections so far (the task, model and logging sections and the YAML loader join them later):

* `OptimizerConfig` with `ClipConfig` and `ScheduleConfig`: read by
  ``seqjax.train.optimizer_from_config``.
* `TrainConfig` with `BPTTConfig`, `CheckpointConfig` and `EarlyStoppingConfig`.

Only ``*_from_config`` functions read these records (house style, rule 5). Build one from plain
data (a dict parsed from YAML) with `parse_config`, which turns pydantic's error into a
`ConfigError` listing every bad key::

    cfg = parse_config(OptimizerConfig, {"name": "adam", "learning_rate": 3e-4},
                       path="optimizer")

Derive a changed copy with ``dataclasses.replace(cfg, learning_rate=1e-3)``: it validates again.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import ConfigDict, Field, Strict, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass

__all__ = [
    "BPTTConfig",
    "CheckpointConfig",
    "ClipConfig",
    "ConfigError",
    "EarlyStoppingConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "TrainConfig",
    "check_bptt_fits",
    "parse_config",
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

OptimizerName = Literal["sgd", "momentum", "adam", "adamw", "rmsprop"]
ScheduleName = Literal["constant", "warmup_cosine", "exponential"]
ClipMethod = Literal["none", "global_norm", "value"]
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
        True (windows of about sqrt(T) steps) or a window size.
    """

    mode: BPTTMode = "full"
    truncate: PositiveInt | None = Field(default=None, validate_default=True)
    window: PositiveInt | None = Field(default=None, validate_default=True)
    remat: bool | PositiveInt = False

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
      max_bad_steps: stop with an error after this many consecutive updates with a non-finite
        loss or gradient (each is skipped).
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
