"""The gradient-norms notebook runs top to bottom and draws its figures; the committed copy
carries its outputs."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "experiments" / "gradient_norms.ipynb"
PARAMETERS = "T, HIDDEN, STEPS = 60, 32, 300"  # the notebook's sizes line, as committed
NUM_FIGURES = 7  # gradient norms at init and trained, one eigenvalue plot per model (5)


def _images(nb) -> list[str]:
    return [
        out["data"]["image/png"]
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]


def _errors(nb) -> list[str]:
    return [
        f"{out.get('ename')}: {out.get('evalue')}"
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # Smaller sizes than the committed run (the suite's time budget): the same cells, T=20,
    # H=16, 40 updates; what is checked does not depend on the sizes.
    (sizes,) = [c for c in nb.cells if c.cell_type == "code" and PARAMETERS in c.source]
    sizes.source = sizes.source.replace(PARAMETERS, "T, HIDDEN, STEPS = 20, 16, 40")
    # A last cell reports which Python ran the kernel.
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    workdir = tmp_path_factory.mktemp("notebook")
    # jupyter_client runs the "python3" kernel spec (argv[0] "python") with sys.executable,
    # the interpreter running this test: the venv's.
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    return nb


def test_notebook_runs_without_error_in_this_python(executed):
    assert _errors(executed) == []
    last = executed.cells[-1].outputs[0]["text"].strip()
    assert Path(last).resolve() == Path(sys.executable).resolve()


def test_notebook_draws_its_figures_and_decay_table(executed):
    images = _images(executed)
    assert len(images) == NUM_FIGURES
    assert all(len(png) > 5000 for png in images)  # base64 PNGs with something drawn
    tables = [
        out["data"]["text/markdown"]
        for cell in executed.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "text/markdown" in out.get("data", {})
    ]
    assert len(tables) == 1 and len(tables[0].splitlines()) == 7  # header, rule, five models
    text = "".join(
        out.get("text", "")
        for cell in executed.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert text.count("gradients vanish by") + text.count("gradients explode by") == 5


def test_committed_notebook_carries_its_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "save the executed notebook"
    assert _errors(nb) == []
    assert len(_images(nb)) == NUM_FIGURES
    assert NOTEBOOK.stat().st_size < 400_000  # modest-dpi PNGs keep the file small
