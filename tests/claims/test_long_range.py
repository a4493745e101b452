"""experiments/claims/long_range.py at --tiny: baselines, solved fractions, breaking length."""

from __future__ import annotations

import json
import math
import re

import jax
import numpy as np
import pytest
from matplotlib.collections import PathCollection

from experiments.claims import long_range
from seqjax import tasks
from tests.claims.conftest import check_result, run_tiny


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("long_range")
    return out, run_tiny(long_range, out)


def test_tiny_result(result):
    out, data = result
    check_result(out, long_range, data)
    assert data["cells"] == list(long_range.TINY_CELLS)
    assert data["lengths"] == list(long_range.TINY_LENGTHS)
    assert {(r["cell"], r["length"]) for r in data["settings"]} == {
        (c, t) for c in data["cells"] for t in data["lengths"]
    }
    for r in data["settings"]:
        assert r["updates"] == long_range.TINY_UPDATES
        assert len(r["updates_to_solve"]) == len(r["seeds"])


def test_baselines_follow_their_formulas(result):
    """1/6 = Var(U1 + U2) for U uniform on [0, 1]; memoryless = 1/6 - 1/(12 ceil(T/2))."""
    _, data = result
    assert data["baseline"] == pytest.approx(1 / 6)
    for r in data["settings"]:
        assert r["baseline"] == pytest.approx(1 / 6)
        assert r["baseline"] == pytest.approx(tasks.adding(length=r["length"]).baseline)
        t = r["length"]
        assert r["memoryless"] == pytest.approx(1 / 6 - 1 / (12 * math.ceil(t / 2)))
    assert long_range.memoryless_mse(10) == pytest.approx(0.15)
    # The left-the-baseline rule (below 0.9 x 1/6) asks more than the memoryless predictor gets.
    assert all(0.9 / 6 <= long_range.memoryless_mse(t) + 1e-12 for t in long_range.LENGTHS)


@pytest.mark.parametrize("length", [10, 25])
def test_memoryless_mse_matches_a_simulated_last_step_predictor(length):
    """Predict v_last + 1/2 when the last step is marked, else 1, on sampled examples."""
    batch = tasks.adding(length=length).sample(jax.random.key(length), 40_000)
    x, y = np.asarray(batch.inputs), np.asarray(batch.targets)[:, 0]
    marked = x[:, -1, 1] == 1.0
    prediction = np.where(marked, x[:, -1, 0] + 0.5, 1.0)
    mse = np.mean((prediction - y) ** 2)
    assert mse == pytest.approx(long_range.memoryless_mse(length), abs=4e-3)


def test_solved_fraction_recomputed_from_values_and_threshold(result):
    _, data = result
    assert data["threshold"] == long_range.THRESHOLD == 0.01
    for r in data["settings"]:
        assert r["threshold"] == long_range.THRESHOLD
        solved = [v is not None and v < long_range.THRESHOLD for v in r["values"]]
        assert r["solved"] == solved
        assert r["solved_fraction"] == pytest.approx(np.mean(solved))


def test_breaking_length_and_control_recomputed(result):
    _, data = result
    for cell in data["cells"]:
        held = [
            r["length"]
            for r in data["settings"]
            if r["cell"] == cell and r["solved_fraction"] >= 0.8
        ]
        assert data["breaking_length"][cell] == (max(held) if held else None)
        (control,) = [
            r
            for r in data["settings"]
            if r["cell"] == cell and r["length"] == data["control_length"]
        ]
        assert data["control_solved"][cell] == (control["solved_fraction"] >= 0.8)
    assert data["control_length"] == min(data["lengths"])


def test_breaking_length_rule():
    def records(fractions):
        return [{"cell": "lstm", "length": t, "solved_fraction": f} for t, f in fractions.items()]

    assert long_range.breaking_length(records({10: 1.0, 25: 0.8, 50: 0.6}), "lstm") == 25
    assert long_range.breaking_length(records({10: 1.0, 25: 0.6, 50: 0.8}), "lstm") == 50
    assert long_range.breaking_length(records({10: 0.6, 25: 0.0}), "lstm") is None
    assert long_range.breaking_length(records({10: 1.0}), "gru") is None


def test_verdicts_follow_the_intervals(result):
    _, data = result
    edge = 0.9 / 6  # stats.left_baseline: 10% of the way from 1/6 to 0
    inf = float("inf")
    at = {
        (r["cell"], r["length"]): [inf if x is None else x for x in r["ci95"]]
        for r in data["settings"]
    }
    for name, verdict in data["verdicts"].items():
        head, ref = name.split(" vs ")
        cell, length = head.split(" @ T=")
        low, high = at[cell, int(length)]
        if ref == "baseline":
            assert verdict == ("reproduces" if high < edge else "inconclusive"), name
            continue
        assert ref == "rnn"
        rnn_low, rnn_high = at["rnn", int(length)]
        if not any(at[c, int(length)][1] < edge for c in data["cells"]):
            assert verdict == "inconclusive", name
        elif verdict == "reproduces":
            assert high < rnn_low, name
        elif verdict == "contradicted":
            assert low > rnn_high, name
        else:
            assert not (high < rnn_low or low > rnn_high), name
    expected = {f"{c} @ T={t} vs baseline" for c in data["cells"] for t in data["lengths"]}
    expected |= {
        f"{c} @ T={t} vs rnn" for c in data["cells"] if c != "rnn" for t in data["lengths"]
    }
    assert set(data["verdicts"]) == expected


def test_budget_follows_the_reference_speeds():
    """Updates x (T / 100) / (updates/s at T = 100) + 5 s per program, at full size."""
    assert long_range.updates_for("lstm", 100) == long_range.updates_for("rnn", 400) == 1000
    assert long_range.updates_for("lstm", 200) == long_range.updates_for("gru", 400) == 500
    short, long = (10 + 25 + 50 + 100) / 100, (200 + 400) / 100
    seconds = (
        2 * 1000 * (short + long) / 70  # tanh RNN and IRNN
        + (1000 * short + 500 * long) / 17  # LSTM
        + (1000 * short + 500 * long) / 27  # GRU
        + 24 * 5
    )
    assert long_range.estimate_minutes() == pytest.approx(seconds / 60)
    assert long_range.estimate_minutes() <= long_range.BUDGET_MIN <= 15


def test_followup_flags_reach_the_configs_and_bad_ones_are_refused():
    default = long_range.parse_args([])
    assert default.cells == long_range.CELLS and default.learning_rate is None
    assert not default.command_line
    assert long_range.parse_args(["--tiny"]).cells == long_range.TINY_CELLS
    args = long_range.parse_args(["--cells", "gru,irnn", "--learning-rate", "1e-3"])
    assert args.cells == ("irnn", "gru") and args.learning_rate == 1e-3 and args.command_line
    sizes = {"tiny": False, "seeds": [0], "hidden": 64, "batch": 64, "steps": 1000}
    cfg = long_range.setting_config("irnn", 50, learning_rate=1e-3, **sizes)
    assert cfg.optimizer.learning_rate == 1e-3 and cfg.task.options["length"] == 50
    as_shipped = long_range.setting_config("irnn", 50, **sizes)
    assert as_shipped.optimizer.learning_rate == 1e-4  # configs/adding/irnn.yaml
    for argv, names in [
        (["--cells", "irnn,lru"], "--cells ['lru']"),
        (["--cells", ","], "--cells (none)"),
        (["--learning-rate", "0"], "--learning-rate must be a positive number, got 0.0"),
        (["--replot", "--cells", "irnn"], "--replot only draws --out's figure"),
    ]:
        with pytest.raises(ValueError, match=re.escape(names)):
            long_range.parse_args(argv)


def test_replot_draws_the_figure_again_with_off_scale_points_marked(result, tmp_path):
    _, data = result
    settings = [dict(r) for r in data["settings"]]
    settings[0].update(mean=None, ci95=[None, None])  # a diverged seed: mean inf
    settings[-1].update(mean=3.0, ci95=[0.1, 9.0])  # above the figure's top
    (tmp_path / "long_range.json").write_text(json.dumps({**data, "settings": settings}))
    png = long_range.main(["--replot", "--out", str(tmp_path)])["png"]
    assert png == tmp_path / "long_range.png" and png.stat().st_size > 0
    fig = long_range._figure(settings, data["cells"], data["lengths"])
    mse = fig.axes[1]
    marks = [c for c in mse.collections if isinstance(c, PathCollection)]  # not error bars
    assert [len(c.get_offsets()) for c in marks] == [1, 1]  # one per cell
    labels = [c.get_label() for c in marks if not c.get_label().startswith("_")]
    assert labels == [f"mean > {long_range.OFF_SCALE:g} or a seed diverged"]  # one entry
    assert mse.get_ylim()[1] == long_range.OFF_SCALE
    with pytest.raises(FileNotFoundError, match=re.escape("long_range.json does not exist")):
        long_range.main(["--replot", "--out", str(tmp_path / "none")])
