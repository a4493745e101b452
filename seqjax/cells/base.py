"""The `Cell` record shared by every recurrent cell, and the initialisers cells choose from.

A cell is a small immutable record of pure functions, in the spirit of
``optax.GradientTransformation``: a factory closes over the hyper-parameters and returns it.

    cell = seqjax.cells.lstm(hidden_size=128)
    params = cell.init(key, input_size)          # plain dict pytree
    carry = cell.initial_carry()                 # zeros for one example
    carry, h = cell.step(params, carry, x_t)     # x_t: [F] -> h: [H]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Params = dict[str, jax.Array]
Carry = Any  # an array [H] or a NamedTuple of arrays
Initializer = Callable[..., jax.Array]


class GateSpec(NamedTuple):
    """How to read the gates of a gated cell (``Cell.gate_spec``), for gate statistics.

    Attributes:
      gates: ``gates(params, carry, x) -> {name: [H]}`` (a dict or a NamedTuple) of the gate
        activations of one step, from the carry entering the step; the names are
        ``Cell.gates``.
      sigmoid: names of the sigmoid gates (range [0, 1]).
      tanh: names of the tanh gates (range [-1, 1]).
      memory: the gate whose value near 1 keeps the state (LSTM f, GRU z), or a function
        ``memory(gates) -> [H]`` of the gate dict giving that factor (``1 - z`` for minGRU).
    """

    gates: Callable[[Params, Carry, jax.Array], Any]
    sigmoid: tuple[str, ...]
    tanh: tuple[str, ...]
    memory: str | Callable[[dict[str, jax.Array]], jax.Array]


class Cell(NamedTuple):
    """One step of a recurrence, as pure functions over a parameter pytree.

    Attributes:
      init: ``init(key, input_size) -> params``, a dict of arrays with documented keys.
      initial_carry: ``initial_carry() -> carry``, zeros for one example.
      step: ``step(params, carry, x) -> (carry, h)`` with ``x: [F]`` and ``h: [H]``; the
        argument order is the one ``jax.lax.scan`` uses.
      hidden_size: H, the size of the output ``h`` of ``step``.
      name: the registry name of the cell ("rnn", "lstm", "gru", ...).
      scan: an optional fast path over many steps,
        ``scan(params, carry, xs, valid) -> (carry, hs)`` with ``xs: [T, F]`` and
        ``valid: [T] bool`` (or None: all valid). It must equal ``lax.scan`` over ``step``
        where invalid steps keep the carry and output zeros, values and gradients alike;
        ``unroll`` uses it when present. ``step`` stays the readable reference.
      gates: the names of the gates, in the order of the diagnostics' gate axis
        (``("f", "i", "g", "o")`` for the LSTM); empty for an ungated cell.
      weight_blocks: the names of the ``[H, H]`` blocks of the recurrent weights ``w_h: [H, k*H]``,
        in order, whose spectral radius the diagnostics report (``("W_h",)`` for a vanilla RNN).
      masked_step: ``masked_step(params, carry, x, mask) -> (carry, h)``, the step with a
        recurrent-dropout mask ``[H]`` applied inside its own recurrence, for a cell where
        masking the hidden part of the carry before ``step`` is not the right place (the GRU
        masks its recurrent products but not ``z * h_{t-1}``). None: `seqjax.layers` multiplies
        the hidden part of the carry by the mask before ``step``.
      remat_min_steps: for ``unroll(remat="auto")``, the sequence length from which
        recomputing every step in the backward pass pays on the CPU for this cell; None uses
        the generic `seqjax.unroll.AUTO_STEP_REMAT_MIN_STEPS`.
      gate_spec: how the diagnostics read the gates (`GateSpec`), or None for an ungated cell.
      scan_on_cpu: whether ``unroll`` runs ``scan`` on the CPU backend (`seqjax.unroll.use_scan`).
        False for a parallel-in-time scan, which on XLA:CPU measured slower than ``lax.scan``
        over ``step`` (docs/pages/performance.md); it still runs on other backends.

    The fields after ``scan`` are what the framework needs to know about a cell, set by its
    factory so that nothing elsewhere tests a cell by its name. Their defaults mean "nothing
    special": no gates, no named weight blocks, the generic masking and remat threshold; a
    cell written by a user needs only the first five fields.
    """

    init: Callable[[jax.Array, int], Params]
    initial_carry: Callable[[], Carry]
    step: Callable[[Params, Carry, jax.Array], tuple[Carry, jax.Array]]
    hidden_size: int
    name: str
    scan: Callable[..., tuple[Carry, jax.Array]] | None = None
    gates: tuple[str, ...] = ()
    weight_blocks: tuple[str, ...] = ()
    masked_step: Callable[..., tuple[Carry, jax.Array]] | None = None
    remat_min_steps: int | None = None
    gate_spec: GateSpec | None = None
    scan_on_cpu: bool = True


INPUT_INITS: dict[str, Callable[[], Initializer]] = {
    "glorot": jax.nn.initializers.glorot_uniform,
    "lecun": jax.nn.initializers.lecun_normal,
}


def _identity(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    del key
    rows, cols = shape
    if cols % rows:
        raise ValueError(f"identity recurrent init needs a [H, k*H] matrix, got shape {shape}")
    return jnp.tile(jnp.eye(rows, dtype=dtype), (1, cols // rows))


def one_at_a_time(fn: Callable[[jax.Array], Any]) -> Callable[[jax.Array], Any]:
    """``fn`` of one array that ``jax.vmap`` runs element by element (``lax.map``), not batched.

    Why: XLA:CPU runs a batched LAPACK call (a QR of ``[n, H, H]``, which is what ``jax.vmap``
    makes of one QR) by handing the batch to its intra-op thread pool and waiting from a thread
    of that same pool, so it deadlocks once every pool thread waits on such a call (as many
    programs at once as cores: simulated CPU devices, or QRs scheduled side by side). One
    matrix at a time, the QR runs on the calling thread. Values are the same bit for bit (each
    element is computed by the same unbatched ``fn``); nested vmaps nest the maps. Not
    differentiable (``custom_vmap``); it is meant for initialisers.
    """

    @jax.custom_batching.custom_vmap
    def call(x: jax.Array) -> jax.Array:
        return fn(x)

    @call.def_vmap
    def _rule(axis_size: int, in_batched: list[bool], x: jax.Array) -> tuple[Any, Any]:
        del axis_size, in_batched  # one argument: it is the batched one
        out = jax.lax.map(call, x)
        return out, jax.tree.map(lambda _: True, out)

    return call


def _orthogonal_blocks(
    key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32
) -> jax.Array:
    # An orthogonal [H, H] matrix per gate block, so each gate's recurrence is orthogonal.
    # Each QR runs one matrix at a time under vmap (over seeds): see `one_at_a_time`.
    rows, cols = shape
    n_blocks = max(cols // rows, 1) if cols % rows == 0 else 1
    if n_blocks == 1:
        return one_at_a_time(lambda k: jax.nn.initializers.orthogonal()(k, shape, dtype))(key)
    block = one_at_a_time(lambda k: jax.nn.initializers.orthogonal()(k, (rows, rows), dtype))
    keys = jax.random.split(key, n_blocks)
    return jnp.concatenate([block(k) for k in keys], axis=1)


RECURRENT_INITS: dict[str, Callable[[], Initializer]] = {
    "orthogonal": lambda: _orthogonal_blocks,
    "identity": lambda: _identity,
    "glorot": jax.nn.initializers.glorot_uniform,
    "lecun": jax.nn.initializers.lecun_normal,
}


def resolve_init(
    init: str | Initializer, table: dict[str, Callable[[], Initializer]], arg: str
) -> Initializer:
    """Turns an initialiser name (or a callable ``(key, shape, dtype) -> array``) into a callable."""
    if callable(init):
        return init
    if init not in table:
        raise ValueError(f"unknown {arg}={init!r}; expected one of {sorted(table)} or a callable")
    return table[init]()


def check_input(x: jax.Array, expected: int, cell_name: str) -> None:
    """Raises a clear error when the input's trailing dimension does not match the weights."""
    if x.ndim < 1 or x.shape[-1] != expected:
        raise ValueError(
            f"{cell_name}.step: input x has shape {x.shape}, expected trailing feature size "
            f"{expected} (the input_size given to init). Pass one time step x: [F]; unroll a "
            f"sequence [T, F] with seqjax.unroll."
        )


def chrono_bias(key: jax.Array, hidden_size: int, t_max: float, dtype: Any) -> jax.Array:
    """Chrono initialisation (Tallec & Ollivier 2018): ``b ~ log(U[1, t_max - 1])``."""
    if not t_max > 2:
        raise ValueError(f"chrono must be the longest expected dependency T_max > 2, got {t_max!r}")
    u = jax.random.uniform(key, (hidden_size,), dtype, minval=1.0, maxval=t_max - 1.0)
    return jnp.log(u)
