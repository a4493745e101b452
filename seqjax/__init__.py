"""seqjax: a JAX functional research framework for recurrent sequence models."""

# `_xla` first: it sets XLA_FLAGS before any submodule can start a JAX backend.
from seqjax import (
    _xla,  # noqa: F401
    baselines,
    cells,
    config,
    diagnostics,
    layers,
    losses,
    models,
    parallel,
    sweep,
    tasks,
    train,
)
from seqjax.baselines import BASELINES, tcn, transformer
from seqjax.cells import CELLS, Cell, LSTMCarry, get_cell, gru, irnn, lstm, rnn
from seqjax.config import ExperimentConfig, load_config
from seqjax.layers import BidirectionalCarry, Layer, as_layer, bidirectional, stack
from seqjax.models import MODELS, Model, many_to_many, many_to_one, one_to_many, seq2seq
from seqjax.tasks import TASKS, Batch, Task, get_task
from seqjax.train import (
    TrainState,
    fit,
    make_train,
    make_train_step,
    make_trainer,
    optimizer_from_config,
)
from seqjax.unroll import unroll

__version__ = "0.1.0"

__all__ = [
    "BASELINES",
    "CELLS",
    "MODELS",
    "TASKS",
    "Batch",
    "BidirectionalCarry",
    "Cell",
    "ExperimentConfig",
    "LSTMCarry",
    "Layer",
    "Model",
    "Task",
    "TrainState",
    "as_layer",
    "baselines",
    "bidirectional",
    "cells",
    "config",
    "diagnostics",
    "fit",
    "get_cell",
    "get_task",
    "gru",
    "irnn",
    "layers",
    "load_config",
    "losses",
    "lstm",
    "make_train",
    "make_train_step",
    "make_trainer",
    "many_to_many",
    "many_to_one",
    "models",
    "one_to_many",
    "optimizer_from_config",
    "parallel",
    "rnn",
    "seq2seq",
    "stack",
    "sweep",
    "tasks",
    "tcn",
    "train",
    "transformer",
    "unroll",
]
