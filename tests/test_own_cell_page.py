"""The "Write your own cell" page runs as written: its module, config, command and Python
block, extracted exactly from docs/pages/own-cell.md, train in a temporary folder (shrunk
with ``--set``), and its cell computes the equations the page states."""

import json
import re
import shlex
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax import cli

PAGE = Path(__file__).resolve().parents[1] / "docs" / "pages" / "own-cell.md"
TINY = [
    "train.steps=2",
    "train.chunk_size=1",
    "train.batch_size=2",
    "train.eval_every=null",
    "task.length=6",
    "model.hidden_size=4",
    "log.eval_batch_size=2",
    "log.eval_batches=1",
    "log.plots=false",
]


def page_blocks() -> dict[str, str]:
    """The page's titled code blocks, ``{title: code}``."""
    found = re.findall(r'```\w+ title="([^"]+)"\n(.*?)```', PAGE.read_text(), flags=re.S)
    blocks = dict(found)
    assert len(blocks) == len(found), "two code blocks of the page share a title"
    return blocks


@pytest.fixture(autouse=True)
def standard_promotion():
    # Optax's Adam mixes int32 step counts with floats (see tests/test_experiment.py).
    with jax.numpy_dtype_promotion("standard"):
        yield


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The page's files written into a fresh folder, that folder as the working directory and
    on sys.path; CELLS and sys.modules restored afterwards."""
    blocks = page_blocks()
    assert {"peephole.py", "peephole.yaml", "command", "train.py"} <= set(blocks)
    folder = tmp_path_factory.mktemp("own_cell")
    (folder / "peephole.py").write_text(blocks["peephole.py"])
    (folder / "peephole.yaml").write_text(blocks["peephole.yaml"])
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.setattr(sys, "path", [str(folder), *sys.path])
        try:
            yield blocks, folder
        finally:
            seqjax.CELLS.pop("peephole", None)
            sys.modules.pop("peephole", None)


def test_the_module_is_under_40_lines(page):
    blocks, _ = page
    assert len(blocks["peephole.py"].splitlines()) < 40


def test_the_page_command_trains_the_config(page, capsys):
    blocks, folder = page
    command = shlex.split(blocks["command"].strip())
    assert command[:2] == ["seqjax", "train"] and "--import" in command
    seqjax.CELLS.pop("peephole", None)  # the command's --import registers it
    sys.modules.pop("peephole", None)
    argv = [*command[1:], "--no-progress"] + [a for kv in TINY for a in ("--set", kv)]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "peephole" in seqjax.CELLS
    (run_dir,) = (folder / "runs").iterdir()
    assert run_dir.name.startswith("peephole-")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["model"] == "peephole" and summary["steps"] == 2
    assert len(summary["eval"]["loss"]) == 2  # the config's two seeds
    assert np.all(np.isfinite(summary["eval"]["loss"]))
    assert "peephole on adding, 2 steps" in out


def test_the_page_python_block_runs_in_memory(page):
    blocks, _ = page
    code = blocks["train.py"]
    call = 'seqjax.run("peephole.yaml")'
    assert call in code
    code = code.replace(call, f'seqjax.run("peephole.yaml", overrides={TINY!r}, progress=False)')
    namespace: dict = {}
    exec(compile(code, "train.py", "exec"), namespace)
    result = namespace["result"]
    assert result.run_dir is None
    assert result.metrics["loss"].shape == (2, 2)  # [seeds, steps]
    assert result.params["encoder"]["p"].shape == (2, 3, 4)  # [seeds, 3, H]
    assert not np.allclose(result.params["encoder"]["p"], 0.1)  # trained from peephole_init


def numpy_peephole(params, xs):
    """The page's equations in NumPy float64, one step at a time."""
    w_i, w_h, b, p = (np.asarray(params[k], np.float64) for k in ("w_i", "w_h", "b", "p"))
    H = w_h.shape[0]
    sigmoid = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    h, c, hs = np.zeros(H), np.zeros(H), []
    for x in np.asarray(xs, np.float64):
        z = x @ w_i + h @ w_h + b
        f = sigmoid(z[:H] + p[0] * c)
        i = sigmoid(z[H : 2 * H] + p[1] * c)
        g = np.tanh(z[2 * H : 3 * H])
        c = f * c + i * g
        o = sigmoid(z[3 * H :] + p[2] * c)
        h = o * np.tanh(c)
        hs.append(h)
    return np.stack(hs), h, c


def test_the_page_cell_computes_its_equations(page):
    import peephole  # the page's module, from the working directory

    cell = peephole.peephole(5, forget_bias=0.5, peephole_init=0.2)
    assert seqjax.CELLS["peephole"] is peephole.peephole
    assert cell.gates == cell.weight_blocks == ("f", "i", "g", "o")
    k_init, k_p, k_x = jax.random.split(jax.random.key(0), 3)
    params = cell.init(k_init, 3)
    assert {k: v.shape for k, v in params.items()} == {
        "w_i": (3, 20),
        "w_h": (5, 20),
        "b": (20,),
        "p": (3, 5),
    }
    np.testing.assert_array_equal(params["b"][:5], 0.5)
    np.testing.assert_array_equal(params["p"], np.float32(0.2))
    params["p"] = jax.random.normal(k_p, (3, 5))  # distinct peepholes, so a mix-up shows
    xs = jax.random.normal(k_x, (9, 3))

    carry, hs = seqjax.unroll(cell, params, xs)
    loop_carry, loop_hs = cell.initial_carry(), []
    for x in xs:
        loop_carry, h = cell.step(params, loop_carry, x)
        loop_hs.append(h)
    np.testing.assert_allclose(hs, jnp.stack(loop_hs), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(carry.c, loop_carry.c, rtol=1e-6, atol=1e-6)

    ref_hs, ref_h, ref_c = numpy_peephole(params, xs)
    np.testing.assert_allclose(hs, ref_hs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(carry.h, ref_h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(carry.c, ref_c, rtol=1e-5, atol=1e-5)

    # With the peepholes at zero it is seqjax's LSTM, given the same weights.
    lstm = seqjax.lstm(5)
    zero = {**params, "p": jnp.zeros((3, 5))}
    _, lstm_hs = seqjax.unroll(lstm, {k: zero[k] for k in ("w_i", "w_h", "b")}, xs)
    _, zero_hs = seqjax.unroll(cell, zero, xs)
    np.testing.assert_allclose(zero_hs, lstm_hs, rtol=1e-6, atol=1e-6)
