"""Synthetic long-range tasks and tasks over your own files (`char_lm` with ``path``,
`arrays`): pure, jittable samplers ``(key, batch_size) -> Batch``.

Every task is a `Task` record (a sampler plus metadata) made by a factory; `TASKS` maps names
to factories and `get_task` builds one by name::

    task = seqjax.tasks.get_task("copy_memory", delay=100)
    batch = jax.jit(task.sample, static_argnums=1)(key, 32)

See `seqjax.tasks.base` for the conventions shared by all tasks.
"""

from seqjax.tasks.algorithmic import FLIP_FLOP_TOKENS, flip_flop, future_tagging, parity
from seqjax.tasks.anomaly import ANOMALY_KINDS, sensor_anomaly, sensor_anomaly_eval
from seqjax.tasks.arrays import ARRAYS, arrays
from seqjax.tasks.base import LOSSES, METRICS, PATTERNS, Batch, Task
from seqjax.tasks.bucketing import bucket_by_length, padding_fraction
from seqjax.tasks.forecasting import mackey_glass, mackey_glass_series, sine_forecast
from seqjax.tasks.images import DigitsSplit, digits_split, pixel_digits
from seqjax.tasks.memory import (
    adding,
    associative_recall,
    copy_memory,
    delayed_recall,
    selective_copy,
    temporal_order,
)
from seqjax.tasks.metrics import PrecisionRecall, auroc, precision_recall
from seqjax.tasks.registry import TASKS, get_task
from seqjax.tasks.seq2seq import BOS, EOS, PAD, decoder_inputs, reverse, sort
from seqjax.tasks.text import CharCorpus, char_lm, decode, encode, load_corpus, stream_batch

__all__ = [
    "ANOMALY_KINDS",
    "ARRAYS",
    "BOS",
    "EOS",
    "FLIP_FLOP_TOKENS",
    "LOSSES",
    "METRICS",
    "PAD",
    "PATTERNS",
    "TASKS",
    "Batch",
    "CharCorpus",
    "DigitsSplit",
    "PrecisionRecall",
    "Task",
    "adding",
    "arrays",
    "associative_recall",
    "auroc",
    "bucket_by_length",
    "char_lm",
    "copy_memory",
    "decode",
    "decoder_inputs",
    "delayed_recall",
    "digits_split",
    "encode",
    "flip_flop",
    "future_tagging",
    "get_task",
    "load_corpus",
    "mackey_glass",
    "mackey_glass_series",
    "padding_fraction",
    "parity",
    "pixel_digits",
    "precision_recall",
    "reverse",
    "selective_copy",
    "sensor_anomaly",
    "sensor_anomaly_eval",
    "sine_forecast",
    "sort",
    "stream_batch",
    "temporal_order",
]
