"""experiments/claims/architectures.py at --tiny; its width matching and parameter counts."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.claims import architectures
from tests.claims.conftest import check_result, run_tiny

F = 2  # adding: (value, marker) per step; one output


def lstm_params(h: int) -> int:
    return 4 * h * (F + h) + 4 * h + h + 1  # w_i, w_h, b; readout w, b


def gru_params(h: int) -> int:
    return 3 * h * (F + h) + 3 * h + h + h + 1  # w_i, w_h, b_i, b_hn; readout


def transformer_params(d: int, layers: int = 2) -> int:
    block = 4 * (d * d + d) + (d * 4 * d + 4 * d + 4 * d * d + d) + 4 * d  # attn, mlp, 2 norms
    return layers * block + (F * d + d) + 2 * d + d + 1  # embed, final norm, readout


def tcn_params(c: int, length: int, k: int = 3) -> int:
    levels = 1
    while 1 + 2 * (k - 1) * (2**levels - 1) < length:  # receptive field covers the length
        levels += 1
    first = k * F * c + c + k * c * c + c + (F * c + c if F != c else 0)  # conv1, conv2, 1x1
    return first + (levels - 1) * 2 * (k * c * c + c) + c + 1


FORMULAS = {
    "LSTM": lambda w, t: lstm_params(w),
    "GRU": lambda w, t: gru_params(w),
    "transformer": lambda w, t: transformer_params(w),
    "TCN": tcn_params,
}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("architectures")
    return out, run_tiny(architectures, out)


def test_tiny_result(result):
    out, data = result
    check_result(out, architectures, data)
    assert "Bai" in (out / "architectures.md").read_text()


def test_parameter_counts_and_matching(result):
    _, data = result
    for r in data["settings"]:
        assert r["num_params"] == FORMULAS[r["model"]](r["width"], data["length"]), r["model"]
        assert abs(r["num_params"] - r["target_params"]) <= 0.1 * r["target_params"]


@pytest.mark.parametrize("model", architectures.MODELS)
@pytest.mark.parametrize("width", [4, 14])
def test_num_params_follows_the_formulas(model, width):
    size = {"length": 50, "learning_rates": [1e-3], "steps": 1, "batch": 4}
    cfg = architectures.program_config(model, width, size, [0], True)
    assert architectures.num_params(cfg) == FORMULAS[model](width, 50)


def test_full_size_widths_match_within_ten_percent():
    """The full run's widths, from the formulas: every model within 10% of 5k and of 25k."""
    for target in (5_000, 25_000):
        for model, formula in FORMULAS.items():
            widths = range(2, 400, 2) if model == "transformer" else range(1, 400)
            width, count = architectures.match_width(lambda w, f=formula: f(w, 50), target, widths)
            assert abs(count - target) <= 0.1 * target, (model, target, width, count)


def test_match_width_is_the_brute_force_nearest():
    rng = np.random.default_rng(0)
    for _ in range(50):
        widths = np.cumsum(rng.integers(1, 4, size=30)).tolist()
        a = rng.integers(1, 5)
        target = int(rng.integers(1, a * widths[-1] ** 2 + 50))
        width, count = architectures.match_width(lambda w, a=a: a * w * w, target, widths)
        best = min(abs(a * w * w - target) for w in widths)
        assert count == a * width * width and abs(count - target) == best


def test_best_rate_has_the_lowest_training_loss(result):
    _, data = result
    groups = {}
    for r in data["settings"]:
        groups.setdefault((r["size"], r["model"]), []).append(r)
    for rs in groups.values():
        assert [r["learning_rate"] for r in rs] == data["learning_rates"]
        (best,) = [r for r in rs if r["best"]]
        assert best["final_train_loss"] == min(r["final_train_loss"] for r in rs)


def test_cost_rows(result):
    _, data = result
    by = {(c["hidden_size"], c["fast"], c["cell"]): c for c in data["cost"]}
    for (h, fast, cell), c in by.items():
        assert c["mean"] == pytest.approx(np.mean(c["ms_per_update"]))
        lstm = by[(h, fast, "LSTM")]
        assert c["ratio_to_lstm"] == pytest.approx(c["mean"] / np.mean(lstm["ms_per_update"]))
        assert c["num_params"] == (lstm_params(h) if cell == "LSTM" else gru_params(h))
        if cell == "GRU":
            verdict = data["verdicts"][f"GRU vs LSTM time @ H={h} {'fused' if fast else 'plain'}"]
            (g_lo, g_hi), (l_lo, l_hi) = c["ci95"], lstm["ci95"]
            assert verdict != "reproduces" or g_hi < l_lo
            assert verdict != "contradicted" or g_lo > l_hi


def test_model_verdicts_follow_the_intervals(result):
    _, data = result
    for r in data["settings"]:
        if not r["best"]:
            continue
        verdict = data["verdicts"][f"{r['model']} @ {r['size']}"]
        low, high = (np.inf if x is None else x for x in r["ci95"])
        if verdict == "reproduces":
            assert high < data["baseline"]
        if low <= data["baseline"] <= high:
            assert verdict == "inconclusive"
