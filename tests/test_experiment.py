"""Experiment configs, the ``seqjax`` command and run folders, end to end on shrunken configs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from seqjax import cli
from seqjax.experiment import Experiment
from seqjax.experiment.config import (
    ConfigError,
    config_from_data,
    dump_config,
    load_config,
    parse_yaml,
)
from seqjax.experiment.runs import read_metrics

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
# A few steps, small batches, tiny evaluation: enough to exercise the whole path.
SHRINK = [
    "train.steps=2",
    "train.chunk_size=1",
    "train.eval_every=null",
    "train.checkpoint=null",
    "train.batch_size=2",
    "log.eval_batch_size=2",
    "log.eval_batches=1",
    "log.plots=false",
]


@pytest.fixture(autouse=True)
def standard_promotion():
    # Optax's Adam and schedules mix int32 step counts with floats; the end-to-end path runs
    # them as a user would, with JAX's default promotion rules.
    with jax.numpy_dtype_promotion("standard"):
        yield


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _set(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def test_there_is_a_config_for_every_task():
    from seqjax.tasks import TASKS

    used = {load_config(p).task.name for p in CONFIGS}
    assert set(TASKS) - used == set(), f"tasks without a config: {set(TASKS) - used}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_config_round_trips_through_its_resolved_yaml(path):
    cfg = load_config(path)
    assert config_from_data(parse_yaml(dump_config(cfg))) == cfg


def _trained_configs() -> list[Path]:
    """The configs the suite trains through the CLI: in path order, each config whose task or
    cell no earlier trained config has (the others are built, which checks every field, the
    task's data and the model, before anything compiles: `test_every_other_config_builds`)."""
    tasks, cells, chosen = set(), set(), []
    for path in CONFIGS:
        cfg = load_config(path)
        cell = cfg.model.cell if cfg.model.kind == "recurrent" else cfg.model.kind
        if cfg.task.name not in tasks or cell not in cells:
            chosen.append(path)
            tasks.add(cfg.task.name)
            cells.add(cell)
    return chosen


TRAINED = _trained_configs()


@pytest.mark.parametrize(
    "path",
    [p for p in CONFIGS if p not in TRAINED],
    ids=lambda p: str(p.relative_to(ROOT / "configs")),
)
def test_every_other_config_builds(path):
    exp = Experiment(load_config(path, SHRINK))
    state = jax.eval_shape(lambda k: exp.trainer.init(k)[0], exp.run_keys())
    assert jax.tree.leaves(state.params)


@pytest.mark.parametrize("path", TRAINED, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_config_trains_shrunken_through_the_cli(path, tmp_path, capsys):
    code, out, err = _cli(
        ["train", str(path), *_set(SHRINK), "--out", str(tmp_path), "--no-progress"], capsys
    )
    assert code == 0, err
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert f"results: {run_dir}" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 2
    assert summary["baseline"] > 0
    assert len(summary["eval"]["loss"]) == len(load_config(path).seeds)
    train = [r for r in read_metrics(run_dir) if r["split"] == "train"]
    assert [r["step"] for r in train] == [1, 2]
    assert {"loss", "grad_norm", "grad_norm_clipped", "clipped", "skipped"} <= set(train[0])
    assert load_config(run_dir / "config.yaml", ["train.steps=2"]) is not None


def test_overrides_are_type_checked_and_name_the_key(tmp_path):
    path = ROOT / "configs" / "quickstart.yaml"
    assert load_config(path, ["model.hidden_size=16"]).model.hidden_size == 16
    assert load_config(path, ["optimizer.learning_rate=3e-4"]).optimizer.learning_rate == 3e-4
    with pytest.raises(ConfigError, match=r"train\.steps"):
        load_config(path, ["train.steps=many"])
    with pytest.raises(ConfigError, match=r"model\.hiden_size: unknown key"):
        load_config(path, ["model.hiden_size=16"])
    with pytest.raises(ConfigError, match=r"task\.lenght: unknown argument of task 'adding'"):
        load_config(path, ["task.lenght=20"])
    with pytest.raises(ConfigError, match=r"expected KEY=VALUE"):
        load_config(path, ["train.steps"])


BAD_CONFIGS = {
    "unknown_key": ("train:\n  stepz: 10\n", r"train\.stepz: unknown key"),
    "wrong_type": ("train:\n  steps: ten\n", r"train\.steps"),
    "out_of_range": ("optimizer:\n  learning_rate: -0.1\n", r"optimizer\.learning_rate"),
    "unknown_task": ("task:\n  name: addding\n", r"unknown task 'addding'"),
    "task_value": ("task:\n  name: adding\n  length: 1\n", r"length"),
    "bad_yaml": ("train:\n  steps: [1, 2\n", r"bad YAML"),
    "unknown_optimizer": ("optimizer:\n  name: adamax\n", r"optimizer\.name"),
    "window_too_long": (
        "task: {name: char_lm, length: 20}\ntrain:\n  bptt: {mode: streaming, window: 50}\n",
        r"train\.bptt\.window",
    ),
    "irrelevant_option": ("model:\n  cell: gru\n  forget_bias: 2.0\n", r"model\.forget_bias"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_configs_are_one_line_errors_naming_the_key(name, tmp_path, capsys):
    text, pattern = BAD_CONFIGS[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    code, _, err = _cli(["train", str(path), "--out", str(tmp_path / "runs")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("seqjax train: error:"), err
    assert re.search(pattern, err), err
    if name not in ("irrelevant_option", "window_too_long", "task_value"):
        assert str(path) in err  # the file is named
    assert not (tmp_path / "runs").exists()  # nothing was written


def test_missing_config_file(tmp_path, capsys):
    code, _, err = _cli(["train", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "nope.yaml does not exist" in err


def test_list_names_every_task_cell_and_optimizer(capsys):
    from seqjax.cells import CELLS
    from seqjax.tasks import TASKS
    from seqjax.train import OPTIMIZERS

    code, out, _ = _cli(["list"], capsys)
    assert code == 0
    for name in [*TASKS, *CELLS, *OPTIMIZERS]:
        assert f"  {name} " in out


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two seeds of an LSTM and one RNN on a short adding problem, with checkpoints."""
    out = tmp_path_factory.mktemp("runs")
    common = [
        "task.length=12",
        "model.hidden_size=8",
        "train.steps=4",
        "train.chunk_size=2",
        "train.eval_every=2",
        "train.checkpoint={every: 2, keep: 2}",
        "train.batch_size=4",
        "log.eval_batch_size=8",
        "log.eval_batches=1",
    ]
    runs = []
    with jax.numpy_dtype_promotion("standard"):
        for extra in (["seeds=[0, 1]", "name=lstm"], ["model.cell=rnn", "name=rnn"]):
            assert (
                cli.main(
                    [
                        "train",
                        str(ROOT / "configs" / "quickstart.yaml"),
                        *_set(common + extra),
                        "--out",
                        str(out),
                        "--no-progress",
                    ]
                )
                == 0
            )
            runs.append(max(out.glob(f"{extra[-1][5:]}-*")))
    return runs


def test_a_run_folder_has_everything(two_runs):
    lstm, _ = two_runs
    assert sorted(p.name for p in lstm.iterdir()) == [
        "checkpoints",
        "config.yaml",
        "diagnostics.npz",  # configs/quickstart.yaml records diagnostics
        "metrics.jsonl",
        "plots",
        "summary.json",
        "tensorboard",
    ]
    summary = json.loads((lstm / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and len(summary["eval"]["loss"]) == 2
    assert summary["eval"]["loss"][0] != summary["eval"]["loss"][1]  # seeds differ
    for key in ("wall_time_s", "steps_per_s", "versions", "device", "baseline"):
        assert key in summary
    # 2 runs x 4 examples x 8 hidden are few: every run at once, on one device.
    assert summary["seed_batch"] is None and summary["mesh"] is None
    assert sorted(p.name for p in (lstm / "plots").iterdir()) == ["grad_norm.png", "loss.png"]
    assert sorted(p.name for p in (lstm / "checkpoints").iterdir()) == ["2", "4"]
    records = read_metrics(lstm)
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 4]
    assert all(len(r["loss"]) == 2 for r in records if r["split"] == "train")
    assert "val_loss" in records[0]


def test_diagnostics_batch_is_the_tasks_sample_of_its_key():
    # Sampled under jit (one compile): the same batch the task draws eagerly from that key.
    from seqjax.experiment.recorder import DIAG_SEED_OFFSET, diagnostics_batch
    from seqjax.tasks import get_task

    task = get_task("adding", length=12)
    jitted = diagnostics_batch(task, 4)
    eager = task.sample(jax.random.key(DIAG_SEED_OFFSET), 4)
    assert jitted.inputs.shape == (4, 12, 2)
    for a, b in zip(jax.tree.leaves(jitted), jax.tree.leaves(eager), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_report_compares_runs(two_runs, tmp_path, capsys):
    code, out, _ = _cli(["report", *map(str, two_runs), "--out", str(tmp_path)], capsys)
    assert code == 0
    text = (tmp_path / "report.md").read_text()
    assert "| [lstm]" in text and "| [rnn]" in text
    assert (tmp_path / "plots" / "compare_loss.png").stat().st_size > 1000
    assert f"report: {tmp_path / 'report.md'}" in out


def test_eval_matches_the_final_evaluation_of_the_run(two_runs, capsys):
    lstm, _ = two_runs
    code, _, _ = _cli(["eval", str(lstm)], capsys)
    assert code == 0
    summary = json.loads((lstm / "summary.json").read_text())
    from seqjax.experiment import evaluate_run

    values = evaluate_run(lstm)
    assert values["step"] == 4
    assert values["loss"] == pytest.approx(summary["eval"]["loss"], rel=1e-4)


def test_resume_continues_a_run(two_runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(two_runs[1], run)
    code, _, err = _cli(
        ["train", "--resume", str(run), "--set", "train.steps=6", "--no-progress"], capsys
    )
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from"] == 4 and summary["steps"] == 6
    steps = [r["step"] for r in read_metrics(run) if r["split"] == "train"]
    assert steps == [2, 4, 6]  # the old log is kept, the new steps appended once


def test_model_fast_trains_like_the_reference_cells():
    # model.fast: the fused kernel under vmap over seeds and over the batch (a GRU on a
    # many-to-many task) gives the run of the reference cells.
    from seqjax.experiment import Experiment, layer_from_config
    from seqjax.experiment.config import ModelConfig
    from seqjax.train import make_train

    assert layer_from_config(ModelConfig(cell="lstm", fast=True)).scan is not None
    assert layer_from_config(ModelConfig(cell="lstm")).scan is None

    def run(fast: bool):
        cfg = config_from_data(
            {
                "task": {"name": "copy_memory", "delay": 4, "copy_length": 2},
                "model": {"cell": "gru", "hidden_size": 8, "fast": fast},
                "train": {"steps": 2, "batch_size": 4, "chunk_size": 2},
            }
        )
        exp = Experiment(cfg)
        train = jax.jit(jax.vmap(make_train(exp.run_trainer(), 2)))
        return train(jax.random.split(jax.random.key(0), 2))

    (fast_state, fast_metrics), (ref_state, ref_metrics) = run(True), run(False)
    pairs = zip(jax.tree.leaves(fast_state.params), jax.tree.leaves(ref_state.params), strict=True)
    for got, want in pairs:
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast_metrics["loss"], ref_metrics["loss"], rtol=1e-5)
