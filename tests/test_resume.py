"""Nothing lost, nothing doubled: runs killed at random points and resumed with
``seqjax train --resume`` log each step once, with the values and final params of a run that
was never stopped; a run that cannot or need not be resumed is left as it is."""

from __future__ import annotations

import json
import random
from pathlib import Path

import jax
import numpy as np
import pytest

from seqjax import cli
from seqjax.experiment import Experiment
from seqjax.experiment.config import config_from_data, dump_config
from seqjax.experiment.runs import MetricsLog, read_metrics
from seqjax.train import checkpoint_manager, restore_checkpoint

CONFIG = {
    "name": "resumed",
    "seeds": [0, 1],
    "task": {"name": "adding", "length": 8},
    "model": {"cell": "rnn", "hidden_size": 4},
    "optimizer": {"name": "adam", "learning_rate": 1e-2},
    "train": {
        "steps": 8,
        "batch_size": 4,
        "chunk_size": 2,
        "eval_every": 4,
        "checkpoint": {"every": 2, "keep": 10},
    },
    "log": {"eval_batch_size": 4, "eval_batches": 1, "plots": False},
}
CHUNK_ENDS = (2, 4, 6)  # kill points before the last chunk


class Killed(Exception):
    """Stands for the process being killed at a point of the host loop."""


def kill_at(monkeypatch: pytest.MonkeyPatch, where: str, step: int) -> None:
    """Makes the next run die at ``step``: ``before_log`` (nothing of the chunk logged),
    ``after_log`` (metrics logged, no checkpoint yet), ``after_checkpoint``."""
    from seqjax.experiment import runner
    from seqjax.train import loop

    if where == "after_checkpoint":
        save = loop.save_checkpoint

        def save_then_die(manager, state, *args, **kwargs):
            saved = save(manager, state, *args, **kwargs)
            if int(np.max(np.asarray(state.step))) == step:
                raise Killed
            return saved

        monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
        return
    fit = runner.fit

    def fit_then_die(*args, on_chunk, **kwargs):
        def hook(at, state):
            if at == step and where == "before_log":
                raise Killed
            on_chunk(at, state)
            if at == step:
                raise Killed

        return fit(*args, on_chunk=hook, **kwargs)

    monkeypatch.setattr(runner, "fit", fit_then_die)


def train(config: Path, out: Path, *extra: str) -> int:
    with jax.numpy_dtype_promotion("standard"):
        return cli.main(["train", str(config), "--out", str(out), "--no-progress", *extra])


def resume(run: Path) -> int:
    with jax.numpy_dtype_promotion("standard"):
        return cli.main(["train", "--resume", str(run), "--no-progress"])


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "resumed.yaml"
    path.write_text(dump_config(config_from_data(CONFIG)))
    return path


@pytest.fixture(scope="module")
def template():
    """A train state with the runs' structure, to restore checkpoints into."""
    program = Experiment(config_from_data(CONFIG))
    return program.trainer.init(program.run_keys())[0]


def final_params(run: Path, template) -> list[np.ndarray]:
    manager = checkpoint_manager(run / "checkpoints", every=1, keep=10)
    state, _ = restore_checkpoint(manager, template)
    assert int(np.max(np.asarray(state.step))) == CONFIG["train"]["steps"]
    return [np.asarray(leaf) for leaf in jax.tree.leaves(state.params)]


@pytest.fixture(scope="module")
def unbroken(config_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("unbroken")
    assert train(config_file, out) == 0
    (run,) = out.iterdir()
    return run


def trials() -> list[list[tuple[str, int]]]:
    """Kill points drawn at random (seeded): each kill point once, and a run killed twice."""
    rng = random.Random(19)
    points = ["before_log", "after_log", "after_checkpoint"]
    single = [[(where, rng.choice(CHUNK_ENDS))] for where in points]
    first = rng.choice(CHUNK_ENDS[:-1])
    twice = [(rng.choice(points), first), (rng.choice(points), rng.choice(CHUNK_ENDS[1:]))]
    twice[1] = (twice[1][0], max(twice[1][1], first + 2))
    return [*single, twice]


@pytest.mark.parametrize("kills", trials(), ids=lambda k: "+".join(f"{w}@{s}" for w, s in k))
def test_a_killed_and_resumed_run_equals_an_unbroken_one(
    kills, config_file, unbroken, template, tmp_path, monkeypatch
):
    (where, step), *later = kills
    with monkeypatch.context() as m:
        kill_at(m, where, step)
        with pytest.raises(Killed):
            train(config_file, tmp_path)
    (run,) = tmp_path.iterdir()
    for where, step in later:
        with monkeypatch.context() as m:
            kill_at(m, where, step)
            with pytest.raises(Killed):
                resume(run)
    assert resume(run) == 0

    records, want = read_metrics(run), read_metrics(unbroken)
    assert [(r["step"], r["split"]) for r in records] == [(r["step"], r["split"]) for r in want]
    assert records == want  # each step once, with the values of the unbroken run
    for got, ref in zip(final_params(run, template), final_params(unbroken, template), strict=True):
        np.testing.assert_array_equal(got, ref)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 8
    assert summary["provenance"]["command"] == f"seqjax train --resume {run} --no-progress"


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
    }


def test_resuming_a_finished_run_says_so_and_writes_nothing(unbroken, capsys):
    before = snapshot(unbroken)
    capsys.readouterr()
    assert resume(unbroken) == 0
    out = capsys.readouterr().out
    assert "is finished: 8 steps" in out and "nothing was written" in out
    assert snapshot(unbroken) == before


def fake_run(folder: Path, *, finished: bool) -> Path:
    """A run folder of a config without checkpoints: killed after step 2, or finished."""
    cfg = {**CONFIG, "train": {**CONFIG["train"], "checkpoint": None}}
    folder.mkdir()
    (folder / "config.yaml").write_text(dump_config(config_from_data(cfg)))
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 2, "split": "train"}) + "\n")
    if finished:
        summary = {"steps": 8, "stop_reason": "done"}
        (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_resuming_a_run_without_checkpoints_is_an_error_that_writes_nothing(tmp_path, capsys):
    run = fake_run(tmp_path / "run", finished=False)
    before = snapshot(run)
    assert resume(run) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqjax train: error:") and err.count("\n") == 1
    assert "without checkpoints" in err and "train.checkpoint" in err
    assert snapshot(run) == before


def test_a_finished_run_without_checkpoints_is_finished_too(tmp_path, capsys):
    run = fake_run(tmp_path / "run", finished=True)
    before = snapshot(run)
    assert resume(run) == 0
    assert "is finished" in capsys.readouterr().out
    assert snapshot(run) == before


def test_metrics_log_forgets_what_came_after_the_resume_step(tmp_path):
    lines = [{"step": s, "split": "train", "loss": s} for s in (2, 4, 6)]
    text = "".join(json.dumps(r) + "\n" for r in lines) + '{"step": 8, "spl'  # torn by a kill
    (tmp_path / "metrics.jsonl").write_text(text)
    with MetricsLog(tmp_path, resume_step=4) as log:
        assert log.logged(4, "train") and not log.logged(6, "train")
        log.write({"step": 6, "split": "train", "loss": 60})
        assert log.logged(6, "train")
    assert [(r["step"], r["loss"]) for r in read_metrics(tmp_path)] == [(2, 2), (4, 4), (6, 60)]
