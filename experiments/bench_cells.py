"""Speed and memory of seqjax cells against torch.nn and Flax, on the CPU.

One training step of a many-to-one model (final hidden state -> dense readout -> MSE; forward
over the sequence, backward, Adam update), float32, timed after warm-up; the median of several
steps. Also: the measured float32 matmul peak, compile time against sequence length, and the
peak memory of a long-sequence training step with and without rematerialisation.

    .venv/bin/python experiments/bench_cells.py            # full run, < 10 min on 2 cores
    .venv/bin/python experiments/bench_cells.py --quick    # seconds: one small shape

Writes ``experiments/results/bench_cells.json`` (``--out`` to change).

Rows: "seqjax" is the factory default (autodiff through ``lax.scan`` over ``step``, with
``unroll``'s default ``remat="auto"``: every step rematerialised for H <= 64 and T >= 50
(LSTM, GRU) or T >= 1000 (RNN)),
"seqjax-fused" the opt-in ``fast=True`` hand-written backward of `seqjax.cells.fused`, "flax"
``nn.RNN`` over Flax's cells, "torch" ``torch.nn`` with ``torch.set_num_threads(2)`` and
"torch-1t" with one thread. The JAX rows are timed interleaved, round-robin; each torch row
runs in a fresh process (no idle XLA thread pool beside it). On a machine shared with other
work, torch's two threads can slow down many-fold, hence the one-thread row, and the process
CPU time is reported beside the wall clock.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import seqjax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil

RESULTS = Path(__file__).resolve().parent / "results" / "bench_cells.json"
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
TORCH_THREADS = 2
LR = 1e-3


# Problem set-up ------------------------------------------------------------------------------


def make_data(B: int, T: int, F: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``[B, T, F]`` and targets ``[B, 1]``, float32, batch-major."""
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((B, T, F), dtype=np.float32)
    ys = rng.standard_normal((B, 1), dtype=np.float32)
    return xs, ys


def matmul_flops(kind: str, B: int, T: int, F: int, H: int) -> float:
    """Matmul FLOPs of forward + backward: 3x the forward ``2 B T (F + H) G H``."""
    return 3.0 * 2.0 * B * T * (F + H) * GATES[kind] * H


def _cell(kind: str, H: int, fast: bool | None) -> seqjax.Cell:
    if fast is None:  # the factory's default
        return seqjax.rnn(H, "tanh") if kind == "rnn" else getattr(seqjax, kind)(H)
    if kind == "rnn":
        return seqjax.rnn(H, "tanh", fast=fast)
    return {"lstm": seqjax.lstm, "gru": seqjax.gru}[kind](H, fast=fast)


def _final_h(carry: Any) -> jax.Array:
    return carry.h if isinstance(carry, seqjax.LSTMCarry) else carry


def _adam_step(loss_fn: Callable, params: Any) -> tuple[Callable, Any]:
    """The jitted train step ``(state, xs, ys) -> (state, loss)`` of ``loss_fn(params, xs, ys)``
    with Adam, and its initial state ``(params, opt_state)``: the same update for every impl."""
    opt = optax.adam(LR)

    @jax.jit
    def step(state, xs, ys):
        p, o = state
        loss, grads = jax.value_and_grad(loss_fn)(p, xs, ys)
        updates, o = opt.update(grads, o, p)
        return (optax.apply_updates(p, updates), o), loss

    return step, (params, opt.init(params))


def seqjax_step(
    kind: str, H: int, F: int, *, fast: bool | None = None, remat: bool | str = "auto"
) -> tuple[Callable, Any]:
    """A jitted seqjax train step ``(state, xs, ys) -> (state, loss)`` and its initial state."""
    cell = _cell(kind, H, fast)
    k_cell, k_out = jax.random.split(jax.random.key(0))
    params = {
        "cell": cell.init(k_cell, F),
        "w_o": jax.random.normal(k_out, (H, 1), jnp.float32) / math.sqrt(H),
        "b_o": jnp.zeros((1,), jnp.float32),
    }

    def loss_fn(p, xs, ys):
        def one(x):
            carry, _ = seqjax.unroll(cell, p["cell"], x, remat=remat)
            return _final_h(carry)

        h = jax.vmap(one)(xs)
        return jnp.mean((h @ p["w_o"] + p["b_o"] - ys) ** 2)

    return _adam_step(loss_fn, params)


def flax_step(kind: str, H: int, F: int) -> tuple[Callable, Any]:
    """The same step with ``flax.linen.RNN`` over ``OptimizedLSTMCell`` / ``GRUCell``."""
    import flax.linen as nn

    cells = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell, "rnn": nn.SimpleCell}

    class Model(nn.Module):
        @nn.compact
        def __call__(self, xs):
            carry, _ = nn.RNN(cells[kind](H), return_carry=True)(xs)
            h = carry[1] if kind == "lstm" else carry  # LSTM carry is (c, h)
            return nn.Dense(1)(h)

    model = Model()
    params = model.init(jax.random.key(0), jnp.zeros((1, 2, F), jnp.float32))

    def loss_fn(p, xs, ys):
        return jnp.mean((model.apply(p, xs) - ys) ** 2)

    return _adam_step(loss_fn, params)


def torch_step(kind: str, H: int, F: int, threads: int = TORCH_THREADS) -> Callable:
    """The same step with ``torch.nn.LSTM`` / ``GRU`` / ``RNN``; returns ``step(xs, ys)``."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind](F, H)
    head = torch.nn.Linear(H, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=LR)

    def step(xs, ys):
        opt.zero_grad(set_to_none=True)
        _, state = rnn(xs)  # xs: [T, B, F], torch's native time-major layout
        h = state[0] if kind == "lstm" else state
        loss = torch.mean((head(h[-1]) - ys) ** 2)
        loss.backward()
        opt.step()
        return loss

    return step


# Timing --------------------------------------------------------------------------------------


def _jax_runner(
    step: Callable, state: Any, xs: jax.Array, ys: jax.Array
) -> Callable[[], tuple[float, float]]:
    """Compiles and warms up ``step``; returns a function that times one more step."""
    box = [step(state, xs, ys)[0]]
    jax.block_until_ready(box[0])

    def run() -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        box[0], loss = step(box[0], xs, ys)
        jax.block_until_ready((box[0], loss))
        elapsed = time.perf_counter() - t0, time.process_time() - c0
        if not np.isfinite(float(loss)):
            raise RuntimeError(f"non-finite loss {float(loss)}")
        return elapsed

    return run


def _torch_runner(
    step: Callable, xs: np.ndarray, ys: np.ndarray
) -> Callable[[], tuple[float, float]]:
    import torch

    xs_t = torch.from_numpy(np.ascontiguousarray(xs.transpose(1, 0, 2)))
    ys_t = torch.from_numpy(ys)
    step(xs_t, ys_t)
    return lambda: _timed(lambda: step(xs_t, ys_t))


def make_runner(
    impl: str, kind: str, shape: tuple[int, int, int, int]
) -> Callable[[], tuple[float, float]]:
    """``impl``: "seqjax" (the factory default: autodiff through ``lax.scan`` over ``step``),
    "seqjax-fused" (``fast=True``: the hand-written backward of `seqjax.cells.fused`),
    "flax", "torch"."""
    B, T, F, H = shape
    xs_np, ys_np = make_data(B, T, F)
    if impl == "torch":
        return _torch_runner(torch_step(kind, H, F), xs_np, ys_np)
    xs, ys = jnp.asarray(xs_np), jnp.asarray(ys_np)
    if impl == "flax":
        return _jax_runner(*flax_step(kind, H, F), xs, ys)
    if impl in ("seqjax", "seqjax-fused"):
        return _jax_runner(
            *seqjax_step(kind, H, F, fast=True if impl == "seqjax-fused" else None), xs, ys
        )
    raise ValueError(f"unknown impl {impl!r}")


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    """Measured float32 GFLOP/s of one ``[n, n] @ [n, n]`` jnp matmul (best of ``reps``)."""
    a = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    mm = jax.jit(jnp.matmul)
    jax.block_until_ready(mm(a, a))
    best = min(_timed(lambda: jax.block_until_ready(mm(a, a)))[0] for _ in range(reps))
    return 2.0 * n**3 / best / 1e9


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of ``fn()``."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def run_speed(
    kind: str, shape: tuple[int, int, int, int], n: int, impls: list[str], peak: float
) -> list[dict]:
    """Times ``n`` steps of each impl, interleaved round-robin so that load from other
    processes on a shared machine falls on all of them alike; the median per impl. Process
    CPU time is recorded too: on a loaded machine it is the steadier of the two."""
    B, T, F, H = shape
    jax_impls = [i for i in impls if not i.startswith("torch")]
    runners = {impl: make_runner(impl, kind, shape) for impl in jax_impls}
    times: dict[str, list[tuple[float, float]]] = {impl: [] for impl in impls}
    for _ in range(n):
        for impl, run in runners.items():
            times[impl].append(run())
    for impl in impls:
        if impl.startswith("torch"):
            times[impl] = run_torch_child(kind, shape, n, threads=1 if impl == "torch-1t" else 2)
    flops = matmul_flops(kind, B, T, F, H)
    rows = []
    for impl in impls:
        wall = [w for w, _ in times[impl]]
        cpu = [c for _, c in times[impl]]
        ms = 1e3 * statistics.median(wall)
        gflops = flops / (ms / 1e3) / 1e9
        rows.append(
            {
                "cell": kind,
                "impl": impl,
                "B": B,
                "T": T,
                "I": F,
                "H": H,
                "ms_per_step": ms,
                "ms_min": 1e3 * min(wall),
                "cpu_ms_per_step": 1e3 * statistics.median(cpu),
                "steps_timed": n,
                "gflops": gflops,
                "fraction_of_peak": gflops / peak,
            }
        )
        cpu_ms = 1e3 * statistics.median(cpu)
        print(f"  {kind:4s} {shape} {impl:13s} {ms:9.2f} ms (cpu {cpu_ms:9.2f})", flush=True)
    by_impl = {r["impl"]: r["ms_per_step"] for r in rows}
    by_cpu = {r["impl"]: r["cpu_ms_per_step"] for r in rows}
    for r in rows:
        for ref in ("torch", "flax"):
            if ref in by_impl:
                r[f"vs_{ref}"] = r["ms_per_step"] / by_impl[ref]  # < 1: faster than ref
                r[f"cpu_vs_{ref}"] = r["cpu_ms_per_step"] / by_cpu[ref]
    return rows


def torch_child(kind: str, shape: tuple[int, int, int, int], n: int, threads: int) -> list:
    """Times ``n`` torch steps in this (fresh) process: no XLA thread pool here competes with
    torch's threads, which on a loaded 2-core machine slowed torch several-fold."""
    B, T, F, H = shape
    xs, ys = make_data(B, T, F)
    run = _torch_runner(torch_step(kind, H, F, threads), xs, ys)
    return [run() for _ in range(n)]


def run_torch_child(
    kind: str, shape: tuple[int, int, int, int], n: int, threads: int
) -> list[tuple[float, float]]:
    spec = f"{kind}:{','.join(map(str, shape))}:{n}:{threads}"
    cmd = [sys.executable, __file__, "--torch-child", spec]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=1200)
    return [tuple(t) for t in json.loads(out.stdout.strip().splitlines()[-1])]


# Compile time --------------------------------------------------------------------------------


def compile_seconds(T: int, B: int = 16, F: int = 8, H: int = 64) -> float:
    step, state = seqjax_step("lstm", H, F)
    xs = jax.ShapeDtypeStruct((B, T, F), jnp.float32)
    ys = jax.ShapeDtypeStruct((B, 1), jnp.float32)
    t0 = time.perf_counter()
    step.lower(state, xs, ys).compile()
    return time.perf_counter() - t0


# Memory (one fresh subprocess per variant) ---------------------------------------------------


def _proc_status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def memory_child(variant: str, B: int, T: int, F: int, H: int) -> dict:
    """Run in a fresh process: RSS after imports and inputs, and the peak of one train step.

    The compiled program (and torch's warm-up) is made before the peak is reset, so the
    number is what running the step needs, not what compiling it needed.
    """
    xs_np, ys_np = make_data(B, T, F)
    baseline_kb = _proc_status_kb("VmRSS")
    if variant == "torch":
        import torch

        step = torch_step("lstm", H, F, threads=1)  # memory does not depend on threads
        xs_t = torch.from_numpy(np.ascontiguousarray(xs_np.transpose(1, 0, 2)))
        ys_t = torch.from_numpy(ys_np)
        before_kb = _proc_status_kb("VmRSS")
        _reset_peak_rss()
        step(xs_t, ys_t)
    else:
        step, state = seqjax_step("lstm", H, F, remat=variant == "remat")
        xs, ys = jnp.asarray(xs_np), jnp.asarray(ys_np)
        compiled = step.lower(state, xs, ys).compile()
        before_kb = _proc_status_kb("VmRSS")
        _reset_peak_rss()
        jax.block_until_ready(compiled(state, xs, ys))
    peak_kb = _proc_status_kb("VmHWM")
    return {
        "variant": variant,
        "baseline_rss_mb": baseline_kb / 1024,
        "before_step_rss_mb": before_kb / 1024,
        "peak_rss_mb": peak_kb / 1024,
        "step_peak_mb": (peak_kb - before_kb) / 1024,
        "peak_over_baseline_mb": (peak_kb - baseline_kb) / 1024,
    }


def run_memory(variant: str, B: int, T: int, F: int, H: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--memory-child",
        variant,
        "--memory-shape",
        f"{B},{T},{F},{H}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    if out.returncode != 0:
        return {"variant": variant, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


# Report --------------------------------------------------------------------------------------


def _torch_version() -> str:
    import torch

    return torch.__version__


def machine_info(with_torch: bool = True) -> dict:
    import flax

    return {
        "cpu": benchutil.cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else None,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "torch": _torch_version() if with_torch else "not used",
        "torch_threads": TORCH_THREADS,
        "jax_backend": jax.default_backend(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def print_table(rows: list[dict], peak: float) -> None:
    print(f"\nmatmul peak (2048^3 float32 jnp): {peak:.1f} GFLOP/s")
    head = f"{'cell':5s}{'B,T,I,H':>17s} {'impl':13s}{'ms/step':>9s}{'GFLOP/s':>9s}{'%peak':>7s}"
    print(
        head + f"{'vs torch':>9s}{'vs flax':>8s}{'cpu ms':>9s}{'cpu vs torch':>13s}{'vs flax':>8s}"
    )
    for r in rows:
        shape = f"{r['B']},{r['T']},{r['I']},{r['H']}"
        ratios = [
            f"{r[k]:.2f}" if k in r else "-"
            for k in ("vs_torch", "vs_flax", "cpu_vs_torch", "cpu_vs_flax")
        ]
        print(
            f"{r['cell']:5s}{shape:>17s} {r['impl']:13s}{r['ms_per_step']:9.2f}"
            f"{r['gflops']:9.2f}{100 * r['fraction_of_peak']:6.1f}%{ratios[0]:>9s}{ratios[1]:>8s}"
            f"{r['cpu_ms_per_step']:9.2f}{ratios[2]:>13s}{ratios[3]:>8s}"
        )
    print("(ms/step: median wall clock; cpu ms: median process CPU time, steadier on a shared")
    print(" machine; vs torch / vs flax: time ratios, below 1 means faster than the reference)")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small shape, few steps")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per row")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    parser.add_argument(
        "--no-torch", action="store_true", help="skip torch (smoke tests without the extra)"
    )
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--torch-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--memory-shape", default="16,100000,8,64", help="B,T,I,H of memory runs")
    args = parser.parse_args(argv)

    mem_shape = tuple(int(v) for v in args.memory_shape.split(","))
    if args.torch_child is not None:
        kind, shape, n, threads = args.torch_child.split(":")
        shape = tuple(int(v) for v in shape.split(","))
        print(json.dumps(torch_child(kind, shape, int(n), int(threads))))
        return {}
    if args.memory_child is not None:
        print(json.dumps(memory_child(args.memory_child, *mem_shape)))
        return {}

    impls = ["seqjax", "seqjax-fused", "flax", "torch", "torch-1t"]
    memory_variants = ("plain", "remat", "torch")
    if args.no_torch:
        impls = [i for i in impls if not i.startswith("torch")]
        memory_variants = ("plain", "remat")
    if args.quick:
        lstm_shapes = [(8, 20, 4, 16)]
        other_shapes = []
        steps = args.steps or 3
        compile_ts = (10, 100)
        mem_shape = (4, 1000, 4, 16)
        memory_variants = ("remat",)
    else:
        lstm_shapes = [(32, 100, 32, 128), (64, 500, 32, 256), (16, 2000, 8, 64)]
        other_shapes = [(64, 500, 32, 256)]
        steps = args.steps or 10
        compile_ts = (100, 10000)

    info = machine_info(with_torch=not args.no_torch)
    print(f"{info['cpu']}, {info['cores']} cores; jax {info['jax']}, torch {info['torch']}")
    peak = matmul_peak()
    rows = []
    for shape in lstm_shapes:
        rows += run_speed("lstm", shape, steps, impls, peak)
    for kind in ("gru", "rnn"):
        for shape in other_shapes:
            rows += run_speed(kind, shape, steps, impls, peak)

    compile_time = {str(T): compile_seconds(T) for T in compile_ts}
    memory = []
    if not args.no_memory:
        for variant in memory_variants:
            memory.append(run_memory(variant, *mem_shape))

    print_table(rows, peak)
    print("\ncompile time of the seqjax LSTM train step (B=16, F=8, H=64):")
    for T, s in compile_time.items():
        print(f"  T={T:>6s}: {s:.2f} s")
    if memory:
        print(f"\npeak memory of one LSTM train step, B,T,I,H = {mem_shape}:")
        for m in memory:
            if "error" in m:
                print(f"  {m['variant']:6s} failed: {m['error']}")
            else:
                print(
                    f"  {m['variant']:6s} step peak {m['step_peak_mb']:8.1f} MB"
                    f"  (peak over imports+inputs {m['peak_over_baseline_mb']:8.1f} MB)"
                )

    result = {
        "machine": info,
        "matmul_peak_gflops": peak,
        "rows": rows,
        "compile_seconds": compile_time,
        "memory_shape": dict(zip("BTIH", mem_shape, strict=True)),
        "memory": memory,
        "quick": args.quick,
    }
    benchutil.write_json(args.out, result)
    print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    seqjax.xla.configure()  # before JAX starts, as the seqjax command does
    main()
