"""The shared argument checks: what they accept, and messages that name where and what."""

import jax.numpy as jnp
import pytest

from seqjax import checks


@pytest.mark.parametrize("good", [1, 7])
def test_positive_int_accepts(good):
    assert checks.positive_int(good, "steps", "fit") == good


@pytest.mark.parametrize("bad", [0, -2, 2.0, True, "3", None])
def test_positive_int_rejects(bad):
    with pytest.raises(ValueError, match=rf"^fit: steps must be a positive int, got {bad!r}$"):
        checks.positive_int(bad, "steps", "fit")


def test_positive_int_extra_words():
    with pytest.raises(ValueError, match=r"remat must be a positive int or 'auto', got 0"):
        checks.positive_int(0, "remat", "unroll", extra=" or 'auto'")


@pytest.mark.parametrize("good", [0, 0.0, 0.5, 0.999, jnp.float32(0.3)])
def test_rate_accepts(good):
    checks.rate(good, "dropout", "stack")


@pytest.mark.parametrize("bad", [1.0, -0.1, True, "0.1", None])
def test_rate_rejects(bad):
    with pytest.raises(ValueError, match=r"stack: dropout must be a probability in \[0, 1\)"):
        checks.rate(bad, "dropout", "stack")


def test_rate_arrays_only_when_traced_values_are_allowed():
    with pytest.raises(ValueError, match=r"a float scalar array, got an array of shape \(2,\)"):
        checks.rate(jnp.zeros(2), "dropout", "stack")
    with pytest.raises(ValueError, match=r"zoneout must be a Python probability in \[0, 1\)"):
        checks.rate(jnp.asarray(0.1), "zoneout", "stack", traced=False)


def test_model_inputs():
    assert checks.model_inputs([[1.0, 2.0]], 2, "lstm").shape == (1, 2)
    with pytest.raises(ValueError, match=r"inputs has shape \(2, 3, 2\).*jax.vmap\(model.apply"):
        checks.model_inputs(jnp.zeros((2, 3, 2)), 2, "many_to_one")
    with pytest.raises(ValueError, match=r"src has shape \(3, 4\), expected one sequence \[T, 2\]"):
        checks.model_inputs(jnp.zeros((3, 4)), 2, "seq2seq", "src")
