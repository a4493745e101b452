"""experiments/bench_research.py end to end at its tiny sizes, and the peers' tasks against
seqjax's own generators.

torch comes from the test extra (``torch==2.13.0``, pinned in pyproject.toml with the reason:
the CPU wheel on the project's machines).
"""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import seqjax

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "bench_research.py"
IMPLS = {"seqjax", "seqjax_cores", "torch", "torch_procs", "flax"}
TINY_RUNS = {3: 4, 4: 2}  # 2 learning rates x 2 seeds (LSTM); 2 seeds (GRU)
# The suite runs the two multi-run workloads of different cells (its time budget); workloads 1
# and 2 are workload 3's config with fewer runs.
WORKLOADS = "3,4"


def _script():
    spec = importlib.util.spec_from_file_location("bench_research", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench_research") / "result.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--workloads", WORKLOADS, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())


def test_every_workload_has_every_implementation_with_finite_losses(tiny):
    assert [w["workload"] for w in tiny["workloads"]] == [3, 4]
    for w in tiny["workloads"]:
        assert set(w["results"]) == IMPLS, w["name"]
        assert w["runs"] == TINY_RUNS[w["workload"]]
        for impl, r in w["results"].items():
            assert len(r["losses"]) == w["runs"], (w["name"], impl)
            assert all(math.isfinite(v) for v in r["losses"]), (w["name"], impl, r["losses"])
            assert r["wall_s"] > 0 and r["cpu_s"] > 0 and r["updates"] == w["runs"] * w["steps"]
        assert set(w["ratios"]["seqjax"]) == {"torch", "torch_procs", "flax"}


def test_the_implementations_do_the_same_work(tiny):
    for w in tiny["workloads"]:
        r = w["results"]
        # Flax starts from its own initialisation: the same loss in range, not in value.
        mine, flax = r["seqjax"]["loss"]["mean"], r["flax"]["loss"]["mean"]
        assert 1 / 3 < mine / flax < 3, (w["name"], mine, flax)
        # The runs over the cores (seeds or batch sharded) are the one-device runs.
        np.testing.assert_allclose(r["seqjax_cores"]["losses"], r["seqjax"]["losses"], rtol=1e-4)
        # One process per core trains the runs of the single torch process.
        np.testing.assert_allclose(r["torch_procs"]["losses"], r["torch"]["losses"], rtol=1e-4)
    layouts = {w["workload"]: w["results"]["seqjax_cores"]["layout"] for w in tiny["workloads"]}
    assert layouts == {3: "parallel.seeds=auto", 4: "parallel.seeds=auto"}


def test_the_result_records_machine_versions_and_command(tiny):
    assert tiny["tiny"] and "--tiny" in tiny["command"] and tiny["date_utc"]
    assert tiny["machine"]["cores"] >= 1 and tiny["machine"]["cpu"]
    for package in ("jax", "flax", "optax", "torch", "seqjax"):
        assert tiny["machine"]["versions"][package] != "not installed"


def _check_adding(inputs, targets, length):
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    assert inputs.shape[1:] == (length, 2) and targets.shape == (inputs.shape[0], 1)
    values, marker = inputs[..., 0], inputs[..., 1]
    assert np.all((values >= 0) & (values < 1))
    assert np.all(marker[:, : length // 2].sum(1) == 1) and np.all(
        marker[:, length // 2 :].sum(1) == 1
    )
    np.testing.assert_allclose(targets[:, 0], (values * marker).sum(1), rtol=1e-6)


def _check_copy(inputs, targets, delay, symbols, k):
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    total = delay + 2 * k
    assert inputs.shape[1:] == (total, symbols + 2) and targets.shape == inputs.shape[:2]
    assert np.all(inputs.sum(-1) == 1)  # one-hot
    ids = inputs.argmax(-1)
    assert np.all((ids[:, :k] >= 1) & (ids[:, :k] <= symbols))
    assert np.all(ids[:, k + delay - 1] == symbols + 1)  # the delimiter
    rest = np.delete(ids[:, k:], delay - 1, axis=1)
    assert np.all(rest == 0)  # blanks
    assert np.all(targets[:, : total - k] == 0) and np.all(targets[:, total - k :] == ids[:, :k])


@pytest.mark.parametrize("task", ["adding", "copy_memory"])
def test_peer_tasks_have_the_semantics_of_seqjax_tasks(task):
    bench = _script()
    options = {"name": "adding", "length": 12}
    if task == "copy_memory":
        options = {"name": "copy_memory", "delay": 6, "num_symbols": 5, "copy_length": 3}
    import torch

    B = 64
    batches = [
        seqjax.get_task(**options).sample(jax.random.key(0), B)[:2],
        bench.jax_sampler(options)(jax.random.key(0), B),
        bench.torch_sampler(options)(torch.Generator().manual_seed(0), B),
    ]
    for inputs, targets in batches:  # seqjax's own draw checks the checks
        if task == "adding":
            _check_adding(inputs, targets, options["length"])
        else:
            _check_copy(inputs, targets, options["delay"], options["num_symbols"], 3)


def test_bad_arguments_and_unsupported_configs_are_errors(capsys):
    bench = _script()
    with pytest.raises(SystemExit):
        bench.main(["--impls", "seqjax,mxnet"])
    assert "--impls 'seqjax,mxnet'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--workloads", "5"])
    with pytest.raises(ValueError, match="optimizer sgd"):
        bench.peer_spec("configs/adding/lstm.yaml", ["optimizer.name=sgd"])
