"""The four sequence patterns (whitepaper sections 5 and 17) as small models with readouts.

A `Model` is a record of pure functions; input and output sizes are fixed when it is built::

    model = many_to_one(stack([lstm(64), lstm(64)]), input_size=3, output_size=10)
    params = model.init(key)                     # {"encoder": [...], "readout": {"w", "b"}}
    logits, carry = model.apply(params, xs, length)          # one example: xs [T, F] -> [O]

| builder        | ``apply(params, inputs [T, F], length, ...)`` returns | inference         |
| -------------- | ----------------------------------------------------- | ----------------- |
| `many_to_one`  | ``[O]``, read out from the state at step length - 1  |                   |
| `many_to_many` | ``[T, O]``, read out at every step, zero past length  |                   |
| `one_to_many`  | ``[T, V]``, teacher-forced next-symbol logits         | ``generate``      |
| `seq2seq`      | ``[T_out, V]``, teacher-forced decoder logits         | ``decode``        |

Every ``apply`` has the signature ``apply(params, inputs, length, *, targets=None, carry=None,
key=None) -> (outputs, carry)``: ``key`` (a PRNG key) turns on the layer's dropout (training),
``carry`` starts the recurrence from a given state (streaming truncated BPTT: feed back the
returned carry), ``targets`` is the teacher-forcing signal of the generative patterns.

Readouts are dense layers with plain-dict params ``{"w": [H, O], "b": [O]}`` (Glorot-uniform
``w``, zero ``b``, in the dtype of the recurrent parameters); model params are plain nested
dicts with keys "encoder", "decoder" and "readout" as the pattern needs.

Numerics are for one example. Batch with ``jax.vmap``; keyword arguments are mapped over their
leading axis too::

    logits, _ = jax.vmap(model.apply, in_axes=(None, 0, 0))(params, xs_btf, lengths_b)
    keys = jax.random.split(key, batch_size)                      # one dropout key per example
    logits, _ = jax.vmap(model.apply, in_axes=(None, 0, 0))(params, xs, lengths, key=keys)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from seqjax import checks
from seqjax.cells.base import Carry, Cell
from seqjax.checks import positive_int
from seqjax.layers import UNROLL_OPTIONS, Layer, as_layer
from seqjax.unroll import unroll as unroll_fn

Params = dict[str, Any]
PATTERNS = ("many_to_one", "many_to_many", "one_to_many", "seq2seq")


class Model(NamedTuple):
    """A sequence model: pure functions over a nested-dict parameter pytree.

    Attributes:
      init: ``init(key) -> params``.
      apply: ``apply(params, inputs, length, *, targets=None, carry=None, key=None)
        -> (outputs, carry)`` for one example, ``inputs: [T, input_size]``.
      pattern: one of ``PATTERNS``.
      input_size: F, the size of each input step.
      output_size: O (the vocabulary size V for the generative patterns).
      initial_carry: ``initial_carry() -> carry``, the zero carry ``apply`` starts from.
      generate: one-to-many only, ``generate(params, key, first_input, num_steps,
        temperature=1.0, greedy=False) -> tokens [num_steps]``.
      decode: seq2seq only, ``decode(params, src, src_length, max_len, *, key=None,
        temperature=1.0, greedy=True) -> tokens [max_len]``.
    """

    init: Callable[[jax.Array], Params]
    apply: Callable[..., tuple[jax.Array, Carry]]
    pattern: str
    input_size: int
    output_size: int
    initial_carry: Callable[[], Carry]
    generate: Callable[..., jax.Array] | None = None
    decode: Callable[..., jax.Array] | None = None


# ----------------------------------------------------------------------------------------------
# Readout and checks


def dense_init(key: jax.Array, in_size: int, out_size: int, dtype: Any = jnp.float32) -> Params:
    """Params of a dense layer: ``{"w": [in, out]`` Glorot uniform, ``"b": [out]`` zeros``}``."""
    w = jax.nn.initializers.glorot_uniform()(key, (in_size, out_size), dtype)
    return {"w": w, "b": jnp.zeros((out_size,), dtype)}


def dense(params: Params, h: jax.Array) -> jax.Array:
    """``h @ w + b`` for ``h: [..., in]`` (explicit broadcasting, rank-promotion safe)."""
    b = params["b"]
    return h @ params["w"] + b.reshape((1,) * (jnp.ndim(h) - 1) + b.shape)


def _param_dtype(params: Any) -> Any:
    leaves = [leaf for leaf in jax.tree.leaves(params) if jnp.issubdtype(leaf.dtype, jnp.floating)]
    return leaves[0].dtype if leaves else jnp.float32


def _check_options(options: dict[str, Any], where: str) -> None:
    unknown = sorted(set(options) - set(UNROLL_OPTIONS))
    if unknown:
        raise TypeError(
            f"{where}: unexpected keyword arguments {unknown}; the unroll options are "
            f"{list(UNROLL_OPTIONS)}"
        )


def _to_layer(obj: Any, arg: str, where: str) -> Layer:
    if not isinstance(obj, (Cell, Layer)):
        raise TypeError(
            f"{where}: {arg} must be a seqjax Cell or Layer (e.g. seqjax.lstm(64) or "
            f"seqjax.layers.stack([...])), got {type(obj).__name__}"
        )
    return as_layer(obj)


def _check_cell(obj: Any, arg: str, where: str) -> Cell:
    if not isinstance(obj, Cell):
        raise TypeError(
            f"{where}: {arg} must be a seqjax Cell (it is stepped one symbol at a time), e.g. "
            f"seqjax.lstm(64); got {type(obj).__name__}"
        )
    return obj


def _check_targets(targets: Any, where: str) -> jax.Array:
    if targets is None:
        raise ValueError(
            f"{where}: targets are required (int symbols [T_out], used for teacher forcing)"
        )
    targets = jnp.asarray(targets)
    if targets.ndim != 1 or not jnp.issubdtype(targets.dtype, jnp.integer):
        raise ValueError(
            f"{where}: targets has shape {targets.shape} and dtype {targets.dtype}, expected "
            f"int symbols [T_out] for one example"
        )
    return targets


def mask_past_length(ys: jax.Array, length: Any) -> jax.Array:
    """``ys: [T, O]`` with the rows at and after ``length`` set to zero (unchanged for None)."""
    if length is None:
        return ys
    length = jnp.asarray(length)
    valid = jnp.arange(ys.shape[0], dtype=length.dtype) < length
    return jnp.where(valid[:, None], ys, jnp.zeros_like(ys))


def _pick(key: jax.Array | None, logits: jax.Array, temperature: Any, greedy: bool) -> jax.Array:
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, logits / temperature).astype(jnp.int32)


def _check_sampling(key: Any, temperature: Any, greedy: bool, num: Any, arg: str, where: str):
    positive_int(num, arg, where)
    if not greedy and key is None:
        raise ValueError(f"{where}: sampling (greedy=False) needs a PRNG key, got key=None")
    if isinstance(temperature, (int, float)) and not temperature > 0:
        raise ValueError(f"{where}: temperature must be > 0, got {temperature!r}")


def _autoregress(
    cell: Cell,
    cell_params: Any,
    readout: Params,
    carry: Carry,
    first_input: jax.Array,
    num_steps: int,
    key: jax.Array | None,
    temperature: Any,
    greedy: bool,
) -> jax.Array:
    """Steps ``cell`` ``num_steps`` times, feeding back the one-hot of each chosen symbol."""
    vocab = readout["b"].shape[0]
    keys = None if key is None else jax.random.split(key, num_steps)

    def body(state: tuple[Carry, jax.Array], k: jax.Array | None) -> tuple[Any, jax.Array]:
        c, x = state
        c, h = cell.step(cell_params, c, x)
        token = _pick(k, dense(readout, h), temperature, greedy)
        return (c, jax.nn.one_hot(token, vocab, dtype=x.dtype)), token

    _, tokens = jax.lax.scan(body, (carry, first_input), keys, length=num_steps)
    return tokens


# ----------------------------------------------------------------------------------------------
# Builders


def _encoder_readout(
    where: str,
    layer: Cell | Layer,
    input_size: int,
    output_size: int,
    unroll_options: dict[str, Any],
    head: Callable[..., jax.Array],
) -> Model:
    """A layer and a dense readout; ``head(readout, layer, carry, hs, length)`` reads out."""
    layer = _to_layer(layer, "layer", where)
    positive_int(input_size, "input_size", where)
    positive_int(output_size, "output_size", where)
    _check_options(unroll_options, where)

    def init(key: jax.Array) -> Params:
        k_layer, k_out = jax.random.split(key)
        encoder = layer.init(k_layer, input_size)
        readout = dense_init(k_out, layer.output_size, output_size, _param_dtype(encoder))
        return {"encoder": encoder, "readout": readout}

    def apply(
        params: Params,
        inputs: jax.Array,
        length: Any = None,
        *,
        targets: Any = None,
        carry: Carry | None = None,
        key: jax.Array | None = None,
    ) -> tuple[jax.Array, Carry]:
        del targets
        inputs = checks.model_inputs(inputs, input_size, where)
        carry, hs = layer.apply(
            params["encoder"], inputs, length=length, carry=carry, key=key, **unroll_options
        )
        return head(params["readout"], layer, carry, hs, length), carry

    return Model(init, apply, where, input_size, output_size, layer.initial_carry)


def many_to_one(
    layer: Cell | Layer, input_size: int, output_size: int, **unroll_options: Any
) -> Model:
    """Sequence in, one output out (classification): a dense readout of the sequence summary.

    ``apply(params, inputs [T, F], length)`` returns ``(outputs [O], carry)`` with
    ``outputs = readout(layer.last(...))``: the hidden state at the last valid step
    ``length - 1`` (for a bidirectional layer the forward state at ``length - 1`` with the
    backward state at step 0), so a padded sequence gives what the unpadded one gives.

    Args:
      layer: a `Cell` or a `seqjax.layers.Layer`.
      input_size: F.
      output_size: O.
      **unroll_options: ``unroll``, ``truncate``, ``remat``, passed to the layer.

    Returns:
      A `Model` with params ``{"encoder": ..., "readout": {"w": [H, O], "b": [O]}}``.

    Example:
      >>> model = many_to_one(lstm(32), input_size=3, output_size=2)
      >>> params = model.init(jax.random.key(0))
      >>> logits, _ = model.apply(params, jnp.ones((7, 3)), 5)          # [2]
    """
    return _encoder_readout(
        "many_to_one",
        layer,
        input_size,
        output_size,
        unroll_options,
        lambda readout, layer, carry, hs, length: dense(readout, layer.last(carry, hs, length)),
    )


def many_to_many(
    layer: Cell | Layer, input_size: int, output_size: int, **unroll_options: Any
) -> Model:
    """One output per input step (tagging, language modelling): a dense readout at every step.

    ``apply(params, inputs [T, F], length, carry=c)`` returns ``(outputs [T, O], carry)``;
    outputs at and past ``length`` are zeros (not the readout bias), so masked losses and sums
    see nothing there. The returned carry is the one after the last valid step: pass it back
    as ``carry`` for the next chunk of a long stream (streaming truncated BPTT; wrap it in
    ``jax.lax.stop_gradient`` between chunks).

    Args:
      layer: a `Cell` or a `seqjax.layers.Layer`.
      input_size: F.
      output_size: O.
      **unroll_options: ``unroll``, ``truncate``, ``remat``, passed to the layer.

    Returns:
      A `Model` with params ``{"encoder": ..., "readout": {"w": [H, O], "b": [O]}}``.
    """
    return _encoder_readout(
        "many_to_many",
        layer,
        input_size,
        output_size,
        unroll_options,
        lambda readout, layer, carry, hs, length: mask_past_length(dense(readout, hs), length),
    )


def one_to_many(cell: Cell, vocab_size: int, **unroll_options: Any) -> Model:
    """One input, a sequence of symbols out (generation), trained with teacher forcing.

    The cell reads and the readout predicts symbols of one vocabulary of size V: step 0 reads
    ``first_input: [V]`` (a one-hot start symbol, or any conditioning vector of size V) and each
    later step reads the one-hot of the previous symbol::

        x_0 = first_input;  x_t = one_hot(y_{t-1}, V);  (c_t, h_t) = step(c_{t-1}, x_t)
        logits_t = h_t @ w + b;  y_t ~ softmax(logits_t / temperature)  (argmax if greedy)

    ``apply(params, inputs [T, V], length, targets=y [T] int)`` is the teacher-forced pass:
    with ``targets`` the inputs are ``[inputs[0], one_hot(y_0), ..., one_hot(y_{T-2})]``
    (``inputs[1:]`` is ignored, so ``inputs`` may be ``first_input`` repeated); without
    ``targets`` the inputs are read as they are. It returns ``(logits [T, V], carry)``, zero
    past ``length``; the logits at step t predict ``y_t``.

    ``generate(params, key, first_input [V], num_steps, temperature=1.0, greedy=False)``
    samples ``tokens [num_steps]`` (int32) inside one ``lax.scan``; ``key`` may be None when
    ``greedy``.

    Args:
      cell: the recurrent `Cell`.
      vocab_size: V, the input size and the number of output classes.
      **unroll_options: ``unroll``, ``truncate``, ``remat``, for the teacher-forced pass.

    Returns:
      A `Model` with params ``{"decoder": ..., "readout": {"w": [H, V], "b": [V]}}``.
    """
    where = "one_to_many"
    cell = _check_cell(cell, "cell", where)
    positive_int(vocab_size, "vocab_size", where)
    _check_options(unroll_options, where)
    V = vocab_size

    def init(key: jax.Array) -> Params:
        k_cell, k_out = jax.random.split(key)
        decoder = cell.init(k_cell, V)
        return {
            "decoder": decoder,
            "readout": dense_init(k_out, cell.hidden_size, V, _param_dtype(decoder)),
        }

    def apply(
        params: Params,
        inputs: jax.Array,
        length: Any = None,
        *,
        targets: Any = None,
        carry: Carry | None = None,
        key: jax.Array | None = None,
    ) -> tuple[jax.Array, Carry]:
        del key
        inputs = checks.model_inputs(inputs, V, where)
        if targets is not None:
            targets = _check_targets(targets, where)
            if targets.shape[0] != inputs.shape[0]:
                raise ValueError(
                    f"{where}: targets has shape {targets.shape}, expected [T] = "
                    f"[{inputs.shape[0]}] to match inputs {inputs.shape}"
                )
            shifted = jax.nn.one_hot(targets[:-1], V, dtype=inputs.dtype)
            inputs = jnp.concatenate([inputs[:1], shifted], axis=0)
        carry, hs = unroll_fn(
            cell, params["decoder"], inputs, carry=carry, length=length, **unroll_options
        )
        return mask_past_length(dense(params["readout"], hs), length), carry

    def generate(
        params: Params,
        key: jax.Array | None,
        first_input: jax.Array,
        num_steps: int,
        temperature: float = 1.0,
        greedy: bool = False,
    ) -> jax.Array:
        _check_sampling(key, temperature, greedy, num_steps, "num_steps", f"{where}.generate")
        first_input = jnp.asarray(first_input)
        if first_input.shape != (V,):
            raise ValueError(
                f"{where}.generate: first_input has shape {first_input.shape}, expected [{V}] "
                f"(one example; a one-hot start symbol or a conditioning vector of size V)"
            )
        first_input = first_input.astype(params["readout"]["w"].dtype)
        return _autoregress(
            cell,
            params["decoder"],
            params["readout"],
            cell.initial_carry(),
            first_input,
            num_steps,
            key,
            temperature,
            greedy,
        )

    return Model(init, apply, where, V, V, cell.initial_carry, generate=generate)


def seq2seq(
    encoder: Cell | Layer,
    decoder: Cell,
    src_size: int,
    tgt_vocab: int,
    *,
    start_id: int = 0,
    **unroll_options: Any,
) -> Model:
    """Encoder-decoder (sequence in, a sequence of another length out), as in translation.

    The encoder reads the valid prefix of ``src: [T_src, F]``; its final carry (the one at
    ``src_length``) is the decoder's initial carry, so the two must have the same carry
    structure (e.g. two LSTMs of one hidden size). The decoder reads the previous target symbol
    one-hot, starting from ``start_id``, and a dense readout gives next-symbol logits::

        c = encoder carry at src_length;  y_{-1} = start_id
        (c, h_t) = decoder.step(c, one_hot(y_{t-1}, V));  logits_t = h_t @ w + b

    Convention: class ``start_id`` (0 by default) is reserved as the start symbol (and may
    double as padding); the model never has to predict it.

    ``apply(params, src, src_length, targets=tgt [T_out] int)`` is teacher forcing: the decoder
    inputs are ``tgt`` shifted right with the start symbol in front; it returns
    ``(logits [T_out, V], decoder carry)``. The decoder is causal, so target padding after the
    true target length does not change the logits before it (mask the loss there).
    ``decode(params, src, src_length, max_len, *, key=None, temperature=1.0, greedy=True)``
    returns ``tokens [max_len]`` (int32), fed back autoregressively inside one ``lax.scan``;
    there is no end symbol: cut the tokens after your own end marker.

    Args:
      encoder: a `Cell` or `seqjax.layers.Layer` over the source (dropout via ``key``).
      decoder: the decoder `Cell`, with input size ``tgt_vocab``.
      src_size: F, the size of each source step.
      tgt_vocab: V, the number of target classes (start symbol included).
      start_id: the start symbol, in ``[0, tgt_vocab)``.
      **unroll_options: ``unroll``, ``truncate``, ``remat``, for the teacher-forced pass.

    Returns:
      A `Model` with params ``{"encoder": ..., "decoder": ..., "readout": {"w", "b"}}``.
    """
    where = "seq2seq"
    enc = _to_layer(encoder, "encoder", where)
    decoder = _check_cell(decoder, "decoder", where)
    positive_int(src_size, "src_size", where)
    positive_int(tgt_vocab, "tgt_vocab", where)
    _check_options(unroll_options, where)
    if isinstance(start_id, bool) or not isinstance(start_id, int) or not 0 <= start_id < tgt_vocab:
        raise ValueError(f"{where}: start_id must be an int in [0, {tgt_vocab}), got {start_id!r}")
    enc_carry, dec_carry = enc.initial_carry(), decoder.initial_carry()
    enc_shapes = jax.tree.map(jnp.shape, enc_carry)
    dec_shapes = jax.tree.map(jnp.shape, dec_carry)
    if jax.tree.structure(enc_carry) != jax.tree.structure(dec_carry) or enc_shapes != dec_shapes:
        raise ValueError(
            f"{where}: the encoder's final carry initialises the decoder, so their carries must "
            f"match; got encoder {enc.name} carry {enc_shapes} and decoder {decoder.name} carry "
            f"{dec_shapes}. Use an encoder and a decoder cell of the same kind and hidden size."
        )
    V = tgt_vocab

    def init(key: jax.Array) -> Params:
        k_enc, k_dec, k_out = jax.random.split(key, 3)
        enc_params = enc.init(k_enc, src_size)
        dec_params = decoder.init(k_dec, V)
        readout = dense_init(k_out, decoder.hidden_size, V, _param_dtype(dec_params))
        return {"encoder": enc_params, "decoder": dec_params, "readout": readout}

    def encode(params: Params, src: Any, src_length: Any, carry: Any, key: Any) -> Carry:
        src = checks.model_inputs(src, src_size, where, "src")
        c, _ = enc.apply(
            params["encoder"], src, length=src_length, carry=carry, key=key, **unroll_options
        )
        return c

    def apply(
        params: Params,
        inputs: jax.Array,
        length: Any = None,
        *,
        targets: Any = None,
        carry: Carry | None = None,
        key: jax.Array | None = None,
    ) -> tuple[jax.Array, Carry]:
        targets = _check_targets(targets, where)
        c = encode(params, inputs, length, carry, key)
        dtype = params["readout"]["w"].dtype
        prev = jnp.concatenate([jnp.full((1,), start_id, targets.dtype), targets[:-1]])
        dec_in = jax.nn.one_hot(prev, V, dtype=dtype)
        c, hs = unroll_fn(decoder, params["decoder"], dec_in, carry=c, **unroll_options)
        return dense(params["readout"], hs), c

    def decode(
        params: Params,
        src: jax.Array,
        src_length: Any,
        max_len: int,
        *,
        key: jax.Array | None = None,
        temperature: float = 1.0,
        greedy: bool = True,
    ) -> jax.Array:
        _check_sampling(key, temperature, greedy, max_len, "max_len", f"{where}.decode")
        c = encode(params, src, src_length, None, None)
        start = jax.nn.one_hot(start_id, V, dtype=params["readout"]["w"].dtype)
        return _autoregress(
            decoder,
            params["decoder"],
            params["readout"],
            c,
            start,
            max_len,
            key,
            temperature,
            greedy,
        )

    return Model(init, apply, where, src_size, V, enc.initial_carry, decode=decode)


MODELS: dict[str, Callable[..., Model]] = {
    "many_to_one": many_to_one,
    "many_to_many": many_to_many,
    "one_to_many": one_to_many,
    "seq2seq": seq2seq,
}
