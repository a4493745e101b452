"""experiments/claims/truncation.py at its tiny size: settings, ratios, costs and verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.claims import stats, truncation
from tests.claims.conftest import check_result, run_tiny


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("truncation")
    return out, run_tiny(truncation, out)


def test_tiny_result(tiny):
    out, data = tiny
    check_result(out, truncation, data)
    size = truncation.TINY
    lag = size["lag"]
    expected = [(mode, lag + o) for mode in truncation.MODES for o in size["offsets"][mode]] + [
        ("full", None)
    ]
    assert [(r["mode"], r["k"]) for r in data["settings"]] == expected
    for record in data["settings"]:
        assert record["spans_lag"] == (record["k"] is None or record["k"] > lag)
        assert record["cost"]["ms_per_update"] > 0 and record["cost"]["temp_mib"] >= 0
        assert all(0.0 <= v <= 1.0 for v in record["values"])  # accuracies
        assert record["threshold"] == truncation.SOLVED_ACCURACY
    assert set(data["long_cost"]) == {"full BPTT"}
    assert data["long_cost"]["full BPTT"]["ms_per_update"] > 0


def test_ratios_use_ln_num_symbols(tiny):
    _, data = tiny
    for record in data["settings"]:
        assert record["baseline"] == pytest.approx(math.log(8))  # delayed recall, 8 symbols
        np.testing.assert_allclose(
            record["loss_vs_baseline"], np.asarray(record["eval_loss"]) / math.log(8), rtol=1e-6
        )


def test_verdicts_recomputed_from_the_json(tiny):
    """Each mode's settings against its k = L-1, by `stats.verdicts` on the seeds' accuracies."""
    _, data = tiny
    lag = data["lag"]
    intervals = {}
    for record in data["settings"]:
        name = "full BPTT" if record["k"] is None else f"{record['mode']} k={record['k']}"
        intervals[name] = stats.bootstrap_interval(record["values"])
    expected = {}
    for mode in truncation.MODES:
        family = {n: iv for n, iv in intervals.items() if n.startswith(mode)}
        if mode == "block":
            family["full BPTT"] = intervals["full BPTT"]
        ref = f"{mode} k={lag - 1}"
        claims = {n: ("better", ref) for n in family if n != ref}
        for name, word in stats.verdicts(family, claims, baseline=1 / 8, best=1.0).items():
            expected[f"LSTM {name} vs k={lag - 1} @ lag {lag}"] = word
    assert data["verdicts"] == expected and expected
