"""A run whose updates keep going non-finite is frozen and marked diverged; the other runs of
its program go on exactly as if trained alone."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

import seqjax
from seqjax.experiment.config import config_from_data
from seqjax.experiment.report import write_report
from seqjax.train import NonFiniteError

GOOD, HUGE = 1e-2, 1e30  # SGD without clipping: 1e30 makes the LSTM's loss inf at step 2

BASE = {
    "name": "tiny",
    "seeds": [0],
    "task": {"name": "adding", "length": 6},
    "model": {"cell": "lstm", "hidden_size": 3},
    "optimizer": {"name": "sgd", "learning_rate": GOOD, "clip": {"method": "none"}},
    "train": {"steps": 8, "batch_size": 2, "chunk_size": 4, "max_bad_steps": 2},
    "log": {"plots": False, "progress": False, "eval_batch_size": 2, "eval_batches": 1},
}


def _config(lr=GOOD, steps=8, sweep=None):
    data = json.loads(json.dumps(BASE))
    data["optimizer"]["learning_rate"] = lr
    data["train"]["steps"] = steps
    if sweep is not None:
        data["sweep"] = {"optimizer.learning_rate": sweep}
    return config_from_data(data)


def _run(cfg, **kwargs):
    with jax.numpy_dtype_promotion("standard"):
        return seqjax.run(cfg, **kwargs)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One program, two runs: the good learning rate, then the huge one."""
    return _run(_config(sweep=[GOOD, HUGE]), out=tmp_path_factory.mktemp("runs"))


def test_the_other_run_equals_the_same_run_trained_alone(sweep):
    alone = _run(_config(GOOD))
    first = jax.tree.map(lambda x: np.asarray(x)[:1], sweep.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), first, alone.params)
    for name in ("loss", "grad_norm", "bad_steps"):
        np.testing.assert_allclose(sweep.metrics[name][:1], alone.metrics[name], rtol=1e-6)
    assert not sweep.metrics["diverged"][0].any()


def test_the_diverged_run_is_frozen_at_its_last_finite_params(sweep):
    # Step 1 is finite (it makes the weights huge), steps 2 and 3 are not: diverged at step 3,
    # its parameters those after step 1, every later update skipped.
    one_step = _run(_config(HUGE, steps=1))
    second = jax.tree.map(lambda x: np.asarray(x)[1:], sweep.params)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(second))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), second, one_step.params)
    diverged = sweep.metrics["diverged"][1]
    np.testing.assert_array_equal(diverged, np.arange(1, 9) >= 3)
    np.testing.assert_array_equal(sweep.metrics["bad_steps"][1], np.arange(8))
    assert np.isnan(sweep.metrics["loss"][1, 2:]).all()  # masked from step 3 on
    assert np.isnan(sweep.metrics["grad_norm"][1, 2:]).all()
    assert np.isfinite(sweep.metrics["loss"][1, 0])


def test_summary_logs_and_report_mark_the_diverged_run(sweep):
    assert sweep.summary["diverged"] == [False, True]
    assert sweep.summary["stop_reason"] == "done" and sweep.summary["steps"] == 8
    on_disk = json.loads((sweep.run_dir / "summary.json").read_text())
    assert on_disk["diverged"] == [False, True]
    train = [
        json.loads(line)
        for line in (sweep.run_dir / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["split"] == "train"
    ]
    assert [r["diverged"] for r in train] == [[0.0, 1.0], [0.0, 1.0]]
    # The second chunk (steps 5..8) of the diverged run is all masked (NaN, written "nan"); the
    # good run's mean is its own steps' mean.
    assert train[1]["loss"][1] == "nan" and np.isnan(float(train[1]["loss"][1]))
    np.testing.assert_allclose(train[1]["loss"][0], np.mean(sweep.metrics["loss"][0, 4:]))
    text = write_report([sweep.run_dir]).read_text()
    assert "| diverged |" in text and "| 1/2 |" in text


def test_a_single_run_still_raises_with_the_step():
    with pytest.raises(NonFiniteError, match=r"stopped at step 3: 2 consecutive.*steps 2\.\.3"):
        _run(_config(HUGE))
