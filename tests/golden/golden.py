"""Golden outputs of a handful of tiny runs: final params and every logged metric.

``python tests/golden/golden.py --write`` records them into ``golden.npz`` beside this file;
``--check`` recomputes them and exits non-zero unless every golden array is bit-identical
(arrays the golden file does not hold, e.g. a metric added to the records, are listed as new). The test
(`tests/test_golden.py`) runs ``--check`` in a subprocess with two simulated CPU devices (the
data-parallel case needs them before JAX starts). Regenerate only for a change that is meant to
change the numbers, and say so in the commit.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden.npz"

_FLAGS = "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0"
if "jax" not in sys.modules:
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAGS}".strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402

BASE = {
    "seeds": [0],
    "task": {"name": "adding", "length": 12},
    "model": {"cell": "lstm", "hidden_size": 8},
    "optimizer": {
        "name": "adam",
        "learning_rate": 1e-2,
        "clip": {"method": "global_norm", "threshold": 1.0},
    },
    "train": {"steps": 6, "batch_size": 4, "chunk_size": 2, "eval_every": 2},
    "log": {"eval_batch_size": 4, "eval_batches": 2, "progress": False, "plots": False},
}


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


CASES = {
    "one_seed": {},
    "seeds": {"seeds": [0, 1, 2], "model": {"cell": "gru"}},
    "seed_groups": {"seeds": [3, 4, 5, 6], "parallel": {"seed_batch": 2}},
    "sweep_lr": {
        "seeds": [0, 1],
        "model": {"cell": "rnn"},
        "sweep": {"optimizer.learning_rate": [1e-3, 1e-2]},
    },
    "data_parallel": {"seeds": [0, 1], "parallel": {"data": 2}},
    "truncated": {
        "task": {"name": "delayed_recall", "length": 10, "lag": 3},
        "train": {"bptt": {"mode": "truncated", "truncate": 4}},
    },
    "streaming": {
        "task": {"name": "char_lm", "length": 12},
        "train": {"bptt": {"mode": "streaming", "window": 4}},
    },
    "dropout": {
        "model": {"num_layers": 2, "dropout": 0.2, "recurrent_dropout": 0.1},
        "optimizer": {"name": "sgd", "learning_rate": 0.1, "weight_decay": 1e-3},
    },
}


def case_config(name: str) -> dict:
    return _merge({**BASE, "name": name}, CASES[name])


def _flatten(prefix: str, tree) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {f"{prefix}/{jax.tree_util.keystr(path)}": np.asarray(leaf) for path, leaf in leaves}


def _records(run_dir: Path) -> dict[str, np.ndarray]:
    from seqjax.experiment.runs import read_metrics

    out: dict[str, list] = {}
    for r in read_metrics(run_dir):
        for k, v in r.items():
            if k != "split":
                out.setdefault(f"{r['split']}/{k}", []).append(np.asarray(v, np.float64))
    return {k: np.stack(v) for k, v in out.items()}


def run_case(name: str) -> dict[str, np.ndarray]:
    """Final params and every logged metric (train and eval records) of one tiny run."""
    import seqjax

    with tempfile.TemporaryDirectory() as tmp, jax.numpy_dtype_promotion("standard"):
        result = seqjax.run(case_config(name), out=tmp, progress=False)
        arrays = _flatten("params", result.params)
        arrays.update({f"metrics/{k}": v for k, v in _records(result.run_dir).items()})
    return {f"{name}/{k}": v for k, v in arrays.items()}


def compute() -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for name in CASES:
        arrays.update(run_case(name))
    return arrays


def check(arrays: dict[str, np.ndarray]) -> tuple[list[str], list[str]]:
    """``(problems, new)``: the golden arrays that are missing or differ, and the arrays the
    golden file does not hold (a metric added to the records: reported, not a failure)."""
    with np.load(GOLDEN, allow_pickle=False) as data:
        golden = {k: data[k] for k in data.files}
    problems = [f"missing: {k}" for k in sorted(set(golden) - set(arrays))]
    new = [f"new: {k}" for k in sorted(set(arrays) - set(golden))]
    for k in sorted(set(golden) & set(arrays)):
        a, b = arrays[k], golden[k]
        if a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"{k}: {a.dtype}{a.shape} against golden {b.dtype}{b.shape}")
        elif not np.array_equal(a, b, equal_nan=True):
            diff = np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))
            problems.append(f"{k}: differs from golden by up to {diff:.3g}")
    return problems, new


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true")
    group.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if jax.device_count() < 2:
        print(f"needs 2 devices, got {jax.devices()}", file=sys.stderr)
        return 2
    arrays = compute()
    if args.write:
        np.savez(GOLDEN, **arrays)
        print(f"wrote {len(arrays)} arrays to {GOLDEN}")
        return 0
    problems, new = check(arrays)
    for p in [*new, *problems]:
        print(p)
    print(f"{len(arrays)} arrays, {len(problems)} differ from {GOLDEN.name}, {len(new)} new")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
