"""The benchmarks run end to end at a tiny size (their figures come from full runs by hand)."""

import json
import runpy
import sys
from pathlib import Path

import jax

BENCH = Path(__file__).resolve().parents[2] / "experiments" / "bench_cells.py"


def test_bench_cells_quick(tmp_path, monkeypatch):
    out = tmp_path / "bench.json"
    monkeypatch.setattr(sys, "argv", [str(BENCH), "--quick", "--no-torch", "--out", str(out)])
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        runpy.run_path(str(BENCH), run_name="__main__")
    result = json.loads(out.read_text())
    impls = {row["impl"] for row in result["rows"]}
    assert {"seqjax", "seqjax-fused", "flax"} <= impls
    assert all(row["ms_per_step"] > 0 for row in result["rows"])
