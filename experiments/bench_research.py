"""Research throughput end to end: seqjax against idiomatic torch and Flax on seqjax's workloads.

What a researcher waits for is a set of small runs to finish, from the start of the process to
the last evaluation. Each workload is a config of ``configs/`` as it ships, its runs added by
overrides; each implementation does the same work in fresh processes of its own (JAX and torch
never share one), and reports back as JSON.

    .venv/bin/python experiments/bench_research.py               # the four workloads
    .venv/bin/python experiments/bench_research.py --tiny        # seconds: tiny sizes (the test)
    .venv/bin/python experiments/bench_research.py --workloads 2,4 --impls seqjax,flax

Workloads:

1. ``configs/quickstart.yaml``: one run (LSTM, H=64, adding at T=150, 2000 updates);
2. ``configs/adding/lstm.yaml``, 8 seeds;
3. the same, a sweep of 4 learning rates x 8 seeds (32 runs);
4. ``configs/copy_memory/gru.yaml``, 8 seeds.

Implementations:

- ``seqjax``: ``seqjax.run(config, overrides)`` with the config's defaults, in memory (no run
  folder): one CPU device, ``parallel.seed_batch: "auto"``; all runs of a workload (seeds
  times a traced sweep) in one compiled program. ``quickstart.yaml`` also records its
  gradient diagnostics (``diagnostics.every``), work the peers do not do.
- ``seqjax_cores``: the same with one host device per core
  (``--xla_force_host_platform_device_count``) and ``parallel.seeds=auto`` (the runs sharded
  over the cores; ``parallel.data=auto`` when the cores do not divide the runs), the layout
  docs/pages/scaling.md gives for many small runs on a CPU.
- ``torch``: ``torch.nn.LSTM`` / ``GRU`` and ``nn.Linear``, the task drawn with torch ops,
  ``clip_grad_norm_`` and ``torch.optim.Adam``; the runs one after another in one process with
  torch's default threads.
- ``torch_procs``: the same script, the runs split over one process per core, each with
  ``torch.set_num_threads(1)`` (fewer runs than cores: one process per run, the cores shared
  out as threads), the best torch does here with independent runs.
- ``flax``: ``flax.linen.RNN`` over ``OptimizedLSTMCell`` / ``GRUCell`` and ``nn.Dense``, a
  Flax ``TrainState`` with an Optax chain (clip by global norm, Adam), one jitted train step
  that draws its batch inside; a Python loop over the updates and the runs, the optimiser
  made once per learning rate (one compilation each).

Equal work: the peers read every number from the resolved seqjax config (task and its
options, hidden size, dense readout, loss, Adam with its clipping, updates, batch, an
evaluation every ``train.eval_every`` updates and one at the end, each on ``log.eval_batches``
x ``log.eval_batch_size`` held-out sequences); a config that uses anything they do not
implement is an error. Initialisation is each framework's own, so final losses agree in range,
not in value.

Times: ``wall`` from the process spawn to the final evaluation of the last run (imports,
set-up, compilation, training, evaluations; for ``torch_procs`` the slowest process);
``startup`` spawn to imports done; ``compile`` tracing and compilation (seqjax: its
``summary["compile_time_s"]``; Flax: the first update and first evaluation of each compiled
program over the later ones' mean; torch: the same warm-up excess); ``steady`` updates of all
runs per second over the rest. ``--tiny`` runs each implementation's workloads in one process
(to keep the test short), so its wall times are not from a clean start.

Writes ``experiments/results/bench_research.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results" / "bench_research.json"
IMPLS = ("seqjax", "seqjax_cores", "torch", "torch_procs", "flax")
PEERS = ("torch", "torch_procs", "flax")
LEARNING_RATES = (3e-4, 1e-3, 3e-3, 1e-2)
SEEDS = 8
EVAL_SEED = 1_000_003  # the peers' held-out data comes from a seed no run trains with
RESULT_TAG = "BENCH_RESULT "

WORKLOADS: dict[int, dict[str, Any]] = {
    1: {"name": "quickstart, 1 run", "config": "configs/quickstart.yaml", "seeds": 1},
    2: {"name": "adding LSTM, 8 seeds", "config": "configs/adding/lstm.yaml", "seeds": SEEDS},
    3: {
        "name": "adding LSTM, 4 lr x 8 seeds",
        "config": "configs/adding/lstm.yaml",
        "seeds": SEEDS,
        "learning_rates": LEARNING_RATES,
    },
    4: {
        "name": "copy memory GRU, 8 seeds",
        "config": "configs/copy_memory/gru.yaml",
        "seeds": SEEDS,
    },
}

# Tiny sizes for the test: a few updates with an evaluation between, short sequences.
TINY_SEEDS = 2
TINY_LEARNING_RATES = (1e-3, 1e-2)
TINY = [
    "train.steps=4",
    "train.chunk_size=2",
    "train.eval_every=2",
    "train.batch_size=8",
    "model.hidden_size=8",
    "log.eval_batch_size=16",
    "log.eval_batches=2",
]
TINY_TASK = {"adding": ["task.length=10"], "copy_memory": ["task.delay=5", "task.copy_length=3"]}
TINY_CONFIG = {  # keys the tiny sizes must move too, to stay on a chunk
    "configs/quickstart.yaml": ["train.checkpoint.every=2", "diagnostics.every=2"],
}


# Workloads -----------------------------------------------------------------------------------


def workload_overrides(workload: int, *, tiny: bool, steps: int | None) -> list[str]:
    """The ``--set`` overrides that make a workload's runs from its config."""
    spec = WORKLOADS[workload]
    seeds = TINY_SEEDS if tiny and spec["seeds"] > 1 else spec["seeds"]
    out = [f"seeds={list(range(seeds))}"]
    rates = spec.get("learning_rates")
    if rates:
        rates = TINY_LEARNING_RATES if tiny else rates
        out.append(f"sweep={{optimizer.learning_rate: [{', '.join(map(repr, rates))}]}}")
    if tiny:
        task = "copy_memory" if "copy_memory" in spec["config"] else "adding"
        out += TINY + TINY_TASK[task] + TINY_CONFIG.get(spec["config"], [])
    if steps is not None:
        out.append(f"train.steps={steps}")
    return out


def _unsupported(cfg: Any) -> list[str]:
    """What in ``cfg`` the peer scripts do not implement (empty: they do the same work)."""
    from seqjax.experiment.config import ModelConfig

    model, opt, train = cfg.model, cfg.optimizer, cfg.train
    bad = []
    if cfg.task.name not in ("adding", "copy_memory"):
        bad.append(f"task.name={cfg.task.name!r} (peers: adding, copy_memory)")
    if cfg.task.options.get("variable_length"):
        bad.append("task.variable_length=true")
    if model.kind != "recurrent" or model.cell not in ("lstm", "gru"):
        bad.append(f"model {model.kind}/{model.cell} (peers: recurrent lstm, gru)")
    defaults = ModelConfig()
    for key in ("num_layers", "bidirectional", "residual", "dropout", "recurrent_dropout"):
        if getattr(model, key) != getattr(defaults, key):
            bad.append(f"model.{key}={getattr(model, key)!r}")
    for key in ("zoneout", "input_dropout", "output_dropout"):
        if getattr(model, key) != getattr(defaults, key):
            bad.append(f"model.{key}={getattr(model, key)!r}")
    if opt.name != "adam" or opt.weight_decay != 0.0 or opt.schedule.name != "constant":
        bad.append(
            f"optimizer {opt.name}, weight_decay {opt.weight_decay}, schedule "
            f"{opt.schedule.name} (peers: adam, 0, constant)"
        )
    if opt.clip.method not in ("global_norm", "none"):
        bad.append(f"optimizer.clip.method={opt.clip.method!r} (peers: global_norm, none)")
    if train.bptt.mode != "full" or train.early_stopping is not None:
        bad.append("train.bptt.mode other than full, or train.early_stopping")
    if any(key != "optimizer.learning_rate" for key in cfg.sweep):
        bad.append(f"sweep keys {sorted(cfg.sweep)} (peers: optimizer.learning_rate)")
    return bad


def peer_spec(config: str, overrides: list[str]) -> dict[str, Any]:
    """Every number the peer scripts need, read from the resolved seqjax config.

    Raises:
      ValueError: naming the config and what in it the peers do not implement.
    """
    from seqjax.experiment.config import resolve_config
    from seqjax.experiment.sweep import grid_cells
    from seqjax.tasks import get_task

    cfg = resolve_config(ROOT / config, overrides)
    bad = _unsupported(cfg)
    if bad:
        raise ValueError(
            f"{config} with {overrides}: the torch and Flax scripts do not implement "
            f"{'; '.join(bad)}; benchmark a config without them"
        )
    task = get_task(cfg.task.name, **cfg.task.options)
    rates = [
        float(cell.get("optimizer.learning_rate", cfg.optimizer.learning_rate))
        for cell in grid_cells(cfg)
    ]
    clip = cfg.optimizer.clip
    return {
        "task": {"name": cfg.task.name, **cfg.task.options},
        "input_size": task.input_size,
        "output_size": task.output_size,
        "pattern": task.pattern,
        "loss": task.loss,
        "baseline": task.baseline,
        "cell": cfg.model.cell,
        "hidden_size": cfg.model.hidden_size,
        "runs": [[lr, seed] for lr in rates for seed in cfg.seeds],  # grid-major, as seqjax
        "steps": cfg.train.steps,
        "batch_size": cfg.train.batch_size,
        "clip": clip.threshold if clip.method == "global_norm" else None,
        "adam": {"b1": cfg.optimizer.b1, "b2": cfg.optimizer.b2, "eps": cfg.optimizer.eps},
        "eval_every": cfg.train.eval_every,
        "eval_batch_size": cfg.log.eval_batch_size,
        "eval_batches": cfg.log.eval_batches,
        "seqjax_model": {"fast": cfg.model.fast, "remat": cfg.train.bptt.remat},
        "diagnostics": cfg.diagnostics is not None,
    }


# Run timing shared by the peers -------------------------------------------------------------


class RunClock:
    """Times one peer run: the first update (compilation or warm-up in it), the evaluations,
    and the whole; the caller blocks on the device before each mark."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first_step = 0.0
        self.evals: list[float] = []

    def mark_first_step(self) -> None:
        self.first_step = time.perf_counter() - self.start

    def time_eval(self, evaluate: Any) -> float:
        t0 = time.perf_counter()
        loss = float(evaluate())
        self.evals.append(time.perf_counter() - t0)
        return loss

    def finish(self, steps: int) -> dict[str, float]:
        """``total_s``, and ``compile_s``: the first update's excess over the later updates'
        mean plus the first evaluation's over the later evaluations' mean (compilation in
        JAX, warm-up in torch; near 0 for a run whose programs an earlier run compiled)."""
        total = time.perf_counter() - self.start
        rest = total - self.first_step - sum(self.evals)
        per_step = rest / max(steps - 1, 1)
        first_eval_excess = 0.0
        if len(self.evals) > 1:
            first_eval_excess = max(self.evals[0] - statistics.mean(self.evals[1:]), 0.0)
        compile_s = max(self.first_step - per_step, 0.0) + first_eval_excess
        return {"total_s": total, "compile_s": compile_s}


def _run_record(runs: list, clocks: list[dict], losses: list[float], steps: int) -> dict:
    total = sum(c["total_s"] for c in clocks)
    compile_s = sum(c["compile_s"] for c in clocks)
    updates = steps * len(runs)
    return {
        "runs": runs,
        "losses": losses,
        "loop_s": total,
        "compile_s": compile_s,
        "updates": updates,
        "steady_steps_per_s": updates / max(total - compile_s, 1e-9),
    }


# The tasks, drawn as each framework's users draw them -----------------------------------------


def torch_sampler(task: dict[str, Any]) -> Any:
    """``sample(generator, B) -> (inputs [B, T, F], targets)`` of the adding or copy-memory
    task with torch ops, the semantics of ``seqjax.tasks.adding`` / ``copy_memory``."""
    import torch
    import torch.nn.functional as F

    if task["name"] == "adding":  # v ~ U[0, 1]; one marker in each half; target: their sum
        T = task["length"]

        def adding(gen: torch.Generator, B: int) -> tuple[torch.Tensor, torch.Tensor]:
            values = torch.rand(B, T, generator=gen)
            first = torch.randint(0, T // 2, (B,), generator=gen)
            second = torch.randint(T // 2, T, (B,), generator=gen)
            rows = torch.arange(B)
            marker = torch.zeros(B, T)
            marker[rows, first] = 1.0
            marker[rows, second] = 1.0
            return torch.stack([values, marker], dim=-1), (values * marker).sum(1, keepdim=True)

        return adding
    # copy memory: K symbols, delay - 1 blanks, a delimiter, K blanks; the K symbols recalled
    S, K, delay = task["num_symbols"], task["copy_length"], task["delay"]
    total = delay + 2 * K

    def copy_memory(gen: torch.Generator, B: int) -> tuple[torch.Tensor, torch.Tensor]:
        symbols = torch.randint(1, S + 1, (B, K), generator=gen)
        ids = torch.zeros(B, total, dtype=torch.long)
        ids[:, :K] = symbols
        ids[:, K + delay - 1] = S + 1
        targets = torch.zeros(B, total, dtype=torch.long)
        targets[:, total - K :] = symbols
        return F.one_hot(ids, S + 2).float(), targets

    return copy_memory


def jax_sampler(task: dict[str, Any]) -> Any:
    """``sample(key, B) -> (inputs [B, T, F], targets)``: `torch_sampler`'s task in jnp."""
    import jax
    import jax.numpy as jnp

    if task["name"] == "adding":
        T = task["length"]

        def adding(key: jax.Array, B: int) -> tuple[jax.Array, jax.Array]:
            k_val, k_first, k_second = jax.random.split(key, 3)
            values = jax.random.uniform(k_val, (B, T))
            first = jax.random.randint(k_first, (B,), 0, T // 2)
            second = jax.random.randint(k_second, (B,), T // 2, T)
            t = jnp.arange(T)
            marker = (t[None] == first[:, None]) | (t[None] == second[:, None])
            marker = marker.astype(jnp.float32)
            return jnp.stack([values, marker], -1), jnp.sum(values * marker, 1, keepdims=True)

        return adding
    S, K, delay = task["num_symbols"], task["copy_length"], task["delay"]
    total = delay + 2 * K

    def copy_memory(key: jax.Array, B: int) -> tuple[jax.Array, jax.Array]:
        symbols = jax.random.randint(key, (B, K), 1, S + 1)
        ids = jnp.zeros((B, total), jnp.int32).at[:, :K].set(symbols)
        ids = ids.at[:, K + delay - 1].set(S + 1)
        targets = jnp.zeros((B, total), jnp.int32).at[:, total - K :].set(symbols)
        return jax.nn.one_hot(ids, S + 2), targets

    return copy_memory


# torch ---------------------------------------------------------------------------------------


def torch_job(spec: dict[str, Any], runs: list) -> dict[str, Any]:
    """Trains ``runs`` (``[learning_rate, seed]`` pairs) one after another with torch.nn."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    sample = torch_sampler(spec["task"])

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[spec["cell"]]
            self.rnn = rnn(spec["input_size"], spec["hidden_size"], batch_first=True)
            self.head = nn.Linear(spec["hidden_size"], spec["output_size"])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.rnn(x)
            return self.head(out[:, -1] if spec["pattern"] == "many_to_one" else out)

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if spec["loss"] == "mse":
            return F.mse_loss(out, y)
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

    eval_gen = torch.Generator().manual_seed(EVAL_SEED)
    eval_set = [sample(eval_gen, spec["eval_batch_size"]) for _ in range(spec["eval_batches"])]

    def evaluate(model: nn.Module) -> float:
        with torch.no_grad():
            return sum(float(loss_fn(model(x), y)) for x, y in eval_set) / len(eval_set)

    steps, every, adam = spec["steps"], spec["eval_every"], spec["adam"]
    clocks, losses = [], []
    for lr, seed in runs:
        clock = RunClock()
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = Net()
        opt = torch.optim.Adam(
            model.parameters(), lr=lr, betas=(adam["b1"], adam["b2"]), eps=adam["eps"]
        )
        for step in range(1, steps + 1):
            x, y = sample(gen, spec["batch_size"])
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            if spec["clip"] is not None:
                nn.utils.clip_grad_norm_(model.parameters(), spec["clip"])
            opt.step()
            if step == 1:
                clock.mark_first_step()
            if every and step % every == 0:
                clock.time_eval(lambda model=model: evaluate(model))
        losses.append(clock.time_eval(lambda model=model: evaluate(model)))
        clocks.append(clock.finish(steps))
    record = _run_record(runs, clocks, losses, steps)
    record["torch_threads"] = torch.get_num_threads()
    return record


# Flax ----------------------------------------------------------------------------------------


def flax_job(spec: dict[str, Any], runs: list) -> dict[str, Any]:
    """Trains ``runs`` (``[learning_rate, seed]`` pairs) one after another with Flax/Optax."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import optax
    from flax.training import train_state

    sample = jax_sampler(spec["task"])

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            H = spec["hidden_size"]
            cell = nn.OptimizedLSTMCell(H) if spec["cell"] == "lstm" else nn.GRUCell(H)
            out = nn.RNN(cell)(x)
            if spec["pattern"] == "many_to_one":
                out = out[:, -1]
            return nn.Dense(spec["output_size"])(out)

    model = Net()

    def loss_fn(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        out = model.apply(params, x)
        if spec["loss"] == "mse":
            return jnp.mean((out - y) ** 2)
        return optax.softmax_cross_entropy_with_integer_labels(out, y).mean()

    @jax.jit
    def train_step(state: train_state.TrainState, data_key: jax.Array):
        x, y = sample(jax.random.fold_in(data_key, state.step), spec["batch_size"])
        loss, grads = jax.value_and_grad(loss_fn)(state.params, x, y)
        return state.apply_gradients(grads=grads), loss

    eval_loss = jax.jit(loss_fn)
    eval_keys = jax.random.split(jax.random.key(EVAL_SEED), spec["eval_batches"])
    eval_set = [jax.jit(sample, static_argnums=1)(k, spec["eval_batch_size"]) for k in eval_keys]
    init = jax.jit(model.init)

    def evaluate(params: Any) -> float:
        return sum(float(eval_loss(params, x, y)) for x, y in eval_set) / len(eval_set)

    steps, every, adam = spec["steps"], spec["eval_every"], spec["adam"]
    optimizers: dict[float, optax.GradientTransformation] = {}
    clocks, losses = [], []
    x0 = jnp.zeros((1, 2, spec["input_size"]), jnp.float32)
    for lr, seed in runs:
        clock = RunClock()
        if lr not in optimizers:  # one optimiser per learning rate, one compilation each
            chain = [optax.adam(lr, b1=adam["b1"], b2=adam["b2"], eps=adam["eps"])]
            if spec["clip"] is not None:
                chain.insert(0, optax.clip_by_global_norm(spec["clip"]))
            optimizers[lr] = optax.chain(*chain)
        k_init, k_data = jax.random.split(jax.random.key(seed))
        state = train_state.TrainState.create(
            apply_fn=model.apply, params=init(k_init, x0), tx=optimizers[lr]
        )
        for step in range(1, steps + 1):
            state, loss = train_step(state, k_data)
            if step == 1:
                jax.block_until_ready(loss)
                clock.mark_first_step()
            if every and step % every == 0:
                jax.block_until_ready(state)  # the updates dispatched so far, not the eval's
                clock.time_eval(lambda state=state: evaluate(state.params))
        jax.block_until_ready(state)
        losses.append(clock.time_eval(lambda state=state: evaluate(state.params)))
        clocks.append(clock.finish(steps))
    record = _run_record(runs, clocks, losses, steps)
    record["compilations"] = len(optimizers)
    return record


# seqjax --------------------------------------------------------------------------------------


def seqjax_job(job: dict[str, Any]) -> dict[str, Any]:
    """One workload through ``seqjax.run``, in memory."""
    import numpy as np

    import seqjax

    result = seqjax.run(ROOT / job["config"], overrides=job["overrides"], progress=False)
    summary = result.summary
    losses = np.asarray(summary["eval"]["loss"], np.float64).reshape(-1).tolist()
    return {
        "runs": job["spec"]["runs"],
        "losses": losses,
        "loop_s": summary["wall_time_s"],
        "compile_s": summary["compile_time_s"],
        "updates": summary["steps"] * len(losses),
        "steady_steps_per_s": summary["steps_per_s"] * len(losses),
        "seed_batch": summary["seed_batch"],
        "mesh": summary["mesh"],
        "devices": summary["provenance"]["device"],
    }


# Child processes -----------------------------------------------------------------------------


def child_main(impl: str, threads: int | None) -> None:
    """Reads the jobs (JSON) on stdin; prints one tagged JSON line per job as it finishes."""
    jobs = json.loads(sys.stdin.read())
    if impl.startswith("seqjax"):
        import seqjax

        seqjax.xla.configure()  # before JAX starts, as the seqjax command does
        run_job = seqjax_job
    elif impl == "flax":
        import flax.linen  # noqa: F401  (imports timed as start-up)
        import jax  # noqa: F401
        import optax  # noqa: F401

        def run_job(job: dict) -> dict:
            return flax_job(job["spec"], job["runs"])

    elif impl == "torch":
        import torch

        if threads is not None:
            torch.set_num_threads(threads)

        def run_job(job: dict) -> dict:
            return torch_job(job["spec"], job["runs"])

    else:
        raise ValueError(f"--child {impl!r}: expected seqjax, flax or torch")
    ready = time.time()
    cpu_before = 0.0  # the first job's CPU time includes the imports
    for job in jobs:
        record = run_job(job)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime
        record.update(
            workload=job["workload"], t_ready=ready, t_end=time.time(), cpu_s=cpu - cpu_before
        )
        cpu_before = cpu
        print(RESULT_TAG + json.dumps(record), flush=True)


def _launch(impl: str, jobs: list[dict], *, threads: int | None, env: dict) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", impl]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    # stderr to a file, not a pipe: a child never waits on a pipe the parent is not reading.
    err = tempfile.TemporaryFile("w+")
    spawned = time.time()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env, text=True
    )
    proc.stdin.write(json.dumps(jobs))
    proc.stdin.close()
    return {"proc": proc, "spawned": spawned, "err": err}


def _collect(child: dict[str, Any], label: str) -> list[dict]:
    proc, err = child["proc"], child["err"]
    out = proc.stdout.read()
    proc.wait()
    err.seek(0)
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed (exit {proc.returncode}):\n{err.read()[-4000:]}")
    err.close()
    records = [
        json.loads(line[len(RESULT_TAG) :])
        for line in out.splitlines()
        if line.startswith(RESULT_TAG)
    ]
    begin = child["spawned"]
    for record in records:  # a job's time starts at the spawn, or where the one before ended
        record["t_begin"] = begin
        record["t_spawn"] = child["spawned"]
        begin = record["t_end"]
    return records


def start_impl(impl: str, jobs: list[dict], cores: int) -> dict[str, Any]:
    """Starts the processes that run ``jobs`` (one per workload) with ``impl``."""
    env = dict(os.environ)
    if impl == "seqjax_cores":
        flag = f"--xla_force_host_platform_device_count={cores}"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    child = impl.split("_")[0]  # seqjax, torch or flax
    if impl != "torch_procs":
        shares = [[dict(job, runs=job["spec"]["runs"]) for job in jobs]]
        threads = None
    else:
        # One process per core (fewer with fewer runs), the cores shared out as threads.
        procs = min(cores, max(len(job["spec"]["runs"]) for job in jobs))
        threads = max(cores // procs, 1)
        shares = [
            [dict(job, runs=job["spec"]["runs"][i::procs]) for job in jobs] for i in range(procs)
        ]
        shares = [[job for job in share if job["runs"]] for share in shares]
    children = [_launch(child, share, threads=threads, env=env) for share in shares]
    return {"impl": impl, "jobs": jobs, "children": children}


def finish_impl(started: dict[str, Any]) -> dict[int, dict]:
    """Waits for `start_impl`'s processes; their records merged by workload, ``wall_s`` from
    the spawn (or the end of the process's job before) to the final evaluation."""
    impl = started["impl"]
    per_proc = [_collect(child, f"{impl} child") for child in started["children"]]
    merged: dict[int, dict] = {}
    for job in started["jobs"]:
        w = job["workload"]
        parts = [r for records in per_proc for r in records if r["workload"] == w]
        order = {tuple(run): i for i, run in enumerate(job["spec"]["runs"])}
        pairs = sorted(
            (order[tuple(run)], loss)
            for r in parts
            for run, loss in zip(r["runs"], r["losses"], strict=True)
        )
        busy = max(r["loop_s"] - r["compile_s"] for r in parts)
        updates = sum(r["updates"] for r in parts)
        merged[w] = {
            "wall_s": max(r["t_end"] for r in parts) - min(r["t_begin"] for r in parts),
            "startup_s": max(r["t_ready"] - r["t_spawn"] for r in parts),
            "compile_s": sum(r["compile_s"] for r in parts),
            # CPU seconds of its processes (all threads): on a shared machine, steadier than wall
            "cpu_s": sum(r["cpu_s"] for r in parts),
            "load_average_1m_after": os.getloadavg()[0],
            "steady_steps_per_s": updates / max(busy, 1e-9),
            "updates": updates,
            "processes": len(parts),
            "losses": [loss for _, loss in pairs],
            **{
                k: parts[0][k]
                for k in ("seed_batch", "mesh", "devices", "torch_threads", "compilations")
                if k in parts[0]
            },
        }
    return merged


# Report --------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """CPU model, cores, load and the versions the figures depend on (no framework imported)."""
    from seqjax.experiment.runs import versions

    info = versions()
    try:
        info["torch"] = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        info["torch"] = "not installed"
    return {
        "cpu": benchutil.cpu_model(),
        "cores": os.cpu_count(),
        "load_average_1m_at_start": os.getloadavg()[0],
        "versions": info,
    }


def loss_stats(losses: list[float]) -> dict[str, float]:
    finite = [v for v in losses if math.isfinite(v)]
    return {
        "mean": statistics.mean(finite) if finite else math.nan,
        "std": statistics.pstdev(finite) if finite else math.nan,
        "min": min(finite, default=math.nan),
        "max": max(finite, default=math.nan),
        "not_finite": len(losses) - len(finite),
    }


def ratios(results: dict[str, dict]) -> dict[str, dict[str, float]]:
    """``{seqjax impl: {peer: peer wall / seqjax wall}}``: > 1 means seqjax is faster."""
    out = {}
    for mine in ("seqjax", "seqjax_cores"):
        if mine in results:
            out[mine] = {
                peer: results[peer]["wall_s"] / results[mine]["wall_s"]
                for peer in PEERS
                if peer in results
            }
    return out


def print_table(workloads: list[dict]) -> None:
    print(
        f"\n{'workload':28s} {'impl':13s}{'wall s':>8s}{'cpu s':>8s}{'startup':>8s}"
        f"{'compile':>8s}{'steps/s':>8s}  {'eval loss mean +- std':22s}{'x seqjax':>9s}"
    )
    for w in workloads:
        base = w["results"].get("seqjax", {}).get("wall_s")
        for impl, r in w["results"].items():
            loss = f"{r['loss']['mean']:.4g} +- {r['loss']['std']:.2g}"
            ratio = f"{r['wall_s'] / base:.2f}" if base else "-"
            print(
                f"{w['name'][:28]:28s} {impl:13s}{r['wall_s']:8.1f}{r['cpu_s']:8.1f}"
                f"{r['startup_s']:8.1f}{r['compile_s']:8.1f}{r['steady_steps_per_s']:8.0f}  "
                f"{loss:22s}{ratio:>9s}"
            )
    print("(wall: spawn to final evaluation; cpu: of its processes; steps/s: updates of all")
    print(" runs per second after compilation; x seqjax: wall time over seqjax's, above 1 means")
    print(" seqjax is faster)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, seconds (the test)")
    parser.add_argument("--workloads", default="1,2,3,4", help="comma-separated, of 1-4")
    parser.add_argument("--impls", default=",".join(IMPLS), help=f"comma-separated, of {IMPLS}")
    parser.add_argument("--steps", type=int, default=None, help="override train.steps (estimates)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child_main(args.child, args.threads)
        return {}

    try:
        chosen = [int(v) for v in args.workloads.split(",")]
    except ValueError:
        parser.error(f"--workloads {args.workloads!r}: expected comma-separated numbers of 1-4")
    if not chosen or any(w not in WORKLOADS for w in chosen):
        parser.error(f"--workloads {args.workloads!r}: expected numbers of {sorted(WORKLOADS)}")
    impls = [v.strip() for v in args.impls.split(",") if v.strip()]
    if not impls or any(i not in IMPLS for i in impls):
        parser.error(f"--impls {args.impls!r}: expected comma-separated names of {IMPLS}")
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps {args.steps}: expected a positive number of updates")

    cores = os.cpu_count() or 1
    given = sys.argv[1:] if argv is None else argv
    script = os.path.relpath(__file__, ROOT)
    command = shlex.join([os.path.relpath(sys.executable, ROOT), script, *given])
    jobs = []
    for w in chosen:
        overrides = workload_overrides(w, tiny=args.tiny, steps=args.steps)
        config = WORKLOADS[w]["config"]
        jobs.append(
            {
                "workload": w,
                "config": config,
                "overrides": overrides,
                "spec": peer_spec(config, overrides),
            }
        )
    # seqjax_cores shards the runs over the cores where they divide, else each batch.
    cores_jobs = []
    for job in jobs:
        n, batch = len(job["spec"]["runs"]), job["spec"]["batch_size"]
        layout = (
            "parallel.seeds=auto"
            if n % cores == 0
            else ("parallel.data=auto" if batch % cores == 0 else "parallel.seeds=1")
        )
        cores_jobs.append(dict(job, overrides=[*job["overrides"], layout]))

    info = machine_info()
    found = info["versions"]
    print(f"{info['cpu']}, {info['cores']} cores; jax {found['jax']}, torch {found['torch']}")
    result = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "machine": info,
        "tiny": args.tiny,
        "steps_override": args.steps,
        "impls": impls,
        "workloads": [],
    }
    # --tiny: one process per implementation for every workload (a short test); else one
    # set of processes per workload and implementation, each from a clean start.
    batches = [jobs] if args.tiny else [[job] for job in jobs]
    by_workload: dict[int, dict] = {
        job["workload"]: {
            "workload": job["workload"],
            "name": WORKLOADS[job["workload"]]["name"],
            "config": job["config"],
            "overrides": job["overrides"],
            "runs": len(job["spec"]["runs"]),
            "steps": job["spec"]["steps"],
            "spec": job["spec"],
            "results": {},
        }
        for job in jobs
    }

    def keep(impl: str, merged: dict[int, dict]) -> None:
        for w, rec in merged.items():
            rec["loss"] = loss_stats(rec["losses"])
            if impl == "seqjax_cores":
                rec["layout"] = next(j["overrides"][-1] for j in cores_jobs if j["workload"] == w)
            by_workload[w]["results"][impl] = rec
            print(
                f"  workload {w} {impl:12s} wall {rec['wall_s']:8.1f} s, "
                f"eval loss {rec['loss']['mean']:.4g}",
                flush=True,
            )

    for batch in batches:
        ids = {job["workload"] for job in batch}
        started = []
        for impl in impls:
            mine = cores_jobs if impl == "seqjax_cores" else jobs
            started.append(start_impl(impl, [j for j in mine if j["workload"] in ids], cores))
            if not args.tiny:  # one after another: each has the machine to itself
                keep(impl, finish_impl(started.pop()))
        for impl, handle in zip(impls, started, strict=False):  # --tiny: side by side
            keep(impl, finish_impl(handle))
        for w in ids:
            by_workload[w]["ratios"] = ratios(by_workload[w]["results"])
        result["workloads"] = [by_workload[w] for w in chosen if by_workload[w]["results"]]
        result["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        benchutil.write_json(args.out, result)  # after each workload: a long run keeps what it has
    print_table(result["workloads"])
    print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
