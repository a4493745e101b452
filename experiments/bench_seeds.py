"""Many seeds in one program: whole training runs vmapped vs the same runs one after another.

    .venv/bin/python experiments/bench_seeds.py            # n = 1, 4, 8, 16 seeds
    .venv/bin/python experiments/bench_seeds.py --quick    # smoke test, seconds
    .venv/bin/python experiments/bench_seeds.py --fast     # the fused cells (model.fast)
    .venv/bin/python experiments/bench_seeds.py --devices 2  # also: seeds sharded over 2 CPUs
    .venv/bin/python experiments/bench_seeds.py --shape 64,64,150  # H,B,T of configs/adding
    .venv/bin/python experiments/bench_seeds.py --seed-batch 2     # runs vmapped 2 at a time

The model is the small LSTM that synthetic-task research trains by the hundred (H=32, B=16,
T=100, the adding task, Adam). Each timing is a whole run, ``train(key)`` of
`seqjax.train.make_train` (all steps in one compiled program): ``jax.jit(jax.vmap(train))``
over n keys against ``jax.jit(train)`` called for each key in turn. Compilation is excluded
from both (each program runs once before it is timed); the best of ``--repeats`` is kept. The
machine may be shared and noisy, so compare the speed-ups of one invocation, not absolute
numbers across invocations. The GFLOP/s columns count the matmul work of the updates
(forward and backward products of the LSTM), to compare with what one small product reaches
on the machine.

``--devices N`` also times the vmapped runs with their seed axis sharded over N devices
(``parallel.seeds``: `seqjax.parallel.make_mesh` and ``vmap(..., spmd_axis_name="seeds")``),
on a CPU-only machine N simulated host devices (``--xla_force_host_platform_device_count``,
set here before JAX starts). XLA:CPU runs each device's program on its own thread, so with
one device per core the seeds use every core, where one small run, whose operations are too
small for XLA's intra-op threads, keeps one core busy. The sequential runs still run on one
device: the baseline is what running the seeds one after another gives. The sharded runs
must equal the vmapped ones (the largest difference is printed and written). Seed counts
that N does not divide are not sharded.

Writes ``experiments/results/bench_seeds.json`` (``bench_seeds_fast.json`` with ``--fast``,
``bench_seeds_devices{N}[_fast].json`` with ``--devices``; ``--shape`` adds ``_H-B-T``).

``--seed-batch k`` times the runs as ``parallel.seed_batch: k`` trains them: vmapped k at a
time, the groups one after another in the same program (`seqjax.parallel.map_runs`; sharded,
each device takes its share k at a time); it adds ``_batch{k}`` to the JSON name.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

_PRE = argparse.ArgumentParser(add_help=False)
_PRE.add_argument("--devices", type=int, default=1)
# ``--devices N`` is read before JAX starts: the host device count must be set first.
if (_DEVICES := _PRE.parse_known_args()[0].devices) > 1:
    os.environ["XLA_FLAGS"] = (
        f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={_DEVICES}"
    ).strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from seqjax import parallel, xla  # noqa: E402
from seqjax.experiment import Experiment, config_from_data  # noqa: E402
from seqjax.train import make_train  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "bench_seeds.json"


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def _max_diff(a, b) -> float:
    """The largest absolute difference between the float leaves of two pytrees."""
    diffs = [
        float(np.max(np.abs(np.asarray(x) - np.asarray(y)), initial=0.0))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
        if jax.dtypes.issubdtype(x.dtype, np.floating)
    ]
    return max(diffs, default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--steps", type=int, default=200, help="updates per run")
    parser.add_argument("--repeats", type=int, default=3, help="timings per case (best kept)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--fast", action="store_true", help="model.fast: the fused LSTM kernel")
    parser.add_argument(
        "--devices", type=int, default=1, help="also shard the seeds over N (host) devices"
    )
    parser.add_argument(
        "--shape", default="32,16,100", help="H,B,T of the LSTM runs (hidden, batch, length)"
    )
    parser.add_argument(
        "--seed-batch", type=int, default=None, help="vmap the runs k at a time (seed_batch)"
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON file of the results")
    args = parser.parse_args()
    try:
        hidden, batch, length = (int(v) for v in args.shape.split(","))
    except ValueError:
        parser.error(f"--shape {args.shape!r}: expected three integers H,B,T")
    if args.seed_batch is not None and args.seed_batch < 1:
        parser.error(f"--seed-batch {args.seed_batch}: expected a positive group size")
    steps, seeds = args.steps, args.seeds
    if args.quick:
        hidden, batch, length, steps, seeds = 8, 4, 10, 5, [2]
        args.repeats = 2

    cfg = config_from_data(
        {
            "task": {"name": "adding", "length": length},
            "model": {"cell": "lstm", "hidden_size": hidden, "fast": args.fast},
            "optimizer": {"name": "adam", "learning_rate": 1e-2},
            "train": {"steps": steps, "batch_size": batch, "chunk_size": steps},
        }
    )
    exp = Experiment(cfg)
    train = make_train(exp.run_trainer(), steps)
    # Matmul FLOPs of one update: forward 2 B T (F + H) 4H, backward twice that.
    features = exp.task.input_size
    flops_per_update = 3 * 2 * batch * length * (features + hidden) * 4 * hidden
    one = jax.jit(train)
    many = jax.jit(lambda keys: parallel.map_runs(train, (keys,), batch=args.seed_batch))
    key = jax.random.key(0)
    sharding = None
    if args.devices > 1:
        mesh = parallel.make_mesh(seeds=args.devices)  # raises if the devices do not exist
        sharding = NamedSharding(mesh, P(parallel.SEEDS))
        sharded = jax.jit(
            lambda keys: parallel.map_runs(train, (keys,), batch=args.seed_batch, mesh=mesh),
            in_shardings=sharding,
            out_shardings=sharding,
        )

    rows = []
    print(
        f"LSTM H={hidden}, B={batch}, T={length}, {steps} steps per run, fast={args.fast}, "
        f"seed_batch={args.seed_batch}, {jax.devices()[0]}"
    )
    print(
        f"{'seeds':>5} {'vmapped s':>10} {'sequential s':>13} {'runs/s vmap':>12} "
        f"{'runs/s seq':>11} {'speed-up':>9} {'GFLOP/s vmap':>13} {'GFLOP/s seq':>12}"
        + (f" {'sharded s':>10} {'speed-up':>9} {'max diff':>9}" if sharding else "")
    )
    for n in seeds:
        keys = jax.random.split(key, n)
        singles = list(keys)
        jax.block_until_ready(many(keys))  # compile and warm up both
        jax.block_until_ready([one(k) for k in singles])
        t_vmap = _best(lambda keys=keys: many(keys), args.repeats)
        t_seq = _best(lambda singles=singles: [one(k) for k in singles], args.repeats)
        row = {
            "seeds": n,
            "vmapped_s": t_vmap,
            "sequential_s": t_seq,
            "vmapped_steps_per_s": n * steps / t_vmap,
            "sequential_steps_per_s": n * steps / t_seq,
            "speedup": t_seq / t_vmap,
            "vmapped_gflops": n * steps * flops_per_update / t_vmap / 1e9,
            "sequential_gflops": n * steps * flops_per_update / t_seq / 1e9,
        }
        line = (
            f"{n:>5} {t_vmap:>10.3f} {t_seq:>13.3f} {n / t_vmap:>12.2f} {n / t_seq:>11.2f} "
            f"{row['speedup']:>8.2f}x {row['vmapped_gflops']:>13.1f} "
            f"{row['sequential_gflops']:>12.1f}"
        )
        if sharding is not None and n % args.devices == 0:
            sharded_keys = jax.device_put(keys, sharding)
            diff = _max_diff(many(keys), sharded(sharded_keys))  # also compiles and warms up
            t_sharded = _best(lambda k=sharded_keys: sharded(k), args.repeats)
            row.update(
                devices=args.devices,
                sharded_s=t_sharded,
                sharded_speedup=t_seq / t_sharded,
                sharded_max_abs_diff=diff,
            )
            line += f" {t_sharded:>10.3f} {row['sharded_speedup']:>8.2f}x {diff:>9.1e}"
        rows.append(row)
        print(line)

    result = {
        "config": {
            "cell": "lstm",
            "fast": args.fast,
            "devices": args.devices,
            "seed_batch": args.seed_batch,
            "hidden_size": hidden,
            "batch_size": batch,
            "length": length,
            "steps": steps,
            "task": "adding",
            "optimizer": "adam",
        },
        "quick": args.quick,
        "repeats": args.repeats,
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.default_backend(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],  # other work on a shared machine skews timings
        "machine": platform.machine(),
        "cpu": benchutil.cpu_model(),
        "jax": jax.__version__,
        "rows": rows,
    }
    stem = OUT.stem + (f"_devices{args.devices}" if args.devices > 1 else "")
    if args.shape != parser.get_default("shape"):
        stem += "_" + args.shape.replace(",", "-")
    if args.seed_batch is not None:
        stem += f"_batch{args.seed_batch}"
    out = args.out or OUT.with_name(f"{stem}{'_fast' if args.fast else ''}.json")
    benchutil.write_json(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    xla.configure()  # before JAX starts, as the seqjax command does
    main()
