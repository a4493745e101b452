"""``seqjax.run`` in memory and into a folder, `train_from_config`, and configs naming cells
that a user module registers (``--import``)."""

import json
import sys
import textwrap

import jax
import numpy as np
import pytest

import seqjax
from seqjax import cli
from seqjax.experiment import ConfigError, Experiment, config_from_data, train_from_config

TINY = {
    "name": "tiny",
    "seeds": [0, 1],
    "task": {"name": "adding", "length": 6},
    "model": {"cell": "gru", "hidden_size": 4},
    "train": {"steps": 4, "batch_size": 2, "chunk_size": 2, "eval_every": 2},
    "log": {"eval_batch_size": 2, "eval_batches": 1, "progress": False, "plots": False},
}


@pytest.fixture(autouse=True)
def standard_promotion():
    # Optax's Adam mixes int32 step counts with floats (see tests/test_experiment.py).
    with jax.numpy_dtype_promotion("standard"):
        yield


@pytest.fixture(scope="module")
def in_memory(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("cwd")
    with jax.numpy_dtype_promotion("standard"), pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        result = seqjax.run(TINY, overrides=["train.steps=4"], progress=False)
    return result, cwd


def test_in_memory_run_returns_results_and_writes_nothing(in_memory):
    result, cwd = in_memory
    assert result.run_dir is None and list(cwd.iterdir()) == []
    assert all(leaf.shape[0] == 2 for leaf in jax.tree.leaves(result.params))  # [runs, ...]
    assert result.metrics["loss"].shape == (2, 4)  # [runs, steps]
    assert [e["step"] for e in result.evals] == [2, 4]
    assert len(result.summary["eval"]["loss"]) == 2 and result.summary["steps"] == 4
    assert result.diagnostics is None


def test_a_run_folder_holds_the_same_numbers_as_memory(in_memory, tmp_path):
    result, _ = in_memory
    written = seqjax.run(TINY, out=tmp_path, progress=False)
    assert written.run_dir.parent == tmp_path
    summary = json.loads((written.run_dir / "summary.json").read_text())
    np.testing.assert_array_equal(
        summary["eval"]["loss"], np.asarray(result.summary["eval"]["loss"])
    )
    for a, b in zip(jax.tree.leaves(written.params), jax.tree.leaves(result.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_config_objects_paths_and_overrides_are_the_same_run(in_memory, tmp_path):
    result, _ = in_memory
    cfg = config_from_data({**TINY, "train": {**TINY["train"], "steps": 2}})
    path = tmp_path / "tiny.yaml"
    path.write_text(seqjax.experiment.dump_config(cfg))
    from_path = seqjax.run(path, overrides=["train.steps=4"], progress=False)
    from_object = seqjax.run(cfg, overrides=["train.steps=4"], progress=False)
    for run in (from_path, from_object):
        np.testing.assert_array_equal(run.metrics["loss"], result.metrics["loss"])
    with pytest.raises(TypeError, match="KEY=VALUE strings"):
        seqjax.run(TINY, overrides="train.steps=4")
    with pytest.raises(TypeError, match="config must be"):
        seqjax.run(42)


def test_bad_config_is_an_error_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.hidden_size"):
        seqjax.run(TINY, overrides=["model.hidden_size=0"], out=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_train_from_config_is_the_whole_run_as_one_function(in_memory):
    result, _ = in_memory
    cfg = config_from_data(TINY)
    train = train_from_config(cfg)
    state, metrics = train(Experiment(cfg).run_keys())
    assert metrics["loss"].shape == (2, 4)
    # The same updates as the host loop's chunks, compiled as one chunk.
    np.testing.assert_allclose(metrics["loss"], result.metrics["loss"], rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(result.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_unregistered_cell_is_an_error_listing_the_registered_ones():
    with pytest.raises(ConfigError, match=r"model\.cell: unknown cell 'lstn'; registered cells"):
        config_from_data({"model": {"cell": "lstn"}})
    with pytest.raises(ConfigError, match=r"model\.kind: unknown model kind 'mlp'"):
        config_from_data({"model": {"kind": "mlp"}})


def test_cell_keys_apply_only_to_cells_that_take_them():
    with pytest.raises(ConfigError, match=r"model\.activation: has no effect on cell 'lstm'"):
        config_from_data({"model": {"cell": "lstm", "activation": "relu"}})
    with pytest.raises(ConfigError, match=r"model\.options\.nope: unknown argument of cell"):
        config_from_data({"model": {"cell": "gru", "options": {"nope": 1}}})


USER_CELL = textwrap.dedent(
    """
    import jax, jax.numpy as jnp
    from seqjax.cells import CELLS, Cell

    def leaky(hidden_size, *, leak: float = 0.5):
        def init(key, input_size):
            k1, k2 = jax.random.split(key)
            return {"w_i": 0.3 * jax.random.normal(k1, (input_size, hidden_size)),
                    "w_h": 0.3 * jax.random.normal(k2, (hidden_size, hidden_size))}

        def step(params, h, x):
            h = leak * h + (1 - leak) * jnp.tanh(x @ params["w_i"] + h @ params["w_h"])
            return h, h

        return Cell(init, lambda: jnp.zeros(hidden_size), step, hidden_size, "leaky")

    CELLS["leaky"] = leaky
    """
)


def test_a_cell_registered_by_an_imported_module_trains_from_a_config(
    tmp_path, capsys, monkeypatch
):
    (tmp_path / "my_leaky_cell.py").write_text(USER_CELL)
    config = tmp_path / "leaky.yaml"
    config.write_text(
        "task: {name: adding, length: 6}\n"
        "model: {cell: leaky, hidden_size: 4, options: {leak: 0.25}}\n"
        "train: {steps: 2, batch_size: 2, chunk_size: 1}\n"
        "log: {eval_batch_size: 2, eval_batches: 1, plots: false}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        code = cli.main(["train", str(config), "--out", "runs", "--no-progress"])
        assert code == 2 and "unknown cell 'leaky'" in capsys.readouterr().err
        code = cli.main(
            ["train", str(config), "--import", "my_leaky_cell", "--out", "runs", "--no-progress"]
        )
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "leaky on adding, 2 steps" in out
        code = cli.main(["train", str(config), "--import", "no_such_module_x"])
        assert code == 2 and "--import no_such_module_x" in capsys.readouterr().err
    finally:
        seqjax.CELLS.pop("leaky", None)
        sys.modules.pop("my_leaky_cell", None)
