"""Run folders: atomic writes, the metrics log, and reading a run back.

A run folder holds::

    config.yaml       the resolved config (every default filled in)
    metrics.jsonl     one JSON object per logged step: {"step", "split", "loss", ...}; with
                      several seeds each value is a list with one entry per seed
    tensorboard/      TensorBoard event files: one folder per run, and median/ with several
    summary.json      final metrics, baseline, timings (compilation apart), versions,
                      provenance
    checkpoints/      Orbax checkpoints of the train state
    diagnostics.npz   gradient-flow diagnostics, when the config has a ``diagnostics`` section
    plots/*.png       loss and gradient norm against step

Every file is written atomically (a temporary file in the same folder, then ``os.replace``),
so a run killed at any moment leaves each file either old or new, never half written. The two
logs that grow line by line are the exceptions, and a reader tolerates their torn tail:
`read_metrics` skips a torn last line, TensorBoard a torn last event. On resume from step
``s`` both forget what was logged after ``s`` (`MetricsLog`, `TensorBoardLog`), so each step is
logged once.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CONFIG = "config.yaml"
TENSORBOARD = "tensorboard"


def _jsonable(value: Any) -> Any:
    """NumPy / JAX scalars and arrays to plain Python; NaN and Inf to strings JSON accepts."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf": float("nan") reads them back
    return value


def _umask() -> int:
    """The process's umask, read without changing it where Linux reports it (changing it,
    even for an instant, would race with files other threads create, such as checkpoints)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Writes ``data`` (text or bytes) to ``path`` via a temporary file in the same folder
    and ``os.replace``: a reader sees the old file or the new one, never a torn one.

    The file gets the permissions ``open`` would give it: those of the file it replaces, or
    0o666 less the umask for a new one (a results folder others on the machine can read
    where the umask allows it; the temporary file alone would be private to its owner).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """``obj`` as indented JSON (NumPy values made plain), written with `write_atomic`."""
    write_atomic(path, json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def new_run_dir(root: str | os.PathLike, name: str) -> Path:
    """A fresh folder ``<root>/<name>-<UTC timestamp>`` (suffixed if it exists)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{name}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


def versions() -> dict[str, str]:
    """The versions of Python and of the packages a run's numbers depend on."""
    out = {"python": platform.python_version()}
    for pkg in ("seqjax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


class MetricsLog:
    """Appends one JSON line per logged step to ``metrics.jsonl``, flushed at each write.

    Opening with ``resume_step=s`` first drops lines logged after step ``s`` (they belong to
    work that a resumed run will redo), rewriting the file atomically.
    """

    def __init__(self, run_dir: str | os.PathLike, resume_step: int | None = None):
        self.path = Path(run_dir) / METRICS
        kept = []
        if resume_step is not None and self.path.exists():
            kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= resume_step]
            write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._logged = {(r.get("step"), r.get("split", "train")) for r in kept}
        self._file = open(self.path, "a")

    def logged(self, step: int, split: str) -> bool:
        """Whether the log holds a record of ``split`` at ``step`` (kept or written)."""
        return (step, split) in self._logged

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(_jsonable(record)) + "\n")
        self._file.flush()
        self._logged.add((record.get("step"), record.get("split", "train")))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_labels(seeds: Sequence[int], grid: Sequence[dict[str, Any]]) -> list[str]:
    """A name per run, grid-major like the runs: ``seed=0``, or ``learning_rate=0.01-seed=0``
    under a traced sweep (``grid``: its cells, `seqjax.experiment.sweep.grid_cells`)."""
    labels = []
    for cell in grid or [{}]:
        parts = [f"{key.rsplit('.', 1)[-1]}={value}" for key, value in cell.items()]
        for seed in seeds:
            labels.append(re.sub(r"[^A-Za-z0-9_.=+-]", "_", "-".join([*parts, f"seed={seed}"])))
    return labels


def scalar_tags(record: dict[str, Any], split: str) -> dict[str, Any]:
    """The values of a metrics record by TensorBoard tag: ``train/<name>`` for a training
    record's metrics, ``eval/<name>`` for its ``val_<name>`` entries and for an ``eval``
    record."""
    tags = {}
    for key, value in record.items():
        if key in ("step", "split"):
            continue
        if split == "train" and key.startswith("val_"):
            tags[f"eval/{key[4:]}"] = value
        else:
            tags[f"{split}/{key}"] = value
    return tags


class TensorBoardLog:
    """TensorBoard event files of a run's metrics (tensorboardX: no TensorFlow needed).

    One folder of events per run under ``<run_dir>/tensorboard/`` (``seed=0``, ...; see
    `run_labels`), and ``median/``, the median over runs, when there are several: TensorBoard
    draws every run and the median on one chart per tag (`scalar_tags`).
    ``tensorboard --logdir runs/`` shows every run folder below ``runs/``.

    Args:
      run_dir: the run folder.
      labels: one name per run.
      resume_step: the step a resumed run continues from: each writer starts with
        TensorBoard's purge marker at ``resume_step + 1``, so events an earlier writer logged
        after ``resume_step`` are dropped and each step is shown once.
    """

    def __init__(
        self, run_dir: str | os.PathLike, labels: Sequence[str], resume_step: int | None = None
    ):
        from tensorboardX import SummaryWriter  # on first use: it loads protobuf

        root = Path(run_dir) / TENSORBOARD
        self.num_runs = len(labels)
        names = [*labels, "median"] if self.num_runs > 1 else list(labels)
        purge = None if resume_step is None else resume_step + 1
        self.writers = [SummaryWriter(str(root / name), purge_step=purge) for name in names]

    def write(self, step: int, tags: dict[str, Any]) -> None:
        """Adds one scalar per run (and their median) for each tag: ``tags[tag]`` is a value
        or ``[runs]`` values."""
        for tag, value in tags.items():
            values = np.asarray(value, dtype=np.float64).reshape(-1)
            if values.shape != (self.num_runs,):
                raise ValueError(
                    f"TensorBoardLog.write: {tag} has {values.size} values, expected one per "
                    f"run ({self.num_runs})"
                )
            if self.num_runs > 1:
                values = np.append(values, np.median(values))
            for writer, v in zip(self.writers, values, strict=True):
                writer.add_scalar(tag, float(v), step)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def require_wandb() -> Any:
    """The ``wandb`` module, or a ValueError saying how to install it."""
    try:
        import wandb
    except ImportError:
        raise ValueError(
            "log.wandb is set but wandb is not installed; install it with "
            "pip install 'seqjax[wandb]', or remove log.wandb from the config"
        ) from None
    return wandb


class WandbLog:
    """Logs a run's metrics to one Weights & Biases run.

    Keys are the TensorBoard tags (`scalar_tags`); with several runs, each tag is logged per
    run (``train/loss/seed=0``) and as the median over runs (``train/loss/median``). The W&B
    run's id follows from the run folder's path, so a resumed run continues its W&B run (W&B
    keeps the first value it received for a step).

    Args:
      run_dir: the run folder; W&B's own files go to ``<run_dir>/wandb/``.
      labels: one name per run.
      init: arguments of ``wandb.init`` (``project``, ``entity``, ``mode``, ...).
      config: the resolved config, shown as the W&B run's config.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        labels: Sequence[str],
        init: dict[str, Any],
        config: dict[str, Any],
    ):
        wandb = require_wandb()
        run_dir = Path(run_dir).resolve()
        digest = hashlib.sha1(str(run_dir).encode()).hexdigest()[:10]
        run_id = f"{re.sub(r'[^A-Za-z0-9_-]', '-', run_dir.name)[:50]}-{digest}"
        init = {"name": run_dir.name, **{k: v for k, v in init.items() if v is not None}}
        self.labels = list(labels)
        self.run = wandb.init(
            dir=str(run_dir), id=run_id, resume="allow", config=_jsonable(config), **init
        )

    def write(self, step: int, tags: dict[str, Any]) -> None:
        """Logs ``tags`` (a value or ``[runs]`` values each) at ``step``."""
        data = {}
        for tag, value in tags.items():
            values = np.asarray(value, dtype=np.float64).reshape(-1)
            if len(self.labels) == 1:
                data[tag] = float(values[0])
                continue
            data.update({f"{tag}/{k}": float(v) for k, v in zip(self.labels, values, strict=True)})
            data[f"{tag}/median"] = float(np.median(values))
        self.run.log(data, step=step)

    def close(self) -> None:
        self.run.finish()


def git_commit(path: str | os.PathLike) -> str | None:
    """``git rev-parse HEAD`` of the repository holding ``path`` (a file or a folder); None
    outside a repository, without git, or on any failure: provenance never fails a run."""
    folder = Path(path)
    folder = folder if folder.is_dir() else folder.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit) else None


def utc_now() -> str:
    """The time now, ISO 8601 in UTC (``2026-11-25T12:00:00+00:00``)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl``; a torn last line (a killed writer) is ignored."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def read_summary(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(run_dir) / SUMMARY
    if not path.exists():
        raise FileNotFoundError(f"{path}: no summary.json; is {run_dir} a finished seqjax run?")
    return json.loads(path.read_text())


def series(records: Iterable[dict[str, Any]], key: str, split: str = "train"):
    """Steps ``[N]`` and values ``[N, S]`` (S seeds) of one metric, as float arrays."""
    steps, values = [], []
    for r in records:
        if r.get("split", "train") != split or key not in r:
            continue
        v = r[key]
        v = [float(x) for x in v] if isinstance(v, list) else [float(v)]
        steps.append(r["step"])
        values.append(v)
    if not steps:
        return np.zeros((0,)), np.zeros((0, 1))
    return np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
