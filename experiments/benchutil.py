"""What the benchmark scripts share: the CPU's model name and writing their JSON results.

Imported by the scripts beside it (each puts this folder on ``sys.path``, as they run as
plain scripts); it imports no framework, so a parent process that spawns the measured
children stays light.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; `platform.processor` where that is absent)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        return platform.processor()


def write_json(path: str | Path, obj: Any) -> Path:
    """Writes ``obj`` as indented JSON to ``path`` atomically (its folder created); the path."""
    from seqjax.experiment.runs import write_json_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, obj)
    return path
