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

This is the one module of seqjax that reads a private JAX module (``jax._src.xla_bridge``,
whether a backend has started); ``tests/test_xla.py`` fails if JAX moves it.
"""

from __future__ import annotations

import os
import warnings

__all__ = ["SETTINGS", "backends_started", "configure"]

SETTINGS = {"xla_cpu_enable_concurrency_optimized_scheduler": "false"}


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
