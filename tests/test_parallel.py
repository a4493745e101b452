"""Devices and hosts: sharded training equals single-device training.

Several CPU devices need ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` before JAX
starts, so these tests run their training in a subprocess (bounded by a timeout) and the rest
of the suite keeps one device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from seqjax.experiment import mesh_from_config
from seqjax.experiment.config import ParallelConfig, config_from_data
from seqjax.parallel import SEEDS, make_mesh

TIMEOUT = 240

COMMON = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from seqjax.experiment.config import config_from_data
    from seqjax.experiment import Experiment
    from seqjax.parallel import replicated
    from seqjax.train import fit

    BASE = {"seeds": [0, 1, 2, 3], "task": {"name": "adding", "length": 6},
            "model": {"hidden_size": 3}, "train": {"steps": 3, "batch_size": 4, "chunk_size": 3},
            "log": {"plots": False, "progress": False, "eval_batch_size": 2, "eval_batches": 1}}

    def train(parallel, **changes):
        exp = Experiment(config_from_data({**BASE, **changes, "parallel": parallel}))
        trainer = exp.trainer
        with jax.numpy_dtype_promotion("standard"):
            result = fit(trainer, exp.run_keys(), 3, chunk_size=3)
        return exp, result

    def leaves(tree):
        return [np.asarray(x).tolist() for x in jax.tree.leaves(tree)]
    """
)


def _python(script: str, env: dict[str, str] | None = None, timeout: int = TIMEOUT) -> dict:
    """Runs ``script`` in a fresh interpreter; it prints one JSON line last."""
    proc = subprocess.run(
        [sys.executable, "-c", COMMON + textwrap.dedent(script)],
        env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


FOUR = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}


@pytest.fixture(scope="module")
def four_devices():
    """Single-device, data-parallel and seed-sharded runs of the same config, 4 CPU devices."""
    return _python(
        """
        out = {"devices": jax.device_count()}
        cases = [
            ("single", {}),
            ("data", {"data": 4}),
            ("seeds", {"seeds": 4}),
            # Each of 2 seed devices trains its 2 runs one at a time (shard_map + lax.map),
            # with the batch split over the 2 data devices inside.
            ("grouped", {"seeds": 2, "data": 2, "seed_batch": 1}),
        ]
        lrs = {"sweep": {"optimizer.learning_rate": [1e-2, 1e-1]}}  # 2 cells x 4 seeds
        cases += [("sweep", {}, lrs), ("sweep_grouped", {"seeds": 2, "seed_batch": 3}, lrs)]
        for name, parallel, *changes in cases:
            exp, result = train(parallel, **(changes[0] if changes else {}))
            step = result.state.step
            out[name] = {
                "params": leaves(result.state.params),
                "eval": leaves(replicated(exp.runs_eval_fn(), exp.mesh)(result.state.params)),
                "loss": np.asarray(result.metrics["loss"]).tolist(),
                "mesh": None if exp.mesh is None else dict(exp.mesh.shape),
                "step_devices": len(step.sharding.device_set),
                "params_spec": str(jax.tree.leaves(result.state.params)[0].sharding.spec)
                if exp.mesh is not None else None,
            }
        print(json.dumps(out))
        """,
        FOUR,
    )


def _assert_close_trees(a, b, rtol=1e-5, atol=1e-6):
    import numpy as np

    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def test_data_parallel_equals_single_device(four_devices):
    assert four_devices["devices"] == 4
    data = four_devices["data"]
    assert data["mesh"] == {"seeds": 1, "data": 4}
    assert data["step_devices"] == 4
    _assert_close_trees(data["params"], four_devices["single"]["params"])
    _assert_close_trees([data["loss"]], [four_devices["single"]["loss"]])


def test_seeds_sharded_over_devices_equal_seeds_vmapped(four_devices):
    seeds = four_devices["seeds"]
    assert seeds["mesh"] == {"seeds": 4, "data": 1}
    assert seeds["params_spec"] == str(P(SEEDS))
    _assert_close_trees(seeds["params"], four_devices["single"]["params"])
    _assert_close_trees([seeds["loss"]], [four_devices["single"]["loss"]])


def test_seed_groups_on_each_seed_device_equal_seeds_vmapped(four_devices):
    grouped = four_devices["grouped"]
    assert grouped["mesh"] == {"seeds": 2, "data": 2}
    assert grouped["params_spec"] == str(P(SEEDS))
    _assert_close_trees(grouped["params"], four_devices["single"]["params"])
    _assert_close_trees(grouped["eval"], four_devices["single"]["eval"])
    _assert_close_trees([grouped["loss"]], [four_devices["single"]["loss"]])


def test_sweep_over_seed_devices_in_groups_equals_one_device(four_devices):
    # 8 runs, 4 per device in groups of 3: a group and a remainder on each device.
    grouped = four_devices["sweep_grouped"]
    assert grouped["mesh"] == {"seeds": 2, "data": 1}
    _assert_close_trees(grouped["params"], four_devices["sweep"]["params"])
    _assert_close_trees(grouped["eval"], four_devices["sweep"]["eval"])
    _assert_close_trees([grouped["loss"]], [four_devices["sweep"]["loss"]])


def test_mesh_shapes_and_errors():
    devices = jax.devices() * 6  # only the arithmetic of the shapes is checked here
    assert dict(make_mesh("auto", 2, devices=devices).shape) == {"seeds": 2, "data": 3}
    assert dict(make_mesh(2, "auto", devices=devices).shape) == {"seeds": 3, "data": 2}
    with pytest.raises(ValueError, match="needs 8 devices, but 6 exist"):
        make_mesh(4, 2, devices=devices)
    with pytest.raises(ValueError, match="both be 'auto'"):
        make_mesh("auto", "auto")
    with pytest.raises(ValueError, match="data must be a positive int"):
        make_mesh(0)
    assert mesh_from_config(ParallelConfig(data="auto"), batch_size=3) is None  # one device
    with pytest.raises(ValueError, match="parallel"):
        config_from_data({"parallel": {"data": "auto", "seeds": "auto"}})


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MULTI_HOST = """\
seeds: [0, 1]
task: {name: adding, length: 6}
model: {hidden_size: 3}
train: {steps: 4, batch_size: 4, chunk_size: 2, checkpoint: {every: 2, keep: 2}}
log: {plots: false, progress: false, eval_batch_size: 2, eval_batches: 1}
parallel: {data: 2}
"""


def test_two_processes_on_localhost_match_one_process(tmp_path):
    from seqjax.experiment import load_config, run
    from seqjax.experiment.runs import read_metrics

    config = tmp_path / "config.yaml"
    config.write_text(MULTI_HOST)
    out = tmp_path / "hosts"
    address = f"127.0.0.1:{_free_port()}"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "seqjax.cli",
                "train",
                str(config),
                "--out",
                str(out),
                "--no-progress",
                "--coordinator",
                address,
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ],
            env={**os.environ, "JAX_PLATFORMS": "cpu"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        results = [p.communicate(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert "results:" in results[0][0] and "results:" not in results[1][0]  # process 0 writes
    (run_dir,) = out.iterdir()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["2", "4"]

    with jax.numpy_dtype_promotion("standard"):
        one = run(load_config(config, ["parallel.data=1"]), out=tmp_path / "one", progress=False)
    one = one.run_dir
    hosts, single = read_metrics(run_dir), read_metrics(one)
    assert [r["step"] for r in hosts] == [r["step"] for r in single] == [2, 4, 4]
    for a, b in zip(hosts, single, strict=True):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5, atol=1e-6)


def test_fast_kernel_splits_a_sharded_batch_instead_of_gathering_it():
    # The fused kernel's products over steps and examples must keep the batch axis that
    # parallel.data splits: merging it into [T * B, F] made every device gather the whole
    # batch and run all of it (3 all-gathers, no speed-up from data parallelism).
    out = _python(
        """
        import jax.numpy as jnp
        from jax.sharding import NamedSharding, PartitionSpec as P
        import seqjax
        from seqjax.parallel import DATA, make_mesh

        mesh = make_mesh(data=4)
        cell = seqjax.lstm(6, fast=True)
        params = cell.init(jax.random.key(0), 3)
        xs = jax.random.normal(jax.random.key(1), (8, 5, 3))

        def loss(p, xs):
            hs = jax.vmap(lambda x: seqjax.unroll(cell, p, x)[1])(xs)
            return jnp.sum(hs**2)

        grad = jax.jit(jax.grad(loss))
        sharded = jax.device_put(xs, NamedSharding(mesh, P(DATA)))
        text = grad.lower(params, sharded).compile().as_text()
        print(json.dumps({
            "all_gathers": text.count("all-gather"),
            "sharded": leaves(grad(params, sharded)),
            "single": leaves(grad(params, xs)),
        }))
        """,
        FOUR,
    )
    assert out["all_gathers"] == 0
    _assert_close_trees(out["sharded"], out["single"])
