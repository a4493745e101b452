"""The import-linter contract of pyproject.toml holds, and would catch an import upwards."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT)],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": str(LINT.parent)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_layers_contract_holds():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "2 kept, 0 broken" in out.stdout


def test_an_import_from_above_breaks_it(tmp_path):
    # A function-local import in the cells of the experiment layer, the kind that hid a
    # cycle: the contract must see it.
    shutil.copytree(ROOT / "seqjax", tmp_path / "seqjax", ignore=shutil.ignore_patterns("data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    base = tmp_path / "seqjax" / "cells" / "base.py"
    base.write_text(
        base.read_text() + "\n\ndef _sneaky():\n    from seqjax.experiment import run\n\n"
        "    return run\n"
    )
    out = _lint(tmp_path)
    assert out.returncode != 0
    assert "seqjax.cells.base -> seqjax.experiment" in out.stdout, out.stdout[-3000:]
