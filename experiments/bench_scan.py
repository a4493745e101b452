"""Parallel or sequential in time? The training step of the linear recurrences both ways.

    .venv/bin/python experiments/bench_scan.py            # the grid below, ~10 min on 2 cores
    .venv/bin/python experiments/bench_scan.py --quick    # smoke test, seconds

For each of ``lru``, ``min_gru`` and ``min_lstm``, times one jitted
``jax.value_and_grad`` of the mean squared output of ``jax.vmap(seqjax.unroll)`` over a batch
``[B, T, F]`` two ways: ``lax.scan`` over ``cell.step`` (sequential; ``remat="auto"`` as
`seqjax.unroll` would run it) and ``cell.scan``, the ``jax.lax.associative_scan`` of
`seqjax.cells.linear_scan` (parallel). Steps of the two are interleaved and the median is
kept, so the ratio is measured under the same load. Writes
``experiments/results/bench_scan.json``; its figures set ``Cell.scan_on_cpu`` of the three
cells, which `seqjax.unroll.use_scan` reads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import seqjax
from seqjax import cells
from seqjax.unroll import auto_remat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cells
import benchutil

OUT = Path(__file__).resolve().parent / "results" / "bench_scan.json"
F = 4
CELL_NAMES = ("lru", "min_gru", "min_lstm")


def train_step(cell: seqjax.Cell, B: int, T: int) -> tuple[callable, tuple]:
    """A jitted ``value_and_grad`` of the mean loss over ``unroll``, and its arguments."""
    params = cell.init(jax.random.key(0), F)
    xs = jnp.asarray(np.random.default_rng(0).standard_normal((B, T, F), dtype=np.float32))

    def loss(p, xs):
        _, hs = jax.vmap(lambda x: seqjax.unroll(cell, p, x))(xs)
        return jnp.mean(hs * hs)

    return jax.jit(jax.value_and_grad(loss)), (params, xs)


def time_pair(name: str, B: int, T: int, H: int, steps: int) -> dict:
    cell = cells.get_cell(name, H)
    variants = {
        "sequential": cell._replace(scan=None),
        "parallel": cell._replace(scan_on_cpu=True),
    }
    runners, compile_s = {}, {}
    for kind, c in variants.items():
        fn, args = train_step(c, B, T)
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        compile_s[kind] = time.perf_counter() - t0
        runners[kind] = (fn, args)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(steps):
        for kind, (fn, args) in runners.items():
            t0 = time.perf_counter()
            value, _ = jax.block_until_ready(fn(*args))
            times[kind].append(time.perf_counter() - t0)
            if not np.isfinite(float(value)):
                raise RuntimeError(f"{name} {kind} B={B} T={T} H={H}: non-finite loss {value}")
    seq, par = (1e3 * statistics.median(times[k]) for k in ("sequential", "parallel"))
    return {
        "cell": name,
        "B": B,
        "T": T,
        "F": F,
        "H": H,
        "sequential_ms": seq,
        "parallel_ms": par,
        "speedup": seq / par,
        "sequential_remat": str(auto_remat(variants["sequential"], T)),
        "first_call_s": compile_s,
    }


def grid(quick: bool) -> list[tuple[str, int, int, int]]:
    """``(cell, B, T, H)`` rows: every T at a small shape, two larger shapes at T = 100, 1000."""
    if quick:
        return [(name, 2, 16, 4) for name in CELL_NAMES]
    rows = []
    for name in CELL_NAMES:
        for T in (100, 300, 1000, 3000, 10000, 30000, 100000):
            shapes = [(4, 32)] + ([(32, 64), (8, 128)] if T in (100, 1000) else [])
            rows += [(name, B, T, H) for B, H in shapes]
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three tiny shapes")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    steps = 2 if args.quick else args.steps
    rows = []
    print(f"{'cell':9s}{'B':>4s}{'T':>8s}{'H':>5s}{'seq ms':>11s}{'par ms':>10s}{'seq/par':>9s}")
    for name, B, T, H in grid(args.quick):
        row = time_pair(name, B, T, H, steps)
        rows.append(row)
        print(
            f"{name:9s}{B:4d}{T:8d}{H:5d}{row['sequential_ms']:11.2f}{row['parallel_ms']:10.2f}"
            f"{row['speedup']:9.2f}",
            flush=True,
        )
    result = {
        "machine": bench_cells.machine_info(with_torch=False),
        "command": "python experiments/bench_scan.py" + (" --quick" if args.quick else ""),
        "steps": steps,
        "quick": args.quick,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    benchutil.write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    seqjax.xla.configure()  # before JAX starts, as the seqjax command does
    main()
