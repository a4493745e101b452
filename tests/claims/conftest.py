"""Shared checks of the claim experiments' tests (one test file per script in this folder).

Each test file runs its script once at ``--tiny`` in a module-scoped fixture (`run_tiny`) and
checks the result with `check_result`: the Markdown section, the figure, and a JSON whose
settings keep every seed's value with a bootstrap interval and whose verdicts are the three
allowed words.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import jax
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # experiments/ is not installed
from experiments.claims import common, stats

TINY_SEEDS = common.TINY_SEEDS


def run_tiny(module, out: Path, *extra: str) -> dict[str, Any]:
    """Runs ``module.main`` at ``--tiny`` into ``out``; returns the parsed JSON it wrote."""
    with jax.numpy_dtype_promotion("standard"):  # Optax's Adam mixes dtypes
        module.main(["--tiny", "--out", str(out), *extra])
    return json.loads((out / f"{module.NAME}.json").read_text())


def check_result(out: Path, module, data: dict[str, Any], seeds=TINY_SEEDS) -> None:
    """The checks every claim script's tiny result passes."""
    name = module.NAME
    assert isinstance(module.BUDGET_MIN, int | float) and 0 < module.BUDGET_MIN <= 60
    md = (out / f"{name}.md").read_text()
    assert md.startswith("## ")
    assert "| " in md and "**Verdict.**" in md and f"Seeds {seeds}" in md
    assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["name"] == name and data["seeds"] == seeds and data["wall_time_s"] > 0
    verdicts = data["verdicts"]
    assert verdicts and all(v in stats.VERDICTS for v in verdicts.values()), verdicts
    settings = data["settings"]
    assert settings
    for record in settings:
        assert record["seeds"] == seeds
        assert len(record["values"]) == len(seeds) == len(record["solved"])
        low, high = record["ci95"]
        finite = [v for v in record["values"] if v is not None]
        if len(finite) == len(seeds):  # no diverged seed: the mean is the seeds' mean
            assert record["mean"] == pytest.approx(sum(finite) / len(finite), rel=1e-9)
            assert low <= record["mean"] + 1e-12 and record["mean"] <= high + 1e-12
            assert min(finite) - 1e-12 <= low and high <= max(finite) + 1e-12
        assert record["solved_fraction"] == pytest.approx(
            sum(record["solved"]) / len(record["solved"])
        )
        assert math.isfinite(record["threshold"])
