"""The claim experiments' driver and shared helpers (experiments/claims/run_all.py, common.py).

Each script is run at its tiny size by its own test file in tests/claims/; here: the list of
experiments, RESULTS.md assembly, skipping what is done, ``--seeds`` parsing and the table
helpers.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/ is not installed
from experiments.claims import common, run_all, stats


@pytest.mark.parametrize("name", run_all.EXPERIMENTS)
def test_every_experiment_has_a_script_and_a_test(name):
    module = importlib.import_module(f"experiments.claims.{name}")
    assert module.NAME == name and callable(module.main) and module.BUDGET_MIN > 0
    assert (Path(__file__).parent / "claims" / f"test_{name}.py").is_file()


def test_budgets_fit_the_run():
    """The whole page in about three hours on 2 cores: #16's nine within 2.5 h, long_memory 1 h."""
    budgets = {
        n: importlib.import_module(f"experiments.claims.{n}").BUDGET_MIN
        for n in run_all.EXPERIMENTS
    }
    assert sum(v for k, v in budgets.items() if k != "long_memory") <= 150, budgets
    assert budgets["long_memory"] <= 60 and max(budgets.values()) <= 60


def _fake(out: Path, name: str, seeds: list[int], verdicts=None) -> None:
    (out / f"{name}.md").write_text(f"## {name}\n\n![x](results/claims/{name}.png)\n")
    data = {"name": name, "title": f"Title of {name}", "seeds": seeds, "wall_time_s": 60}
    if verdicts is not None:
        data["verdicts"] = verdicts
    (out / f"{name}.json").write_text(json.dumps(data))


def test_collect_pastes_sections_in_order_and_lists_missing(tmp_path):
    names = run_all.EXPERIMENTS
    for name in names[:-1]:
        _fake(tmp_path, name, [0, 1])
    results = tmp_path / "RESULTS.md"
    run_all.main(["--collect", "--out", str(tmp_path), "--results", str(results)])
    text = results.read_text()
    positions = [text.index(f"## {n}\n") for n in names[:-1]]
    assert positions == sorted(positions)
    assert f"](./{names[0]}.png)" in text or f"]({names[0]}.png)" in text
    assert "## Not run" in text and f"`{names[-1]}`" in text
    assert text.index("## At a glance") < positions[0]
    assert f"| Title of {names[0]} | 0 | 0 | 0 | 2 | 1.0 |" in text


def test_collect_appends_followups_after_the_experiments_with_their_figures(tmp_path):
    names = run_all.EXPERIMENTS
    for name in names:
        _fake(tmp_path, name, [0, 1])
    results = tmp_path / "RESULTS.md"
    run_all.collect(tmp_path, results)
    assert "# Follow-ups" not in results.read_text()
    assert "no setting was tuned after seeing its result." in results.read_text()
    for folder in ("b_second", "a_first"):
        (tmp_path / "followups" / folder).mkdir(parents=True)
        _fake(tmp_path / "followups" / folder, names[0], [0, 1])
    run_all.collect(tmp_path, results)
    text = results.read_text()
    last = text.index(f"## {names[-1]}\n")
    first, second = (
        text.index(f"](followups/{f}/{names[0]}.png)") for f in ("a_first", "b_second")
    )
    assert last < text.index("# Follow-ups") < first < second
    assert "except in the follow-ups at the end" in text
    assert "| Title of" in text and text.count(f"| Title of {names[0]} |") == 1  # not at a glance


def test_at_a_glance_counts_every_verdict_nested_or_flat(tmp_path):
    verdicts = {
        "lstm @ T=10": "reproduces",
        "rnn @ T=10": "inconclusive",
        "by length": {"100": {"lstm": "contradicted", "gru": "reproduces"}, "note": "other"},
        "list": ["inconclusive", "inconclusive"],
    }
    _fake(tmp_path, "long_range", [0, 1, 2], verdicts)
    counts = run_all.count_verdicts(verdicts)
    assert counts == {"reproduces": 2, "contradicted": 1, "inconclusive": 3}
    assert "| Title of long_range | 2 | 1 | 3 | 3 | 1.0 |" in run_all.at_a_glance(tmp_path)
    assert run_all.at_a_glance(tmp_path / "missing") == ""


def test_done_needs_both_files_and_the_same_seeds(tmp_path):
    assert not run_all._done(tmp_path, "long_range", [0, 1])
    _fake(tmp_path, "long_range", [0, 1])
    assert run_all._done(tmp_path, "long_range", [0, 1])
    assert run_all._done(tmp_path, "long_range", None)
    assert not run_all._done(tmp_path, "long_range", [0, 1, 2])
    (tmp_path / "long_range.md").unlink()
    assert not run_all._done(tmp_path, "long_range", [0, 1])


def test_run_all_skips_what_is_done(tmp_path, capsys):
    for name in run_all.EXPERIMENTS:
        _fake(tmp_path, name, [3, 4])
    run_all.main(["--out", str(tmp_path), "--seeds", "3,4", "--results", str(tmp_path / "R.md")])
    printed = capsys.readouterr().out
    assert printed.count("--force reruns it") == len(run_all.EXPERIMENTS)
    assert "[1/" not in printed  # nothing trained


def test_run_all_rejects_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="nonsense"):
        run_all.main(["--only", "nonsense", "--out", str(tmp_path)])


@pytest.mark.parametrize(
    ("text", "seeds"), [("0-4", [0, 1, 2, 3, 4]), ("3,1", [1, 3]), ("0-2,7", [0, 1, 2, 7])]
)
def test_parse_seeds(text, seeds):
    assert common.parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "4-2", "-1", "1,,2"])
def test_parse_seeds_rejects(text):
    with pytest.raises(ValueError, match="--seeds"):
        common.parse_seeds(text)


def test_parse_args_defaults():
    assert common.parse_args([], "x").seeds == common.SEEDS and len(common.SEEDS) >= 5
    tiny = common.parse_args(["--tiny"], "x")
    assert tiny.seeds == common.TINY_SEEDS and Path(tiny.out).is_dir()
    assert common.parse_args(["--seeds", "0-6", "--out", "o"], "x").seeds == list(range(7))


def test_setting_counts_a_diverged_seed_as_the_worst():
    record, interval = common.setting([0, 1, 2], [0.001, float("nan"), 0.003], threshold=0.01)
    assert record["values"] == [0.001, None, 0.003] and record["solved"] == [True, False, True]
    assert interval.mean == float("inf") and record["mean"] is None
    acc, _ = common.setting([0, 1], [0.9, float("nan")], threshold=0.5, higher_is_better=True)
    assert acc["values"] == [0.9, 0.0] and acc["solved"] == [True, False]


def test_setting_updates_to_solve_from_train_curves():
    steps = np.array([100.0, 200.0, 300.0])
    loss = np.array([[0.2, 0.2], [0.005, 0.2], [0.001, 0.2]])  # [K, S], as common.train returns
    record, interval = common.setting([0, 1], [0.001, 0.2], threshold=0.01, curves=(steps, loss))
    assert record["updates_to_solve"] == [200, None]
    assert interval == stats.bootstrap_interval([0.001, 0.2])


def test_train_returns_the_setting_when_every_run_diverged():
    """An IRNN (ReLU, identity start) at Adam 1e10 overflows within a few updates."""
    cfg = common.config(
        "adding/irnn.yaml",
        tiny=True,
        seeds=[0, 1],
        task={"length": 6},
        model={"hidden_size": 8},
        optimizer={"learning_rate": 1e10},
        train={"steps": 30, "batch_size": 8, "chunk_size": 10, "eval_every": None},
    )
    with jax.numpy_dtype_promotion("standard"):  # Optax's Adam mixes dtypes
        res = common.train(cfg)
    assert "every run diverged" in res["summary"]["error"]
    assert res["summary"]["diverged"] == [True, True]
    assert res["summary"]["baseline"] == pytest.approx(1 / 6)
    assert res["eval_loss"].shape == (2,) and np.isnan(res["eval_loss"]).all()
    record, _ = common.setting(
        [0, 1], res["eval_loss"], threshold=0.01, curves=(res["steps"], res["loss"])
    )
    assert record["solved"] == [False, False] and record["updates_to_solve"] == [None, None]
    assert record["values"] == [None, None]  # inf, the worst loss, written as None


def test_cell_text():
    record, _ = common.setting([0, 1], [0.5, 1.5], threshold=1.0)
    low, high = record["ci95"]
    assert common.cell(record) == f"1 [{low:.3g}, {high:.3g}] 1/2"


def test_mean_std_and_table():
    assert common.mean_std([1.0, 3.0]) == "2 ± 1"
    assert common.mean_std([0.5]) == "0.5"
    table = common.markdown_table(["a", "b"], [[1, "x"]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x |"]


def test_config_rejects_missing_yaml():
    with pytest.raises(FileNotFoundError, match=r"no/such\.yaml"):
        common.config("no/such.yaml")
