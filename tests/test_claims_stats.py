"""The claims' statistics and verdict rules (experiments/claims/stats.py) on hand-computed cases.

Bootstrap intervals are checked against the exact bootstrap distribution of small samples
(the mean of n draws with replacement from 0/1 values is k / n with k binomial), chosen so that
the 2.5% and 97.5% quantiles sit far from a step of that distribution.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/ is not installed
from experiments.claims import stats
from experiments.claims.stats import Interval

# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_matches_the_exact_bootstrap_quantiles():
    # k ~ Binomial(5, 0.2): P(k = 0) = 0.328 > 0.025, P(k <= 2) = 0.942 < 0.975 <= P(k <= 3)
    one_in_five = stats.bootstrap_interval([0.0, 0.0, 1.0, 0.0, 0.0])
    assert one_in_five == Interval(0.2, 0.0, 0.6, 5)
    # k ~ Binomial(10, 0.5): P(k <= 1) = 0.011 < 0.025 <= P(k <= 2) = 0.055, symmetric above
    half = stats.bootstrap_interval([0.0, 1.0] * 5)
    assert half == Interval(0.5, 0.2, 0.8, 10)


def test_bootstrap_is_seeded_and_degenerate_cases_are_exact():
    values = [0.31, 0.12, 0.55, 0.08, 0.27, 0.19]
    assert stats.bootstrap_interval(values, seed=3) == stats.bootstrap_interval(values, seed=3)
    low, high = stats.bootstrap_interval(values)[1:3]
    assert min(values) < low < sum(values) / 6 < high < max(values)
    assert stats.bootstrap_interval([0.5, 0.5, 0.5]) == Interval(0.5, 0.5, 0.5, 3)
    assert stats.bootstrap_interval([0.25]) == Interval(0.25, 0.25, 0.25, 1)
    # a diverged seed: the mean and the upper end are infinite, the lower end is a real mean
    assert stats.bootstrap_interval([1.0, math.inf]) == Interval(math.inf, 1.0, math.inf, 2)


def test_bootstrap_rejects_nan_and_empty_input():
    with pytest.raises(ValueError, match=r"NaN at seeds \[1\].*as inf"):
        stats.bootstrap_interval([0.1, math.nan])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        stats.bootstrap_interval([])


# ----------------------------------------------------------------------------- success


def test_solved_fraction_and_updates_to_solve():
    assert stats.solved([0.005, 0.02, 0.009, 0.01], 0.01).tolist() == [True, False, True, False]
    assert stats.solved_fraction([0.005, 0.02, 0.009, 0.01], 0.01) == 0.5
    assert stats.solved_fraction([0.99, 0.5, math.nan], 0.95, higher_is_better=True) == 1 / 3
    steps = [100, 200, 300, 400]
    assert stats.updates_to_solve(steps, [0.2, 0.15, 0.005, 0.02], 0.01) == 300
    assert stats.updates_to_solve(steps, [0.2, 0.15, 0.01, 0.02], 0.01) is None  # not below
    assert stats.updates_to_solve(steps, [0.1, 0.5, 0.97, 1.0], 0.95, higher_is_better=True) == 300
    with pytest.raises(ValueError, match="one length"):
        stats.updates_to_solve(steps, [0.1, 0.2], 0.01)


def test_left_baseline_needs_the_whole_interval_past_the_margin():
    # adding: baseline 1/6, edge 1/6 - 0.1/6 = 0.15
    assert stats.left_baseline(Interval(0.10, 0.05, 0.149, 5), 1 / 6)
    assert not stats.left_baseline(Interval(0.10, 0.05, 0.151, 5), 1 / 6)
    assert not stats.left_baseline(Interval(0.160, 0.158, 0.162, 5), 1 / 6)  # on the plateau
    # copy-memory accuracy on the recall steps: chance 1/8, edge 0.125 + 0.1 * 0.875 = 0.2125
    assert stats.left_baseline(Interval(0.5, 0.22, 0.8, 5), 0.125, best=1.0)
    assert not stats.left_baseline(Interval(0.5, 0.20, 0.8, 5), 0.125, best=1.0)
    with pytest.raises(ValueError, match="best != baseline"):
        stats.left_baseline(Interval(0.1, 0.1, 0.1, 5), 0.0)


# ----------------------------------------------------------------------------- verdicts

LSTM = Interval(0.004, 0.002, 0.007, 5)
RNN = Interval(0.166, 0.164, 0.168, 5)
GRU = Interval(0.006, 0.003, 0.010, 5)  # overlaps the LSTM's interval


@pytest.mark.parametrize(
    ("model", "reference", "claim", "left", "expected"),
    [
        (LSTM, RNN, "better", True, "reproduces"),
        (RNN, LSTM, "better", True, "contradicted"),
        (RNN, LSTM, "worse", True, "reproduces"),
        (LSTM, RNN, "worse", True, "contradicted"),
        (LSTM, GRU, "better", True, "inconclusive"),  # the intervals overlap
        (LSTM, RNN, "better", False, "inconclusive"),  # no model left the baseline
        (Interval(0.004, 0.004, 0.004, 1), RNN, "better", True, "inconclusive"),  # one seed
        (LSTM, stats.exact(1 / 6), "better", True, "reproduces"),
        (
            Interval(0.01, 0.008, 0.012, 5),
            Interval(0.01, 0.012, 0.02, 5),
            "better",
            True,
            "inconclusive",
        ),  # touching ends overlap
    ],
)
def test_verdict_rule(model, reference, claim, left, expected):
    assert stats.verdict(model, reference, claim=claim, any_left_baseline=left) == expected


def test_verdict_with_higher_is_better():
    high, low = Interval(0.9, 0.85, 0.95, 5), Interval(0.3, 0.2, 0.4, 5)
    kw = dict(any_left_baseline=True, higher_is_better=True)
    assert stats.verdict(high, low, claim="better", **kw) == "reproduces"
    assert stats.verdict(low, high, claim="better", **kw) == "contradicted"
    with pytest.raises(ValueError, match="`claim` must be one of"):
        stats.verdict(high, low, claim="equal", **kw)


def test_verdicts_are_per_model_and_inconclusive_when_nobody_left_the_baseline():
    intervals = {"lstm": LSTM, "gru": GRU, "rnn": RNN}
    claims = {"lstm": ("better", "rnn"), "gru": ("better", "lstm"), "rnn": ("worse", "baseline")}
    # the LSTM left the baseline, so rule 1 passes; the GRU overlaps the LSTM, and the RNN's
    # interval [0.164, 0.168] holds the baseline 1/6: both inconclusive
    assert stats.verdicts(intervals, claims, baseline=1 / 6) == {
        "lstm": "reproduces",
        "gru": "inconclusive",
        "rnn": "inconclusive",
    }
    on_plateau = {"lstm": Interval(0.16, 0.155, 0.165, 5), "rnn": RNN}
    assert stats.verdicts(on_plateau, {"lstm": ("better", "rnn")}, baseline=1 / 6) == {
        "lstm": "inconclusive"
    }
    accuracy = {"bias1": Interval(0.9, 0.8, 0.95, 5), "bias0": Interval(0.3, 0.2, 0.4, 5)}
    got = stats.verdicts(accuracy, {"bias0": ("better", "bias1")}, baseline=0.125, best=1.0)
    assert got == {"bias0": "contradicted"}
    with pytest.raises(ValueError, match=r"'tcn'.*known: \['gru', 'lstm', 'rnn'\]"):
        stats.verdicts(intervals, {"lstm": ("better", "tcn")}, baseline=1 / 6)


# ----------------------------------------------------------------------------- the record


def test_summarize_keeps_every_seed_and_derives_the_rest():
    record = stats.summarize(
        [0, 1, 2, 3, 4],
        [0.0, 0.0, 1.0, 0.0, math.inf],
        threshold=0.5,
        curves=([10, 20], [[0.9, 0.0], [0.1, 0.0], [2.0, 1.0], [0.6, 0.4], [1.0, math.inf]]),
    )
    assert record["seeds"] == [0, 1, 2, 3, 4]
    assert record["values"] == [0.0, 0.0, 1.0, 0.0, None]  # inf is not JSON
    assert record["mean"] is None and record["ci95"][1] is None
    assert record["solved"] == [True, True, False, True, False]
    assert record["solved_fraction"] == 0.6
    assert record["updates_to_solve"] == [20, 10, None, 20, None]
    finite = stats.summarize([0, 1, 2, 3, 4], [0.0, 0.0, 1.0, 0.0, 0.0], threshold=0.5)
    assert finite["mean"] == 0.2 and finite["ci95"] == [0.0, 0.6]
    assert "updates_to_solve" not in finite
    with pytest.raises(ValueError, match="2 seeds but 3 values"):
        stats.summarize([0, 1], [0.1, 0.2, 0.3], threshold=0.5)
