"""Flax interop: a seqjax cell as a Flax module, and Flax's own cells' weights as seqjax params.

Two directions, for users who live in Flax:

* **seqjax inside Flax.** `NNXCell` (Flax NNX, the API Flax recommends today) and `LinenCell`
  (``flax.linen``) wrap any seqjax `Cell` as a Flax recurrent cell: ``cell(carry, x) ->
  (carry, h)`` on one time step, any leading batch dimensions, usable inside ``nnx.RNN`` and
  ``nn.RNN``. The Flax params are the seqjax params, with the same dict layout as ``cell.init``,
  so ``seqjax.unroll`` runs on them as they are. The carry is the seqjax carry (``LSTMCarry(h,
  c)`` for an LSTM, with batch dimensions), not Flax's ``(c, h)``.
* **Flax inside seqjax.** `from_flax` turns a Flax ``LSTMCell``, ``OptimizedLSTMCell``,
  ``GRUCell`` or ``SimpleCell`` (linen with its variables, or NNX) into the seqjax cell and
  params that compute the same numbers. The weight mapping itself is written once, on the linen
  parameter layout, in ``{lstm,gru,rnn}_params_from_flax`` and their inverses
  ``{lstm,gru,rnn}_params_to_flax``; NNX cells are first read into that layout. Flax's LSTM
  carry ``(c, h)`` converts with `lstm_carry_from_flax` and `lstm_carry_to_flax`.

The layouts, with ``K`` a ``[in, out]`` kernel and ``b`` a bias (linen names)::

    LSTMCell, OptimizedLSTMCell   ii, if, ig, io: K [F, H]        (no bias)
                                  hi, hf, hg, ho: K [H, H], b [H]
      -> seqjax.lstm              w_i = [K_if | K_ii | K_ig | K_io]        [F, 4H]  (f, i, g, o)
                                  w_h = [K_hf | K_hi | K_hg | K_ho]        [H, 4H]
                                  b   = [b_hf | b_hi | b_hg | b_ho]        [4H]
    GRUCell                       ir, iz, in: K [F, H], b [H]
                                  hr, hz: K [H, H] (no bias);  hn: K [H, H], b [H]
      -> seqjax.gru               w_i = [K_ir | K_iz | K_in]   b_i = [b_ir | b_iz | b_in]
                                  w_h = [K_hr | K_hz | K_hn]   b_hn = b_hn
    SimpleCell                    i: K [F, H], b [H];  h: K [H, H] (no bias)
      -> seqjax.rnn               w_i = K_i, w_h = K_h, b = b_i

NNX's ``OptimizedLSTMCell`` fuses the gates in the order i, f, g, o, and NNX's ``GRUCell`` has no
``b_hn`` (it maps to ``b_hn = 0``).

Example (a seqjax LSTM inside Flax NNX, then back to seqjax on the same weights)::

    import jax, jax.numpy as jnp, seqjax
    from flax import nnx
    from seqjax.flax import NNXCell

    layer = nnx.RNN(NNXCell(seqjax.lstm(8), in_features=3, rngs=nnx.Rngs(0)))
    ys = layer(jnp.ones((2, 5, 3)))                        # [B, T, F] -> [B, T, H]
    params = layer.cell.seqjax_params()                    # the dict of cell.init
    _, hs = seqjax.unroll(seqjax.lstm(8), params, jnp.ones((5, 3)))   # == ys[0]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from seqjax.cells import LSTMCarry, gru, lstm, rnn
from seqjax.cells.base import Carry, Cell, Params

FlaxParams = dict[str, Any]  # a linen "params" collection: {layer_name: {"kernel", "bias"}}

__all__ = [
    "LinenCell",
    "NNXCell",
    "from_flax",
    "gru_params_from_flax",
    "gru_params_to_flax",
    "lstm_carry_from_flax",
    "lstm_carry_to_flax",
    "lstm_params_from_flax",
    "lstm_params_to_flax",
    "rnn_params_from_flax",
    "rnn_params_to_flax",
]


# --------------------------------------------------------------------------------------------
# seqjax cells as Flax modules
# --------------------------------------------------------------------------------------------


def _check_cell(cell: Any, where: str) -> None:
    if not isinstance(cell, Cell):
        raise TypeError(
            f"{where}: cell must be a seqjax Cell (e.g. seqjax.lstm(64)), got "
            f"{type(cell).__name__}. For a Flax cell, convert its weights with "
            f"seqjax.flax.from_flax instead."
        )


def _step_batched(cell: Cell, params: Params, carry: Carry, x: jax.Array) -> tuple[Carry, Any]:
    """``cell.step`` on ``x: [*batch, F]`` and a carry with the same leading batch dimensions."""
    x = jnp.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"{cell.name}: input x has shape {x.shape}, expected [*batch, F]")
    batch = x.shape[:-1]
    expected = jax.tree.map(lambda a: batch + a.shape, cell.initial_carry())
    got = jax.tree.map(jnp.shape, carry)
    if jax.tree.structure(got) != jax.tree.structure(expected) or got != expected:
        raise ValueError(
            f"{cell.name}: carry has shapes {got}, expected {expected} for input x of shape "
            f"{x.shape} (the seqjax carry of the {cell.name} cell with x's batch dimensions "
            f"{batch}; make it with initialize_carry(input_shape=x.shape))"
        )
    step = cell.step
    for _ in batch:
        step = jax.vmap(step, in_axes=(None, 0, 0))
    return step(params, carry, x)


def _check_params(cell: Cell, params: Any, in_features: int | None, where: str) -> None:
    """Checks that ``params`` have the keys and shapes of ``cell.init(key, in_features)``."""
    got = jax.tree.map(jnp.shape, dict(params)) if isinstance(params, Mapping) else params
    size = got["w_i"][0] if isinstance(got, dict) and len(got.get("w_i", ())) == 2 else None
    if in_features is not None and size is not None and size != in_features:
        raise ValueError(
            f"{where}: params have input size {size} (w_i {got['w_i']}) but "
            f"in_features={in_features}; drop in_features or pass matching params"
        )
    abstract = jax.eval_shape(lambda k: cell.init(k, size or in_features or 1), jax.random.key(0))
    expected = jax.tree.map(lambda s: s.shape, abstract)
    if size is None or got != expected:
        raise ValueError(
            f"{where}: params have shapes {got}, expected {expected} for the {cell.name} cell "
            f"(the layout of cell.init(key, in_features))"
        )


def _batched_initial_carry(cell: Cell, input_shape: tuple[int, ...]) -> Carry:
    input_shape = tuple(input_shape)
    if len(input_shape) < 1:
        raise ValueError(
            f"initialize_carry: input_shape={input_shape}, expected the shape of one input "
            f"step [*batch, F]"
        )
    batch = input_shape[:-1]
    return jax.tree.map(lambda a: jnp.broadcast_to(a, batch + a.shape), cell.initial_carry())


class NNXCell(nnx.RNNCellBase):
    """A seqjax `Cell` as a Flax NNX recurrent cell, for ``nnx.RNN`` and friends.

    The params are ``nnx.Param`` variables in ``self.params``, an ``nnx.Dict`` with the keys and
    shapes of ``cell.init`` (``seqjax_params()`` returns them as a plain dict of arrays). One call
    is one step of ``cell.step``, vmapped over any leading batch dimensions of ``x``.

    Example::

        cell = NNXCell(seqjax.gru(16), in_features=4, rngs=nnx.Rngs(0))
        carry = cell.initialize_carry((2, 4))              # [B, H] zeros
        carry, h = cell(carry, jnp.ones((2, 4)))           # h: [B, H]
        ys = nnx.RNN(cell)(jnp.ones((2, 10, 4)))           # [B, T, H]

    Args:
      cell: the seqjax cell.
      in_features: F, the input size given to ``cell.init``; with ``params`` it may be left out.
      rngs: where the init key comes from (``rngs.params()``), unless ``params`` is given.
      params: existing seqjax params (from ``cell.init``, ``from_flax`` or training) to hold
        instead of new ones.
    """

    def __init__(
        self,
        cell: Cell,
        in_features: int | None = None,
        *,
        rngs: nnx.Rngs | None = None,
        params: Params | None = None,
    ):
        _check_cell(cell, "NNXCell")
        if params is None:
            if in_features is None or rngs is None:
                raise ValueError(
                    f"NNXCell: got in_features={in_features!r} and rngs={rngs!r}; pass both to "
                    f"initialise new params, or pass params=cell.init(key, in_features)"
                )
            params = cell.init(rngs.params(), in_features)
        else:
            _check_params(cell, params, in_features, "NNXCell")
        self.cell = nnx.static(cell)
        self.in_features = int(jnp.shape(params["w_i"])[0])
        self.hidden_features = cell.hidden_size
        self.params = nnx.Dict({name: nnx.Param(jnp.asarray(v)) for name, v in params.items()})

    def seqjax_params(self) -> Params:
        """The params as a plain dict of arrays, with the layout of ``cell.init``."""
        return {name: variable[...] for name, variable in self.params.items()}

    def __call__(  # type: ignore[override]
        self, carry: Carry, inputs: jax.Array
    ) -> tuple[Carry, jax.Array]:
        """One step: ``inputs: [*batch, F]``, carry leaves ``[*batch, ...]`` -> ``[*batch, H]``."""
        return _step_batched(self.cell, self.seqjax_params(), carry, inputs)

    def initialize_carry(  # type: ignore[override]
        self, input_shape: tuple[int, ...], rngs: Any = None
    ) -> Carry:
        """``cell.initial_carry()`` with the batch dimensions ``input_shape[:-1]``."""
        del rngs  # seqjax carries start deterministic
        return _batched_initial_carry(self.cell, input_shape)

    @property
    def num_feature_axes(self) -> int:
        return 1


class LinenCell(nn.RNNCellBase):
    """A seqjax `Cell` as a ``flax.linen`` recurrent cell, for ``nn.RNN`` and friends.

    The module's ``"params"`` collection is the seqjax params dict (keys and shapes of
    ``cell.init``; inside ``nn.RNN`` it sits under ``"cell"``), so trained variables go straight to
    ``seqjax.unroll`` and seqjax params go straight to ``apply``. New params are
    ``cell.init(key, F)`` with F read from the first input (the key differs per param name).

    Example::

        layer = nn.RNN(LinenCell(seqjax.lstm(8)))
        variables = layer.init(jax.random.key(0), jnp.ones((2, 5, 3)))   # [B, T, F]
        ys = layer.apply(variables, jnp.ones((2, 5, 3)))                  # [B, T, H]
        params = variables["params"]["cell"]                              # {"w_i", "w_h", "b"}

    Attributes:
      cell: the seqjax cell.
    """

    cell: Cell

    @nn.compact
    def __call__(self, carry: Carry, inputs: jax.Array) -> tuple[Carry, jax.Array]:
        """One step: ``inputs: [*batch, F]``, carry leaves ``[*batch, ...]`` -> ``[*batch, H]``."""
        _check_cell(self.cell, "LinenCell")
        size = jnp.shape(inputs)[-1]
        shapes = jax.eval_shape(lambda k: self.cell.init(k, size), jax.random.key(0))
        params = {
            name: self.param(name, lambda key, n: self.cell.init(key, size)[n], name)
            for name in shapes
        }
        return _step_batched(self.cell, params, carry, inputs)

    @nn.nowrap
    def initialize_carry(self, rng: jax.Array, input_shape: tuple[int, ...]) -> Carry:
        """``cell.initial_carry()`` with the batch dimensions ``input_shape[:-1]``."""
        del rng  # seqjax carries start deterministic
        return _batched_initial_carry(self.cell, input_shape)

    @property
    def num_feature_axes(self) -> int:
        return 1


# --------------------------------------------------------------------------------------------
# Flax cells' weights as seqjax params: the mapping, on the linen layout
# --------------------------------------------------------------------------------------------

_LSTM_GATES = ("f", "i", "g", "o")  # seqjax's fused order
_GRU_GATES = ("r", "z", "n")


def _unwrap(flax_params: Mapping[str, Any]) -> Mapping[str, Any]:
    # Accept a whole linen variables dict as well as its "params" collection.
    if not isinstance(flax_params, Mapping):
        raise TypeError(
            f"expected a Flax params dict {{layer: {{'kernel', 'bias'}}}}, got "
            f"{type(flax_params).__name__}"
        )
    if set(flax_params) == {"params"}:
        return flax_params["params"]
    return flax_params


def _get(flax_params: Mapping[str, Any], layer: str, leaf: str, flax_cell: str) -> jax.Array:
    try:
        return jnp.asarray(flax_params[layer][leaf])
    except (KeyError, TypeError):
        received = {k: sorted(v) if isinstance(v, Mapping) else v for k, v in flax_params.items()}
        raise ValueError(
            f"{flax_cell} params: missing {layer!r}/{leaf!r}; received {received}. Pass the "
            f"'params' collection of flax.linen.{flax_cell} (variables['params'])."
        ) from None


def _check_seqjax(params: Mapping[str, Any], keys: tuple[str, ...], cell: str) -> None:
    if not isinstance(params, Mapping) or set(params) != set(keys):
        got = sorted(params) if isinstance(params, Mapping) else type(params).__name__
        raise ValueError(
            f"{cell}_params_to_flax: params have keys {got}, expected {sorted(keys)} (the "
            f"params of seqjax.{cell}(...).init)"
        )


def lstm_params_from_flax(flax_params: Mapping[str, Any]) -> Params:
    """``flax.linen.LSTMCell`` / ``OptimizedLSTMCell`` params -> ``seqjax.lstm`` params.

    Both linen cells share one layout: input kernels ``ii, if, ig, io: [F, H]`` without bias,
    recurrent kernels ``hi, hf, hg, ho: [H, H]`` with biases ``[H]``; seqjax fuses the gates in
    the order f, i, g, o (see the module docstring).

    Args:
      flax_params: the linen ``"params"`` collection (or the whole variables dict).

    Returns:
      ``{"w_i": [F, 4H], "w_h": [H, 4H], "b": [4H]}``.
    """
    p = _unwrap(flax_params)
    name = "LSTMCell"
    return {
        "w_i": jnp.concatenate([_get(p, "i" + g, "kernel", name) for g in _LSTM_GATES], axis=1),
        "w_h": jnp.concatenate([_get(p, "h" + g, "kernel", name) for g in _LSTM_GATES], axis=1),
        "b": jnp.concatenate([_get(p, "h" + g, "bias", name) for g in _LSTM_GATES]),
    }


def lstm_params_to_flax(params: Params) -> FlaxParams:
    """``seqjax.lstm`` params -> the ``"params"`` of ``flax.linen.LSTMCell`` (or Optimized).

    The inverse of `lstm_params_from_flax`.
    """
    _check_seqjax(params, ("w_i", "w_h", "b"), "lstm")
    w_i = jnp.split(params["w_i"], 4, axis=1)
    w_h = jnp.split(params["w_h"], 4, axis=1)
    b = jnp.split(params["b"], 4)
    out: FlaxParams = {}
    for k, g in enumerate(_LSTM_GATES):
        out["i" + g] = {"kernel": w_i[k]}
        out["h" + g] = {"kernel": w_h[k], "bias": b[k]}
    return out


def gru_params_from_flax(flax_params: Mapping[str, Any]) -> Params:
    """``flax.linen.GRUCell`` params -> ``seqjax.gru`` params (the same equations).

    Linen layout: ``ir, iz, in: [F, H]`` with biases, ``hr, hz: [H, H]`` without, ``hn: [H, H]``
    with the bias ``b_hn`` inside the reset product.

    Args:
      flax_params: the linen ``"params"`` collection (or the whole variables dict).

    Returns:
      ``{"w_i": [F, 3H], "w_h": [H, 3H], "b_i": [3H], "b_hn": [H]}``, gates in the order r, z, n.
    """
    p = _unwrap(flax_params)
    name = "GRUCell"
    return {
        "w_i": jnp.concatenate([_get(p, "i" + g, "kernel", name) for g in _GRU_GATES], axis=1),
        "w_h": jnp.concatenate([_get(p, "h" + g, "kernel", name) for g in _GRU_GATES], axis=1),
        "b_i": jnp.concatenate([_get(p, "i" + g, "bias", name) for g in _GRU_GATES]),
        "b_hn": _get(p, "hn", "bias", name),
    }


def gru_params_to_flax(params: Params) -> FlaxParams:
    """``seqjax.gru`` params -> the ``"params"`` of ``flax.linen.GRUCell``; inverse of
    `gru_params_from_flax`."""
    _check_seqjax(params, ("w_i", "w_h", "b_i", "b_hn"), "gru")
    w_i = jnp.split(params["w_i"], 3, axis=1)
    w_h = jnp.split(params["w_h"], 3, axis=1)
    b_i = jnp.split(params["b_i"], 3)
    out: FlaxParams = {}
    for k, g in enumerate(_GRU_GATES):
        out["i" + g] = {"kernel": w_i[k], "bias": b_i[k]}
        out["h" + g] = {"kernel": w_h[k]}
    out["hn"]["bias"] = jnp.asarray(params["b_hn"])
    return out


def rnn_params_from_flax(flax_params: Mapping[str, Any]) -> Params:
    """``flax.linen.SimpleCell`` params (``i``: kernel, bias; ``h``: kernel) -> ``seqjax.rnn``.

    Args:
      flax_params: the linen ``"params"`` collection (or the whole variables dict).

    Returns:
      ``{"w_i": [F, H], "w_h": [H, H], "b": [H]}``.
    """
    p = _unwrap(flax_params)
    name = "SimpleCell"
    return {
        "w_i": _get(p, "i", "kernel", name),
        "w_h": _get(p, "h", "kernel", name),
        "b": _get(p, "i", "bias", name),
    }


def rnn_params_to_flax(params: Params) -> FlaxParams:
    """``seqjax.rnn`` params -> the ``"params"`` of ``flax.linen.SimpleCell``; inverse of
    `rnn_params_from_flax`."""
    _check_seqjax(params, ("w_i", "w_h", "b"), "rnn")
    return {
        "i": {"kernel": jnp.asarray(params["w_i"]), "bias": jnp.asarray(params["b"])},
        "h": {"kernel": jnp.asarray(params["w_h"])},
    }


def lstm_carry_from_flax(carry: tuple[jax.Array, jax.Array]) -> LSTMCarry:
    """Flax's LSTM carry ``(c, h)`` -> ``LSTMCarry(h, c)``."""
    c, h = carry
    return LSTMCarry(h=h, c=c)


def lstm_carry_to_flax(carry: LSTMCarry) -> tuple[jax.Array, jax.Array]:
    """``LSTMCarry(h, c)`` -> Flax's LSTM carry ``(c, h)``."""
    return (carry.c, carry.h)


# NNX cells, read into the linen layout so the mapping above stays the only one.


def _kernel(linear: nnx.Linear) -> jax.Array:
    return linear.kernel[...]


def _nnx_lstm(m: nnx.LSTMCell) -> FlaxParams:
    layers = {"i": (m.ii, m.hi), "f": (m.if_, m.hf), "g": (m.ig, m.hg), "o": (m.io, m.ho)}
    out: FlaxParams = {}
    for g, (lin_i, lin_h) in layers.items():
        out["i" + g] = {"kernel": _kernel(lin_i)}
        out["h" + g] = {"kernel": _kernel(lin_h), "bias": lin_h.bias[...]}
    return out


def _nnx_optimized_lstm(m: nnx.OptimizedLSTMCell) -> FlaxParams:
    gates = ("i", "f", "g", "o")  # NNX's fused order
    w_i = jnp.split(_kernel(m.dense_i), 4, axis=1)
    w_h = jnp.split(_kernel(m.dense_h), 4, axis=1)
    b = jnp.split(m.dense_h.bias[...], 4)
    out: FlaxParams = {}
    for k, g in enumerate(gates):
        out["i" + g] = {"kernel": w_i[k]}
        out["h" + g] = {"kernel": w_h[k], "bias": b[k]}
    return out


def _nnx_gru(m: nnx.GRUCell) -> FlaxParams:
    w_i = jnp.split(_kernel(m.dense_i), 3, axis=1)
    w_h = jnp.split(_kernel(m.dense_h), 3, axis=1)
    b_i = jnp.split(m.dense_i.bias[...], 3)
    out: FlaxParams = {}
    for k, g in enumerate(_GRU_GATES):
        out["i" + g] = {"kernel": w_i[k], "bias": b_i[k]}
        out["h" + g] = {"kernel": w_h[k]}
    out["hn"]["bias"] = jnp.zeros_like(b_i[2])  # NNX's GRUCell has no b_hn
    return out


def _nnx_simple(m: nnx.SimpleCell) -> FlaxParams:
    return {
        "i": {"kernel": _kernel(m.dense_i), "bias": m.dense_i.bias[...]},
        "h": {"kernel": _kernel(m.dense_h)},
    }


_ACTIVATIONS = {jnp.tanh: "tanh", jax.nn.relu: "relu"}


def _check_fn(module: Any, attr: str, expected: Callable[..., Any], what: str) -> None:
    fn = getattr(module, attr)
    if fn is not expected:
        raise ValueError(
            f"from_flax: {type(module).__name__}.{attr}={fn!r}, but seqjax's {what} uses "
            f"{expected.__module__}.{expected.__name__}; only the default is supported"
        )


def _lstm_cell(module: Any, p: Params, hidden: int) -> Cell:
    _check_fn(module, "gate_fn", jax.nn.sigmoid, "lstm")
    _check_fn(module, "activation_fn", jnp.tanh, "lstm")
    return lstm(hidden, dtype=p["w_i"].dtype)


def _gru_cell(module: Any, p: Params, hidden: int) -> Cell:
    _check_fn(module, "gate_fn", jax.nn.sigmoid, "gru")
    _check_fn(module, "activation_fn", jnp.tanh, "gru")
    return gru(hidden, dtype=p["w_i"].dtype)


def _rnn_cell(module: Any, p: Params, hidden: int) -> Cell:
    if module.residual:
        raise ValueError(
            "from_flax: SimpleCell(residual=True) adds h_{t-1} before the activation, which "
            "seqjax.rnn does not; use residual=False"
        )
    if module.activation_fn not in _ACTIVATIONS:
        raise ValueError(
            f"from_flax: SimpleCell.activation_fn={module.activation_fn!r}; seqjax.rnn supports "
            f"{sorted(_ACTIVATIONS.values())} (jax.numpy.tanh, jax.nn.relu)"
        )
    return rnn(hidden, _ACTIVATIONS[module.activation_fn], dtype=p["w_i"].dtype)


# Flax cell type -> (to the linen layout, layout -> seqjax params, seqjax cell factory).
_LINEN_CELLS: dict[type, tuple[Callable[..., Params], Callable[..., Cell]]] = {
    nn.LSTMCell: (lstm_params_from_flax, _lstm_cell),
    nn.OptimizedLSTMCell: (lstm_params_from_flax, _lstm_cell),
    nn.GRUCell: (gru_params_from_flax, _gru_cell),
    nn.SimpleCell: (rnn_params_from_flax, _rnn_cell),
}
_NNX_CELLS: dict[type, tuple[Callable[..., FlaxParams], Callable[..., Params], Callable]] = {
    nnx.LSTMCell: (_nnx_lstm, lstm_params_from_flax, _lstm_cell),
    nnx.OptimizedLSTMCell: (_nnx_optimized_lstm, lstm_params_from_flax, _lstm_cell),
    nnx.GRUCell: (_nnx_gru, gru_params_from_flax, _gru_cell),
    nnx.SimpleCell: (_nnx_simple, rnn_params_from_flax, _rnn_cell),
}


def from_flax(module: Any, variables: Mapping[str, Any] | None = None) -> tuple[Cell, Params]:
    """The seqjax cell and params that compute what a Flax cell computes.

    Supported: ``flax.linen.{LSTMCell, OptimizedLSTMCell, GRUCell, SimpleCell}`` (pass the module
    and its variables) and ``flax.nnx.{LSTMCell, OptimizedLSTMCell, GRUCell, SimpleCell}`` (the
    module holds its params). Gate and activation functions must be Flax's defaults (SimpleCell
    may use ``relu``) and SimpleCell must have ``residual=False``. The seqjax cell's dtype is that
    of the kernels. The carry of a Flax LSTM is ``(c, h)``: convert it with
    `lstm_carry_from_flax`.

    Example::

        flax_cell = nn.GRUCell(features=16)
        variables = flax_cell.init(key, flax_cell.initialize_carry(key, (3,)), jnp.ones(3))
        cell, params = from_flax(flax_cell, variables)
        carry, hs = seqjax.unroll(cell, params, xs)        # xs: [T, 3]

    Args:
      module: a Flax cell.
      variables: for a linen cell, its variables (or their ``"params"`` collection); None for
        an NNX cell.

    Returns:
      ``(cell, params)``.
    """
    kind = type(module)
    valid = [f"flax.linen.{t.__name__}" for t in _LINEN_CELLS]
    valid += [f"flax.nnx.{t.__name__}" for t in _NNX_CELLS]
    if kind in _LINEN_CELLS:
        if variables is None:
            raise ValueError(
                f"from_flax: a linen {kind.__name__} holds no weights; pass its variables too, "
                f"from_flax(module, variables)"
            )
        to_seqjax, make_cell = _LINEN_CELLS[kind]
        params = to_seqjax(variables)
        return make_cell(module, params, module.features), params
    if kind in _NNX_CELLS:
        if variables is not None:
            raise ValueError(
                f"from_flax: an nnx {kind.__name__} holds its own params; got variables too "
                f"({type(variables).__name__}). Call from_flax(module)."
            )
        read, to_seqjax, make_cell = _NNX_CELLS[kind]
        params = to_seqjax(read(module))
        return make_cell(module, params, module.hidden_features), params
    raise TypeError(f"from_flax: unsupported module {kind.__name__}; expected one of {valid}")
