"""Smoke test of the claim experiments (experiments/claims): every script at its tiny size.

One module-scoped run of ``run_all --tiny`` trains every experiment (seconds each) into a
temporary folder; the tests check that each wrote its table, figure and JSON, that the JSON's
derived numbers agree with an independent recomputation, and the small helpers.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/ is not installed
from experiments.claims import clipping, common, run_all, vanishing


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("claims")
    results = out / "RESULTS.md"
    with jax.numpy_dtype_promotion("standard"):  # Optax's Adam mixes dtypes
        run_all.main(["--tiny", "--out", str(out), "--results", str(results)])
    return out, results


@pytest.mark.parametrize("name", run_all.EXPERIMENTS)
def test_each_experiment_writes_table_figure_json(tiny_results, name):
    out, results = tiny_results
    md = (out / f"{name}.md").read_text()
    assert md.startswith("## ")
    assert "| " in md and "**Verdict.**" in md and "Seeds [0, 1]" in md
    png = (out / f"{name}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / f"{name}.json").read_text())
    assert data["name"] == name and data["seeds"] == [0, 1] and data["wall_time_s"] > 0
    text = results.read_text()
    assert md.splitlines()[0] in text  # RESULTS.md collects the section


def test_results_md_links_figures_relative_to_itself(tiny_results):
    _, results = tiny_results
    text = results.read_text()
    assert "## Not run" not in text
    for name in run_all.EXPERIMENTS:
        assert f"]({name}.png)" in text  # results file sits in the out folder here


def test_truncation_ratios_use_ln_num_symbols(tiny_results):
    out, _ = tiny_results
    data = json.loads((out / "truncation.json").read_text())
    assert [r["k"] for r in data["runs"]] == [2, None]
    for run in data["runs"]:
        expected = np.asarray(run["eval_loss"]) / math.log(8)  # delayed recall, 8 symbols
        np.testing.assert_allclose(run["loss_vs_baseline"], expected, rtol=1e-6)
        assert run["cost_train_size"]["ms_per_update"] > 0
        assert run["cost_train_size"]["temp_mib"] >= 0
        acc = np.asarray(run["accuracy"])
        assert np.all((acc >= 0) & (acc <= 1))


def test_long_range_baselines_match_published_formulas(tiny_results):
    out, _ = tiny_results
    data = json.loads((out / "long_range.json").read_text())
    for run in data["runs"]:
        if run["task"] == "adding":
            assert run["baseline"] == pytest.approx(1 / 6)
        else:  # Arjovsky et al. 2016: 10 ln 8 / (T + 20), T the delay
            assert run["baseline"] == pytest.approx(10 * math.log(8) / (run["length"] + 20))
        np.testing.assert_allclose(
            run["loss_vs_baseline"], np.asarray(run["eval_loss"]) / run["baseline"], rtol=1e-6
        )


def test_vanishing_slope_matches_numpy_polyfit(tiny_results):
    out, _ = tiny_results
    data = json.loads((out / "vanishing.json").read_text())
    run = data["runs"][0]
    curve = np.asarray(run["grad_norm_init"], dtype=np.float64)
    assert curve.shape == (data["length"],) and np.all(curve > 0)
    # least squares of log10 ||g_t|| against the steps back from the end, by numpy
    slope = np.polyfit(np.arange(curve.size)[::-1], np.log10(curve), 1)[0]
    np.testing.assert_allclose(vanishing._slopes(curve[None]), [slope], rtol=1e-4, atol=1e-6)


def test_spikes_against_a_plain_loop():
    rng = np.random.default_rng(0)
    loss = np.exp(rng.normal(size=(40, 3)))
    loss[25, 1] = 1e3
    loss[30, 2] = np.nan
    expected = np.zeros(3, dtype=np.int64)
    for j in range(3):
        for i in range(10, 40):
            window = [v for v in loss[i - 10 : i, j] if np.isfinite(v)]
            ref = sorted(window)[len(window) // 2] if len(window) % 2 else np.median(window)
            if not np.isfinite(loss[i, j]) or loss[i, j] > 3 * ref:
                expected[j] += 1
    np.testing.assert_array_equal(clipping._spikes(loss), expected)
    assert expected[1] >= 1 and expected[2] >= 1


def test_mean_std_and_table():
    assert common.mean_std([1.0, 3.0]) == "2 ± 1"
    assert common.mean_std([0.5]) == "0.5"
    table = common.markdown_table(["a", "b"], [[1, "x"]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x |"]


def test_config_rejects_missing_yaml():
    with pytest.raises(FileNotFoundError, match=r"no/such\.yaml"):
        common.config("no/such.yaml")


def test_run_all_rejects_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="nonsense"):
        run_all.main(["--only", "nonsense", "--out", str(tmp_path)])
