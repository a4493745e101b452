"""The XLA:CPU settings of `seqjax.xla`, and the hang they avoid."""

import os
import subprocess
import sys
import textwrap

import jax
import pytest

from seqjax import xla

FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def test_configure_adds_the_flag_once_and_keeps_other_flags(monkeypatch):
    monkeypatch.setattr(xla, "backends_started", lambda: False)
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    assert xla.configure(env) == [FLAG]
    assert env["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=4 {FLAG}"
    assert xla.configure(env) == []  # already there
    assert env["XLA_FLAGS"].count("concurrency_optimized") == 1


def test_configure_leaves_a_users_own_setting(monkeypatch):
    monkeypatch.setattr(xla, "backends_started", lambda: False)
    mine = {"XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=true"}
    assert xla.configure(mine) == []
    assert mine["XLA_FLAGS"] == "--xla_cpu_enable_concurrency_optimized_scheduler=true"


def test_configure_warns_once_a_backend_runs():
    jax.devices()  # make sure a backend has started in this process
    assert xla.backends_started()
    env: dict[str, str] = {}
    with pytest.warns(RuntimeWarning, match="after JAX started"):
        assert xla.configure(env) == []
    assert "XLA_FLAGS" not in env


def test_the_private_jax_names_seqjax_reads_are_where_they_were():
    # seqjax.xla is the one module that reads jax._src; if JAX moves these, fail here, loudly.
    from jax._src import core, xla_bridge
    from jax._src.interpreters import batching

    assert isinstance(xla_bridge.backends_are_initialized(), bool)
    assert hasattr(core.trace_ctx, "trace")
    assert isinstance(batching.BatchTrace, type) and isinstance(batching.BatchTracer, type)
    seen = []
    jax.vmap(lambda x: seen.append(xla.vmapped_here(x)) or x)(jax.numpy.ones(2))
    assert seen == [True] and not xla.vmapped_here(jax.numpy.ones(2))


def test_only_seqjax_xla_reads_private_jax():
    from pathlib import Path

    root = Path(xla.__file__).parent
    readers = sorted(
        str(p.relative_to(root)) for p in root.rglob("*.py") if "jax._src" in p.read_text()
    )
    assert readers == ["xla.py"]


def _fresh(code: str, env: dict[str, str] | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} if env is None else env
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_seqjax_has_no_side_effects():
    code = textwrap.dedent(
        """
        import os, sys
        import matplotlib
        backend = lambda: dict.__getitem__(matplotlib.rcParams, "backend")  # without resolving it
        before = (dict(os.environ), backend())
        import jax
        flags = {k: getattr(jax.config, k) for k in ("jax_enable_x64", "jax_numpy_rank_promotion",
                                                     "jax_numpy_dtype_promotion")}
        import seqjax
        assert dict(os.environ) == before[0], "import seqjax changed the environment"
        assert backend() == before[1], "import seqjax switched matplotlib's backend"
        assert {k: getattr(jax.config, k) for k in flags} == flags, "import seqjax changed jax.config"
        heavy = sorted(m for m in sys.modules if m.startswith(("orbax", "matplotlib.pyplot")))
        assert not heavy, heavy
        print(os.environ.get("XLA_FLAGS"))
        """
    )
    assert _fresh(code, {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}) == "None"
    mine = {**os.environ, "XLA_FLAGS": "--xla_cpu_use_thunk_runtime=true"}
    assert _fresh(code, mine) == "--xla_cpu_use_thunk_runtime=true"


def test_the_command_applies_the_flag_before_jax_starts(tmp_path):
    code = textwrap.dedent(
        """
        import os, sys
        from seqjax import cli
        cli.main(["list"])
        print("XLA_FLAGS=" + os.environ.get("XLA_FLAGS", ""))
        """
    )
    out = _fresh(code)
    assert out.splitlines()[-1] == f"XLA_FLAGS={FLAG}"


def _run_unless_it_hangs(code: str, env: dict[str, str], what: str, *args: str):
    """Runs ``code`` in a fresh interpreter; a timeout (the hang) fails with how far it got."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", code, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"{what} hung; output so far: {err.stdout!r}")
    assert out.returncode == 0, out.stderr
    return out


# Eight vmapped training runs, called four times: the program that could hang on a 2-core CPU
# (all XLA workers idle, the caller blocked in block_until_ready).
REPRODUCER = textwrap.dedent(
    """
    import jax
    import sys
    import seqjax
    from seqjax.experiment import Experiment, config_from_data
    from seqjax.train import make_train

    if sys.argv[1] == "off":
        seqjax.xla.configure()

    steps = 10
    cfg = config_from_data({
        "task": {"name": "adding", "length": 100},
        "model": {"cell": "lstm", "hidden_size": 32},
        "optimizer": {"name": "adam", "learning_rate": 1e-2},
        "train": {"steps": steps, "batch_size": 16, "chunk_size": steps},
    })
    many = jax.jit(jax.vmap(make_train(Experiment(cfg).run_trainer(), steps)))
    keys = jax.random.split(jax.random.key(0), 8)
    for call in range(4):
        jax.block_until_ready(many(keys))
        print("call", call, "done", flush=True)
    """
)


@pytest.mark.parametrize("scheduler", ["off", "on"])
def test_vmapped_training_runs_do_not_hang(scheduler):
    # With the scheduler on, batched QRs of the orthogonal initialisation could hang this;
    # the initialiser runs them one at a time, and the flag is a second line of defence.
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = _run_unless_it_hangs(REPRODUCER, env, "vmapped training", scheduler)
    assert out.stdout.count("done") == 4


# The cause of such hangs, in its plainest form: a batched LAPACK QR (what jax.vmap makes of an
# orthogonal initialisation) waits for XLA:CPU's intra-op pool from a thread of that pool. With
# one simulated device per core (and at least 2) every pool thread runs such a QR at once;
# seqjax.cells.base.one_at_a_time runs them one matrix at a time, so this program finishes.
# (8 matrices per device: the pool is only used for batches past a size.)
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
