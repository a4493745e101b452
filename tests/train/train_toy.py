"""A toy model for the training tests: ``seqjax.unroll`` of an RNN cell and a dense readout.

Independent of ``seqjax.models`` on purpose: training is model-agnostic.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

import seqjax
from seqjax import losses

try:  # the task engineer's record, when it exists
    from seqjax.tasks.base import Batch
except ImportError:  # pragma: no cover - same fields

    class Batch(NamedTuple):
        inputs: jax.Array  # [B, T, F]
        targets: jax.Array  # [B, T, ...] or [B, ...]
        mask: jax.Array  # [B, T]
        length: jax.Array  # [B]


F, H, K = 2, 4, 3


def make_cell(dtype=jnp.float32):
    # Glorot recurrent weights: the orthogonal default's QR costs compile time, not coverage.
    return seqjax.rnn(H, recurrent_init="glorot", dtype=dtype)


def init_params(key, dtype=jnp.float32):
    k_cell, k_out = jax.random.split(key)
    cell = make_cell(dtype)
    return {
        "cell": cell.init(k_cell, F),
        "w_out": 0.5 * jax.random.normal(k_out, (H, K), dtype),
        "b_out": jnp.zeros((K,), dtype),
    }


def apply(params, xs, length, *, carry=None, truncate=None, remat=False):
    """One sequence ``xs [T, F]`` -> ``(logits [T, K], carry)``."""
    carry, hs = seqjax.unroll(
        make_cell(params["w_out"].dtype),
        params["cell"],
        xs,
        carry=carry,
        length=length,
        truncate=truncate,
        remat=remat,
    )
    return hs @ params["w_out"] + params["b_out"][None, :], carry


def make_loss_fn(truncate=None, remat=False, reduction="mean"):
    """Per-timestep cross-entropy: ``loss_fn(params, batch, key) -> (loss, aux)``."""

    def loss_fn(params, batch, key):
        del key
        logits, _ = jax.vmap(lambda x, n: apply(params, x, n, truncate=truncate, remat=remat))(
            batch.inputs, batch.length
        )
        loss = losses.softmax_cross_entropy(logits, batch.targets, batch.mask, reduction)
        return loss, {"accuracy": losses.accuracy(logits, batch.targets, batch.mask)}

    return loss_fn


def make_stream_loss_fn(reduction="sum"):
    """Streaming: ``loss_fn(params, batch, carry, key) -> (loss, (aux, carry))``."""

    def loss_fn(params, batch, carry, key):
        del key
        logits, carry = jax.vmap(lambda x, n, c: apply(params, x, n, carry=c))(
            batch.inputs, batch.length, carry
        )
        loss = losses.softmax_cross_entropy(logits, batch.targets, batch.mask, reduction)
        return loss, ({"accuracy": losses.accuracy(logits, batch.targets, batch.mask)}, carry)

    return loss_fn


def initial_carry(batch_size, dtype=jnp.float32):
    return jnp.zeros((batch_size, H), dtype)


def make_sampler(batch_size=4, num_steps=6, dtype=jnp.float32):
    """``sample(key) -> Batch``: predict the sign pattern of the previous input (learnable)."""

    def sample(key):
        k_x, k_n = jax.random.split(key)
        xs = jax.random.normal(k_x, (batch_size, num_steps, F), dtype)
        length = jax.random.randint(k_n, (batch_size,), num_steps // 2, num_steps + 1)
        prev = jnp.concatenate([jnp.zeros_like(xs[:, :1]), xs[:, :-1]], axis=1)
        targets = (prev[..., 0] > 0).astype(jnp.int32) + (prev[..., 1] > 0).astype(jnp.int32)
        mask = jnp.arange(num_steps, dtype=length.dtype)[None, :] < length[:, None]
        return Batch(inputs=xs, targets=targets, mask=mask, length=length)

    return sample
