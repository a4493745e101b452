"""seqjax: a JAX functional research framework for recurrent sequence models."""

from seqjax import cells, diagnostics, layers, losses, models, tasks
from seqjax.cells import CELLS, Cell, LSTMCarry, get_cell, gru, irnn, lstm, rnn
from seqjax.layers import BidirectionalCarry, Layer, as_layer, bidirectional, stack
from seqjax.models import MODELS, Model, many_to_many, many_to_one, one_to_many, seq2seq
from seqjax.tasks import TASKS, Batch, Task, get_task
from seqjax.unroll import unroll

__version__ = "0.1.0"

__all__ = [
    "CELLS",
    "MODELS",
    "TASKS",
    "Batch",
    "BidirectionalCarry",
    "Cell",
    "LSTMCarry",
    "Layer",
    "Model",
    "Task",
    "as_layer",
    "bidirectional",
    "cells",
    "diagnostics",
    "get_cell",
    "get_task",
    "gru",
    "irnn",
    "layers",
    "lstm",
    "many_to_many",
    "many_to_one",
    "models",
    "one_to_many",
    "rnn",
    "seq2seq",
    "stack",
    "tasks",
    "unroll",
]
