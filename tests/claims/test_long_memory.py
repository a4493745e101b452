"""experiments/claims/long_memory.py at --tiny: the result's shape, and its derived numbers
(baselines, solved seeds, updates to solve, verdicts, the budget estimate) recomputed."""

from __future__ import annotations

import math
import re

import pytest

from experiments.claims import long_memory, stats
from seqjax.cells import indrnn_bound
from tests.claims.conftest import TINY_SEEDS, check_result, run_tiny


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("long_memory")
    return out, run_tiny(long_memory, out)


def test_result(result):
    out, data = result
    check_result(out, long_memory, data)
    ran = {(r["task"], r["length"], r["cell"]) for r in data["settings"]}
    planned = {(k, t, c) for k, t, cells in long_memory.plan(tiny=True) for c in cells}
    assert ran == planned
    for r in data["settings"]:
        assert r["wall_s"] > 0 and r["updates"] == 4 and r["hidden_size"] == 8
        assert r["eval_sequences"] == 8  # --tiny evaluates one batch of 8
    md = (out / "long_memory.md").read_text()
    for cell in {r["cell"] for r in data["settings"]}:  # wall s: the cell's programs summed
        (row,) = [line for line in md.splitlines() if line.startswith(f"| {cell} |")]
        wall = sum(r["wall_s"] for r in data["settings"] if r["cell"] == cell)
        assert row.rstrip(" |").rsplit("| ", 1)[1] == f"{wall:.0f}"


def test_full_plan_is_every_cell_at_every_length():
    full = long_memory.plan(tiny=False)
    assert [(k, t) for k, t, _ in full] == [
        (k, t) for k in long_memory.TASKS for t in long_memory.LENGTHS[k]
    ]
    assert all(cells == long_memory.CELLS for _, _, cells in full)
    assert set(long_memory.CELLS) == {"lstm", "gru", "indrnn", "exprnn", "cornn", "lru"} | {
        "min_gru",
        "min_lstm",
    }


def test_baselines_and_loss_ratios(result):
    _, data = result
    for r in data["settings"]:
        if r["task"] == "adding":
            assert r["loss_baseline"] == pytest.approx(1 / 6, rel=1e-6)  # Var(U1 + U2)
            assert r["baseline"] == r["loss_baseline"] and r["sequence_length"] == r["length"]
        else:
            expected = 10 * math.log(8) / (r["length"] + 20)  # K ln S / (T + 2K)
            assert r["loss_baseline"] == pytest.approx(expected, rel=1e-6)
            assert r["baseline"] == 1 / 8 and r["sequence_length"] == r["length"] + 20
            assert all(0.0 <= v <= 1.0 for v in r["values"])  # recall accuracies
        for loss, ratio in zip(r["eval_loss"], r["loss_vs_baseline"], strict=True):
            assert ratio == pytest.approx(loss / r["loss_baseline"], rel=1e-9)


def test_solved_seeds_and_updates_to_solve_by_a_plain_loop(result):
    _, data = result
    for r in data["settings"]:
        values = [math.inf if v is None else v for v in r["values"]]
        if r["task"] == "adding":
            assert r["threshold"] == long_memory.ADDING_SOLVED == 0.01
            assert r["solved"] == [v < 0.01 for v in values]
            assert len(r["loss_curves"]) == len(TINY_SEEDS)
            for curve, got in zip(r["loss_curves"], r["updates_to_solve"], strict=True):
                hits = [
                    s for s, v in zip(r["steps"], curve, strict=True) if v is not None and v < 0.01
                ]
                assert got == (hits[0] if hits else None)
        else:
            assert r["threshold"] == long_memory.COPY_SOLVED == 0.9
            assert r["solved"] == [v > 0.9 for v in values]


def test_verdicts_recomputed_from_the_values(result):
    _, data = result
    expected = {}
    for task, t, cells in long_memory.plan(tiny=True):
        rows = {r["cell"]: r for r in data["settings"] if r["task"] == task and r["length"] == t}
        adding = task == "adding"
        baseline, best = (1 / 6, 0.0) if adding else (1 / 8, 1.0)
        where = f"{'adding' if adding else 'copy'} T={t}"
        worst = math.inf if adding else 0.0
        iv = {
            c: stats.bootstrap_interval([worst if v is None else v for v in r["values"]])
            for c, r in rows.items()
        }
        # left the baseline: the whole interval 10% of the way from baseline to best
        edge = baseline + 0.1 * (best - baseline)
        left = {c: (x.high < edge if adding else x.low > edge) for c, x in iv.items()}
        for c in cells:
            expected[f"{c} vs baseline @ {where}"] = "reproduces" if left[c] else "inconclusive"
            if c in long_memory.NEW_CELLS:
                expected[f"{c} vs lstm @ {where}"] = stats.verdict(
                    iv[c],
                    iv["lstm"],
                    claim="better",
                    any_left_baseline=any(left.values()),
                    higher_is_better=not adding,
                )
    assert data["verdicts"] == expected


def test_unroll_paths_follow_use_scan():
    cfg = {
        c: long_memory.config_for("adding", 6, c, tiny=True, seeds=[0])
        for c in ("lstm", "min_gru", "exprnn", "lru")
    }
    assert long_memory.unroll_path(cfg["lstm"], "cpu") == "step loop"
    assert long_memory.unroll_path(cfg["min_gru"], "cpu") == "step loop (scan off here)"
    assert long_memory.unroll_path(cfg["lru"], "cpu") == "step loop (scan off here)"
    assert long_memory.unroll_path(cfg["min_gru"], "gpu") == "parallel scan"
    assert long_memory.unroll_path(cfg["exprnn"], "cpu") == "Cell.scan (sequential)"


def test_indrnn_bound_follows_the_sequence_length():
    for task, t, steps in (("adding", 500, 500), ("copy_memory", 1000, 1020)):
        cfg = long_memory.config_for(task, t, "indrnn", tiny=False, seeds=[0, 1])
        assert cfg.model.options["u_bound"] == pytest.approx(2 ** (1 / steps), rel=1e-12)
        assert cfg.model.options["u_bound"] == indrnn_bound(steps)
        assert (
            cfg.model.hidden_size == long_memory.HIDDEN and cfg.train.steps == long_memory.UPDATES
        )


def test_budget_estimate_recomputed():
    m = long_memory
    seconds = 0.0
    for task, lengths in m.LENGTHS.items():
        for t in lengths:
            n = t if task == "adding" else t + 20
            for c in m.CELLS:
                per_update = m.PROBE_S_PER_UPDATE[c] * n / 1000 * (1.1 if task != "adding" else 1.0)
                evals = m.EVAL_BATCH * m.EVAL_BATCHES / m.BATCH / 3
                seconds += per_update * (m.UPDATES + evals) + m.PROBE_COMPILE_S[c]
    assert m.estimated_minutes() == pytest.approx(seconds / 60, rel=1e-12)
    assert m.BUDGET_MIN == math.ceil(seconds / 60) and m.BUDGET_MIN <= 60
    three = m.updates_within(60, m.THREE_LENGTHS)
    assert (
        m.estimated_minutes(m.THREE_LENGTHS, three)
        <= 60
        < m.estimated_minutes(m.THREE_LENGTHS, three + 1)
    )
    assert m.updates_within(60, m.LENGTHS) >= m.UPDATES


def test_command_line_sizes_reach_the_plan_and_the_configs():
    default = long_memory.parse_args(["--tiny"])
    assert default.updates == long_memory.UPDATES and default.lengths is None
    assert default.cells == long_memory.CELLS
    args = long_memory.parse_args(
        ["--updates", "5000", "--lengths", "500,2000", "--cells", "cornn,lstm"]
    )
    assert args.updates == 5000 and args.lengths == (500, 2000)
    assert args.cells == ("lstm", "cornn")  # the table's order
    settings = long_memory.plan(False, args.lengths, args.cells)
    assert settings == [
        (task, t, ("lstm", "cornn")) for task in long_memory.TASKS for t in (500, 2000)
    ]
    cfg = long_memory.config_for("adding", 2000, "cornn", tiny=False, seeds=[0], updates=5000)
    assert cfg.train.steps == 5000 and cfg.task.options["length"] == 2000
    budget = long_memory._setup(64, 32, 200, 512, settings, budget=True)
    chosen = long_memory._setup(64, 32, 5000, 512, settings, budget=False)
    assert "60-minute budget" in budget and "60-minute budget" not in chosen
    assert "`--updates`" in chosen and "5000 Adam updates" in chosen


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--cells", "lstm,transformer"], "--cells ['transformer']"),
        (["--lengths", "500,long"], "--lengths takes comma-separated integers"),
        (["--lengths", "0"], "--lengths must be >= 1"),
        (["--updates", "0"], "--updates must be >= 1"),
        (["--tiny", "--updates", "50", "--cells", "lstm"], "ignore --updates, --cells"),
    ],
)
def test_bad_command_line_sizes_are_refused_before_any_training(argv, names):
    with pytest.raises(ValueError, match=re.escape(names)):
        long_memory.parse_args(argv)
