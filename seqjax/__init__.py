"""seqjax: a JAX functional research framework for recurrent sequence models.

Importing seqjax changes no environment variable, JAX setting or matplotlib backend; for the
XLA:CPU flag the ``seqjax`` command sets, see `seqjax.xla.configure`.
"""

from seqjax import (
    baselines,
    cells,
    diagnostics,
    experiment,
    layers,
    losses,
    models,
    parallel,
    tasks,
    train,
    xla,
)
from seqjax.baselines import BASELINES, tcn, transformer
from seqjax.cells import (
    CELLS,
    Cell,
    LSTMCarry,
    cornn,
    exprnn,
    get_cell,
    gru,
    indrnn,
    irnn,
    lstm,
    rnn,
)
from seqjax.experiment import ExperimentConfig, RunResult, load_config, run, train_from_config
from seqjax.layers import BidirectionalCarry, Layer, as_layer, bidirectional, stack
from seqjax.models import MODELS, Model, many_to_many, many_to_one, one_to_many, seq2seq
from seqjax.tasks import TASKS, Batch, Task, get_task
from seqjax.train import (
    TrainState,
    compile_trainer,
    fit,
    make_optimizer,
    make_train,
    make_train_step,
    make_trainer,
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
    "RunResult",
    "Task",
    "TrainState",
    "as_layer",
    "baselines",
    "bidirectional",
    "cells",
    "compile_trainer",
    "cornn",
    "diagnostics",
    "experiment",
    "exprnn",
    "fit",
    "get_cell",
    "get_task",
    "gru",
    "indrnn",
    "irnn",
    "layers",
    "load_config",
    "losses",
    "lstm",
    "make_optimizer",
    "make_train",
    "make_train_step",
    "make_trainer",
    "many_to_many",
    "many_to_one",
    "models",
    "one_to_many",
    "parallel",
    "rnn",
    "run",
    "seq2seq",
    "stack",
    "tasks",
    "tcn",
    "train",
    "train_from_config",
    "transformer",
    "unroll",
    "xla",
]
