"""Run folders: atomic writes, the metrics log, and reading a run back.

A run folder holds::

    config.yaml       the resolved config (every default filled in)
    metrics.jsonl     one JSON object per logged step: {"step", "split", "loss", ...}; with
                      several seeds each value is a list with one entry per seed
    summary.json      final metrics, baseline, wall time, steps/s, versions, device
    checkpoints/      Orbax checkpoints of the train state
    diagnostics.npz   gradient-flow diagnostics, when the config has a ``diagnostics`` section
    plots/*.png       loss and gradient norm against step

Every file is written atomically (a temporary file in the same folder, then ``os.replace``),
so a run killed at any moment leaves each file either old or new, never half written.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
import platform
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CONFIG = "config.yaml"


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


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Writes ``data`` (text or bytes) to ``path`` via a temporary file in the same folder
    and ``os.replace``: a reader sees the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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
        if resume_step is not None and self.path.exists():
            kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= resume_step]
            write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._file = open(self.path, "a")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(_jsonable(record)) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
