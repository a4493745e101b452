"""PyTorch interop: ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` weights as seqjax params, and back.

PyTorch stays optional: it is imported inside the functions that need it (``pip install
seqjax[torch]``). A torch recurrent module of any ``num_layers``, with or without
``bidirectional``, maps to the seqjax layout that `seqjax.experiment` builds for the same
``model.num_layers`` and ``model.bidirectional``:

| torch module | seqjax | params |
| --- | --- | --- |
| ``num_layers=1`` | the cell (``lstm``, ``gru``, ``rnn``) | the cell's dict |
| ``num_layers=1, bidirectional=True`` | ``bidirectional(cell, cell)`` | ``{"fw", "bw"}`` |
| ``num_layers=L`` | ``stack([item] * L, dropout=module.dropout)`` | a list of L |

where each ``item`` of a stack is the cell, or ``bidirectional(cell, cell)`` (concatenated
outputs, as torch feeds ``[h_fw ; h_bw]`` to the next layer). Per layer ``k`` and direction
(suffix ``""`` forward, ``"_reverse"`` backward), with ``W.T`` a transpose::

    LSTM  weight_ih_l{k} [4H, F], weight_hh_l{k} [4H, H], bias_ih_l{k}, bias_hh_l{k} [4H]
          (gates i, f, g, o)  ->  w_i = W_ih.T, w_h = W_hh.T, b = b_ih + b_hh, gates
          reordered to seqjax's f, i, g, o
    GRU   (gates r, z, n)     ->  w_i = W_ih.T, w_h = W_hh.T,
                                  b_i = b_ih + [b_hh_r | b_hh_z | 0],  b_hn = b_hh_n
    RNN   (tanh or relu)      ->  w_i = W_ih.T, w_h = W_hh.T, b = b_ih + b_hh

The equations are the same (`seqjax.lstm`, `seqjax.gru`, `seqjax.rnn` state theirs), so the
numbers agree to rounding. torch keeps two biases where seqjax keeps their sum; going back,
`params_to_torch` puts the sum in ``bias_ih`` and zeros in ``bias_hh`` (for the GRU, ``b_hn``
in the ``n`` block of ``bias_hh``): params -> torch -> params is exact, torch -> params ->
torch computes the same function with its biases regrouped. Modules without biases
(``bias=False``) read as zero biases. An LSTM with ``proj_size > 0`` has no seqjax equivalent.

States: torch's ``h_n`` (and ``c_n``) ``[L * D, *batch, H]`` convert to the seqjax carry with
`carry_from_torch` and back with `carry_to_torch`. torch's ``batch_first`` is about inputs, not
weights; seqjax runs one sequence ``[T, F]``, batched with ``jax.vmap``.

Example (a torch LSTM run by seqjax on a padded batch)::

    import jax, torch, seqjax
    from seqjax.torch import from_torch, to_torch

    module = torch.nn.LSTM(3, 16, num_layers=2, bidirectional=True)
    layer, params = from_torch(module)                  # stack of bidirectional(lstm, lstm)
    carry, hs = jax.vmap(lambda x, n: layer.apply(params, x, length=n))(xs, lengths)
    back = to_torch(params)                             # a torch.nn.LSTM with these weights
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.cells import LSTMCarry, gru, lstm, rnn
from seqjax.cells.base import Carry, Cell, Params
from seqjax.layers import BidirectionalCarry, Layer, bidirectional, stack

__all__ = [
    "carry_from_torch",
    "carry_to_torch",
    "from_torch",
    "params_from_torch",
    "params_to_torch",
    "to_torch",
]

_GATES = {"lstm": 4, "gru": 3, "rnn": 1}
_TORCH_NAMES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
_NONLINEARITIES = ("tanh", "relu")
_DIRECTIONS = ("", "_reverse")


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError(
            "seqjax.torch needs PyTorch, which is not installed; install it with "
            "`pip install seqjax[torch]` (or any torch build, e.g. the CPU wheel)"
        ) from None
    return torch


def _to_array(value: Any) -> Any:
    """A torch tensor as a NumPy array (detached, on the CPU); anything else as it is."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value


# --------------------------------------------------------------------------------------------
# torch -> seqjax


def _lstm_reorder(a: jax.Array, axis: int) -> jax.Array:
    """Swaps the first two of four gate blocks: torch's (i, f, g, o) <-> seqjax's (f, i, g, o)."""
    i, f, g, o = jnp.split(a, 4, axis=axis)
    return jnp.concatenate([f, i, g, o], axis=axis)


def _cell_from_torch(kind: str, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any) -> Params:
    """One direction of one layer: torch weights (arrays, or tracers) -> seqjax cell params."""
    w_ih, w_hh, b_ih, b_hh = (jnp.asarray(a) for a in (w_ih, w_hh, b_ih, b_hh))
    if kind == "lstm":
        return {
            "w_i": _lstm_reorder(w_ih.T, 1),
            "w_h": _lstm_reorder(w_hh.T, 1),
            "b": _lstm_reorder(b_ih + b_hh, 0),
        }
    if kind == "gru":
        hidden = w_hh.shape[1]
        return {
            "w_i": w_ih.T,
            "w_h": w_hh.T,
            "b_i": jnp.concatenate([b_ih[: 2 * hidden] + b_hh[: 2 * hidden], b_ih[2 * hidden :]]),
            "b_hn": b_hh[2 * hidden :],
        }
    return {"w_i": w_ih.T, "w_h": w_hh.T, "b": b_ih + b_hh}


def _layout(state: Mapping[str, Any], where: str) -> tuple[str, int, int, bool]:
    """``(kind, hidden_size, num_layers, bidirectional)`` read from a torch state dict."""
    if "weight_hh_l0" not in state:
        raise ValueError(
            f"{where}: no 'weight_hh_l0' among the keys {sorted(state)}; expected the "
            f"state_dict() of a torch.nn.LSTM, GRU or RNN (pass prefix='name.' for a module "
            f"inside another)"
        )
    projections = sorted(k for k in state if k.startswith("weight_hr_l"))
    if projections:
        raise ValueError(
            f"{where}: the state dict has projection weights {projections} (an LSTM with "
            f"proj_size > 0), which seqjax.lstm does not have; use proj_size=0"
        )
    rows, hidden = np.shape(state["weight_hh_l0"])
    kinds = {g: k for k, g in _GATES.items()}
    if rows % hidden or rows // hidden not in kinds:
        raise ValueError(
            f"{where}: weight_hh_l0 has shape {(rows, hidden)}; expected [G * H, H] with G = 4 "
            f"(LSTM), 3 (GRU) or 1 (RNN)"
        )
    num_layers = 0
    while f"weight_hh_l{num_layers}" in state:
        num_layers += 1
    is_bidirectional = "weight_hh_l0_reverse" in state
    return kinds[rows // hidden], hidden, num_layers, is_bidirectional


def params_from_torch(state_dict: Mapping[str, Any], *, prefix: str = "") -> Any:
    """The weights of a ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` as seqjax params.

    The values may be torch tensors, NumPy or JAX arrays (the mapping is written in ``jnp``,
    so it can be differentiated: the gradient of a loss of these params with respect to the
    state dict is torch's gradient with respect to its weights).

    Args:
      state_dict: ``module.state_dict()`` (or ``dict(module.named_parameters())``).
      prefix: the prefix of the module's keys inside a larger state dict (e.g. ``"encoder."``);
        with a prefix, other keys are ignored.

    Returns:
      The params in the layout of the module docstring's table: a cell dict, ``{"fw", "bw"}``,
      or a list with one entry per layer.
    """
    where = "params_from_torch"
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"{where}: expected a state dict (module.state_dict()), got "
            f"{type(state_dict).__name__}; for a module, call from_torch(module)"
        )
    state = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    kind, hidden, num_layers, is_bi = _layout(state, where)
    has_bias = "bias_ih_l0" in state
    expected = set()
    layers = []
    for k in range(num_layers):
        directions = []
        for suffix in _DIRECTIONS[: 2 if is_bi else 1]:
            names = [f"{n}_l{k}{suffix}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            expected.update(names if has_bias else names[:2])
            missing = [n for n in (names if has_bias else names[:2]) if n not in state]
            if missing:
                raise ValueError(
                    f"{where}: missing {missing} of a {num_layers}-layer "
                    f"{'bidirectional ' if is_bi else ''}{_TORCH_NAMES[kind]}; received keys "
                    f"{sorted(state)}"
                )
            w_ih, w_hh = (_to_array(state[n]) for n in names[:2])
            rows = _GATES[kind] * hidden
            want_in = None if k == 0 else hidden * (2 if is_bi else 1)
            shape = np.shape(w_ih)
            if len(shape) != 2 or shape[0] != rows or want_in not in (None, shape[1]):
                raise ValueError(
                    f"{where}: {names[0]} has shape {shape}; expected "
                    f"[{rows}, {'F' if want_in is None else want_in}] for a "
                    f"{_TORCH_NAMES[kind]} with hidden size {hidden}"
                )
            if has_bias:
                b_ih, b_hh = (_to_array(state[n]) for n in names[2:])
            else:
                b_ih = b_hh = jnp.zeros((rows,), jnp.asarray(w_ih).dtype)
            directions.append(_cell_from_torch(kind, w_ih, w_hh, b_ih, b_hh))
        layers.append({"fw": directions[0], "bw": directions[1]} if is_bi else directions[0])
    unexpected = sorted(set(state) - expected)
    if unexpected and not prefix:
        raise ValueError(
            f"{where}: unexpected keys {unexpected} for a {num_layers}-layer "
            f"{_TORCH_NAMES[kind]}; pass the module's own state_dict(), or prefix='name.' to "
            f"read one module out of a larger state dict"
        )
    return layers[0] if num_layers == 1 else layers


def _check_nonlinearity(nonlinearity: str, where: str) -> str:
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(
            f"{where}: nonlinearity={nonlinearity!r}; expected one of {list(_NONLINEARITIES)}"
        )
    return nonlinearity


def from_torch(
    module: Any, *, nonlinearity: str | None = None, prefix: str = ""
) -> tuple[Cell | Layer, Any]:
    """The seqjax cell or layer, and params, that compute what a torch recurrent module does.

    Example::

        module = torch.nn.GRU(input_size=3, hidden_size=16, num_layers=2)
        layer, params = from_torch(module)                  # stack([gru(16), gru(16)])
        carry, hs = layer.apply(params, xs, length=n)       # xs: [T, 3] -> hs: [T, 16]

    Args:
      module: a ``torch.nn.LSTM``, ``GRU`` or ``RNN``, or the ``state_dict()`` of one (its
        kind, sizes, number of layers and directions are read from the weights' names and
        shapes).
      nonlinearity: for an RNN given as a state dict, ``"tanh"`` (torch's default, used when
        None) or ``"relu"``; a module's own ``nonlinearity`` is read from it.
      prefix: with a state dict, the prefix of the module's keys (see `params_from_torch`).

    Returns:
      ``(cell_or_layer, params)`` as in the module docstring's table. The dtype of the cells
      is that of the weights (float64 needs ``jax.enable_x64``). A module's ``dropout``
      becomes the stack's ``dropout`` (active only when ``apply`` is given a key).
    """
    where = "from_torch"
    dropout = 0.0
    if isinstance(module, Mapping):
        state = module
        nonlinearity = _check_nonlinearity(nonlinearity or "tanh", where)
    else:
        torch = _import_torch()
        kinds = {torch.nn.LSTM: "lstm", torch.nn.GRU: "gru", torch.nn.RNN: "rnn"}
        if type(module) not in kinds:
            raise TypeError(
                f"{where}: unsupported module {type(module).__name__}; expected "
                f"torch.nn.LSTM, GRU or RNN, or the state_dict() of one"
            )
        if prefix:
            raise ValueError(f"{where}: prefix={prefix!r} is for state dicts, not modules")
        if kinds[type(module)] == "lstm" and module.proj_size:
            raise ValueError(
                f"{where}: torch.nn.LSTM(proj_size={module.proj_size}) projects h, which "
                f"seqjax.lstm does not; use proj_size=0"
            )
        if kinds[type(module)] == "rnn":
            own = module.nonlinearity
            if nonlinearity is not None and nonlinearity != own:
                raise ValueError(
                    f"{where}: nonlinearity={nonlinearity!r} but the module's is {own!r}; "
                    f"drop the argument"
                )
            nonlinearity = own
        state = module.state_dict()
        dropout = float(module.dropout)
    params = params_from_torch(state, prefix=prefix)
    own_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    kind, hidden, num_layers, is_bi = _layout(own_state, where)
    dtype = jax.tree.leaves(params)[0].dtype
    if kind == "lstm":
        cell = lstm(hidden, dtype=dtype)
    elif kind == "gru":
        cell = gru(hidden, dtype=dtype)
    else:
        cell = rnn(hidden, nonlinearity or "tanh", dtype=dtype)
    item: Cell | Layer = bidirectional(cell, cell) if is_bi else cell
    if num_layers == 1:
        return item, params
    return stack([item] * num_layers, dropout=dropout), params


# --------------------------------------------------------------------------------------------
# seqjax -> torch


def _cell_kind(params: Any, where: str) -> str:
    if isinstance(params, Mapping) and set(params) == {"w_i", "w_h", "b_i", "b_hn"}:
        return "gru"
    if isinstance(params, Mapping) and set(params) == {"w_i", "w_h", "b"}:
        rows, cols = np.shape(params["w_h"])
        if cols == 4 * rows:
            return "lstm"
        if cols == rows:
            return "rnn"
    got = sorted(params) if isinstance(params, Mapping) else type(params).__name__
    shapes = jax.tree.map(np.shape, dict(params)) if isinstance(params, Mapping) else got
    raise ValueError(
        f"{where}: cell params with keys {got} (shapes {shapes}) are not those of seqjax.lstm "
        f"(w_i [F, 4H], w_h [H, 4H], b), seqjax.gru (w_i, w_h, b_i, b_hn) or seqjax.rnn "
        f"(w_i [F, H], w_h [H, H], b)"
    )


def _layers_of(params: Any, where: str) -> tuple[list[list[Params]], bool]:
    """Per layer, the cell params of each direction; and whether the layers are bidirectional."""
    items = (
        list(params) if isinstance(params, Sequence) and not isinstance(params, str) else [params]
    )
    if not items:
        raise ValueError(f"{where}: params is an empty list; expected at least one layer")
    layers = []
    for item in items:
        if isinstance(item, Mapping) and set(item) == {"fw", "bw"}:
            layers.append([item["fw"], item["bw"]])
        else:
            layers.append([item])
    counts = {len(directions) for directions in layers}
    if len(counts) > 1:
        raise ValueError(
            f"{where}: some layers are bidirectional and some are not; a torch module has one "
            f"number of directions for all its layers"
        )
    return layers, counts == {2}


def params_to_torch(params: Any) -> dict[str, Any]:
    """seqjax params -> the ``state_dict()`` of the matching torch module (torch tensors).

    The inverse of `params_from_torch`: ``bias_ih`` holds seqjax's bias and ``bias_hh`` zeros
    (for a GRU, ``b_hn`` in its ``n`` block). Load it with ``module.load_state_dict``, or let
    `to_torch` build the module.

    Args:
      params: a cell's params (``lstm``, ``gru`` or ``rnn``), a ``bidirectional`` layer's
        ``{"fw", "bw"}``, or a ``stack``'s list of either; every layer must read the previous
        layer's whole output (a bidirectional stack with ``merge="concat"``).

    Returns:
      ``{"weight_ih_l0": tensor, ...}`` with the dtype of the params.
    """
    torch = _import_torch()
    where = "params_to_torch"
    layers, is_bi = _layers_of(params, where)
    kind = _cell_kind(layers[0][0], where)
    hidden = int(np.shape(layers[0][0]["w_h"])[0])
    state: dict[str, Any] = {}
    for k, directions in enumerate(layers):
        for suffix, cell_params in zip(_DIRECTIONS, directions, strict=False):
            p = {name: np.asarray(v) for name, v in cell_params.items()}
            name = f"layers[{k}]" + (("." + ("fw" if not suffix else "bw")) if is_bi else "")
            if _cell_kind(p, where) != kind or p["w_h"].shape[0] != hidden:
                raise ValueError(
                    f"{where}: {name} is a {_cell_kind(p, where)} of hidden size "
                    f"{p['w_h'].shape[0]}, but layer 0 is a {kind} of hidden size {hidden}; a "
                    f"torch module has one cell kind and size"
                )
            want_in = hidden * len(directions)
            if k > 0 and p["w_i"].shape[0] != want_in:
                raise ValueError(
                    f"{where}: {name}.w_i has shape {p['w_i'].shape}, but torch feeds layer {k} "
                    f"the previous layer's output of size {want_in} (the concatenation of "
                    f"its directions); a seqjax stack with merge='sum' has no torch equivalent"
                )
            if kind == "lstm":
                w_ih = np.asarray(_lstm_reorder(jnp.asarray(p["w_i"]), 1)).T
                w_hh = np.asarray(_lstm_reorder(jnp.asarray(p["w_h"]), 1)).T
                b_ih = np.asarray(_lstm_reorder(jnp.asarray(p["b"]), 0))
                b_hh = np.zeros_like(b_ih)
            elif kind == "gru":
                w_ih, w_hh, b_ih = p["w_i"].T, p["w_h"].T, p["b_i"]
                b_hh = np.concatenate([np.zeros_like(b_ih[: 2 * hidden]), p["b_hn"]])
            else:
                w_ih, w_hh, b_ih = p["w_i"].T, p["w_h"].T, p["b"]
                b_hh = np.zeros_like(b_ih)
            for stem, value in (
                ("weight_ih", w_ih),
                ("weight_hh", w_hh),
                ("bias_ih", b_ih),
                ("bias_hh", b_hh),
            ):
                state[f"{stem}_l{k}{suffix}"] = torch.from_numpy(np.array(value, copy=True))
    return state


def to_torch(
    params: Any, *, nonlinearity: str = "tanh", batch_first: bool = False, dropout: float = 0.0
) -> Any:
    """A torch ``LSTM`` / ``GRU`` / ``RNN`` module holding seqjax params (`params_to_torch`).

    Example::

        layer = seqjax.bidirectional(seqjax.gru(16))
        module = to_torch(layer.init(jax.random.key(0), 3))   # torch.nn.GRU(3, 16, bidirectional=True)

    Args:
      params: as for `params_to_torch`.
      nonlinearity: for an RNN, ``"tanh"`` or ``"relu"`` (the params do not say which).
      batch_first: the module's ``batch_first`` (its input layout, ``[B, T, F]`` if True).
      dropout: the module's dropout between layers.

    Returns:
      The module, in evaluation mode, with the params' dtype.
    """
    torch = _import_torch()
    where = "to_torch"
    nonlinearity = _check_nonlinearity(nonlinearity, where)
    state = params_to_torch(params)
    layers, is_bi = _layers_of(params, where)
    kind = _cell_kind(layers[0][0], where)
    input_size = int(np.shape(layers[0][0]["w_i"])[0])
    hidden = int(np.shape(layers[0][0]["w_h"])[0])
    options: dict[str, Any] = {
        "num_layers": len(layers),
        "bidirectional": is_bi,
        "batch_first": batch_first,
        "dropout": dropout,
        "dtype": state["weight_ih_l0"].dtype,
    }
    if kind == "rnn":
        options["nonlinearity"] = nonlinearity
    module = getattr(torch.nn, _TORCH_NAMES[kind])(input_size, hidden, **options)
    module.load_state_dict(state)
    return module.eval()


# --------------------------------------------------------------------------------------------
# states


def _directions_of(carry: Any) -> list[Carry]:
    """The carries of every direction of every layer, in torch's order (layer-major, fw first)."""
    if isinstance(carry, BidirectionalCarry):
        return [carry.fw, carry.bw]
    if isinstance(carry, LSTMCarry) or not isinstance(carry, tuple):
        return [carry]
    return [c for layer in carry for c in _directions_of(layer)]


def carry_to_torch(carry: Any) -> Any:
    """A seqjax carry -> torch's ``h_n`` (or ``(h_n, c_n)`` for an LSTM), ``[L * D, *batch, H]``.

    Args:
      carry: the carry of a cell (``LSTMCarry`` or ``h``), of a ``bidirectional`` layer or of a
        ``stack`` of them, leaves ``[*batch, H]`` (e.g. from a ``jax.vmap``-ed ``apply``).

    Returns:
      Torch tensors: ``h_n``, or ``(h_n, c_n)`` when the carries are `LSTMCarry`.
    """
    torch = _import_torch()
    directions = _directions_of(carry)
    if isinstance(directions[0], LSTMCarry):
        h = np.stack([np.asarray(c.h) for c in directions])
        c = np.stack([np.asarray(c.c) for c in directions])
        return torch.from_numpy(h), torch.from_numpy(c)
    return torch.from_numpy(np.stack([np.asarray(c) for c in directions]))


def carry_from_torch(state: Any, *, bidirectional: bool = False) -> Any:
    """torch's ``h_0`` (or ``(h_0, c_0)`` for an LSTM), ``[L * D, *batch, H]`` -> a seqjax carry.

    Args:
      state: a tensor or array ``h``, or a pair ``(h, c)`` for an LSTM.
      bidirectional: whether the module is bidirectional (D = 2).

    Returns:
      The carry of the matching cell, ``bidirectional`` layer or ``stack`` (see `from_torch`),
      with leaves ``[*batch, H]`` as JAX arrays.
    """
    is_lstm = isinstance(state, tuple | list)
    if is_lstm and len(state) != 2:
        raise ValueError(
            f"carry_from_torch: an LSTM state is a pair (h, c); got {len(state)} items"
        )
    hs = jnp.asarray(_to_array(state[0] if is_lstm else state))
    cs = jnp.asarray(_to_array(state[1])) if is_lstm else None
    num_directions = 2 if bidirectional else 1
    if hs.ndim < 2 or hs.shape[0] % num_directions or (cs is not None and cs.shape != hs.shape):
        raise ValueError(
            f"carry_from_torch: h has shape {hs.shape}"
            + ("" if cs is None else f" and c {cs.shape}")
            + f"; expected [num_layers * {num_directions}, *batch, H] (and equal shapes)"
        )
    per_direction = [
        LSTMCarry(h=hs[i], c=cs[i]) if cs is not None else hs[i] for i in range(hs.shape[0])
    ]
    layers = [
        BidirectionalCarry(*per_direction[i : i + 2]) if bidirectional else per_direction[i]
        for i in range(0, len(per_direction), num_directions)
    ]
    return layers[0] if len(layers) == 1 else tuple(layers)
