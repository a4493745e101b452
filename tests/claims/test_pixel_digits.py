"""experiments/claims/pixel_digits.py at --tiny: the result's shape, its reference accuracies
recomputed from scikit-learn's arrays, and its verdicts recomputed from the JSON's intervals."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from conftest import check_result, run_tiny
from sklearn.datasets import load_digits

from experiments.claims import pixel_digits
from seqjax.tasks.images import digits_split


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("pixel_digits")
    return out, run_tiny(pixel_digits, out)


def test_tiny_result(result):
    out, data = result
    check_result(out, pixel_digits, data)
    assert pixel_digits.BUDGET_MIN <= 15
    cells = [(r["order"], r["cell"]) for r in data["settings"]]
    assert cells == [("row by row", "tanh RNN"), ("row by row", "LSTM")]
    for record in data["settings"]:
        assert record["threshold"] == pixel_digits.THRESHOLD == data["threshold"]
        for value in record["values"]:  # one evaluation batch of 8 images at --tiny
            assert value * 8 == pytest.approx(round(value * 8), abs=1e-6)
    md = (out / "pixel_digits.md").read_text()
    assert "T=64" in md and "not MNIST with T=784" in md and "Le et al. 2015" in md


@pytest.mark.parametrize(("order", "permute"), pixel_digits.ORDERS)
def test_last_pixel_reference_matches_a_count_over_the_digits(result, order, permute):
    _, data = result
    digits = load_digits()
    pixels, labels = digits.images.reshape(len(digits.target), 64), digits.target
    split = digits_split(permute=permute)
    last = split.order[-1]
    train, held_out = split.train_ids, split.eval_ids
    overall = Counter(labels[train].tolist())
    fallback = min(overall, key=lambda c: (-overall[c], c))
    rule = {}
    for value in set(pixels[train, last].tolist()):
        counts = Counter(labels[train][pixels[train, last] == value].tolist())
        rule[value] = min(counts, key=lambda c: (-counts[c], c))  # most frequent, then smallest
    guesses = [rule.get(v, fallback) for v in pixels[held_out, last].tolist()]
    expected = np.mean(np.asarray(guesses) == labels[held_out])
    assert data["memoryless_accuracy"][order] == pytest.approx(expected, abs=1e-12)
    assert data["memoryless_accuracy"][order] < 0.2 < pixel_digits.THRESHOLD


def test_linear_reference_clears_the_threshold(result):
    # the threshold's justification: a linear classifier of the whole image gets past it
    _, data = result
    assert pixel_digits.THRESHOLD < data["linear_reference_accuracy"] <= 1.0


def test_verdicts_follow_from_the_intervals(result):
    _, data = result
    for order in {r["order"] for r in data["settings"]}:
        records = {r["cell"]: r for r in data["settings"] if r["order"] == order}
        baseline = max(0.1, data["memoryless_accuracy"][order])
        edge = baseline + 0.1 * (1.0 - baseline)
        any_left = any(r["ci95"][0] > edge for r in records.values())
        for model, (_, reference) in pixel_digits.CLAIMS.items():
            if model not in records:
                continue
            (m_low, m_high), (r_low, r_high) = records[model]["ci95"], records[reference]["ci95"]
            if not any_left or (m_low <= r_high and r_low <= m_high):
                expected = "inconclusive"
            else:
                expected = "reproduces" if m_low > r_high else "contradicted"
            assert data["verdicts"][f"{model} @ {order}"] == expected
