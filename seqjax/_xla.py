"""XLA:CPU settings that seqjax applies when it is imported, before JAX starts its backends.

The one setting today turns off XLA:CPU's concurrency-optimised scheduler::

    XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false

Why: with jaxlib 0.10.2 on a 2-core CPU, ``jax.jit(jax.vmap(train))`` over 8 seeds of a small
LSTM run (the program that ``seeds: [...]`` compiles) hung on its second or third call in 7
of 8 trials: every XLA worker thread parked waiting for work and the caller waiting in
``block_until_ready`` for a result that never came (gdb stacks, CPU idle). With the scheduler
off it finished in 16 of 16 trials. ``--xla_cpu_multi_thread_eigen=false``, the workaround
others report for similar hangs, did not help here (4 of 4 hung). The scheduler only reorders
independent operations for parallelism; turning it off cost 0-15% on the LSTM training step
of experiments/bench_cells.py (B=32, T=100, H=128; within this machine's noise) and nothing
measurable on experiments/bench_seeds.py. ``tests/test_xla.py`` re-runs the reproducer in a
subprocess.

The cause, found later with gdb on the same kind of hang (several simulated CPU devices):
both threads of XLA:CPU's intra-op pool sat in a batched LAPACK QR (``lapack_sgeqrf_ffi``,
the QR of a vmapped orthogonal initialisation), each waiting for the pool to run the QR's
batch, with no free thread left to run it. The concurrency-optimised scheduler starts
independent QRs side by side, so on 2 cores two of them fill the pool. Since then the
orthogonal initialiser runs its QRs one matrix at a time under vmap
(`seqjax.cells.base.one_at_a_time`), and so do the eigenvalues, spectral norms and QRs of
`seqjax.diagnostics`, which removes the cause in seqjax's own programs; the flag stays for
batched linear algebra that users add to theirs.

XLA reads ``XLA_FLAGS`` once, when the first backend starts, so this works only if seqjax is
imported before any array is created. If a backend already runs, seqjax warns instead. A flag
the user already set in ``XLA_FLAGS`` is left as it is, and ``SEQJAX_KEEP_XLA_FLAGS=1`` turns
the whole mechanism off.
"""

from __future__ import annotations

import os
import warnings

__all__ = ["APPLIED", "OPT_OUT", "SETTINGS", "apply"]

SETTINGS = {"xla_cpu_enable_concurrency_optimized_scheduler": "false"}
OPT_OUT = "SEQJAX_KEEP_XLA_FLAGS"


def _backends_started() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:  # a JAX without this module: assume nothing started yet
        return False
    return bool(xla_bridge.backends_are_initialized())


def apply(environ: dict[str, str] | None = None) -> list[str]:
    """Adds each of `SETTINGS` that ``XLA_FLAGS`` does not name yet; returns the flags added.

    Args:
      environ: the environment to edit (``os.environ`` by default; a dict in tests).
    """
    env = os.environ if environ is None else environ
    if env.get(OPT_OUT, "") not in ("", "0"):
        return []
    current = env.get("XLA_FLAGS", "")
    missing = [f"--{name}={value}" for name, value in SETTINGS.items() if name not in current]
    if not missing:
        return []
    if _backends_started():
        warnings.warn(
            f"seqjax was imported after JAX started its backends, so XLA_FLAGS can no longer "
            f"take {' '.join(missing)} (it avoids a hang of vmapped programs on XLA:CPU, see "
            f"seqjax/_xla.py). Import seqjax before creating any array, or set XLA_FLAGS "
            f"yourself; {OPT_OUT}=1 silences this.",
            RuntimeWarning,
            stacklevel=3,
        )
        return []
    env["XLA_FLAGS"] = " ".join([current, *missing]).strip()
    return missing


APPLIED = apply()  # at import: ``import seqjax`` imports this module before anything else
