"""seqjax: a JAX functional research framework for recurrent sequence models."""

from seqjax import cells
from seqjax.cells import CELLS, Cell, LSTMCarry, get_cell, gru, irnn, lstm, rnn
from seqjax.unroll import unroll

__version__ = "0.1.0"

__all__ = [
    "CELLS",
    "Cell",
    "LSTMCarry",
    "cells",
    "get_cell",
    "gru",
    "irnn",
    "lstm",
    "rnn",
    "unroll",
]
