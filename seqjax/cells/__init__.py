"""Recurrent cells as pure functions: ``Cell(init, initial_carry, step)`` records.

Registry: ``CELLS`` maps a name to its factory; ``get_cell(name, **kwargs)`` builds one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from seqjax.cells.base import INPUT_INITS, RECURRENT_INITS, Cell
from seqjax.cells.cornn import CoRNNCarry, cornn
from seqjax.cells.exprnn import exprnn, exprnn_recurrent_matrix, modrelu
from seqjax.cells.gru import GRUGates, gru, gru_gates
from seqjax.cells.indrnn import indrnn, indrnn_bound
from seqjax.cells.lru import lru
from seqjax.cells.lstm import LSTMCarry, LSTMGates, lstm, lstm_gates
from seqjax.cells.min_rnn import min_gru, min_lstm
from seqjax.cells.rnn import ACTIVATIONS, rnn


def irnn(hidden_size: int, **kwargs: Any) -> Cell:
    """IRNN (Le et al. 2015): a ReLU RNN whose recurrent weights start as the identity."""
    kwargs.setdefault("recurrent_init", "identity")
    return rnn(hidden_size, "relu", **kwargs)


CELLS: dict[str, Callable[..., Cell]] = {
    "rnn": rnn,
    "irnn": irnn,
    "lstm": lstm,
    "gru": gru,
    "lru": lru,
    "min_gru": min_gru,
    "min_lstm": min_lstm,
    "indrnn": indrnn,
    "exprnn": exprnn,
    "cornn": cornn,
}


def get_cell(name: str, hidden_size: int, **kwargs: Any) -> Cell:
    """Builds the cell registered as ``name``; an unknown name lists the valid ones."""
    if name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; expected one of {sorted(CELLS)}")
    return CELLS[name](hidden_size, **kwargs)


__all__ = [
    "ACTIVATIONS",
    "CELLS",
    "INPUT_INITS",
    "RECURRENT_INITS",
    "Cell",
    "CoRNNCarry",
    "GRUGates",
    "LSTMCarry",
    "LSTMGates",
    "cornn",
    "exprnn",
    "exprnn_recurrent_matrix",
    "get_cell",
    "gru",
    "gru_gates",
    "indrnn",
    "indrnn_bound",
    "irnn",
    "lru",
    "lstm",
    "lstm_gates",
    "min_gru",
    "min_lstm",
    "modrelu",
    "rnn",
]
