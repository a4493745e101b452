"""Property tests (hypothesis) of masking and reversal, over random lengths, shapes and values.

* `seqjax.unroll` with ``length=n`` computes, on the first n steps, what it computes on the
  sequence cut to n steps (outputs, final carry; forward and reversed), outputs zeros after
  them, and ignores whatever the padded steps hold.
* `seqjax.unroll.valid_prefix_reverse_index` reverses the valid prefix, keeps the rest in
  place, and applied twice is the identity.
"""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import seqjax
from seqjax.unroll import valid_prefix_reverse_index

F, H = 2, 3
CELLS = {"lstm": seqjax.lstm(H), "gru": seqjax.gru(H), "rnn": seqjax.rnn(H)}
PARAMS = {name: cell.init(jax.random.key(i), F) for i, (name, cell) in enumerate(CELLS.items())}
# One compiled unroll per cell, direction and T (length is traced): hypothesis draws T from a
# few sizes so the examples reuse compilations.
UNROLL = {
    (name, reverse): jax.jit(
        lambda p, xs, c, n, cell=cell, reverse=reverse: seqjax.unroll(
            cell, p, xs, carry=c, length=n, reverse=reverse
        )
    )
    for name, cell in CELLS.items()
    for reverse in (False, True)
}
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)


@st.composite
def sequences(draw):
    num_steps = draw(st.sampled_from([1, 3, 6]))
    length = draw(st.integers(0, num_steps))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((num_steps, F)).astype(np.float32)
    return xs, length, rng


def _random_carry(cell, rng):
    return jax.tree.map(
        lambda a: jnp.asarray(rng.standard_normal(a.shape), a.dtype), cell.initial_carry()
    )


def _loop(cell, params, xs, carry, reverse):
    """The reference: a Python loop of ``cell.step`` over the cut sequence ``[n, F]``."""
    hs = [None] * xs.shape[0]
    order = range(xs.shape[0] - 1, -1, -1) if reverse else range(xs.shape[0])
    for t in order:
        carry, hs[t] = cell.step(params, carry, jnp.asarray(xs[t]))
    return carry, np.asarray(hs, np.float32).reshape(xs.shape[0], H)


@SETTINGS
@given(sequences(), st.sampled_from(sorted(CELLS)), st.booleans())
def test_unroll_with_length_equals_unroll_of_the_cut_sequence(data, name, reverse):
    xs, n, rng = data
    cell, params, run = CELLS[name], PARAMS[name], UNROLL[(name, reverse)]
    carry0 = _random_carry(cell, rng)
    carry, hs = run(params, jnp.asarray(xs), carry0, jnp.int32(n))
    # garbage in the padded steps changes nothing
    noisy = xs.copy()
    noisy[n:] = 1e3 * rng.standard_normal(noisy[n:].shape)
    carry_noisy, hs_noisy = run(params, jnp.asarray(noisy), carry0, jnp.int32(n))
    np.testing.assert_array_equal(np.asarray(hs_noisy), np.asarray(hs))
    for a, b in zip(jax.tree.leaves(carry_noisy), jax.tree.leaves(carry), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.all(np.asarray(hs)[n:] == 0)
    want_carry, want_hs = _loop(cell, params, xs[:n], carry0, reverse)
    np.testing.assert_allclose(np.asarray(hs)[:n], np.asarray(want_hs), atol=1e-6, rtol=0)
    for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(want_carry), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=0)


@SETTINGS
@given(st.integers(1, 40), st.data())
def test_reversing_the_valid_prefix_twice_is_the_identity(num_steps, data):
    n = data.draw(st.integers(0, num_steps))
    perm = np.asarray(valid_prefix_reverse_index(num_steps, jnp.int32(n)))
    t = np.arange(num_steps)
    np.testing.assert_array_equal(perm[perm], t)
    np.testing.assert_array_equal(perm[:n], t[:n][::-1])
    np.testing.assert_array_equal(perm[n:], t[n:])
