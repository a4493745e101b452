"""Keep or recompute each step's activations? The training step with ``remat="step"`` vs without.

    .venv/bin/python experiments/bench_remat.py            # the grid below, ~2 min on 2 cores
    .venv/bin/python experiments/bench_remat.py --quick    # smoke test, seconds

Autodiff through ``lax.scan`` stacks a dozen residuals per step (gates, their derivatives'
inputs, the carry) for the backward pass; on XLA:CPU each stacked write is a separate
operation of about a microsecond. ``unroll(..., remat="step")`` puts ``jax.checkpoint`` on
each step, so the backward pass keeps only the carry and input of each step and recomputes
the step, matrix product included. Which is faster depends on the size of that product; this
script measures it over cells, hidden sizes and batch sizes (the training step of
experiments/bench_cells.py: many-to-one, MSE, Adam; median of interleaved steps) and writes
``experiments/results/bench_remat.json``. Its figures set ``seqjax.unroll``'s ``remat="auto"``
rule (`seqjax.unroll.auto_remat`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import jax.numpy as jnp

import seqjax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cells
import benchutil

OUT = Path(__file__).resolve().parent / "results" / "bench_remat.json"


def time_pair(kind: str, shape: tuple[int, int, int, int], steps: int) -> dict:
    B, T, F, H = shape
    xs_np, ys_np = bench_cells.make_data(B, T, F)
    xs, ys = jnp.asarray(xs_np), jnp.asarray(ys_np)
    runners = {
        mode: bench_cells._jax_runner(*bench_cells.seqjax_step(kind, H, F, remat=mode), xs, ys)
        for mode in (False, "step")
    }
    times: dict = {mode: [] for mode in runners}
    for _ in range(steps):
        for mode, run in runners.items():
            times[mode].append(run()[0])
    keep, step = (1e3 * statistics.median(times[m]) for m in (False, "step"))
    return {"cell": kind, "B": B, "T": T, "I": F, "H": H, "keep_ms": keep, "step_remat_ms": step}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two tiny shapes")
    parser.add_argument("--steps", type=int, default=7, help="timed steps per variant")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.quick:
        grid = [("lstm", (4, 10, 3, 8)), ("rnn", (4, 10, 3, 8))]
        args.steps = 2
    else:
        grid = [
            (kind, (B, 200, 8, H))
            for kind in ("lstm", "gru", "rnn")
            for H in (32, 64, 128, 256)
            for B in (16, 64)
        ] + [  # where the gated cells' rule changes: sequence length, at small H
            (kind, (B, T, 8, H))
            for kind in ("lstm", "gru")
            for T in (50, 100, 500)
            for H in (32, 64)
            for B in (16, 64)
        ]
    rows = []
    print(f"{'cell':5s}{'B,T,I,H':>16s}{'keep ms':>10s}{'remat ms':>10s}{'remat/keep':>12s}")
    for kind, shape in grid:
        row = time_pair(kind, shape, args.steps)
        row["ratio"] = row["step_remat_ms"] / row["keep_ms"]
        rows.append(row)
        print(
            f"{kind:5s}{','.join(map(str, shape)):>16s}{row['keep_ms']:10.2f}"
            f"{row['step_remat_ms']:10.2f}{row['ratio']:12.2f}",
            flush=True,
        )
    result = {
        "machine": bench_cells.machine_info(with_torch=False),
        "steps": args.steps,
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
