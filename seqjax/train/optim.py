"""The optimiser as an Optax chain built from an `OptimizerConfig`.

    clip (global norm | value | none)  ->  [add_decayed_weights]  ->  optimiser(schedule)

Every piece is one of Optax's own transformations. Registries are plain dicts: `OPTIMIZERS`
maps a name to its Optax factory, `SCHEDULES` to its Optax schedule, `CLIPPINGS` to its
clipping transformation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optax

from seqjax.config import ClipConfig, OptimizerConfig, ScheduleConfig

__all__ = [
    "CLIPPINGS",
    "OPTIMIZERS",
    "SCHEDULES",
    "clipping_from_config",
    "get_optimizer",
    "optimizer_from_config",
    "schedule_from_config",
]

OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": optax.sgd,
    "momentum": optax.sgd,  # with momentum=...
    "adam": optax.adam,
    "adamw": optax.adamw,
    "rmsprop": optax.rmsprop,
}

SCHEDULES: dict[str, Callable[..., optax.Schedule]] = {
    "constant": optax.constant_schedule,
    "warmup_cosine": optax.warmup_cosine_decay_schedule,
    "exponential": optax.exponential_decay,
}

CLIPPINGS: dict[str, Callable[[float], optax.GradientTransformation]] = {
    "none": lambda threshold: optax.identity(),
    "global_norm": optax.clip_by_global_norm,
    "value": optax.clip,
}


def _lookup(table: dict[str, Any], name: str, what: str) -> Any:
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; expected one of {sorted(table)}")
    return table[name]


def get_optimizer(name: str, learning_rate: float | optax.Schedule, **kwargs: Any):
    """The Optax optimiser registered as ``name`` (no clipping, no extra weight decay).

    Args:
      name: a key of `OPTIMIZERS`.
      learning_rate: a float or an Optax schedule.
      **kwargs: passed to the Optax factory (``momentum=``, ``b1=``, ``weight_decay=``, ...).

    Returns:
      An ``optax.GradientTransformation``.
    """
    return _lookup(OPTIMIZERS, name, "optimizer")(learning_rate, **kwargs)


def schedule_from_config(cfg: ScheduleConfig, learning_rate: float) -> optax.Schedule:
    """The learning-rate schedule ``step -> lr`` with peak ``learning_rate``."""
    make = _lookup(SCHEDULES, cfg.name, "schedule")
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


def clipping_from_config(cfg: ClipConfig) -> optax.GradientTransformation:
    """Gradient clipping: ``g * min(1, c / ||g||)`` (global_norm), ``clip(g, -c, c)`` (value)
    or the identity (none)."""
    return _lookup(CLIPPINGS, cfg.method, "clipping method")(cfg.threshold)


def optimizer_from_config(
    cfg: OptimizerConfig, *, include_clip: bool = True
) -> optax.GradientTransformation:
    """The Optax chain ``clip -> [L2 weight decay] -> optimiser(schedule)`` of ``cfg``.

    Args:
      cfg: the optimiser section.
      include_clip: put the clipping at the head of the chain. The train step can apply the
        clipping itself to report gradient norms after clipping: then build the optimiser with
        ``include_clip=False`` and pass ``clipping_from_config(cfg.clip)`` to
        ``make_train_step(..., clip=...)``; the updates are the same.

    Returns:
      An ``optax.GradientTransformation``.

    Example:
      >>> opt = optimizer_from_config(OptimizerConfig(name="adamw", learning_rate=3e-4,
      ...     weight_decay=1e-2, clip=ClipConfig(method="global_norm", threshold=1.0)))
    """
    lr = schedule_from_config(cfg.schedule, cfg.learning_rate)
    kwargs: dict[str, Any] = {}
    if cfg.name == "momentum":
        kwargs = {"momentum": cfg.momentum, "nesterov": cfg.nesterov}
    elif cfg.name in ("adam", "adamw"):
        kwargs = {"b1": cfg.b1, "b2": cfg.b2, "eps": cfg.eps}
        if cfg.name == "adamw":
            kwargs["weight_decay"] = cfg.weight_decay
    elif cfg.name == "rmsprop":
        kwargs = {"decay": cfg.decay, "eps": cfg.eps}
    base = get_optimizer(cfg.name, lr, **kwargs)
    chain = []
    if include_clip:
        chain.append(clipping_from_config(cfg.clip))
    if cfg.weight_decay > 0 and cfg.name != "adamw":
        chain.append(optax.add_decayed_weights(cfg.weight_decay))
    chain.append(base)
    return optax.chain(*chain)
