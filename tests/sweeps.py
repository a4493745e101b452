"""What the sweep tests share: a tiny sweep config, the CLI call and a folder's file hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jax

from seqjax import cli


def tiny_sweep(cell: str, sizes: list[int]) -> dict[str, Any]:
    """A two-update adding sweep over ``model.hidden_size``: one program per size, one seed,
    nothing written besides what a sweep needs."""
    return {
        "name": "tiny",
        "seeds": [0],
        "task": {"name": "adding", "length": 5},
        "model": {"cell": cell, "hidden_size": sizes[0]},
        "train": {"steps": 2, "batch_size": 2, "chunk_size": 2},
        "log": {
            "plots": False,
            "progress": False,
            "tensorboard": False,
            "eval_batch_size": 2,
            "eval_batches": 1,
        },
        "sweep": {"model.hidden_size": list(sizes)},
    }


def program_names(sizes: list[int]) -> list[str]:
    """The program folders of `tiny_sweep` over ``sizes``."""
    return [f"{k:02d}-hidden_size={size}" for k, size in enumerate(sizes)]


def sweep_cli(*args: str) -> int:
    """``seqjax sweep ARGS --no-progress``; its exit status."""
    with jax.numpy_dtype_promotion("standard"):  # Optax's Adam mixes int32 and floats
        return cli.main(["sweep", *args, "--no-progress"])


def file_hashes(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: its content hash and modification time."""
    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
