"""experiments/claims/temporal_order.py at --tiny, and its settings against the 1997 paper."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from experiments.claims import temporal_order
from seqjax import tasks
from tests.claims.conftest import check_result, run_tiny


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("temporal_order")
    return out, run_tiny(temporal_order, out)


def test_tiny_result(result):
    out, data = result
    check_result(out, temporal_order, data)
    assert {(r["cell"], r["setting"]) for r in data["settings"]} == {
        (c, s) for c in ("rnn", "lstm") for s in temporal_order.TINY_SETTINGS
    }
    for r in data["settings"]:
        assert len(r["updates_to_train_loss"]) == len(r["seeds"])
        assert all(u is None or u % 20 == 0 for u in r["updates_to_train_loss"])


def test_chance_thresholds_and_solved_recomputed(result):
    _, data = result
    assert data["chance"] == pytest.approx(1 / 4)
    assert data["threshold"] == temporal_order.THRESHOLD == 0.95
    for r in data["settings"]:
        assert r["baseline_loss"] == pytest.approx(math.log(4))
        assert r["solved"] == [v is not None and v > 0.95 for v in r["values"]]
        assert r["solved_fraction"] == pytest.approx(np.mean(r["solved"]))
        # The paper's worst case, 3 wrong of 2560 test sequences, as an accuracy.
        assert r["strict_solved"] == [v is not None and v > 1 - 3 / 2560 for v in r["values"]]


def test_verdicts_follow_the_intervals(result):
    _, data = result
    edge = 0.25 + 0.1 * (1 - 0.25)  # stats.left_baseline: 10% of the way from chance to 1
    ci = {(r["cell"], r["setting"]): r["ci95"] for r in data["settings"]}
    for name, verdict in data["verdicts"].items():
        head, ref = name.split(" vs ")
        cell, setting = head.split(" @ ")
        low, high = ci[cell, setting]
        if ref == "chance":
            assert verdict == ("reproduces" if low > edge else "inconclusive"), name
            continue
        assert (cell, ref) == ("lstm", "rnn")
        rnn_low, rnn_high = ci["rnn", setting]
        if max(low, rnn_low) <= edge:
            assert verdict == "inconclusive", name
        elif verdict == "reproduces":
            assert low > rnn_high, name
        elif verdict == "contradicted":
            assert high < rnn_low, name
        else:
            assert not (low > rnn_high or high < rnn_low), name


@pytest.mark.parametrize(
    "setting, lengths, windows",
    [("6a", (100, 110), [(10, 20), (50, 60)]), ("control", (20, 20), [(2, 4), (10, 12)])],
)
def test_settings_give_the_papers_task(setting, lengths, windows):
    """Experiment 6a: L in [100, 110], X/Y at steps 10-20 and 50-60, class = order as bits."""
    task = tasks.temporal_order(num_classes=4, **temporal_order.SETTINGS[setting])
    batch = task.sample(jax.random.key(0), 512)
    ids = np.argmax(np.asarray(batch.inputs), axis=-1)  # [B, T]; padded steps read as 0
    length = np.asarray(batch.length)
    assert lengths[0] <= length.min() and length.max() <= lengths[1]
    for b in range(ids.shape[0]):
        relevant = np.flatnonzero((ids[b, : length[b]] == 4) | (ids[b, : length[b]] == 5))
        assert len(relevant) == 2
        for pos, (lo, hi) in zip(relevant, windows, strict=True):
            assert lo <= pos <= hi
        bits = ids[b, relevant] - 4  # X = 0, Y = 1
        assert int(batch.targets[b]) == 2 * bits[0] + bits[1]
        assert ids[b, 0] == 6 and ids[b, length[b] - 1] == 7  # B ... E


def test_control_rule():
    records = [
        {"cell": "rnn", "setting": "control", "solved_fraction": 0.8},
        {"cell": "lstm", "setting": "control", "solved_fraction": 0.6},
        {"cell": "lstm", "setting": "6a", "solved_fraction": 1.0},
    ]
    assert temporal_order.control_worked(records, "rnn") is True
    assert temporal_order.control_worked(records, "lstm") is False
    assert temporal_order.control_worked(records[2:], "lstm") is None


def test_budget_follows_the_reference_speeds():
    """3000 updates x (T / 100) / (updates/s at T = 100) + 5 s per program."""
    seconds = 3000 * (1.1 + 0.2) * (1 / 17 + 1 / 70) + 4 * 5
    assert temporal_order.estimate_minutes() == pytest.approx(seconds / 60)
    assert temporal_order.estimate_minutes() <= temporal_order.BUDGET_MIN <= 15
