"""experiments/claims/initialisation.py at --tiny: the result's shape, and its derived numbers
(baselines, updates to leave the plateau, verdicts) recomputed from the JSON."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.claims import initialisation, stats
from tests.claims.conftest import TINY_SEEDS, check_result, run_tiny


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("initialisation")
    return out, run_tiny(initialisation, out)


def test_result(result):
    out, data = result
    check_result(out, initialisation, data)
    assert {r["init"] for r in data["settings"]} == {"forget bias 0", "chrono"}


def test_baseline_is_the_memoryless_cross_entropy(result):
    _, data = result
    for r in data["settings"]:
        expected = 10 * math.log(8) / (r["delay"] + 20)  # K ln S / (D + 2K), the paper's
        assert r["baseline"] == pytest.approx(expected, rel=1e-6)  # from seqjax's Task
        assert initialisation.baseline(r["delay"]) == pytest.approx(expected, rel=1e-12)
        assert r["length"] == r["delay"] + 20


def test_chrono_t_max_is_the_sequence_length(result):
    _, data = result
    (chrono,) = [r for r in data["settings"] if r["init"] == "chrono"]
    assert chrono["chrono_t_max"] == chrono["delay"] + 20


def test_accuracy_is_solved_above_the_threshold(result):
    _, data = result
    for r in data["settings"]:
        assert all(0.0 <= v <= 1.0 for v in r["values"])
        assert r["threshold"] == initialisation.SOLVED_ACCURACY
        assert r["solved"] == [v > initialisation.SOLVED_ACCURACY for v in r["values"]]


def test_updates_to_leave_the_plateau_by_a_plain_loop(result):
    _, data = result
    for r in data["settings"]:
        assert len(r["plateau_updates"]) == len(TINY_SEEDS) == len(r["loss_curves"])
        for curve, got in zip(r["loss_curves"], r["plateau_updates"], strict=True):
            expected = None
            for step, loss in zip(r["steps"], curve, strict=True):
                if loss is not None and loss < 0.9 * r["baseline"]:
                    expected = step
                    break
            assert got == expected


def test_plateau_updates_on_a_constructed_curve():
    steps = np.array([50, 100, 150, 200])
    base = 1.0
    loss = np.array([[1.2, 1.0], [0.95, 1.0], [0.85, 1.0], [0.5, 0.95]])  # [K, S]
    assert initialisation.plateau_updates(steps, loss, base) == [150, None]


def test_verdicts_recomputed_from_the_values(result):
    _, data = result
    (delay,) = data["delays"]
    by = {r["init"]: r for r in data["settings"]}
    acc = {k: stats.bootstrap_interval(r["values"]) for k, r in by.items()}
    left = any(stats.left_baseline(x, 1 / 8, best=1.0) for x in acc.values())
    expected = stats.verdict(
        acc["chrono"],
        acc["forget bias 0"],
        claim="better",
        any_left_baseline=left,
        higher_is_better=True,
    )
    key = f"chrono vs forget bias 0, recall accuracy @ delay {delay}"
    assert data["verdicts"][key] == expected
    speed = {
        k: stats.bootstrap_interval([math.inf if u is None else u for u in r["plateau_updates"]])
        for k, r in by.items()
    }
    any_left = any(u is not None for r in by.values() for u in r["plateau_updates"])
    expected = stats.verdict(
        speed["chrono"], speed["forget bias 0"], claim="better", any_left_baseline=any_left
    )
    key = f"chrono vs forget bias 0, updates to leave the plateau @ delay {delay}"
    assert data["verdicts"][key] == expected
    assert set(data["verdicts"]) == {
        f"chrono vs forget bias 0, {m} @ delay {delay}"
        for m in ("recall accuracy", "updates to leave the plateau")
    }
