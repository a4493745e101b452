"""XLA:CPU settings for seqjax's programs, applied on request, never on import.

`configure` turns off XLA:CPU's concurrency-optimised scheduler by adding to ``XLA_FLAGS``::

    --xla_cpu_enable_concurrency_optimized_scheduler=false

Why: that scheduler runs independent operations side by side, and two batched LAPACK calls
(a vmapped QR, eigenvalues) running side by side on a 2-core CPU can each wait for XLA:CPU's
intra-op thread pool with no thread left to do the work, a hang with the CPU idle. seqjax's
own programs avoid batched LAPACK (`seqjax.cells.base.one_at_a_time`); the flag covers
batched linear algebra that users add to theirs. It costs nothing measurable on seqjax's
benchmarks (docs/pages/performance.md).

The ``seqjax`` command calls `configure` before JAX starts. In a notebook or script, call it
first thing, before any JAX array exists::

    import seqjax
    seqjax.xla.configure()

XLA reads ``XLA_FLAGS`` once, when the first backend starts; after that `configure` warns and
changes nothing. A flag already named in ``XLA_FLAGS`` is left as it is.

This is the one module of seqjax that reads private JAX modules (``jax._src``): whether a
backend has started (`backends_started`) and whether a call is traced by a ``jax.vmap``
(`vmapped_here`, which the fused kernels of `seqjax.cells.fused` ask). No public API tells
either; ``tests/test_xla.py`` fails, loudly, if JAX moves what they read.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import jax

__all__ = ["SETTINGS", "backends_started", "configure", "vmapped_here"]

SETTINGS = {"xla_cpu_enable_concurrency_optimized_scheduler": "false"}


def vmapped_here(*trees: Any) -> bool:
    """True when the innermost transformation tracing this call is a ``jax.vmap`` that batches
    one of ``trees``: a batched kernel can then take the whole batch at once.

    Under ``jax.grad(jax.vmap(f))`` (a training step) the innermost trace is the vmap; under
    ``jax.vmap(jax.grad(f))`` (per-example gradients) it is the gradient.
    """
    from jax._src import core as jax_core  # no public API tells; the test pins these names
    from jax._src.interpreters import batching

    trace = jax_core.trace_ctx.trace
    if not isinstance(trace, batching.BatchTrace):
        return False
    return any(
        isinstance(leaf, batching.BatchTracer) and leaf._trace is trace
        for leaf in jax.tree.leaves(trees)
    )


def backends_started() -> bool:
    """Whether JAX has started a backend in this process (then ``XLA_FLAGS`` is read)."""
    from jax._src import xla_bridge  # no public API tells; the test pins this name

    return bool(xla_bridge.backends_are_initialized())


def configure(environ: dict[str, str] | None = None, *, warn: bool = True) -> list[str]:
    """Adds each of `SETTINGS` that ``XLA_FLAGS`` does not name yet; returns the flags added.

    Args:
      environ: the environment to edit (``os.environ`` by default; a dict in tests).
      warn: warn when a backend already runs (the ``seqjax`` command's `main`, called again
        in a process that already used JAX, passes False).

    Returns:
      The flags added (empty when all were there, or when a backend already runs: then it
      warns, since XLA would no longer read them).
    """
    env = os.environ if environ is None else environ
    current = env.get("XLA_FLAGS", "")
    missing = [f"--{name}={value}" for name, value in SETTINGS.items() if name not in current]
    if not missing:
        return []
    if backends_started():
        if not warn:
            return []
        warnings.warn(
            f"seqjax.xla.configure() was called after JAX started its backends, so XLA_FLAGS "
            f"can no longer take {' '.join(missing)}; call it before creating any array, or "
            f"set XLA_FLAGS yourself",
            RuntimeWarning,
            stacklevel=2,
        )
        return []
    env["XLA_FLAGS"] = " ".join([current, *missing]).strip()
    return missing
