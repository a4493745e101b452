"""Where the time of one training step goes: seqjax (XLA:CPU) against torch.nn, op by op.

    .venv/bin/python experiments/profile_step.py                 # LSTM, B,T,I,H = 32,100,32,128
    .venv/bin/python experiments/profile_step.py --shape 64,500,32,256 --cell gru
    .venv/bin/python experiments/profile_step.py --fast          # the fused kernel (fast=True)
    .venv/bin/python experiments/profile_step.py --no-torch --steps 2 --shape 4,10,3,8   # smoke

Profiles the training step of experiments/bench_cells.py (many-to-one, MSE, Adam) with each
framework's own profiler: ``jax.profiler`` (a Perfetto trace; XLA:CPU records one event per
executed operation when ``--xla_cpu_enable_xprof_traceme=true``, which this script sets) and
``torch.profiler``. Operations are grouped into

* matmul: XLA dots and dot fusions (``dot``, ``ynn_fusion``/``xnn``/``onednn``), torch ``mm``,
  ``addmm``, ``bmm``, ``matmul``, ``linear``;
* fused RNN kernel: torch's whole-sequence oneDNN primitives (``mkldnn_rnn_layer`` and its
  backward), which torch.nn.LSTM/GRU/RNN call on the CPU: products and gates of all steps in
  one hand-written kernel, which XLA has no counterpart for;
* stacking: XLA ``dynamic-update-slice`` fusions, the per-step writes of a scan's stacked
  outputs (the residuals autodiff keeps for the backward pass);
* elementwise & other: everything else that runs (gate nonlinearities, adds, copies, Adam).

Times are per training step, summed over the operations of each group; the step time is the
wall clock of the profiled steps (seqjax, profiler overhead included) or the sum of torch's
operator self-times. Operations do not overlap in XLA:CPU's loop bodies, so the groups add up
to at most the step. What it shows is in docs/pages/performance.md ("Where the time of a
step goes"). Writes
``experiments/results/profile_step.json``.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# Must precede the first JAX backend: per-operation events in XLA:CPU's profile.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true"
).strip()

import jax
import jax.numpy as jnp

import seqjax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cells
import benchutil

OUT = Path(__file__).resolve().parent / "results" / "profile_step.json"
XLA_CONTAINERS = ("ThunkExecutor", "while", "PjitFunction", "call", "conditional")
TORCH_MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")
TORCH_FUSED_RNN = "mkldnn_rnn"
GROUPS = ("matmul", "fused RNN kernel", "stacking", "elementwise & other")


def xla_group(name: str) -> str | None:
    """The group of one XLA:CPU trace event, or None for containers and Python frames."""
    if name.startswith("$") or name.startswith(XLA_CONTAINERS):
        return None
    if name.startswith("dot") or any(k in name for k in ("ynn_fusion", "xnn", "onednn")):
        return "matmul"
    if "dynamic-update-slice" in name:
        return "stacking"
    return "elementwise & other"


def profile_seqjax(
    kind: str, shape: tuple[int, int, int, int], steps: int, fast: bool = False
) -> dict:
    B, T, F, H = shape
    step, state = bench_cells.seqjax_step(kind, H, F, fast=fast or None)
    xs_np, ys_np = bench_cells.make_data(B, T, F)
    xs, ys = jnp.asarray(xs_np), jnp.asarray(ys_np)
    for _ in range(2):  # compile and warm up
        state, _ = step(state, xs, ys)
    jax.block_until_ready(state)
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            start = time.perf_counter()
            for _ in range(steps):
                state, _ = step(state, xs, ys)
            jax.block_until_ready(state)
            step_us = (time.perf_counter() - start) * 1e6
        trace = next(Path(tmp).rglob("*.json.gz"))
        events = json.load(gzip.open(trace))
    events = events["traceEvents"] if isinstance(events, dict) else events
    total: collections.Counter = collections.Counter()
    count: collections.Counter = collections.Counter()
    for e in events:
        if e.get("ph") != "X":
            continue
        group = xla_group(e["name"])
        if group is not None:
            total[group] += e.get("dur", 0)
            count[group] += 1
    return _summary(total, count, step_us, steps)


def profile_torch(kind: str, shape: tuple[int, int, int, int], steps: int, threads: int) -> dict:
    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    B, T, F, H = shape
    step = bench_cells.torch_step(kind, H, F, threads)
    xs_np, ys_np = bench_cells.make_data(B, T, F)
    xs = torch.from_numpy(np.ascontiguousarray(xs_np.transpose(1, 0, 2)))
    ys = torch.from_numpy(ys_np)
    for _ in range(2):
        step(xs, ys)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step(xs, ys)
    total: collections.Counter = collections.Counter()
    count: collections.Counter = collections.Counter()
    for avg in prof.key_averages():
        if avg.self_cpu_time_total <= 0:
            continue
        if avg.key in TORCH_MATMULS:
            group = "matmul"
        elif TORCH_FUSED_RNN in avg.key:
            group = "fused RNN kernel"
        else:
            group = "elementwise & other"
        total[group] += avg.self_cpu_time_total
        count[group] += avg.count
    step_us = sum(total.values())
    return _summary(total, count, step_us, steps)


def _summary(total, count, step_us: float, steps: int) -> dict:
    return {
        "step_ms": step_us / steps / 1e3,
        "groups_ms": {g: total[g] / steps / 1e3 for g in GROUPS},
        "ops_per_step": {g: count[g] / steps for g in GROUPS},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="lstm", choices=sorted(bench_cells.GATES))
    parser.add_argument("--shape", default="32,100,32,128", help="B,T,I,H")
    parser.add_argument("--steps", type=int, default=5, help="profiled steps")
    parser.add_argument("--threads", type=int, default=bench_cells.TORCH_THREADS)
    parser.add_argument("--no-torch", action="store_true", help="profile seqjax only")
    parser.add_argument("--fast", action="store_true", help="seqjax with fast=True cells")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    shape = tuple(int(v) for v in args.shape.split(","))
    if len(shape) != 4:
        parser.error(f"--shape must be B,T,I,H (4 integers), got {args.shape!r}")

    name = "seqjax fast" if args.fast else "seqjax"
    results = {name: profile_seqjax(args.cell, shape, args.steps, args.fast)}
    if not args.no_torch:
        results[f"torch ({args.threads} threads)"] = profile_torch(
            args.cell, shape, args.steps, args.threads
        )
    print(f"{args.cell} B,T,I,H = {args.shape}: ms per training step, by kind of operation")
    print(f"{'':20s}{'step':>8s}" + "".join(f"{g:>21s}" for g in GROUPS) + f"{'ops':>7s}")
    for name, r in results.items():
        ops = sum(r["ops_per_step"].values())
        cells = "".join(f"{r['groups_ms'][g]:21.2f}" for g in GROUPS)
        print(f"{name:20s}{r['step_ms']:8.2f}{cells}{ops:7.0f}")
    result = {
        "cell": args.cell,
        "fast": args.fast,
        "shape": dict(zip("BTIH", shape, strict=True)),
        "steps": args.steps,
        "machine": bench_cells.machine_info(with_torch=not args.no_torch),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    benchutil.write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    seqjax.xla.configure()  # before JAX starts, as the seqjax command does
    main()
