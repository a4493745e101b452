"""One small configuration per task, sampled once per session (shared by the task tests).

Each case compiles its sampler once (``jax.jit(task.sample, static_argnums=1)``) and the
batches are cached, so the tests of several files share the compilations.
"""

from __future__ import annotations

import jax
import numpy as np

from seqjax import tasks

# case id -> (registry name, factory kwargs, batch size). Small T; the batch is large enough
# for the baseline simulations (a few thousand target positions at least).
CASES = {
    "adding": ("adding", dict(length=20), 2048),
    "adding_var": ("adding", dict(length=20, variable_length=True, min_length=4), 2048),
    "copy_memory": ("copy_memory", dict(delay=12, num_symbols=8, copy_length=5), 256),
    "temporal_order4": ("temporal_order", dict(length=20, num_classes=4), 2048),
    "temporal_order8": ("temporal_order", dict(length=30, num_classes=8), 2048),
    "temporal_order_var": (
        "temporal_order",
        dict(length=22, variable_length=True, min_length=20, num_classes=4),
        2048,
    ),
    "delayed_recall": ("delayed_recall", dict(length=16, lag=4, num_symbols=5), 256),
    "selective_copy": ("selective_copy", dict(length=16, copy_length=4, num_symbols=6), 512),
    "associative_recall": (
        "associative_recall",
        dict(num_pairs=4, num_keys=8, num_values=6),
        2048,
    ),
    "flip_flop": ("flip_flop", dict(length=24, p_ignore=0.5), 512),
    "parity_var": ("parity", dict(length=12, variable_length=True, min_length=3), 2048),
    "parity_running": (
        "parity",
        dict(length=12, variable_length=True, min_length=2, running=True),
        512,
    ),
    "future_tagging_var": (
        "future_tagging",
        dict(length=16, lookahead=3, num_symbols=5, variable_length=True, min_length=6),
        256,
    ),
    "reverse": ("reverse", dict(length=8, num_symbols=5), 1024),
    "sort": ("sort", dict(length=8, num_symbols=5, min_length=2), 1024),
    "sine_forecast": ("sine_forecast", dict(length=16, noise_std=0.1, horizon=2), 1024),
    "mackey_glass": ("mackey_glass", dict(length=20, num_points=2000), 512),
    "char_lm": ("char_lm", dict(length=16), 256),
    "sensor_anomaly": ("sensor_anomaly", dict(length=16, num_channels=3), 512),
}

_TASKS: dict[str, tuple] = {}
_BATCHES: dict[tuple[str, int], tasks.Batch] = {}


def case_task(case_id: str):
    """``(task, jitted sampler, batch size)`` for a case, built once."""
    if case_id not in _TASKS:
        name, kwargs, batch_size = CASES[case_id]
        task = tasks.get_task(name, **kwargs)
        _TASKS[case_id] = (task, jax.jit(task.sample, static_argnums=1), batch_size)
    return _TASKS[case_id]


def case_batch(case_id: str, seed: int = 0) -> tasks.Batch:
    """The case's batch for ``jax.random.key(seed)``, as NumPy arrays (cached)."""
    if (case_id, seed) not in _BATCHES:
        _, sample, batch_size = case_task(case_id)
        batch = sample(jax.random.key(seed), batch_size)
        _BATCHES[case_id, seed] = tasks.Batch(*(np.asarray(x) for x in batch))
    return _BATCHES[case_id, seed]
