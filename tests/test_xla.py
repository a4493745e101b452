"""The XLA:CPU settings of `seqjax._xla`, and the hang they avoid."""

import os
import subprocess
import sys
import textwrap

import jax
import pytest

from seqjax import _xla

FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def test_apply_adds_the_flag_once_and_keeps_other_flags(monkeypatch):
    monkeypatch.setattr(_xla, "_backends_started", lambda: False)
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    assert _xla.apply(env) == [FLAG]
    assert env["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=4 {FLAG}"
    assert _xla.apply(env) == []  # already there
    assert env["XLA_FLAGS"].count("concurrency_optimized") == 1


def test_apply_leaves_a_users_own_setting_and_honours_the_opt_out(monkeypatch):
    monkeypatch.setattr(_xla, "_backends_started", lambda: False)
    mine = {"XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=true"}
    assert _xla.apply(mine) == []
    assert mine["XLA_FLAGS"] == "--xla_cpu_enable_concurrency_optimized_scheduler=true"
    opted_out = {_xla.OPT_OUT: "1"}
    assert _xla.apply(opted_out) == []
    assert "XLA_FLAGS" not in opted_out


def test_apply_warns_once_a_backend_runs():
    jax.devices()  # make sure a backend has started in this process
    env: dict[str, str] = {}
    with pytest.warns(RuntimeWarning, match="imported after JAX started"):
        assert _xla.apply(env) == []
    assert "XLA_FLAGS" not in env


def test_import_seqjax_sets_the_flag_in_a_fresh_process():
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", _xla.OPT_OUT)}
    code = "import os, seqjax, jax; jax.devices(); print(os.environ['XLA_FLAGS'])"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == FLAG


# Without the flag, this program hung on its second or third call in 7 of 8 trials on a 2-core
# CPU (jaxlib 0.10.2): all XLA workers idle, the caller blocked in block_until_ready.
REPRODUCER = textwrap.dedent(
    """
    import jax
    from seqjax.config import config_from_data
    from seqjax.experiment import Experiment
    from seqjax.train import make_train

    steps = 10
    cfg = config_from_data({
        "task": {"name": "adding", "length": 100},
        "model": {"cell": "lstm", "hidden_size": 32},
        "optimizer": {"name": "adam", "learning_rate": 1e-2},
        "train": {"steps": steps, "batch_size": 16, "chunk_size": steps},
    })
    many = jax.jit(jax.vmap(make_train(Experiment(cfg).trainer, steps)))
    keys = jax.random.split(jax.random.key(0), 8)
    for call in range(4):
        jax.block_until_ready(many(keys))
        print("call", call, "done", flush=True)
    """
)


def test_vmapped_training_runs_do_not_hang():
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", _xla.OPT_OUT)}
    try:
        out = subprocess.run(
            [sys.executable, "-c", REPRODUCER],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired as err:  # the hang: report how far it got
        pytest.fail(f"vmapped training hung; output so far: {err.stdout!r}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("done") == 4
