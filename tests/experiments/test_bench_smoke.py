"""The benchmarks run end to end at a tiny size (their figures come from full runs by hand)."""

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import jax
import pytest

# The scripts call seqjax.xla.configure() as they start; run in this process, whose backend may
# already run, it can only warn.
pytestmark = pytest.mark.filterwarnings(
    "ignore:seqjax.xla.configure\\(\\) was called after JAX started:RuntimeWarning"
)

BENCH = Path(__file__).resolve().parents[2] / "experiments" / "bench_cells.py"


@pytest.fixture(autouse=True)
def _restore_xla_flags(monkeypatch):
    """Undoes the scripts' edit of XLA_FLAGS in this process after each test."""
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))


def test_bench_cells_quick(tmp_path, monkeypatch):
    out = tmp_path / "bench.json"
    monkeypatch.setattr(sys, "argv", [str(BENCH), "--quick", "--no-torch", "--out", str(out)])
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        runpy.run_path(str(BENCH), run_name="__main__")
    result = json.loads(out.read_text())
    impls = {row["impl"] for row in result["rows"]}
    assert {"seqjax", "seqjax-fused", "flax"} <= impls
    assert all(row["ms_per_step"] > 0 for row in result["rows"])


def test_bench_seeds_quick(tmp_path, monkeypatch):
    script = BENCH.parent / "bench_seeds.py"
    out = tmp_path / "seeds.json"
    # --seed-batch 1: the vmapped runs go one group of one after another (parallel.seed_batch).
    argv = [str(script), "--quick", "--seed-batch", "1", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        runpy.run_path(str(script), run_name="__main__")
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert result["config"]["seed_batch"] == 1
    assert [row["seeds"] for row in rows] == [2]
    assert all(row["vmapped_s"] > 0 and row["sequential_s"] > 0 for row in rows)


def test_bench_seeds_shards_the_seeds_over_two_cpu_devices(tmp_path):
    # A fresh process: --devices sets the host device count before JAX starts its backend.
    out = tmp_path / "seeds.json"
    script = BENCH.parent / "bench_seeds.py"
    args = ["--quick", "--devices", "2", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(out.read_text())["rows"]
    assert row["devices"] == 2 and row["sharded_s"] > 0
    assert row["sharded_max_abs_diff"] < 1e-5  # the same runs as the one-device vmap


def test_profile_step_groups_the_ops_of_a_step(tmp_path):
    # A fresh process: the script sets XLA_FLAGS before JAX starts its backend.
    out = tmp_path / "profile.json"
    script = BENCH.parent / "profile_step.py"
    args = ["--no-torch", "--steps", "2", "--shape", "4,10,3,8", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    seqjax = json.loads(out.read_text())["results"]["seqjax"]
    groups = seqjax["groups_ms"]
    # Forward and backward of a 10-step scan run matmuls and stack residuals every step.
    assert groups["matmul"] > 0 and groups["stacking"] > 0
    assert seqjax["ops_per_step"]["matmul"] >= 2 * 10
    assert sum(groups.values()) <= 1.5 * seqjax["step_ms"]


def test_bench_remat_quick(tmp_path, monkeypatch):
    script = BENCH.parent / "bench_remat.py"
    out = tmp_path / "remat.json"
    monkeypatch.setattr(sys, "argv", [str(script), "--quick", "--out", str(out)])
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        runpy.run_path(str(script), run_name="__main__")
    rows = json.loads(out.read_text())["rows"]
    assert [row["cell"] for row in rows] == ["lstm", "rnn"]
    assert all(row["keep_ms"] > 0 and row["step_remat_ms"] > 0 for row in rows)
