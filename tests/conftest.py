"""Shared test set-up: strict JAX numerics inside tests, a PRNG key and a float64 fixture.

The library never touches ``jax.config``; the tests do, so that silent broadcasting and silent
dtype promotion are errors here and cannot hide a bug.
"""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(0)


@pytest.fixture
def x64():
    """Run the test body with 64-bit floats enabled (finite differences, exact references)."""
    with jax.enable_x64(True):
        yield
