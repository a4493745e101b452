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


def _run_unless_it_hangs(code: str, env: dict[str, str], what: str):
    """Runs ``code`` in a fresh interpreter; a timeout (the hang) fails with how far it got."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"{what} hung; output so far: {err.stdout!r}")
    assert out.returncode == 0, out.stderr
    return out


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


@pytest.mark.parametrize("scheduler", ["off (seqjax's flag)", "on (SEQJAX_KEEP_XLA_FLAGS=1)"])
def test_vmapped_training_runs_do_not_hang(scheduler):
    # With the scheduler on, the batched QRs of the orthogonal initialisation hung this 4 of 4
    # times before it ran them one at a time; now the flag is a second line of defence.
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", _xla.OPT_OUT)}
    if scheduler.startswith("on"):
        env[_xla.OPT_OUT] = "1"
    out = _run_unless_it_hangs(REPRODUCER, env, "vmapped training")
    assert out.stdout.count("done") == 4


# The cause of the hangs above, in its plainest form: a batched LAPACK QR (what jax.vmap makes
# of an orthogonal initialisation) waits for XLA:CPU's intra-op pool from a thread of that pool.
# With one simulated device per core (and at least 2), every pool thread ran such a QR at once
# and this program hung on its first calls, every time on a 2-core CPU before the initialiser
# ran its QRs one at a time (seqjax.cells.base.one_at_a_time). (With 2 or 4 matrices per device
# it finished: the pool is only used for batches past a size.)
SHARDED_INIT = textwrap.dedent(
    """
    import jax
    from jax.sharding import NamedSharding, PartitionSpec as P
    from seqjax import cells
    from seqjax.parallel import SEEDS, make_mesh

    mesh = make_mesh(seeds="auto")
    sharding = NamedSharding(mesh, P(SEEDS))
    cell = cells.lstm(32)
    init = jax.jit(
        jax.vmap(lambda k: cell.init(k, 8), spmd_axis_name=SEEDS),
        in_shardings=sharding,
        out_shardings=sharding,
    )
    for call in range(10):
        keys = jax.random.split(jax.random.key(call), 8 * jax.device_count())
        params = init(jax.device_put(keys, sharding))
        jax.block_until_ready(params)
        print("call", call, "done", flush=True)

    # The diagnostics' eigenvalues, spectral norms and QRs (a run's `diagnostics:` section)
    from seqjax.diagnostics import jacobian_norms, recurrent_spectral_radius

    def diagnose(p, xs):
        out = jacobian_norms(cell, p, xs)
        return recurrent_spectral_radius(p), out.end_norm, out.step_radius, out.lyapunov

    diag = jax.jit(jax.vmap(diagnose, spmd_axis_name=SEEDS), in_shardings=sharding,
                   out_shardings=sharding)
    xs = jax.device_put(jax.random.normal(jax.random.key(0), (params["w_h"].shape[0], 40, 8)),
                        sharding)
    for call in range(3):
        jax.block_until_ready(diag(params, xs))
        print("diagnostics", call, "done", flush=True)
    """
)


def test_inits_and_diagnostics_sharded_over_one_device_per_core_do_not_hang():
    devices = max(2, os.cpu_count() or 1)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    out = _run_unless_it_hangs(SHARDED_INIT, env, f"sharded init/diagnostics on {devices} devices")
    assert out.stdout.count("call") == 10 and out.stdout.count("diagnostics") == 3
