"""The task registry: a plain dict from name to factory, and `get_task`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from seqjax.tasks.algorithmic import flip_flop, future_tagging, parity
from seqjax.tasks.anomaly import sensor_anomaly
from seqjax.tasks.arrays import arrays
from seqjax.tasks.base import Task
from seqjax.tasks.forecasting import mackey_glass, sine_forecast
from seqjax.tasks.images import pixel_digits
from seqjax.tasks.memory import (
    adding,
    associative_recall,
    copy_memory,
    delayed_recall,
    selective_copy,
    temporal_order,
)
from seqjax.tasks.seq2seq import reverse, sort
from seqjax.tasks.text import char_lm

__all__ = ["TASKS", "get_task"]

TASKS: dict[str, Callable[..., Task]] = {
    "adding": adding,
    "arrays": arrays,
    "associative_recall": associative_recall,
    "char_lm": char_lm,
    "copy_memory": copy_memory,
    "delayed_recall": delayed_recall,
    "flip_flop": flip_flop,
    "future_tagging": future_tagging,
    "mackey_glass": mackey_glass,
    "parity": parity,
    "pixel_digits": pixel_digits,
    "reverse": reverse,
    "selective_copy": selective_copy,
    "sensor_anomaly": sensor_anomaly,
    "sine_forecast": sine_forecast,
    "sort": sort,
    "temporal_order": temporal_order,
}


def get_task(name: str, **kwargs: Any) -> Task:
    """Builds the task registered as ``name`` with the factory's keyword arguments.

    Args:
      name: a key of `TASKS`.
      **kwargs: arguments of that factory (e.g. ``length=200``).

    Returns:
      The `Task`.

    Example:
      >>> task = get_task("adding", length=200, variable_length=True)
    """
    if name not in TASKS:
        raise ValueError(
            f"get_task: unknown task {name!r}; expected one of {sorted(TASKS)}. Register a new "
            f"factory with seqjax.tasks.TASKS[name] = factory."
        )
    factory = TASKS[name]
    accepted = list(inspect.signature(factory).parameters)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"get_task: task {name!r} got unknown arguments {unknown}; {factory.__name__} "
            f"accepts {accepted}."
        )
    return factory(**kwargs)
