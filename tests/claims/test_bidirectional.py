"""experiments/claims/bidirectional.py at --tiny, and its delayed-output task."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from experiments.claims import bidirectional
from tests.claims.conftest import check_result, run_tiny


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bidirectional")
    return out, run_tiny(bidirectional, out)


def test_tiny_result(result):
    out, data = result
    check_result(out, bidirectional, data)
    models = {r["model"] for r in data["settings"]}
    assert models == {"LSTM", "BiLSTM"} | {f"LSTM, delay {d}" for d in data["delays"]}
    assert min(data["delays"]) >= data["lookahead"]  # the control sees x_(t+k) before answering


def test_thresholds_and_chance(result):
    _, data = result
    assert data["chance_loss"] == pytest.approx(math.log(data["num_symbols"]))
    for r in data["settings"]:
        if r["metric"] == "eval_loss":
            assert r["threshold"] == pytest.approx(0.1 * math.log(data["num_symbols"]))
            assert len(r["updates_to_solve"]) == len(r["seeds"])
        else:
            assert r["metric"] == "eval_accuracy" and r["threshold"] == 0.9
            assert all((v > 0.9) == s for v, s in zip(r["values"], r["solved"], strict=True))


def test_parameter_counts_follow_the_lstm_formula(result):
    """4H(F+H) + 4H per direction (w_i, w_h, b) plus the dense readout (directions x H) x O + O."""
    _, data = result
    f = o = data["num_symbols"]
    for r in data["settings"]:
        h = r["hidden_size"]
        directions = 2 if r["bidirectional"] else 1
        expected = directions * (4 * h * (f + h) + 4 * h) + directions * h * o + o
        assert r["num_params"] == expected, r["model"]


def test_verdicts_follow_the_intervals(result):
    _, data = result
    loss = {r["model"]: r["ci95"] for r in data["settings"] if r["metric"] == "eval_loss"}
    inf = float("inf")
    for name, verdict in data["verdicts"].items():
        a, b = name.split(" vs ")
        (a_lo, a_hi), (b_lo, b_hi) = ([inf if x is None else x for x in loss[m]] for m in (a, b))
        if verdict == "reproduces":
            assert a_hi < b_lo
        elif verdict == "contradicted":
            assert a_lo > b_hi
        if a_lo <= b_hi and b_lo <= a_hi:  # overlapping intervals never decide
            assert verdict == "inconclusive"


@pytest.mark.parametrize("delay", [0, 2, 3, 5])
def test_delayed_task_emits_each_label_delay_steps_late(delay):
    length, k, s = 12, 3, 5
    task = bidirectional.delayed_future_tagging(
        length=length, lookahead=k, delay=delay, num_symbols=s
    )
    batch = jax.jit(task.sample, static_argnums=1)(jax.random.key(1), 16)
    total = length + max(delay - k, 0)
    assert batch.inputs.shape == (16, total, s) and batch.targets.shape == (16, total)
    assert task.baseline == pytest.approx(math.log(s)) and task.name == "future_tagging_delayed"
    x = np.asarray(batch.inputs)
    assert np.all(x[:, length:] == 0)  # appended steps are blank
    ids = x[:, :length].argmax(-1)
    mask = np.asarray(batch.mask)
    targets = np.asarray(batch.targets)
    assert np.all(mask.sum(1) == length - k)  # as many labels as future_tagging has
    assert np.all(np.asarray(batch.length) == total)
    for b in range(16):
        for step in np.flatnonzero(mask[b]):
            t = step - delay  # the label's own step
            assert 0 <= t < length - k
            assert targets[b, step] == (ids[b, t] + ids[b, t + k]) % s


def test_bad_delay_is_named():
    with pytest.raises(ValueError, match="delay"):
        bidirectional.delayed_future_tagging(delay=-1)
