"""Many devices, many hosts: a mesh over the runs (seeds) and the batch (data parallel).

One program trains ``[runs]`` independent runs (the seeds, times the grid of a sweep) with
``jax.vmap``. Here that program is compiled once for a device ``Mesh`` with two axes:

* ``"seeds"`` (`SEEDS`): the leading run axis of every state leaf, metric and key is split
  over it (each device trains its share of the runs, vmapped);
* ``"data"`` (`DATA`): every batch is split over it along its batch axis, the parameters and
  optimiser state are replicated, and XLA sums the gradients across it (data parallelism).

It is ``jax.jit`` with ``NamedSharding``s (GSPMD): the train step is the single-device one;
the only additions are a sharding constraint on each sampled batch (`shard_batch_fn`), a
``spmd_axis_name`` on the vmap over runs (`map_runs`), and the shardings of the jitted
``init``/``run`` (`trainer_shardings`, given to `seqjax.train.compile_trainer`). With one
device, nothing changes. The config section is
``parallel: {data: N | "auto", seeds: N | "auto", seed_batch: k | "auto" | null}``.

Several hosts: call `initialize` (``jax.distributed.initialize``) first in every process;
then ``jax.devices()`` lists the devices of all processes and the mesh spans them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from seqjax.checks import positive_int
from seqjax.train import TrainerShardings, TrainState

__all__ = [
    "DATA",
    "SEEDS",
    "agree_on_path",
    "auto_seed_batch",
    "check_mesh_fits",
    "initialize",
    "is_main_process",
    "make_mesh",
    "map_runs",
    "put_runs",
    "replicated",
    "shard_batch_fn",
    "trainer_shardings",
]

SEEDS = "seeds"
DATA = "data"

ENV = {
    "coordinator": "SEQJAX_COORDINATOR",
    "num_processes": "SEQJAX_NUM_PROCESSES",
    "process_id": "SEQJAX_PROCESS_ID",
}
"""Environment variables read by `initialize` when its arguments are not given."""


def make_mesh(
    data: int | str = 1, seeds: int | str = 1, *, devices: list[Any] | None = None
) -> Mesh:
    """A ``Mesh`` of shape ``[seeds, data]`` over the first ``seeds * data`` devices.

    Args:
      data: devices along the batch (`DATA`), or ``"auto"``: ``len(devices) // seeds``.
      seeds: devices along the runs (`SEEDS`), or ``"auto"``: ``len(devices) // data``.
      devices: default ``jax.devices()`` (all processes' devices).

    Raises:
      ValueError: when both are ``"auto"``, a count is not positive, or more devices are asked
        for than exist.
    """
    devices = list(jax.devices() if devices is None else devices)
    if data == "auto" and seeds == "auto":
        raise ValueError("make_mesh: data and seeds cannot both be 'auto'; fix one to a number")
    for name, value in (("data", data), ("seeds", seeds)):
        if value != "auto":
            positive_int(value, name, "make_mesh", extra=" or 'auto'")
    if data == "auto":
        data = max(len(devices) // seeds, 1)
    if seeds == "auto":
        seeds = max(len(devices) // data, 1)
    if seeds * data > len(devices):
        raise ValueError(
            f"make_mesh: seeds={seeds} x data={data} needs {seeds * data} devices, but "
            f"{len(devices)} exist ({devices[0].platform}); lower parallel.data / parallel.seeds "
            f"or use 'auto'"
        )
    grid = np.asarray(devices[: seeds * data], dtype=object).reshape(seeds, data)
    return Mesh(grid, (SEEDS, DATA))


def check_mesh_fits(mesh: Mesh, *, batch_size: int, num_runs: int | None = None) -> None:
    """Checks that ``mesh`` divides the runs and the batch.

    Args:
      mesh: from `make_mesh`.
      batch_size: sequences per update: a multiple of the `DATA` devices.
      num_runs: the length of the run axis (seeds times grid cells): a multiple of the
        `SEEDS` devices; None: not checked.

    Raises:
      ValueError: naming ``parallel.seeds`` / ``parallel.data`` (the config keys) when one
        does not divide.
    """
    seeds, data = mesh.shape[SEEDS], mesh.shape[DATA]
    if num_runs is not None and num_runs % seeds:
        raise ValueError(
            f"parallel.seeds={seeds} devices must divide the {num_runs} runs (seeds x sweep "
            f"grid); use a divisor of {num_runs}"
        )
    if batch_size % data:
        raise ValueError(
            f"parallel.data={data} devices must divide train.batch_size={batch_size}; use a "
            f"batch size that is a multiple of {data}"
        )


AUTO_SEED_BATCH_MAX_ELEMENTS = 4096
"""`auto_seed_batch` vmaps every run of a device at once up to this many ``runs x batch x
hidden`` elements per device."""


def auto_seed_batch(
    num_runs: int, *, batch_size: int, hidden_size: int, mesh: Mesh | None = None
) -> int | None:
    """How many runs of a recurrent model each device should vmap at once (None: all).

    The rule (``parallel.seed_batch: "auto"``): on the CPU, when one device's runs hold more
    than `AUTO_SEED_BATCH_MAX_ELEMENTS` elements of ``runs x batch x hidden``, groups of 2
    (groups of 1 for an odd count, which would otherwise compile a second program for the
    remainder); otherwise, and on GPUs and TPUs, all at once. Why: XLA:CPU splits the
    element-wise work of larger vmapped steps over its intra-op threads at a loss on small
    CPUs. Measured by experiments/bench_seeds.py (``--seed-batch``); the table is in
    docs/pages/performance.md.
    """
    if jax.default_backend() != "cpu":
        return None
    seed_devices = 1 if mesh is None else mesh.shape[SEEDS]
    data_devices = 1 if mesh is None else mesh.shape[DATA]
    runs = num_runs // seed_devices
    batch = max(batch_size // data_devices, 1)
    if runs <= 1 or runs * batch * hidden_size <= AUTO_SEED_BATCH_MAX_ELEMENTS:
        return None
    return 2 if runs % 2 == 0 else 1


def map_runs(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    *,
    batch: int | None = None,
    mesh: Mesh | None = None,
) -> Any:
    """``fn`` over the leading run axis of every leaf of ``args``: all runs at once
    (``jax.vmap``), or with ``batch``, groups of ``batch`` runs vmapped, one group after
    another (``jax.lax.map``; the config key ``parallel.seed_batch``). Both give the same
    runs; only memory and speed differ.

    With a ``mesh`` the run axis is split over its `SEEDS` axis: the vmap names it
    (``spmd_axis_name``), and with ``batch`` each seed device takes its contiguous share of
    the runs and trains it ``batch`` runs at a time (``jax.shard_map``, manual over `SEEDS`
    only, so `DATA` stays with the compiler).
    """
    axis = None if mesh is None else SEEDS
    if batch is None:
        return jax.vmap(fn, spmd_axis_name=axis)(*args)

    def grouped(*a: Any) -> Any:
        return jax.lax.map(lambda x: fn(*x), a, batch_size=batch)

    if mesh is None:
        return grouped(*args)
    # check_vma=False: the trainer's scans start from carries that do not vary over the
    # axis; every run is independent, so there is nothing for the check to find.
    return jax.shard_map(
        grouped,
        mesh=mesh,
        in_specs=P(SEEDS),
        out_specs=P(SEEDS),
        axis_names=frozenset({SEEDS}),
        check_vma=False,
    )(*args)


def shard_batch_fn(sample_batch: Callable[[jax.Array], Any], mesh: Mesh | None) -> Callable:
    """``sample_batch`` whose batch (every leaf, axis 0) is split over the `DATA` axis.

    Identity when ``mesh`` is None. Under ``jax.vmap(..., spmd_axis_name=SEEDS)`` the run
    axis goes to `SEEDS` as well.
    """
    if mesh is None:
        return sample_batch
    sharding = NamedSharding(mesh, P(DATA))

    def sample(key: jax.Array) -> Any:
        batch = sample_batch(key)
        # Inside `map_runs`'s shard_map (manual over `SEEDS`) the constraint must name the
        # context mesh, whose seed axis is manual there; a bare spec does.
        here = sharding if jax.sharding.get_abstract_mesh().empty else P(DATA)
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, here), batch)

    return sample


def trainer_shardings(mesh: Mesh | None) -> TrainerShardings | None:
    """The shardings of a trainer over a leading run axis on ``mesh`` (None without a mesh),
    for `seqjax.train.compile_trainer`.

    Every leaf's run axis goes on `SEEDS` (replicated over `DATA`). The per-run counters and
    the metrics are small and read by the host loop every chunk: they come back replicated,
    so every process can read them (several hosts). The trainer must map its runs with
    `map_runs` over the same mesh and sample through `shard_batch_fn`.
    """
    if mesh is None:
        return None
    runs = NamedSharding(mesh, P(SEEDS))
    everywhere = NamedSharding(mesh, P())
    state = TrainState(
        params=runs,
        opt_state=runs,
        step=everywhere,
        key=runs,
        bad_steps=everywhere,
        num_skipped=everywhere,
        carry=runs,
    )
    return TrainerShardings(state=state, runs=runs, replicated=everywhere)


def replicated(fn: Callable, mesh: Mesh | None) -> Callable:
    """``fn`` jitted with every output replicated on ``mesh`` (readable by every process),
    e.g. the evaluation of sharded parameters; plain ``jax.jit`` when ``mesh`` is None."""
    if mesh is None:
        return jax.jit(fn)
    return jax.jit(fn, out_shardings=NamedSharding(mesh, P()))


def put_runs(keys: jax.Array, mesh: Mesh | None) -> jax.Array:
    """The run keys ``[runs]`` as one global array split over `SEEDS` (every process passes
    the same keys); unchanged when ``mesh`` is None."""
    if mesh is None:
        return keys
    sharding = NamedSharding(mesh, P(SEEDS))
    data = jax.random.key_data(keys)
    impl = jax.random.key_impl(keys)
    host = np.asarray(data)
    global_data = jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
    return jax.random.wrap_key_data(global_data, impl=impl)


def agree_on_path(path: str | os.PathLike | None) -> Path:
    """Process 0's ``path``, in every process (other processes pass None). One process: the
    path itself."""
    if jax.process_count() == 1:
        return Path(path)
    from jax.experimental import multihost_utils

    size = 4096
    code = np.zeros(size, np.uint8)
    if jax.process_index() == 0:
        raw = os.fsencode(os.fspath(path))
        if len(raw) >= size:
            raise ValueError(f"agree_on_path: path longer than {size - 1} bytes: {path}")
        code[: len(raw)] = np.frombuffer(raw, np.uint8)
    code = np.asarray(multihost_utils.broadcast_one_to_all(code))
    return Path(os.fsdecode(code[code > 0].tobytes()))


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Starts JAX's multi-process runtime (``jax.distributed.initialize``) if asked to.

    Arguments not given are read from `ENV` (``SEQJAX_COORDINATOR=host:port``,
    ``SEQJAX_NUM_PROCESSES``, ``SEQJAX_PROCESS_ID``). On CPU the cross-process collectives
    use gloo. Call it before anything else touches JAX.

    Returns:
      True if the runtime was started, False when no coordinator was given (one process).

    Raises:
      ValueError: when a coordinator is given without the number of processes and the id.
    """
    coordinator = coordinator or os.environ.get(ENV["coordinator"])
    if num_processes is None and os.environ.get(ENV["num_processes"]):
        num_processes = int(os.environ[ENV["num_processes"]])
    if process_id is None and os.environ.get(ENV["process_id"]):
        process_id = int(os.environ[ENV["process_id"]])
    if coordinator is None:
        if num_processes not in (None, 1):
            raise ValueError(
                f"initialize: num_processes={num_processes} needs a coordinator address "
                f"(--coordinator host:port or {ENV['coordinator']})"
            )
        return False
    if num_processes is None or process_id is None:
        raise ValueError(
            f"initialize: coordinator={coordinator!r} also needs num_processes and process_id "
            f"(got {num_processes!r}, {process_id!r}); pass --num-processes and --process-id "
            f"or set {ENV['num_processes']} and {ENV['process_id']}"
        )
    if not 0 <= process_id < num_processes:
        raise ValueError(
            f"initialize: process_id={process_id} must be in [0, num_processes={num_processes})"
        )
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes, process_id)
    return True


def is_main_process() -> bool:
    """True in process 0 (the one that writes run folders); always True with one process."""
    return jax.process_index() == 0
