"""Shared test set-up: strict JAX numerics inside tests, a PRNG key and a float64 fixture.

The library never touches ``jax.config``; the tests do, so that silent broadcasting and silent
dtype promotion are errors here and cannot hide a bug.

XLA compilation, not running, is most of this suite's time (thousands of small programs), so
the tests ask XLA:CPU for LLVM's lowest optimisation level, which halves compile time (a
tiny claim experiment: 8.4 s -> 4.7 s, measured) and leaves every operation's semantics as
they are; subprocesses started by tests inherit it. A flag already in ``XLA_FLAGS`` wins, and
``SEQJAX_TEST_XLA_OPT=1`` keeps XLA's default. Benchmarks never run under it.
"""

import os

_FAST_COMPILE = "--xla_backend_optimization_level=0"
if os.environ.get("SEQJAX_TEST_XLA_OPT", "") in ("", "0") and (
    "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", "")
):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE}".strip()

import jax  # noqa: E402  (after XLA_FLAGS: XLA reads them when its backend starts)
import pytest  # noqa: E402

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
