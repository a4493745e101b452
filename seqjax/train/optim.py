"""Optax optimisers by name, and the one chain every run trains with.

    clip (global norm | value | none)  ->  [add_decayed_weights]  ->  optimiser(schedule)

Every piece is one of Optax's own transformations. Registries are plain dicts: `OPTIMIZERS`
maps a name to its Optax factory, `SCHEDULES` to its Optax schedule, `CLIPPINGS` to its
clipping transformation. `make_optimizer` builds the chain; the experiment layer maps a
config's ``optimizer`` section onto it (`seqjax.experiment.optimizer_from_config`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optax

__all__ = [
    "CLIPPINGS",
    "OPTIMIZERS",
    "SCHEDULES",
    "get_clipping",
    "get_optimizer",
    "get_schedule",
    "make_optimizer",
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
      optimizer (optax.GradientTransformation): the optimiser, built with ``learning_rate``
        and ``kwargs``.
    """
    return _lookup(OPTIMIZERS, name, "optimizer")(learning_rate, **kwargs)


def get_schedule(name: str) -> Callable[..., optax.Schedule]:
    """The Optax schedule factory registered as ``name`` (a key of `SCHEDULES`)."""
    return _lookup(SCHEDULES, name, "schedule")


def get_clipping(name: str, threshold: Any) -> optax.GradientTransformation:
    """Gradient clipping registered as ``name``: ``g * min(1, c / ||g||)`` (global_norm),
    ``clip(g, -c, c)`` (value) or the identity (none), with threshold ``c``."""
    return _lookup(CLIPPINGS, name, "clipping method")(threshold)


def make_optimizer(
    name: str,
    learning_rate: Any,
    *,
    weight_decay: Any = 0.0,
    clip: optax.GradientTransformation | None = None,
    **options: Any,
) -> optax.GradientTransformation:
    """The chain ``[clip] -> [L2 weight decay] -> optimiser(learning_rate)``.

    Args:
      name: a key of `OPTIMIZERS`.
      learning_rate: a float, a traced scalar or an Optax schedule.
      weight_decay: decoupled (scaled by the learning rate, ``optax.adamw``) for ``"adamw"``;
        for the others an L2 term ``weight_decay * params`` added to the gradient, left out
        when it is the Python number 0 (a traced value always adds it, ``0 * params`` at 0).
      clip: a clipping transformation at the head of the chain (`get_clipping`), or None.
        The train step can apply the clipping itself to report norms after clipping
        (``make_train_step(..., clip=...)``); leave it out here then, the updates are the same.
      **options: the optimiser's own arguments (``momentum=``, ``b1=``, ``eps=``, ...).

    Returns:
      An ``optax.GradientTransformation``.

    Example:
      >>> opt = make_optimizer("adam", 1e-3, clip=get_clipping("global_norm", 1.0))
    """
    chain = [] if clip is None else [clip]
    if name == "adamw":
        options["weight_decay"] = weight_decay
    elif not (isinstance(weight_decay, int | float) and weight_decay == 0):
        chain.append(optax.add_decayed_weights(weight_decay))
    chain.append(get_optimizer(name, learning_rate, **options))
    return optax.chain(*chain)
