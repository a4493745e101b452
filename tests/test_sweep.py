"""Sweeps: a traced grid in one program equals separate runs; shape sweeps make programs."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from jaxpr_walk import all_eqns

from seqjax import cli
from seqjax.experiment import Experiment
from seqjax.experiment.config import ConfigError, config_from_data
from seqjax.experiment.sweep import grid_cells, program_configs
from seqjax.parallel import make_mesh
from seqjax.train import fit

BASE = {
    "name": "tiny",
    "seeds": [0, 1],
    "task": {"name": "adding", "length": 6},
    "model": {"cell": "lstm", "hidden_size": 3},
    "train": {"steps": 3, "batch_size": 2, "chunk_size": 3},
    "log": {"plots": False, "progress": False, "eval_batch_size": 2, "eval_batches": 1},
}


@pytest.fixture(autouse=True)
def standard_promotion():
    # Optax's Adam mixes int32 step counts with floats (see tests/test_experiment.py).
    with jax.numpy_dtype_promotion("standard"):
        yield


def _config(**sections):
    data = {**BASE}
    for name, value in sections.items():
        data[name] = {**data[name], **value} if isinstance(data.get(name), dict) else value
    return config_from_data(data)


def _train(cfg):
    exp = Experiment(cfg)
    result = fit(exp.trainer, exp.run_keys(), cfg.train.steps, chunk_size=3)
    return result.state.params, result.metrics


def _separate(grid_cfg, cells):
    """Each grid cell trained as its own run, with its values written into the config."""
    runs = []
    for cell in cells:
        data = _plain(grid_cfg)
        data["sweep"] = {}
        for key, value in cell.items():
            *path, leaf = key.split(".")
            node = data
            for part in path:
                node = node[part]
            node[leaf] = value
        runs.append(_train(config_from_data(data)))
    return runs


def _plain(cfg):
    from seqjax.experiment.config import dump_config, parse_yaml

    return parse_yaml(dump_config(cfg))


def _stacked(runs):
    """Separate runs' leaves stacked grid-major, as the sweep lays them out."""
    return jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs]), *runs)


def test_learning_rate_grid_equals_separate_runs():
    cfg = _config(sweep={"optimizer.learning_rate": [1e-2, 3e-1]})
    cells = grid_cells(cfg)
    assert cells == [{"optimizer.learning_rate": 1e-2}, {"optimizer.learning_rate": 3e-1}]
    params, metrics = _train(cfg)
    assert metrics["loss"].shape == (4, 3)  # [grid * seeds, steps]
    ref_params, ref_metrics = _stacked(_separate(cfg, cells))
    np.testing.assert_allclose(metrics["loss"], ref_metrics["loss"], rtol=1e-5, atol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), params, ref_params
    )
    # and the learning rate did change the run
    assert not np.allclose(metrics["loss"][:2, -1], metrics["loss"][2:, -1])


def test_weight_decay_and_clipping_grid_equals_separate_runs():
    cfg = _config(
        seeds=[0],
        optimizer={
            "name": "momentum",
            "learning_rate": 0.1,
            "clip": {"method": "global_norm", "threshold": 1.0},
        },
        sweep={"optimizer.weight_decay": [0.5], "optimizer.clip.threshold": [0.05]},
    )
    cells = grid_cells(cfg)
    assert cells == [{"optimizer.weight_decay": 0.5, "optimizer.clip.threshold": 0.05}]
    params, metrics = _train(cfg)
    ref_params, ref_metrics = _stacked(_separate(cfg, cells))
    np.testing.assert_allclose(metrics["loss"], ref_metrics["loss"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["grad_norm_clipped"], 0.05, rtol=1e-4)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), params, ref_params
    )


@pytest.mark.parametrize(
    ("cell", "key", "values"),
    [("lstm", "model.forget_bias", [0.0, 2.5]), ("rnn", "model.recurrent_scale", [0.5, 1.5])],
)
def test_initialisation_grid_equals_separate_inits(cell, key, values):
    cfg = _config(seeds=[3], model={"cell": cell}, sweep={key: values})
    exp = Experiment(cfg)
    state, _ = exp.trainer.init(exp.run_keys())
    for g, value in enumerate(values):
        field = key.split(".")[1]
        one = Experiment(_config(seeds=[3], model={"cell": cell, field: value}))
        ref, _ = one.trainer.init(one.run_keys())
        jax.tree.map(
            lambda a, b, g=g: np.testing.assert_allclose(np.asarray(a)[g], np.asarray(b)[0]),
            state.params,
            ref.params,
        )


def test_dropout_grid_equals_separate_runs():
    # Every traced dropout rate in one program: 0 (a mask that keeps all) and 0.4.
    cfg = _config(
        seeds=[0],
        model={"num_layers": 2},
        sweep={
            "model.dropout": [0.0, 0.4],
            "model.input_dropout": [0.3],
            "model.output_dropout": [0.2],
            "model.recurrent_dropout": [0.25],
        },
    )
    cells = grid_cells(cfg)
    assert [c["model.dropout"] for c in cells] == [0.0, 0.4]
    params, metrics = _train(cfg)
    # One separate run (a compilation each): the cell with every rate non-zero.
    ref_params, ref_metrics = _stacked(_separate(cfg, cells[1:]))
    np.testing.assert_allclose(metrics["loss"][1:], ref_metrics["loss"], rtol=1e-5, atol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a[1:], b, rtol=1e-5, atol=1e-6),
        params,
        ref_params,
    )
    # the between-layer rate changed the run
    assert not np.allclose(metrics["loss"][0], metrics["loss"][1])


def test_swept_dropout_without_effect_and_traced_zoneout_are_errors():
    with pytest.raises(ValueError, match=r"model.dropout has no effect.*num_layers > 1"):
        Experiment(_config(sweep={"model.dropout": [0.0, 0.5]}))
    with pytest.raises(ValueError, match="seqjax sweep"):
        Experiment(_config(sweep={"model.zoneout": [0.0, 0.5]}))
    with pytest.raises(ConfigError, match="input_dropout"):
        Experiment(_config(sweep={"model.input_dropout": [0.1, 1.5]}))


def test_traced_key_without_effect_and_bad_values_are_errors():
    with pytest.raises(ValueError, match=r"model.forget_bias has no effect.*'lstm'"):
        Experiment(_config(model={"cell": "gru"}, sweep={"model.forget_bias": [0.0, 1.0]}))
    with pytest.raises(ConfigError, match="learning_rate"):
        Experiment(_config(sweep={"optimizer.learning_rate": [0.1, -1.0]}))
    with pytest.raises(ValueError, match="seqjax sweep"):
        Experiment(_config(sweep={"model.hidden_size": [2, 3]}))
    with pytest.raises(ConfigError, match="hidden_size"):
        program_configs(_config(sweep={"model.hidden_size": [2, 0]}))


def test_shape_sweep_writes_one_folder_per_program_and_a_report(tmp_path, capsys):
    config = tmp_path / "sweep.yaml"
    config.write_text(json.dumps({**BASE, "seeds": [0]}))
    sweep = "sweep={model.hidden_size: [2, 3], optimizer.learning_rate: [0.01, 0.1]}"
    code = cli.main(
        ["sweep", str(config), "--set", sweep, "--out", str(tmp_path / "out"), "--no-progress"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    (root,) = (tmp_path / "out").iterdir()
    programs = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "plots")
    assert programs == ["00-hidden_size=2", "01-hidden_size=3"]
    for name, hidden in zip(programs, [2, 3], strict=True):
        summary = json.loads((root / name / "summary.json").read_text())
        assert summary["hidden_size"] == hidden
        assert len(summary["eval"]["loss"]) == 2  # [grid * seeds]
        assert summary["sweep"] == grid_cells(
            _config(sweep={"optimizer.learning_rate": [0.01, 0.1]})
        )
    rows = json.loads((root / "sweep.json").read_text())["rows"]
    assert len(rows) == 4
    table = (root / "report.md").read_text()
    assert table.count("| [0") == 4 and "optimizer.learning_rate" in table
    assert (root / "plots" / "sweep.png").stat().st_size > 0
    assert "results:" in out


def test_train_refuses_a_shape_sweep(tmp_path, capsys):
    config = tmp_path / "sweep.yaml"
    config.write_text(json.dumps({**BASE, "sweep": {"model.cell": ["gru", "lstm"]}}))
    code = cli.main(["train", str(config), "--out", str(tmp_path), "--no-progress"])
    _, err = capsys.readouterr()
    assert code == 2 and "seqjax sweep" in err


def _count_loops(fn, *args) -> int:
    """While loops and scans in the jaxpr of ``fn(*args)``, nested ones included."""
    eqns = all_eqns(jax.make_jaxpr(fn)(*args).jaxpr)
    return sum(eqn.primitive.name in ("scan", "while") for eqn in eqns)


@pytest.mark.parametrize(
    "sections",
    [
        {"seeds": [0, 1, 2]},  # 3 runs in groups of 2: one group and a remainder
        {"sweep": {"optimizer.learning_rate": [1e-2, 3e-1]}},  # grid x seeds = 4 runs
    ],
    ids=["seeds", "sweep"],
)
def test_seed_batch_trains_the_same_runs_in_groups(sections):
    grouped_cfg = _config(**sections, parallel={"seed_batch": 2})
    all_cfg = _config(**sections, parallel={"seed_batch": None})  # every run at once
    params, metrics = _train(grouped_cfg)
    ref_params, ref_metrics = _train(all_cfg)
    assert metrics["loss"].shape == ref_metrics["loss"].shape
    np.testing.assert_allclose(metrics["loss"], ref_metrics["loss"], rtol=1e-5, atol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), params, ref_params
    )
    # The evaluation of the runs goes in the same groups, to the same values.
    grouped_exp, exp = Experiment(grouped_cfg), Experiment(all_cfg)
    evals = [jax.jit(e.runs_eval_fn())(ref_params) for e in (grouped_exp, exp)]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), *evals)
    assert evals[0]["loss"].shape == (len(jax.tree.leaves(ref_params)[0]),)
    # ... and the groups do go through a loop of their own (jax.lax.map), not one vmap (a
    # remainder group repeats the run's body, so the count is not just one more).
    runs, eval_loops = [], []
    for e in (grouped_exp, exp):
        trainer = e.trainer
        state, data_keys = trainer.init(e.run_keys())
        runs.append(_count_loops(lambda s, k, t=trainer: t.run(s, k, 1), state, data_keys))
        eval_loops.append(_count_loops(e.runs_eval_fn(), state.params))
    assert runs[0] > runs[1]
    assert eval_loops[0] > eval_loops[1]


def test_seed_batch_auto_groups_larger_recurrent_models_on_the_cpu():
    from seqjax.experiment import seed_batch_from_config as seed_batch_for

    def cfg(hidden, batch, **model):
        return _config(model={"hidden_size": hidden, **model}, train={"batch_size": batch})

    assert _config().parallel.seed_batch == "auto"  # the default
    assert jax.default_backend() == "cpu"  # the suite runs on the CPU, where the rule applies
    # 8 runs x 16 x 32 = 4096 elements: all at once; x 64 hidden: groups of 2, or of 1 for
    # an odd number of runs (no remainder group, which would compile the program twice).
    assert seed_batch_for(cfg(32, 16), 8, None) is None
    assert seed_batch_for(cfg(64, 16), 8, None) == 2
    assert seed_batch_for(cfg(64, 64), 7, None) == 1
    assert seed_batch_for(cfg(64, 128), 1, None) is None  # one run: nothing to group
    # Runs per device and batch per device count: 8 runs over 2 seed devices, 4 per device.
    mesh = make_mesh(seeds=2, data=2, devices=jax.devices() * 4)
    assert seed_batch_for(cfg(32, 32), 8, mesh) is None  # 4 x 16 x 32 per device
    assert seed_batch_for(cfg(64, 64), 8, mesh) == 2  # 4 x 32 x 64
    # Explicit values pass through; the baselines are not grouped.
    explicit = _config(model={"hidden_size": 64}, parallel={"seed_batch": 3})
    assert seed_batch_for(explicit, 8, None) == 3
    assert seed_batch_for(_config(parallel={"seed_batch": None}), 8, None) is None
    tcn = config_from_data({**BASE, "model": {"kind": "tcn"}, "train": {"batch_size": 64}})
    assert seed_batch_for(tcn, 8, None) is None
    # The experiment's trainer follows the rule: 2 runs x 64 x 64 go in a group (a loop of
    # its own), as an explicit seed_batch: 2 would; seed_batch: null vmaps them at once.
    loops = {}
    for value in ("auto", 2, None):
        exp = Experiment(
            _config(
                model={"hidden_size": 64}, train={"batch_size": 64}, parallel={"seed_batch": value}
            )
        )
        trainer = exp.trainer
        state, data_keys = jax.eval_shape(trainer.init, exp.run_keys())
        loops[value] = _count_loops(lambda s, k, t=trainer: t.run(s, k, 1), state, data_keys)
    assert loops["auto"] == loops[2] > loops[None]


def test_seed_batch_must_be_positive():
    with pytest.raises(ConfigError, match=r"parallel\.seed_batch"):
        _config(parallel={"seed_batch": 0})
