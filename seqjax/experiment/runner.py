"""From a config to results: `run` (in memory, or into a run folder), `run_sweep` (one
program after another, or as Ray tasks), `evaluate_run`.

    result = seqjax.run("configs/adding/lstm.yaml", overrides=["train.steps=500"])
    result.params, result.metrics, result.summary   # run_dir: None unless out=... is given

A run trains every run of its config (the seeds, times a traced sweep's grid) in one compiled
program (`seqjax.experiment.Experiment`), from the host in chunks of ``train.chunk_size``
updates (`seqjax.train.fit`): between chunks it logs, evaluates, stops early and
checkpoints. With ``out`` it writes a run folder (`seqjax.experiment.runs`: metrics,
TensorBoard events, checkpoints, a summary with compilation time apart and provenance), and
``run_dir=`` resumes one; without, it writes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from seqjax import xla
from seqjax.cells import CELLS
from seqjax.checks import check_float
from seqjax.experiment.builders import (
    checkpoint_manager_from_config,
    early_stopping_from_config,
    schedule_from_config,
)
from seqjax.experiment.config import (
    CONFIG_SOURCES,
    ExperimentConfig,
    config_to_dict,
    dump_config,
    resolve_config,
)
from seqjax.experiment.program import Experiment
from seqjax.experiment.recorder import Recorder
from seqjax.experiment.report import (
    finished_program,
    plot_runs,
    program_folders,
    write_sweep_report,
)
from seqjax.experiment.runs import (
    CONFIG,
    SUMMARY,
    MetricsLog,
    TensorBoardLog,
    WandbLog,
    git_commit,
    new_run_dir,
    read_summary,
    require_wandb,
    run_labels,
    scalar_tags,
    utc_now,
    versions,
    write_atomic,
    write_json_atomic,
)
from seqjax.experiment.sweep import grid_cells
from seqjax.parallel import agree_on_path, is_main_process, put_runs, replicated
from seqjax.tasks import TASKS
from seqjax.train import checkpoint_manager, fit, restore_checkpoint

__all__ = [
    "LAUNCHERS",
    "CompileClock",
    "ProgramsFailed",
    "RunFinished",
    "RunResult",
    "evaluate_run",
    "parse_shard",
    "run",
    "run_sweep",
]


class RunResult(NamedTuple):
    """What `run` returns.

    Attributes:
      params: the final parameters, every leaf with a leading ``[runs]`` axis (the seeds, or
        ``[grid * seeds]`` grid-major under a traced sweep).
      metrics: every update's training metrics (``loss``, ``grad_norm``, ...) as NumPy arrays
        ``[runs, steps]`` (the steps this call trained, after a resume only the new ones). A
        run that diverged (``train.max_bad_steps`` consecutive non-finite updates) is frozen
        at its last finite parameters and its floating-point metrics are NaN from then on
        (``metrics["diverged"]`` marks those steps; ``summary["diverged"]`` flags the run).
      evals: one record per evaluation during training, ``{"step": s, name: [runs]...}``.
      summary: the final evaluation, the task's baseline, timings, versions (``summary.json``).
      run_dir: the run folder, or None when nothing was written (``out`` not given).
      diagnostics: with a ``diagnostics`` section, the arrays of ``diagnostics.npz``
        (`seqjax.experiment.recorder`); else None.
    """

    params: Any
    metrics: dict[str, np.ndarray]
    evals: list[dict[str, Any]]
    summary: dict[str, Any]
    run_dir: Path | None
    diagnostics: dict[str, np.ndarray] | None = None


class RunFinished(Exception):
    """`run` was asked to resume a run folder whose training is complete; nothing was written.

    Attributes:
      run_dir: the run folder.
      summary: its ``summary.json``.
    """

    def __init__(self, run_dir: Path, summary: dict[str, Any]):
        self.run_dir = run_dir
        self.summary = summary
        super().__init__(
            f"{run_dir} is finished: {summary.get('steps')} steps, stop reason "
            f"{summary.get('stop_reason')!r}; nothing to resume (--set train.steps=N to train "
            f"it further)"
        )


def _resuming(cfg: ExperimentConfig, run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run to continue (False: a new folder). Raises, before
    anything is written, when a run folder cannot or need not be resumed."""
    if not (run_dir / CONFIG).is_file():
        return False
    if (run_dir / SUMMARY).is_file():
        summary = read_summary(run_dir)
        if (
            summary.get("stop_reason") == "early_stopping"
            or summary.get("steps", 0) >= cfg.train.steps
        ):
            raise RunFinished(run_dir, summary)
    if cfg.train.checkpoint is None:
        raise ValueError(
            f"{run_dir}: cannot resume a run without checkpoints (train.checkpoint is not set "
            f"in its {CONFIG}); nothing was written. Train the config again, with --set "
            f"'train.checkpoint={{every: N, keep: K}}' to make a run resumable"
        )
    return True


class CompileClock:
    """Seconds JAX spends tracing, lowering and compiling while the clock is open.

    It adds up the time spans `jax.monitoring` reports for those three stages, counting once a
    span nested in another (a jitted function traced inside another). Nothing is compiled twice
    to time it, and every compilation counts: the first chunk, a shorter last chunk, the
    evaluation.

    Example:
      >>> with CompileClock() as clock:
      ...     jax.jit(f)(x)
      >>> clock.seconds()
    """

    EVENTS = (
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    )

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self._listener = self._record

    def _record(self, event: str, start: float, end: float, **kwargs: Any) -> None:
        del kwargs
        if event in self.EVENTS:
            self.spans.append((start, end))

    def seconds(self) -> float:
        """The length of the union of the spans so far."""
        total, reach = 0.0, -math.inf
        for start, end in sorted(self.spans):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total

    def __enter__(self) -> CompileClock:
        jax.monitoring.register_event_time_span_listener(self._listener)
        return self

    def __exit__(self, *exc: object) -> None:
        jax.monitoring.unregister_event_time_span_listener(self._listener)


def _loss_text(values: Any, diverged: Any = None) -> tuple[str, float]:
    """``"0.1234"``, or the median and range ``"0.1234 [0.1000, 0.2000]"`` over several
    runs (one run's loss can be orders of magnitude off the others'); and the median. Diverged
    runs (``diverged``, one flag per run) are left out and counted."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    gone = np.zeros(values.shape, bool)
    if diverged is not None:
        gone = np.broadcast_to(np.asarray(diverged, dtype=bool).reshape(-1), values.shape)
    finite = values[np.isfinite(values) & ~gone]
    if finite.size == 0:
        return "nan", math.nan
    median = float(np.median(finite))
    if values.size == 1:
        return f"{median:.4f}", median
    text = f"{median:.4f} [{np.min(finite):.4f}, {np.max(finite):.4f}]"
    if gone.any():
        text += f" ({int(gone.sum())} diverged)"
    if finite.size < values.size - int(gone.sum()):
        text += f" ({values.size - int(gone.sum()) - finite.size} not finite)"
    return text, median


class _Progress:
    """A tqdm bar on a terminal or in a notebook; elsewhere (a log file, a pipe) one plain line
    per logged chunk on stderr, without carriage returns. Steps per second and the time left
    count compiled steps only: time spent compiling is taken out."""

    def __init__(self, name: str, total: int, initial: int, enabled: bool, baseline: float):
        self.name, self.total, self.initial, self.baseline = name, total, initial, baseline
        self.bar = None
        self.plain = False
        if not enabled:
            return
        from tqdm import auto, autonotebook, std

        notebook = autonotebook.tqdm is not std.tqdm  # tqdm.auto picked the notebook widget
        if notebook or sys.stderr.isatty():
            self.bar = auto.tqdm(
                total=total,
                initial=initial,
                unit="step",
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
            )
        else:
            self.plain = True

    def update(self, step: int, loss: Any, rate: float, logged: bool, diverged: Any = None) -> None:
        if self.bar is None and not (self.plain and logged):
            return
        from tqdm.std import tqdm

        text, median = _loss_text(loss, diverged)
        left = "?" if rate <= 0 else tqdm.format_interval((self.total - step) / rate)
        ratio = f"{median / self.baseline:.3f}" if self.baseline else "n/a"
        if self.bar is not None:
            self.bar.set_postfix_str(
                f"{rate:.0f} steps/s, ETA {left}, loss {text}, vs baseline {ratio}", refresh=False
            )
            self.bar.update(step - self.bar.n)
        else:
            print(
                f"{self.name}: step {step}/{self.total} | loss {text} | vs baseline {ratio} | "
                f"{rate:.0f} steps/s | ETA {left}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _learning_rates(cfg: ExperimentConfig) -> Callable[[np.ndarray], list[float]]:
    """``counts [runs] -> [runs]``: each run's learning rate (``optimizer.schedule`` with the
    run's peak: the config's, or its grid cell's under a sweep of the learning rate) at its
    optimiser's update count."""
    peaks = [
        float(cell.get("optimizer.learning_rate", cfg.optimizer.learning_rate))
        for cell in grid_cells(cfg)
        for _ in cfg.seeds
    ]
    schedules = {
        peak: jax.jit(jax.vmap(schedule_from_config(cfg.optimizer.schedule, peak)))
        for peak in set(peaks)
    }

    def rates(counts: np.ndarray) -> list[float]:
        counts = jnp.asarray(counts, jnp.int32)
        values = {peak: np.asarray(fn(counts)) for peak, fn in schedules.items()}
        return [float(values[peak][i]) for i, peak in enumerate(peaks)]

    return rates


def run(
    config: CONFIG_SOURCES,
    *,
    overrides: Sequence[str] = (),
    out: str | os.PathLike | None = None,
    progress: bool = True,
    run_dir: str | os.PathLike | None = None,
    command: str | None = None,
) -> RunResult:
    """Trains a config and returns its results; with ``out``, also writes a run folder.

    Args:
      config: a YAML file's path, a dict of sections, or an `ExperimentConfig`.
      overrides: ``KEY=VALUE`` strings, as ``--set`` takes them (``"train.steps=500"``).
      out: the parent of a new run folder ``<out>/<name>-<timestamp>`` (config, metrics,
        TensorBoard events, checkpoints, diagnostics, summary, plots); None: nothing is written
        (the config's ``train.checkpoint`` and ``log.wandb`` are not used; diagnostics are
        kept in memory).
      progress: show progress (and the config's ``log.progress`` allows it): a bar on a
        terminal or in a notebook, else one line per logged chunk on stderr.
      run_dir: a run folder to resume from its latest checkpoint (what it logged after that
        step is dropped and logged again, once), or a new folder to write; takes the place of
        ``out``.
      command: the command line that started the run, for ``summary.json`` (the CLI passes
        it; None from Python).

    Returns:
      A `RunResult`.

    Raises:
      ConfigError, ValueError: for a bad config, for ``log.wandb`` without wandb installed,
        or for a ``run_dir`` that cannot be resumed (no checkpoints): before anything is
        written or compiled.
      RunFinished: ``run_dir`` is a finished run (its summary's steps reach ``train.steps``,
        or it stopped early); nothing is written.
    """
    started = utc_now()
    cfg = resolve_config(config, overrides)
    program = Experiment(cfg)  # every config error is raised here, before anything is written
    if cfg.log.wandb is not None:
        require_wandb()
    resuming = run_dir is not None and _resuming(cfg, Path(run_dir))
    main = is_main_process()  # several hosts: process 0 writes the folder, all checkpoint
    folder: Path | None = None
    log_dir: Path | None = None
    if run_dir is not None or out is not None:
        if run_dir is None:
            run_dir = agree_on_path(new_run_dir(out, cfg.name) if main else None)
        folder = Path(run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        log_dir = folder if main else Path(tempfile.mkdtemp(prefix="seqjax-process-"))
        write_atomic(log_dir / CONFIG, dump_config(cfg))
    trainer = program.trainer
    keys = put_runs(program.run_keys(), program.mesh)
    eval_fn = replicated(program.runs_eval_fn(), program.mesh)
    manager = None
    if folder is not None and cfg.train.checkpoint is not None:
        manager = checkpoint_manager_from_config(cfg.train.checkpoint, folder / "checkpoints")
    resume_step = None if manager is None else manager.latest_step()
    # A run killed before its first checkpoint starts again from step 0, its logs emptied.
    log_from = 0 if resuming and resume_step is None else resume_step
    recorder = None
    if cfg.diagnostics is not None:
        recorder = Recorder(program, log_dir, resume_step)
        if recorder.active and resume_step is None:
            recorder.record(0, trainer.init(keys)[0].params)
    baseline = program.task.baseline
    bar = _Progress(
        cfg.name, cfg.train.steps, resume_step or 0, progress and cfg.log.progress, baseline
    )
    log_every = cfg.log.every or cfg.train.chunk_size
    labels = run_labels(cfg.seeds, grid_cells(cfg))
    learning_rates = _learning_rates(cfg)
    log = None
    sinks: list[Any] = []  # TensorBoard, W&B: each gets ``write(step, tags)``
    if log_dir is not None:
        log = MetricsLog(log_dir, resume_step=log_from)
        if cfg.log.tensorboard and main:
            sinks.append(TensorBoardLog(log_dir, labels, resume_step=log_from))
    if folder is not None and cfg.log.wandb is not None and main:
        init = dataclasses.asdict(cfg.log.wandb)
        sinks.append(WandbLog(folder, labels, init, config_to_dict(cfg)))
    pending: dict[str, Any] = {}
    evaluated: set[int] = set()  # steps whose evaluation went to the sinks

    def log_fn(step: int, record: dict[str, Any]) -> None:
        pending[step] = record  # logged by on_chunk, which also gets the train state

    def on_chunk(step: int, state: Any) -> None:
        record = pending.pop(step)
        counts = np.asarray(state.step) - np.asarray(state.num_skipped)  # updates applied
        record["learning_rate"] = learning_rates(np.maximum(counts - 1, 0))  # the last one's
        logged = step % log_every == 0 or step == cfg.train.steps
        if logged:
            if log is not None:
                log.write({"step": step, "split": "train", **record})
            tags = scalar_tags(record, "train")
            for sink in sinks:
                sink.write(step, tags)
            if any(k.startswith("eval/") for k in tags):
                evaluated.add(step)
        compiled = time.perf_counter() - start - clock.seconds()
        rate = (step - (resume_step or 0)) / max(compiled, 1e-9)
        bar.update(step, record["loss"], rate, logged, record.get("diverged"))
        if recorder is not None:
            recorder.on_chunk(step, state)

    start = time.perf_counter()
    try:
        with CompileClock() as clock:
            result = fit(
                trainer,
                keys,
                cfg.train.steps,
                chunk_size=cfg.train.chunk_size,
                max_bad_steps=cfg.train.max_bad_steps,
                eval_fn=eval_fn if cfg.train.eval_every is not None else None,
                eval_every=cfg.train.eval_every,
                early_stopping=early_stopping_from_config(cfg.train.early_stopping),
                checkpoints=manager,
                checkpoint_every=None
                if cfg.train.checkpoint is None
                else cfg.train.checkpoint.every,
                log_fn=log_fn,
                on_chunk=on_chunk,
            )
            bar.close()
            final_eval = jax.device_get(eval_fn(result.state.params))
            step = int(np.max(np.asarray(result.state.step)))
            if log is not None and not log.logged(step, "eval"):
                log.write({"step": step, "split": "eval", **final_eval})
                if step not in evaluated:
                    for sink in sinks:
                        sink.write(step, scalar_tags(final_eval, "eval"))
            if recorder is not None:
                recorder.finish(step, result.state.params)
            wall = time.perf_counter() - start
            compile_s = clock.seconds()
    finally:
        bar.close()
        if log is not None:
            log.close()
        for sink in sinks:
            sink.close()

    trained = step - (resume_step or 0)
    summary = {
        "name": cfg.name,
        "task": program.task.name,
        "model": cfg.model.cell if cfg.model.kind == "recurrent" else cfg.model.kind,
        "hidden_size": cfg.model.hidden_size,
        "pattern": program.task.pattern,
        "steps": step,
        "seeds": list(cfg.seeds),
        "sweep": grid_cells(cfg) if cfg.sweep else None,  # runs are grid-major [grid * seeds]
        "stop_reason": result.stop_reason,
        # Per run: frozen after train.max_bad_steps consecutive non-finite updates.
        "diverged": np.atleast_1d(np.asarray(result.diverged, bool)).tolist(),
        "resumed_from": result.resumed_from,
        "baseline": baseline,
        "loss_name": program.task.loss,
        "metric": "accuracy" if program.task.loss == "cross_entropy" else "loss",
        "eval": final_eval,
        "eval_vs_baseline": float(np.mean(final_eval["loss"]) / baseline) if baseline else None,
        "skipped_steps": np.asarray(result.state.num_skipped).tolist(),
        "wall_time_s": wall,
        # Tracing and compiling, apart (CompileClock); steps/s counts the rest of the time.
        "compile_time_s": compile_s,
        "steps_per_s": trained / (wall - compile_s) if trained and wall > compile_s else 0.0,
        "num_params": int(sum(np.prod(p.shape[1:]) for p in jax.tree.leaves(result.state.params))),
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.default_backend(),
        # How the runs were laid out, which the timings above depend on (not the values).
        "mesh": None if program.mesh is None else dict(program.mesh.shape),
        "seed_batch": program.seed_batch,
        "versions": versions(),
        "provenance": {
            "seqjax": versions()["seqjax"],
            "git_commit": git_commit(config if isinstance(config, str | os.PathLike) else "."),
            "command": command,
            "overrides": list(overrides),
            "host": socket.gethostname(),
            "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
            "started": started,
            "finished": utc_now(),
        },
    }
    if recorder is not None:
        summary["diagnostics"] = recorder.status
    if log_dir is not None:
        write_json_atomic(log_dir / "summary.json", summary)
    if folder is not None and cfg.log.plots and main:
        runs = [(cfg.name, folder, summary)]
        plot_runs(runs, "loss", folder / "plots" / "loss.png", log=True)
        plot_runs(runs, "grad_norm", folder / "plots" / "grad_norm.png", log=True)
    diagnostics = None if recorder is None else recorder.arrays()
    return RunResult(
        result.state.params, result.metrics, result.evals, summary, folder, diagnostics
    )


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)``, with ``n >= 1`` and ``0 <= i < n``.

    Raises:
      ValueError: naming ``shard``, the text received and the form expected.
    """
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if match is None:
        raise ValueError(
            f"shard: expected i/n with whole numbers 0 <= i < n (e.g. 0/4), got {text!r}"
        )
    i, n = int(match[1]), int(match[2])
    if n < 1 or i >= n:
        raise ValueError(f"shard: expected i/n with 0 <= i < n and n >= 1 (e.g. 0/4), got {text!r}")
    return i, n


def _sweep_root(
    cfg: ExperimentConfig, text: str, sweep_dir: Path, *, must_exist: bool, main: bool
) -> None:
    """Makes ``sweep_dir`` a folder of this sweep: writes its ``config.yaml`` when it has
    none (atomically, so shards starting together write the same file whole) and checks an
    existing one is this sweep's."""
    config = sweep_dir / CONFIG
    if not config.is_file():
        if must_exist:
            raise FileNotFoundError(
                f"resume {sweep_dir}: not a sweep folder (no {CONFIG}); give the folder "
                f"`seqjax sweep` wrote (runs/<name>-sweep-<timestamp>)"
            )
        if main:
            write_atomic(config, text)
    theirs = dump_config(resolve_config(config)) if config.is_file() else text
    if theirs != text:
        raise ValueError(
            f"{sweep_dir}: its {CONFIG} is another sweep's config than the one given; resume a "
            f"sweep (or add a shard to it) with the config it was started with (seqjax sweep "
            f"--resume {sweep_dir} reads it from the folder), or write to a new --dir"
        )


def _has_checkpoint(folder: Path) -> bool:
    """Whether ``folder/checkpoints`` holds a saved step (Orbax names each by its step)."""
    ckpt = folder / "checkpoints"
    return ckpt.is_dir() and any(p.is_dir() and p.name.isdigit() for p in ckpt.iterdir())


def _clear(folder: Path) -> None:
    """Removes a program folder left without a result: renamed away first (atomic), so the
    folder is either whole or gone, then deleted."""
    trash = folder.with_name(f".{folder.name}.cleared-{os.getpid()}-{time.time_ns()}")
    os.replace(folder, trash)
    shutil.rmtree(trash)


LAUNCHERS = ("local", "ray")
"""How `run_sweep` trains a sweep's programs: ``"local"``, one after another in this process;
``"ray"``, each as a Ray task on a Ray cluster."""


class ProgramsFailed(RuntimeError):
    """Programs of a sweep trained by the Ray launcher failed; the others finished and are
    kept, and no sweep report was written.

    Attributes:
      sweep_dir: the sweep folder.
      errors: the folder name of each failed program -> its error: Ray's error for the task,
        whose ``str`` holds the worker's traceback and whose ``cause`` (when the task raised)
        is the exception raised there.
    """

    def __init__(self, sweep_dir: Path, errors: dict[str, BaseException], total: int):
        self.sweep_dir = sweep_dir
        self.errors = errors
        lines = []
        for name, error in errors.items():
            cause = getattr(error, "cause", None) or error
            text = str(cause).strip().splitlines() or [""]
            lines.append(f"  {name}: {type(cause).__name__}: {text[0]}")
        super().__init__(
            f"{len(errors)} of {total} programs trained on Ray failed (finished programs are "
            f"kept in {sweep_dir}):\n" + "\n".join(lines) + f"\nseqjax sweep --resume {sweep_dir} "
            f"trains the failed ones again; seqjax report {sweep_dir} reports the finished ones"
        )


def _require_ray() -> Any:
    """The ``ray`` module, or a ValueError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError(
            "the ray launcher needs Ray, which is not installed; install it with "
            "pip install 'seqjax[ray]', or use the local launcher"
        ) from None
    return ray


@contextlib.contextmanager
def _ray_session(ray: Any, address: str | None) -> Iterator[None]:
    """Ray as this process already has it, or connected to ``address`` (None: Ray's own rule,
    ``RAY_ADDRESS`` or a cluster started here, else a new local instance) for the block."""
    if ray.is_initialized():
        if address is not None:
            raise ValueError(
                f"run_sweep: ray_address={address!r}, but Ray is already initialized in this "
                f"process; leave ray_address out to use that cluster, or call ray.shutdown() first"
            )
        yield
        return
    with warnings.catch_warnings():
        # Ray starts its local processes by fork and exec (subprocess); the child runs no JAX
        # code, so JAX's warning about forking a process that uses JAX does not apply.
        warnings.filterwarnings(
            "ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning
        )
        ray.init(address=address)
    try:
        yield
    finally:
        ray.shutdown()


def _worker_imports(programs: Iterable[ExperimentConfig]) -> list[tuple[str, str]]:
    """The modules outside seqjax that registered the cells and tasks ``programs`` name (the
    command's ``--import``), each with the folder it was imported from: a Ray worker imports
    them before it reads its config.

    Raises:
      ValueError: such a cell or task is defined in ``__main__`` (a script), which a worker
        cannot import.
    """
    found = {}
    for program in programs:
        named = [("task", TASKS, program.task.name)]
        if program.model.kind == "recurrent":
            named.append(("cell", CELLS, program.model.cell))
        for what, registry, name in named:
            module = getattr(registry[name], "__module__", None) or "seqjax"
            if module == "seqjax" or module.startswith("seqjax."):
                continue
            file = getattr(sys.modules.get(module), "__file__", None)
            if file is None:
                raise ValueError(
                    f"run_sweep: {what} {name!r} is defined in {module}, which a Ray worker "
                    f"cannot import; define it in a module file (--import MODULE) to train it "
                    f"with the ray launcher"
                )
            path = Path(file).resolve()
            depth = module.count(".") + (path.name == "__init__.py")
            found[module] = str(path.parents[depth])
    return sorted(found.items())


def _train_on_worker(
    config: dict[str, Any], run_dir: str, progress: bool, imports: list[tuple[str, str]]
) -> str:
    """One program of a sweep, in a Ray worker: trains ``config`` into ``run_dir`` as the
    local launcher does (`run`); returns the worker's host name."""
    # A worker is a fresh process running only this program, as the command is: the same
    # XLA:CPU flags, before JAX starts a backend here (`seqjax.xla`).
    xla.configure(warn=False)
    for module, folder in imports:
        if folder not in sys.path:
            sys.path.append(folder)
        importlib.import_module(module)
    run(config, run_dir=run_dir, progress=progress)
    return socket.gethostname()


def _train_on_ray(
    ray: Any,
    todo: list[tuple[ExperimentConfig, Path]],
    *,
    num_cpus: float,
    num_gpus: float,
    progress: bool,
) -> dict[str, BaseException]:
    """Trains each ``(program, folder)`` as a Ray task and waits for all of them.

    Tasks are not retried: a retry could write into a folder that a task Ray lost track of
    is still writing; a failed program is trained again by resuming the sweep.

    Returns:
      The errors of the programs that failed, by folder name in grid order (empty when none
      did).
    """
    imports = _worker_imports(program for program, _ in todo)
    task = ray.remote(_train_on_worker)
    refs = {}
    for program, folder in todo:
        options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_retries": 0}
        ref = task.options(name=folder.name, **options).remote(
            yaml.safe_load(dump_config(program)), str(folder.absolute()), progress, imports
        )
        refs[ref] = (program, folder)
    errors: dict[str, BaseException] = {}
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            program, folder = refs[done[0]]
            try:
                host = ray.get(done[0])
            except ray.exceptions.RayError as e:
                errors[folder.name] = e
                outcome = "failed"
            else:
                outcome = f"finished on {host}"
                if not finished_program(folder, program):
                    errors[folder.name] = FileNotFoundError(
                        f"{folder}: trained on the Ray node {host}, but its {SUMMARY} is not "
                        f"there on this machine; the sweep folder must be on a file system "
                        f"every Ray node shares"
                    )
                    outcome = "missing here"
            if progress:
                count = len(refs) - len(pending)
                print(f"[{count}/{len(refs)}] {folder.name}: {outcome}", file=sys.stderr)
    finally:
        for ref in pending:  # interrupted: no task goes on writing behind a later resume
            ray.cancel(ref, force=True)
    return dict(sorted(errors.items()))  # grid order


def run_sweep(
    config: CONFIG_SOURCES,
    *,
    overrides: Sequence[str] = (),
    out: str | os.PathLike = "runs",
    progress: bool = True,
    sweep_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    shard: tuple[int, int] | str | None = None,
    launcher: str = "local",
    ray_address: str | None = None,
    ray_num_cpus: float | None = None,
    ray_num_gpus: float | None = None,
) -> Path:
    """Runs the programs of a config's ``sweep`` and writes a report.

    Writes a sweep folder: its ``config.yaml``, one run folder per program (``00-...``,
    ``01-...``, each as `run` writes it, with a leading ``[grid * seeds]`` axis on its
    metrics, see `seqjax.experiment.sweep`), ``sweep.json`` (one row per grid cell and
    program), ``report.md`` and ``plots/sweep.png`` (final metric against a swept value).

    Writing into a folder that already holds this sweep (``resume``, or an existing
    ``sweep_dir``) redoes nothing finished: a program whose ``summary.json`` reaches
    ``train.steps`` (or stopped early) is kept as it is; one with a saved checkpoint is
    resumed from it (`run` with ``run_dir``); any other program folder (interrupted before a
    checkpoint, or trained without checkpoints) is removed (renamed away, then deleted) and
    trained from step 0.

    With ``launcher="ray"``, this process connects to a Ray cluster, prepares the folder as
    above and trains each program left to train as one Ray task (`run`, the same folder as
    the local launcher writes), all at once as the cluster's CPUs allow; the sweep folder must
    be on a file system every Ray node shares. A task is not retried: when programs fail,
    the others are kept, no report is written and `ProgramsFailed` names each failed program
    with its error; resuming the sweep trains them again.

    Args:
      config: a YAML file's path, a dict of sections, or an `ExperimentConfig`, with a sweep.
      overrides: ``KEY=VALUE`` strings, as ``--set`` takes them.
      out: the parent of a new sweep folder ``<out>/<name>-sweep-<timestamp>``.
      progress: show each program's progress.
      sweep_dir: the sweep folder itself, made if missing, continued if it holds this sweep;
        takes the place of ``out``. Every shard of a sweep is given the same one.
      resume: an existing sweep folder to finish; its ``config.yaml`` must be this sweep's.
      shard: ``(i, n)`` or ``"i/n"``: run only the programs whose grid index is ``i`` mod
        ``n``, into ``sweep_dir`` (or ``resume``), and write no report; ``seqjax report``
        (`seqjax.experiment.report.write_sweep_folder_report`) merges the shards. Works with
        either launcher.
      launcher: one of `LAUNCHERS`: ``"local"``, the programs one after another in this
        process; ``"ray"``, as Ray tasks (needs ``pip install 'seqjax[ray]'``; start the sweep
        from one process, not under ``jax.distributed``).
      ray_address: the Ray cluster (``ray.init(address=...)``); None: the cluster this
        process is already connected to, else Ray's own rule (``RAY_ADDRESS``, a cluster
        started on this machine, or a new local instance, shut down at the end).
      ray_num_cpus: the CPUs each task asks Ray for (default 1), so that a node runs at most
        its CPUs / ``ray_num_cpus`` programs at once.
      ray_num_gpus: the GPUs each task asks Ray for (default 0); on GPU nodes give 1, so that
        each program has a GPU of its own (Ray sets ``CUDA_VISIBLE_DEVICES``).

    Returns:
      The sweep folder.

    Raises:
      ValueError: no sweep section; a bad ``shard``, or one without ``sweep_dir``; a folder
        holding another sweep's config (naming the folder); a bad ``launcher``, ``ray_*``
        options without ``launcher="ray"``, Ray not installed: before anything is trained.
      FileNotFoundError: ``resume`` is not a sweep folder.
      ProgramsFailed: with ``launcher="ray"``, programs failed (the others are kept).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"run_sweep: launcher must be one of {LAUNCHERS}, got {launcher!r}")
    ray_options = {
        "ray_address": ray_address,
        "ray_num_cpus": ray_num_cpus,
        "ray_num_gpus": ray_num_gpus,
    }
    given_options = [name for name, value in ray_options.items() if value is not None]
    if launcher != "ray" and given_options:
        raise ValueError(
            f"run_sweep: launcher={launcher!r} takes no Ray options, got "
            f"{', '.join(given_options)}; add launcher='ray' (--launcher ray) or drop them"
        )
    num_cpus = 1.0 if ray_num_cpus is None else ray_num_cpus
    num_cpus = check_float("run_sweep", "ray_num_cpus", num_cpus, 0, math.inf, low_open=True)
    num_gpus = 0.0 if ray_num_gpus is None else ray_num_gpus
    num_gpus = check_float("run_sweep", "ray_num_gpus", num_gpus, 0, math.inf, high_open=True)
    ray = _require_ray() if launcher == "ray" else None
    cfg = resolve_config(config, overrides)
    if not cfg.sweep:
        raise ValueError("run_sweep: the config has no sweep section; use seqjax.run")
    if resume is not None and sweep_dir is not None and Path(resume) != Path(sweep_dir):
        raise ValueError(
            f"run_sweep: resume={resume} and sweep_dir={sweep_dir} name different folders; give one"
        )
    if isinstance(shard, str):
        shard = parse_shard(shard)
    if shard is not None:
        index, count = shard
        if not (isinstance(index, int) and isinstance(count, int) and 0 <= index < count):
            raise ValueError(f"run_sweep: shard must be (i, n) with 0 <= i < n, got {shard!r}")
        if sweep_dir is None and resume is None:
            raise ValueError(
                "run_sweep: a shard needs sweep_dir (the sweep folder every shard writes "
                "into; `seqjax sweep --shard i/n --dir DIR`)"
            )
    programs = program_folders(cfg, Path("."))
    for _, program, _ in programs:  # every error before anything is written or trained
        Experiment(program)
    if ray is not None:
        _worker_imports(program for _, program, _ in programs)
        if jax.process_count() > 1:
            raise ValueError(
                f"run_sweep: launcher='ray' trains each program in a Ray worker, but this is "
                f"one of {jax.process_count()} jax.distributed processes; start the sweep from "
                f"one process"
            )
    with contextlib.ExitStack() as stack:
        if ray is not None:  # a cluster that cannot be reached fails here, before any write
            stack.enter_context(_ray_session(ray, ray_address))
        main = is_main_process()  # several hosts: process 0 writes, every process trains
        given = resume if resume is not None else sweep_dir
        if given is None:
            root = agree_on_path(new_run_dir(out, f"{cfg.name}-sweep") if main else None)
            if main:
                write_atomic(root / CONFIG, dump_config(cfg))
        else:
            root = Path(given)
            if main:
                root.mkdir(parents=True, exist_ok=True)
            _sweep_root(cfg, dump_config(cfg), root, must_exist=resume is not None, main=main)
        folders, todo = [], []
        for i, (values, program, where) in enumerate(programs):
            if shard is not None and i % shard[1] != shard[0]:
                continue
            folder = root / where.name
            folders.append((values, program, folder))
            if finished_program(folder, program):
                continue  # kept as it is
            resumable = program.train.checkpoint is not None and _has_checkpoint(folder)
            if folder.exists() and not resumable and main:
                _clear(folder)  # interrupted before any checkpoint: trained again from step 0
            if ray is None:
                run(program, run_dir=folder, progress=progress)
            else:
                todo.append((program, folder))
        if todo:
            options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "progress": progress}
            errors = _train_on_ray(ray, todo, **options)
            if errors:
                raise ProgramsFailed(root, errors, len(todo))
    if main and shard is None:
        write_sweep_report(root, folders)
    return root


def evaluate_run(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Evaluates the latest checkpoint of a run folder with its own config.

    Returns:
      ``{"step": s, "loss": [...], ...}``, one value per run for each metric.
    """
    run_dir = Path(run_dir)
    cfg = resolve_config(run_dir / CONFIG)
    ckpt_dir = run_dir / "checkpoints"
    if not ckpt_dir.is_dir():
        raise FileNotFoundError(
            f"{run_dir}: no checkpoints/ folder; evaluation needs a run trained with "
            f"train.checkpoint set"
        )
    program = Experiment(cfg)
    template, _ = program.trainer.init(program.run_keys())
    manager = checkpoint_manager(ckpt_dir, every=1, keep=1_000_000)
    state, _ = restore_checkpoint(manager, template)
    values = jax.device_get(jax.jit(program.runs_eval_fn())(state.params))
    step = int(np.max(np.asarray(state.step)))
    return {"step": step, **{k: np.round(np.asarray(v), 5).tolist() for k, v in values.items()}}
