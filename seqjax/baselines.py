"""Non-recurrent baselines (whitepaper section 27): a small causal transformer and a TCN.

Both are `seqjax.models.Model` records with the interface of the recurrent models, so any task
config that takes a ``many_to_one`` or ``many_to_many`` model can take one of these instead::

    model = transformer(input_size=3, output_size=10, pattern="many_to_one", num_layers=2)
    model = tcn(input_size=3, output_size=10, pattern="many_to_many", max_len=200)
    params = model.init(key)                          # {"encoder": {...}, "readout": {"w", "b"}}
    outputs, carry = model.apply(params, xs, length)  # one example: xs [T, F]

| pattern        | ``apply(params, inputs [T, F], length, ...)`` returns                   |
| -------------- | ----------------------------------------------------------------------- |
| `many_to_one`  | ``[O]``: the output at the last valid step ``length - 1``               |
| `many_to_many` | ``[T, O]``: one output per step, zeros at and past ``length``           |

Both are causal: the output at step t reads only the inputs at steps ``<= t``, so padding after
``length`` never changes a valid output, and a padded batch gives what each unpadded sequence
gives. The carry is the empty tuple ``()``: ``initial_carry()`` returns it, ``apply`` returns it
and accepts only ``None`` or ``()`` as ``carry``. A transformer or TCN sees the whole chunk at
once and keeps no state between chunks, so streaming truncated BPTT (feeding the carry back
between train steps) does not apply; train them on whole sequences. ``targets`` is accepted for
the common signature and ignored. ``key`` turns on dropout (training); without it the model is
deterministic. Inputs are cast to the parameter dtype.

Numerics are for one example; batch with ``jax.vmap(model.apply, in_axes=(None, 0, 0))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from seqjax import checks, layers
from seqjax.checks import positive_int
from seqjax.layers import last_step
from seqjax.models import Model, Params, dense, dense_init, mask_past_length

BASELINE_PATTERNS = ("many_to_one", "many_to_many")
POSITIONS = ("learned", "sinusoidal")


# ----------------------------------------------------------------------------------------------
# Shared checks and helpers


def _check_pattern(pattern: Any, where: str) -> None:
    if pattern not in BASELINE_PATTERNS:
        raise ValueError(
            f"{where}: unknown pattern={pattern!r}; expected one of {list(BASELINE_PATTERNS)} "
            f"(the generative patterns one_to_many and seq2seq need a recurrent decoder)"
        )


def _check_carry(carry: Any, where: str) -> None:
    if carry is not None and jax.tree.leaves(carry):
        raise ValueError(
            f"{where}: this model keeps no state between calls, so carry must be None or (), got "
            f"a carry with leaves {jax.tree.map(jnp.shape, carry)}. Streaming truncated BPTT does "
            f"not apply to it; train it on whole sequences."
        )


def _empty_carry() -> tuple[()]:
    return ()


def _readout(pattern: str, readout: Params, hs: jax.Array, length: Any) -> jax.Array:
    """The model output from the top features ``hs: [T, H]`` (see the module table)."""
    if pattern == "many_to_one":
        return dense(readout, last_step(hs, length))
    return mask_past_length(dense(readout, hs), length)


def _split(key: jax.Array | None, num: int) -> list[jax.Array | None]:
    return [None] * num if key is None else list(jax.random.split(key, num))


def _encoder_model(
    init: Callable[[jax.Array], Params],
    encode: Callable[[Params, jax.Array, Any, jax.Array | None], jax.Array],
    pattern: str,
    input_size: int,
    output_size: int,
    where: str,
) -> Model:
    """The `Model` of a baseline from its ``init`` and ``encode(enc, inputs, length, key) ->
    hs [T, D]``: inputs checked and cast, then the pattern's readout of ``hs``."""

    def apply(
        params: Params,
        inputs: jax.Array,
        length: Any = None,
        *,
        targets: Any = None,
        carry: Any = None,
        key: jax.Array | None = None,
    ) -> tuple[jax.Array, tuple[()]]:
        del targets
        _check_carry(carry, where)
        inputs = _prepare(inputs, input_size, params["readout"]["w"].dtype, where)
        hs = encode(params["encoder"], inputs, length, key)
        return _readout(pattern, params["readout"], hs, length), ()

    return Model(init, apply, pattern, input_size, output_size, _empty_carry)


def _prepare(inputs: Any, input_size: int, dtype: Any, where: str) -> jax.Array:
    inputs = checks.model_inputs(inputs, input_size, where)
    return inputs.astype(dtype)


def _row(v: jax.Array, ndim: int) -> jax.Array:
    """``v: [D]`` reshaped to broadcast against an array of rank ``ndim`` (rank-promotion safe)."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


# ----------------------------------------------------------------------------------------------
# Transformer pieces


def layer_norm(params: Params, x: jax.Array, eps: float = 1e-5) -> jax.Array:
    """Layer normalisation over the last axis: ``(x - mean) / sqrt(var + eps) * scale + bias``.

    Args:
      params: ``{"scale": [D], "bias": [D]}``.
      x: ``[..., D]``.
      eps: added to the (biased) variance.

    Returns:
      An array shaped like ``x``.
    """
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    normed = (x - mean) * jax.lax.rsqrt(var + eps)
    return normed * _row(params["scale"], x.ndim) + _row(params["bias"], x.ndim)


def sinusoidal_positions(num_steps: int, d_model: int, dtype: Any = jnp.float32) -> jax.Array:
    """Fixed sinusoidal position codes (Vaswani et al. 2017), ``[num_steps, d_model]``.

    Feature pairs share one frequency; for an odd ``d_model`` the last sine is kept alone::

        P[t, 2i] = sin(t / 10000^(2i / D)),   P[t, 2i + 1] = cos(t / 10000^(2i / D))
    """
    t = jnp.arange(num_steps, dtype=dtype)[:, None]
    two_i = jnp.arange(0, d_model, 2, dtype=dtype)[None, :]
    angles = t / jnp.power(jnp.asarray(10000.0, dtype), two_i / d_model)
    codes = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1)  # [T, ceil(D/2), 2]
    return codes.reshape(num_steps, -1)[:, :d_model]


def causal_self_attention(
    params: Params,
    x: jax.Array,
    length: Any = None,
    *,
    num_heads: int,
    key: jax.Array | None = None,
    rate: float = 0.0,
) -> jax.Array:
    """Multi-head self-attention in which step t attends to steps ``s <= t`` (and ``s < length``).

    For each head h, with ``d = D / num_heads`` and ``x: [T, D]``::

        q, k, v = x @ w_q + b_q, x @ w_k + b_k, x @ w_v + b_v     (split into heads of size d)
        A_h[t, s] = softmax_s(q_h[t] . k_h[s] / sqrt(d))  over s <= t, s < length
        out = concat_h(A_h @ v_h) @ w_o + b_o

    Masked scores are set to the dtype's most negative finite value, so their weights are
    exactly zero and a fully masked row (only when ``length == 0``) stays finite. ``key`` drops
    attention weights with probability ``rate``.

    Args:
      params: ``{"q", "k", "v", "o"}``, each a dense ``{"w": [D, D], "b": [D]}``.
      x: ``[T, D]``.
      length: valid steps (an int, traced), or None for all ``T``.
      num_heads: divides ``D``.
      key: a PRNG key for attention dropout, or None.
      rate: attention dropout rate.

    Returns:
      ``[T, D]``.
    """
    num_steps, d_model = x.shape
    d_head = d_model // num_heads

    def heads(p: Params) -> jax.Array:
        return dense(p, x).reshape(num_steps, num_heads, d_head)

    q, k, v = heads(params["q"]), heads(params["k"]), heads(params["v"])
    scores = jnp.einsum("thd,shd->hts", q, k) * (1.0 / math.sqrt(d_head))
    t = jnp.arange(num_steps, dtype=jnp.int32)
    mask = t[None, :] <= t[:, None]  # [query t, key s]
    if length is not None:
        mask = mask & (t[None, :] < jnp.asarray(length).astype(jnp.int32))
    scores = jnp.where(mask[None], scores, jnp.finfo(scores.dtype).min)
    weights = layers.dropout(key, jax.nn.softmax(scores, axis=-1), rate)
    out = jnp.einsum("hts,shd->thd", weights, v).reshape(num_steps, d_model)
    return dense(params["o"], out)


def _ln_init(d: int, dtype: Any) -> Params:
    return {"scale": jnp.ones((d,), dtype), "bias": jnp.zeros((d,), dtype)}


# ----------------------------------------------------------------------------------------------
# Transformer


def transformer(
    input_size: int,
    output_size: int,
    *,
    pattern: str = "many_to_many",
    d_model: int = 64,
    num_heads: int = 4,
    num_layers: int = 2,
    d_ff: int | None = None,
    max_len: int | None = None,
    positions: str = "sinusoidal",
    dropout: float = 0.0,
    dtype: Any = jnp.float32,
) -> Model:
    """A small causal pre-norm transformer (decoder-only, as in GPT-2) for one sequence.

    For one example ``x: [T, F]`` with ``L = num_layers`` blocks::

        z = x @ w_e + b_e + P[:T]                                       # [T, D]
        repeat L times:
            z = z + attention(LN_1(z))          # causal multi-head self-attention
            z = z + W_2 gelu(W_1 LN_2(z))       # position-wise MLP, hidden size d_ff
        y_t = LN_f(z)_t @ w + b                 # dense readout

    ``P`` is a learned ``[max_len, D]`` table (``positions="learned"``, normal(0, 0.02) init)
    or the fixed sinusoidal codes (``"sinusoidal"``, no parameters, any length). Dropout (only
    with a ``key``) acts on the embedded input, the attention weights and each sublayer output
    before its residual sum. Steps at and past ``length`` are masked out as attention keys.
    Dense weights are Glorot uniform with zero bias; layer norms start at scale 1, bias 0; GELU
    is the exact (erf) one.

    Parameters (``init(key)``)::

        {"encoder": {"embed": {"w": [F, D], "b": [D]},
                     "pos": [max_len, D],                        # learned positions only
                     "blocks": [{"ln1": {"scale": [D], "bias": [D]},
                                 "attn": {"q": {"w": [D, D], "b": [D]}, "k": ..., "v": ...,
                                          "o": ...},
                                 "ln2": {"scale", "bias"},
                                 "mlp": {"fc": {"w": [D, d_ff], "b": [d_ff]},
                                         "proj": {"w": [d_ff, D], "b": [D]}}}] * L,
                     "ln_f": {"scale": [D], "bias": [D]}},
         "readout": {"w": [D, O], "b": [O]}}

    A layer has ``4 D^2 + 4 D`` attention, ``2 D d_ff + d_ff + D`` MLP and ``4 D`` norm
    parameters; the defaults (D=64, 4 heads, 2 layers, d_ff=256) give 99,968 in the blocks.

    Args:
      input_size: F.
      output_size: O.
      pattern: "many_to_many" (outputs ``[T, O]``) or "many_to_one" (``[O]`` at ``length - 1``).
      d_model: D, the width of the residual stream; a multiple of ``num_heads``.
      num_heads: attention heads, each of size ``D / num_heads``.
      num_layers: L, the number of blocks.
      d_ff: the MLP hidden size; ``4 * d_model`` when None.
      max_len: the longest sequence, required for learned positions (the table's length);
        optional for sinusoidal ones, where it only bounds the accepted length.
      positions: "learned" or "sinusoidal". Sinusoidal is the default because it adds no
        parameters (so parameter counts compare with the recurrent models) and needs no
        ``max_len``.
      dropout: dropout rate in [0, 1), applied only when ``apply`` gets a ``key``.
      dtype: dtype of the parameters (and of the computation).

    Returns:
      A `Model` whose carry is ``()`` (see the module docstring).

    Example:
      >>> model = transformer(3, 2, pattern="many_to_one", d_model=16, num_heads=2)
      >>> params = model.init(jax.random.key(0))
      >>> logits, _ = model.apply(params, jnp.ones((7, 3)), 5)          # [2]
    """
    where = "transformer"
    positive_int(input_size, "input_size", where)
    positive_int(output_size, "output_size", where)
    _check_pattern(pattern, where)
    positive_int(d_model, "d_model", where)
    positive_int(num_heads, "num_heads", where)
    positive_int(num_layers, "num_layers", where)
    if d_model % num_heads:
        raise ValueError(
            f"{where}: d_model={d_model} must be divisible by num_heads={num_heads} (each head "
            f"has size d_model / num_heads); choose e.g. "
            f"d_model={num_heads * math.ceil(d_model / num_heads)}"
        )
    d_ff = 4 * d_model if d_ff is None else d_ff
    positive_int(d_ff, "d_ff", where)
    if positions not in POSITIONS:
        raise ValueError(
            f"{where}: unknown positions={positions!r}; expected one of {list(POSITIONS)}"
        )
    if max_len is not None:
        positive_int(max_len, "max_len", where)
    elif positions == "learned":
        raise ValueError(
            f"{where}: positions='learned' needs max_len (the length of the position table), "
            f"got max_len=None; pass the longest sequence length, or use positions='sinusoidal'"
        )
    checks.rate(dropout, "dropout", where)
    rate = dropout
    D = d_model

    def init(key: jax.Array) -> Params:
        k_embed, k_pos, k_out, *k_blocks = jax.random.split(key, 3 + num_layers)
        blocks = []
        for kb in k_blocks:
            kq, kk, kv, ko, k1, k2 = jax.random.split(kb, 6)
            blocks.append(
                {
                    "ln1": _ln_init(D, dtype),
                    "attn": {
                        "q": dense_init(kq, D, D, dtype),
                        "k": dense_init(kk, D, D, dtype),
                        "v": dense_init(kv, D, D, dtype),
                        "o": dense_init(ko, D, D, dtype),
                    },
                    "ln2": _ln_init(D, dtype),
                    "mlp": {
                        "fc": dense_init(k1, D, d_ff, dtype),
                        "proj": dense_init(k2, d_ff, D, dtype),
                    },
                }
            )
        encoder: Params = {"embed": dense_init(k_embed, input_size, D, dtype)}
        if positions == "learned":
            encoder["pos"] = 0.02 * jax.random.normal(k_pos, (max_len, D), dtype)
        encoder["blocks"] = blocks
        encoder["ln_f"] = _ln_init(D, dtype)
        return {"encoder": encoder, "readout": dense_init(k_out, D, output_size, dtype)}

    def encode(enc: Params, inputs: jax.Array, length: Any, key: jax.Array | None) -> jax.Array:
        num_steps = inputs.shape[0]
        if max_len is not None and num_steps > max_len:
            raise ValueError(
                f"{where}: inputs have T={num_steps} steps but the model was built with "
                f"max_len={max_len}; build it with max_len >= {num_steps}"
            )
        if positions == "learned":
            pos = enc["pos"][:num_steps]
        else:
            pos = sinusoidal_positions(num_steps, D, inputs.dtype)
        keys = _split(key, 1 + 3 * num_layers)
        z = layers.dropout(keys[0], dense(enc["embed"], inputs) + pos, rate)
        for i, block in enumerate(enc["blocks"]):
            k_att, k_res1, k_res2 = keys[1 + 3 * i : 4 + 3 * i]
            a = causal_self_attention(
                block["attn"],
                layer_norm(block["ln1"], z),
                length,
                num_heads=num_heads,
                key=k_att,
                rate=rate,
            )
            z = z + layers.dropout(k_res1, a, rate)
            hidden = jax.nn.gelu(
                dense(block["mlp"]["fc"], layer_norm(block["ln2"], z)), approximate=False
            )
            z = z + layers.dropout(k_res2, dense(block["mlp"]["proj"], hidden), rate)
        return layer_norm(enc["ln_f"], z)

    return _encoder_model(init, encode, pattern, input_size, output_size, where)


# ----------------------------------------------------------------------------------------------
# Temporal convolutional network


def causal_conv1d(params: Params, x: jax.Array, dilation: int = 1) -> jax.Array:
    """Dilated causal 1-D convolution: step t reads steps ``t, t - d, ..., t - (K - 1) d``.

    With ``w: [K, C_in, C_out]`` and zeros before step 0 (explicit left padding of
    ``(K - 1) d`` steps, none on the right, so no output reads the future)::

        y[t] = b + sum_{j=0}^{K-1} x[t - (K - 1 - j) d] @ w[j]

    so ``w[K - 1]`` weights the current step. Computed with ``jax.lax.conv_general_dilated``.

    Args:
      params: ``{"w": [K, C_in, C_out], "b": [C_out]}``.
      x: ``[T, C_in]``.
      dilation: d >= 1.

    Returns:
      ``[T, C_out]``.
    """
    w = params["w"]
    pad = (w.shape[0] - 1) * dilation
    y = jax.lax.conv_general_dilated(
        x[None],
        w,
        window_strides=(1,),
        padding=[(pad, 0)],
        rhs_dilation=(dilation,),
        dimension_numbers=("NWC", "WIO", "NWC"),
    )[0]
    return y + _row(params["b"], y.ndim)


def tcn_receptive_field(kernel_size: int, num_levels: int) -> int:
    """The number of input steps each TCN output sees: ``1 + 2 (K - 1) (2^L - 1)``.

    Level i (dilation ``2^i``) has two convolutions, each widening the window by
    ``(K - 1) 2^i`` steps; so the output at t depends exactly on the inputs at
    ``t - R + 1, ..., t`` (those that exist).
    """
    positive_int(kernel_size, "kernel_size", "tcn_receptive_field")
    positive_int(num_levels, "num_levels", "tcn_receptive_field")
    return 1 + 2 * (kernel_size - 1) * (2**num_levels - 1)


def tcn_num_levels(kernel_size: int, max_len: int) -> int:
    """The fewest levels whose receptive field covers ``max_len`` steps (at least one)."""
    positive_int(max_len, "max_len", "tcn_num_levels")
    if not isinstance(kernel_size, int) or isinstance(kernel_size, bool) or kernel_size < 2:
        raise ValueError(f"tcn_num_levels: kernel_size must be an int >= 2, got {kernel_size!r}")
    levels = 1
    while tcn_receptive_field(kernel_size, levels) < max_len:
        levels += 1
    return levels


def tcn(
    input_size: int,
    output_size: int,
    *,
    pattern: str = "many_to_many",
    channels: int | Sequence[int] = 32,
    kernel_size: int = 3,
    num_levels: int | None = None,
    max_len: int | None = None,
    dropout: float = 0.0,
    dtype: Any = jnp.float32,
) -> Model:
    """A temporal convolutional network (Bai, Kolter and Koltun 2018) for one sequence.

    ``L`` residual blocks; block i has dilation ``d = 2^i`` and ``C_i`` channels::

        u = dropout(relu(conv_d(h, w1)))               # dilated causal convolution, C_i out
        u = dropout(relu(conv_d(u, w2)))
        h = relu(u + (h if C_{i-1} == C_i else h @ w_down + b_down))    # 1x1 conv if needed
        y_t = h_t @ w + b                                                 # dense readout

    Each output sees ``tcn_receptive_field(kernel_size, L) = 1 + 2 (K - 1) (2^L - 1)`` steps
    (e.g. K=3: 5, 13, 29, 61, 125, 253 for L=1..6); inputs further back do not reach it. When
    ``num_levels`` is None it is the fewest levels covering ``max_len`` (`tcn_num_levels`).
    Differences from the paper: no weight normalisation (plain weights, He uniform over the
    ``K * C_in`` fan-in, zero bias; the 1x1 convolution is Glorot uniform) and element-wise
    dropout, only with a ``key``.

    Parameters (``init(key)``)::

        {"encoder": {"blocks": [{"conv1": {"w": [K, C_in, C_i], "b": [C_i]},
                                 "conv2": {"w": [K, C_i, C_i], "b": [C_i]},
                                 "down": {"w": [C_in, C_i], "b": [C_i]}}] * L},  # C_in != C_i
         "readout": {"w": [C_L, O], "b": [O]}}

    Args:
      input_size: F (the channels of the first block's input).
      output_size: O.
      pattern: "many_to_many" (outputs ``[T, O]``) or "many_to_one" (``[O]`` at ``length - 1``).
      channels: channels of every block (an int), or one int per block (then ``num_levels``
        is its length).
      kernel_size: K >= 2.
      num_levels: L, the number of blocks; when None, chosen from ``max_len``.
      max_len: the sequence length the receptive field must cover when ``num_levels`` is None.
      dropout: dropout rate in [0, 1), applied only when ``apply`` gets a ``key``.
      dtype: dtype of the parameters (and of the computation).

    Returns:
      A `Model` whose carry is ``()`` (see the module docstring).

    Example:
      >>> model = tcn(3, 2, channels=16, max_len=100)       # 5 levels, receptive field 125
      >>> params = model.init(jax.random.key(0))
      >>> outputs, _ = model.apply(params, jnp.ones((100, 3)), 80)     # [100, 2]
    """
    where = "tcn"
    positive_int(input_size, "input_size", where)
    positive_int(output_size, "output_size", where)
    _check_pattern(pattern, where)
    if not isinstance(kernel_size, int) or isinstance(kernel_size, bool) or kernel_size < 2:
        raise ValueError(f"{where}: kernel_size must be an int >= 2, got {kernel_size!r}")
    if num_levels is not None:
        positive_int(num_levels, "num_levels", where)
    if isinstance(channels, Sequence) and not isinstance(channels, str):
        sizes = list(channels)
        for c in sizes:
            positive_int(c, "each entry of channels", where)
        if not sizes or (num_levels is not None and num_levels != len(sizes)):
            raise ValueError(
                f"{where}: channels={channels!r} gives one size per level, so it must be "
                f"non-empty and have num_levels={num_levels} entries; or pass one int"
            )
    else:
        positive_int(channels, "channels", where)
        if num_levels is None:
            if max_len is None:
                raise ValueError(
                    f"{where}: give num_levels, or max_len (the sequence length to cover, from "
                    f"which num_levels is chosen), or a list of channels; got all None"
                )
            num_levels = tcn_num_levels(kernel_size, max_len)
        sizes = [channels] * num_levels
    checks.rate(dropout, "dropout", where)
    rate = dropout
    dilations = [2**i for i in range(len(sizes))]

    def conv_init(key: jax.Array, shape: tuple[int, int, int]) -> jax.Array:
        # He uniform over the fan-in K * C_in: variance 2 / fan_in, as for ReLU layers
        bound = math.sqrt(6.0 / (shape[0] * shape[1]))
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    def init(key: jax.Array) -> Params:
        k_out, *k_blocks = jax.random.split(key, 1 + len(sizes))
        blocks = []
        c_in = input_size
        for kb, c in zip(k_blocks, sizes, strict=True):
            k1, k2, kd = jax.random.split(kb, 3)
            block = {
                "conv1": {
                    "w": conv_init(k1, (kernel_size, c_in, c)),
                    "b": jnp.zeros((c,), dtype),
                },
                "conv2": {
                    "w": conv_init(k2, (kernel_size, c, c)),
                    "b": jnp.zeros((c,), dtype),
                },
            }
            if c_in != c:
                block["down"] = dense_init(kd, c_in, c, dtype)
            blocks.append(block)
            c_in = c
        return {
            "encoder": {"blocks": blocks},
            "readout": dense_init(k_out, sizes[-1], output_size, dtype),
        }

    def encode(enc: Params, h: jax.Array, length: Any, key: jax.Array | None) -> jax.Array:
        del length  # causal: steps past the length never reach the valid outputs
        keys = _split(key, 2 * len(sizes))
        for i, (block, d) in enumerate(zip(enc["blocks"], dilations, strict=True)):
            u = layers.dropout(keys[2 * i], jax.nn.relu(causal_conv1d(block["conv1"], h, d)), rate)
            u = layers.dropout(
                keys[2 * i + 1], jax.nn.relu(causal_conv1d(block["conv2"], u, d)), rate
            )
            residual = dense(block["down"], h) if "down" in block else h
            h = jax.nn.relu(u + residual)
        return h

    return _encoder_model(init, encode, pattern, input_size, output_size, where)


BASELINES: dict[str, Callable[..., Model]] = {"transformer": transformer, "tcn": tcn}
"""The baseline builders by name (``BASELINES[name](input_size, output_size, **options)``)."""
