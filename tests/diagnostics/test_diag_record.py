"""Model-level diagnostics, their recording during training, and their plots in the report."""

from __future__ import annotations

import dataclasses
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.cells import gru, lstm, rnn
from seqjax.cells.lstm import lstm_gates
from seqjax.diagnostics.model import example_loss, model_diagnostics
from seqjax.experiment import Experiment, layer_from_config, run
from seqjax.experiment.config import ConfigError, config_from_data, dump_config, parse_yaml
from seqjax.experiment.recorder import (
    Recorder,
    diagnostics_batch,
    read_diagnostics,
    unsupported_reason,
)
from seqjax.layers import stack
from seqjax.models import dense, many_to_many, many_to_one
from seqjax.tasks import Batch

T, B, F = 5, 3, 2
LENGTHS = [5, 3, 4]


def _batch(key, pattern, loss, out_size, dtype):
    k1, k2 = jax.random.split(key)
    length = jnp.asarray(LENGTHS, jnp.int32)
    valid = jnp.arange(T, dtype=jnp.int32)[None, :] < length[:, None]
    inputs = jax.random.normal(k1, (B, T, F), dtype) * valid[..., None].astype(dtype)
    shape = (B,) if pattern == "many_to_one" else (B, T)
    if loss == "mse":
        targets = jax.random.normal(k2, (*shape, out_size), dtype)
    else:
        targets = jax.random.randint(k2, shape, 0, out_size, jnp.int32)
    mask = jnp.ones((B,), dtype) if pattern == "many_to_one" else valid.astype(dtype)
    return Batch(inputs, targets, mask.astype(jnp.float32), length)


def _reference_grad_norms(cell, params, batch, pattern, loss):
    """||dL_b/dh_t|| by re-running the tail of the sequence from a perturbed h_t (c_t fixed),
    one (b, t) at a time, then the mean over the examples valid at t."""
    enc, readout = params["encoder"], params["readout"]
    norms = np.zeros((B, T))
    for b in range(B):
        n = LENGTHS[b]
        xs = batch.inputs[b]
        carry, carries, hs = cell.initial_carry(), [], []
        for t in range(n):
            carry, h = cell.step(enc, carry, xs[t])
            carries.append(carry)
            hs.append(h)

        def loss_from(h, t, b=b, n=n, xs=xs, carries=carries, hs=hs):
            c = carries[t]
            c = h if isinstance(c, jax.Array) else c._replace(h=h)
            outs = [*hs[:t], h]
            for s in range(t + 1, n):
                c, y = cell.step(enc, c, xs[s])
                outs.append(y)
            if pattern == "many_to_one":
                out = dense(readout, outs[-1])
            else:
                full = jnp.stack(outs + [jnp.zeros_like(h)] * (T - n))
                out = dense(readout, full) * (jnp.arange(T) < n)[:, None].astype(h.dtype)
            return example_loss(loss, out, batch.targets[b], batch.mask[b])

        for t in range(n):
            norms[b, t] = float(jnp.linalg.norm(jax.grad(loss_from)(hs[t], t)))
    valid = np.arange(T)[None, :] < np.asarray(LENGTHS)[:, None]
    return (norms * valid).sum(0) / np.maximum(valid.sum(0), 1)


@pytest.mark.parametrize(
    "cell_fn, pattern, loss",
    [(lstm, "many_to_one", "mse"), (gru, "many_to_many", "cross_entropy")],
    ids=["lstm-many_to_one-mse", "gru-many_to_many-ce"],
)
def test_model_diagnostics_match_tail_reruns_and_direct_recomputation(
    cell_fn, pattern, loss, key, x64
):
    cell = cell_fn(4, dtype=jnp.float64)
    build = many_to_one if pattern == "many_to_one" else many_to_many
    model = build(cell, F, 3)
    k_init, k_data = jax.random.split(key)
    params = model.init(k_init)
    params["encoder"]["w_h"] = params["encoder"]["w_h"] * 1.7  # not orthogonal: radius != 1
    batch = _batch(k_data, pattern, loss, 3, jnp.float64)
    diag = jax.jit(lambda p: model_diagnostics(cell, pattern, loss, p, batch))(params)

    np.testing.assert_allclose(
        diag.grad_norm, _reference_grad_norms(cell, params, batch, pattern, loss), rtol=1e-9
    )
    # The loss is the task loss of model.apply, averaged over examples.
    # (int64 lengths: models._mask_past_length compares them with a default-int arange.)
    lengths = batch.length.astype(jnp.int64)
    outputs, _ = jax.vmap(model.apply, in_axes=(None, 0, 0))(params, batch.inputs, lengths)
    per_example = [
        example_loss(loss, outputs[b], batch.targets[b], batch.mask[b]) for b in range(B)
    ]
    np.testing.assert_allclose(diag.loss, np.mean(per_example), rtol=1e-12)
    # Spectral radius of each gate block of W_h, with NumPy.
    w = np.asarray(params["encoder"]["w_h"])
    h = w.shape[0]
    blocks = [w[:, j * h : (j + 1) * h] for j in range(w.shape[1] // h)]
    expected = [np.abs(np.linalg.eigvals(block)).max() for block in blocks]
    np.testing.assert_allclose(diag.weight_radius, expected, rtol=1e-9)
    assert diag.gate_saturation.shape == ((4,) if cell.name == "lstm" else (3,))


def test_lstm_gate_saturation_equals_a_direct_recomputation(key, x64):
    cell = lstm(6, forget_bias=3.0, dtype=jnp.float64)
    model = many_to_one(cell, F, 1)
    params = model.init(key)
    batch = _batch(jax.random.key(1), "many_to_one", "mse", 1, jnp.float64)
    batch = batch._replace(inputs=batch.inputs * 4.0)  # drive some gates into saturation
    diag = jax.jit(lambda p: model_diagnostics(cell, "many_to_one", "mse", p, batch, eps=0.1))(
        params
    )
    expected = np.zeros(4)
    for b in range(B):
        carry, per_step = cell.initial_carry(), []
        for t in range(LENGTHS[b]):
            g = lstm_gates(params["encoder"], carry.h, batch.inputs[b, t])
            per_step.append(
                [
                    np.mean((np.asarray(g.f) > 0.9) | (np.asarray(g.f) < 0.1)),
                    np.mean((np.asarray(g.i) > 0.9) | (np.asarray(g.i) < 0.1)),
                    np.mean(np.abs(np.asarray(g.g)) > 0.8),
                    np.mean((np.asarray(g.o) > 0.9) | (np.asarray(g.o) < 0.1)),
                ]
            )
            carry, _ = cell.step(params["encoder"], carry, batch.inputs[b, t])
        expected += np.mean(per_step, axis=0) / B
    np.testing.assert_allclose(diag.gate_saturation, expected, rtol=1e-12)
    assert expected[0] > 0.5  # forget bias 3: sigmoid(3) = 0.95 > 0.9, mostly saturated


def test_rnn_has_no_gates_and_bad_arguments_are_named(key):
    cell = rnn(4)
    params = many_to_one(cell, F, 1).init(key)
    batch = _batch(key, "many_to_one", "mse", 1, jnp.float32)
    diag = jax.jit(lambda p: model_diagnostics(cell, "many_to_one", "mse", p, batch))(params)
    assert diag.gate_saturation.shape == (0,) and diag.weight_radius.shape == (1,)
    assert diag.grad_norm.shape == (T,) and np.all(np.asarray(diag.grad_norm) > 0)
    with pytest.raises(ValueError, match="pattern='seq2seq'"):
        model_diagnostics(cell, "seq2seq", "mse", params, batch)
    with pytest.raises(ValueError, match="loss='hinge'"):
        model_diagnostics(cell, "many_to_one", "hinge", params, batch)
    with pytest.raises(ValueError, match=r"params has keys \['w_h'"):
        model_diagnostics(cell, "many_to_one", "mse", {"w_h": 0}, batch)
    with pytest.raises(TypeError, match="got Layer"):
        model_diagnostics(stack([cell, rnn(4)]), "many_to_one", "mse", params, batch)


# ------------------------------------------------------------------------- during training

RUN = {
    "name": "diag",
    "seeds": [0, 1],
    "task": {"name": "adding", "length": 8},
    "model": {"cell": "lstm", "hidden_size": 4},
    "train": {"steps": 4, "chunk_size": 2, "batch_size": 4, "checkpoint": {"every": 2}},
    "log": {"eval_batch_size": 2, "eval_batches": 1, "plots": False, "progress": False},
    "diagnostics": {"every": 2, "batch_size": 3},
}


@pytest.fixture(scope="module")
def diag_run(tmp_path_factory):
    with jax.numpy_dtype_promotion("standard"):
        cfg = config_from_data(RUN)
        return cfg, run(cfg, out=tmp_path_factory.mktemp("runs")).run_dir


def _restore(cfg, run_dir, step):
    from seqjax.train import checkpoint_manager, restore_checkpoint

    exp = Experiment(cfg)
    trainer = exp.trainer
    template, _ = trainer.init(exp.run_keys())
    manager = checkpoint_manager(run_dir / "checkpoints", every=1, keep=100)
    state, _ = restore_checkpoint(manager, template, step)
    return exp, template, state


def test_a_run_records_diagnostics_with_the_expected_shapes(diag_run):
    _, run_dir = diag_run
    data = read_diagnostics(run_dir)
    assert data["step"].tolist() == [0, 2, 4]
    assert data["seed"].tolist() == [0, 1]
    assert data["loss"].shape == (3, 2)
    assert data["grad_norm"].shape == (3, 2, 8)
    assert data["weight_radius"].shape == (3, 2, 4)
    assert data["gate_saturation"].shape == (3, 2, 4)
    assert data["gate_names"].tolist() == ["f", "i", "g", "o"]
    assert np.all(data["grad_norm"] > 0) and np.all(np.isfinite(data["grad_norm"]))
    assert not list(run_dir.glob(".diagnostics.npz*"))  # no temporary file left
    assert json.loads((run_dir / "summary.json").read_text())["diagnostics"] == "diagnostics.npz"


def test_an_in_memory_run_keeps_its_diagnostics_and_writes_nothing(diag_run, tmp_path, monkeypatch):
    cfg, run_dir = diag_run
    monkeypatch.chdir(tmp_path)
    with jax.numpy_dtype_promotion("standard"):
        result = run(cfg)
    assert result.run_dir is None and list(tmp_path.iterdir()) == []
    on_disk = read_diagnostics(run_dir)
    assert sorted(result.diagnostics) == sorted(on_disk)
    for key, value in on_disk.items():
        np.testing.assert_array_equal(result.diagnostics[key], value, err_msg=key)


def test_recorded_values_equal_the_library_on_the_checkpointed_params(diag_run):
    cfg, run_dir = diag_run
    data = read_diagnostics(run_dir)
    exp, initial, final = _restore(cfg, run_dir, 4)
    assert int(np.max(final.step)) == 4
    cell = layer_from_config(cfg.model)
    batch = diagnostics_batch(exp.task, cfg.diagnostics.batch_size)
    direct_fn = jax.jit(lambda p: model_diagnostics(cell, "many_to_one", "mse", p, batch))
    for index, state in ((0, initial), (2, final)):
        for s in range(2):
            direct = direct_fn(jax.tree.map(lambda a, s=s: a[s], state.params))
            np.testing.assert_allclose(data["grad_norm"][index, s], direct.grad_norm, rtol=1e-5)
            np.testing.assert_allclose(data["loss"][index, s], direct.loss, rtol=1e-5)
            np.testing.assert_allclose(
                data["weight_radius"][index, s], direct.weight_radius, rtol=1e-5
            )
            np.testing.assert_allclose(
                data["gate_saturation"][index, s], direct.gate_saturation, atol=1e-7
            )
    assert not np.allclose(data["grad_norm"][0], data["grad_norm"][2])  # training changed them


def test_resuming_keeps_earlier_records_and_appends(diag_run, tmp_path):
    cfg, run_dir = diag_run
    resumed = tmp_path / "resumed"
    shutil.copytree(run_dir, resumed)
    longer = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=6))
    with jax.numpy_dtype_promotion("standard"):
        run(longer, run_dir=resumed)
    before, after = read_diagnostics(run_dir), read_diagnostics(resumed)
    assert after["step"].tolist() == [0, 2, 4, 6]
    np.testing.assert_array_equal(after["grad_norm"][:3], before["grad_norm"])


def test_report_plots_the_diagnostics(diag_run, tmp_path):
    from seqjax.experiment.report import write_report

    _, run_dir = diag_run
    report = write_report([run_dir], tmp_path)
    text = report.read_text()
    assert "## Gradient-flow diagnostics: diag" in text
    for name in ("grad_norms", "spectral_radius", "gate_saturation"):
        (png,) = (tmp_path / "plots").glob(f"*_diag_{name}.png")
        assert png.stat().st_size > 1000
        assert f"plots/{png.name}" in text


@pytest.mark.parametrize(
    "model, reason",
    [
        ({"cell": "lstm", "hidden_size": 4, "num_layers": 2}, "single cell"),
        ({"cell": "gru", "hidden_size": 4, "bidirectional": True}, "single cell"),
        ({"kind": "tcn", "options": {"num_levels": 2}}, "not recurrent"),
    ],
    ids=["stacked", "bidirectional", "tcn"],
)
def test_unsupported_models_are_skipped_with_a_reason(model, reason, tmp_path):
    cfg = config_from_data({**RUN, "model": model})
    exp = Experiment(cfg)
    assert reason in unsupported_reason(exp)
    with pytest.warns(UserWarning, match="diagnostics skipped"):
        recorder = Recorder(exp, tmp_path)
    assert not recorder.active and recorder.status.startswith("skipped: ")
    recorder.record(0, None)  # a no-op, never an error
    assert read_diagnostics(tmp_path) is None


def test_diagnostics_config_validates_and_round_trips():
    assert config_from_data({}).diagnostics is None
    cfg = config_from_data(RUN)
    assert cfg.diagnostics.every == 2 and cfg.diagnostics.batch_size == 3
    assert config_from_data(parse_yaml(dump_config(cfg))) == cfg
    with pytest.raises(ConfigError, match=r"diagnostics.*multiple of train\.chunk_size=2"):
        config_from_data({**RUN, "diagnostics": {"every": 3}})
    with pytest.raises(ConfigError, match=r"diagnostics\.every"):
        config_from_data({**RUN, "diagnostics": {"batch_size": 3}})


def test_a_cell_whose_output_is_not_its_hidden_state_is_skipped_with_a_reason():
    from seqjax.experiment.recorder import unsupported_reason

    lru = Experiment(config_from_data({**RUN, "model": {"cell": "lru", "hidden_size": 4}}))
    assert "hidden part of shape (8,)" in unsupported_reason(lru)
    assert unsupported_reason(Experiment(config_from_data(RUN))) is None
