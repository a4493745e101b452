"""Tests of the diagnostic plots: figure structure (lines, points, bars) and PNG rendering."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.figure import Figure

from seqjax import cells
from seqjax.diagnostics import gate_stats, plot


@pytest.fixture(scope="module")
def lstm_stats():
    cell = cells.lstm(4)
    params = cell.init(jax.random.key(0), 2)
    xs = jax.random.normal(jax.random.key(1), (6, 2))
    return gate_stats(cell, params, xs, length=5, bins=10)


def test_grad_norm_plot_has_one_log_line_per_model(tmp_path):
    t = np.arange(10)
    curves = {
        "tanh RNN": 10.0 ** (-0.5 * (9 - t)),
        "LSTM": np.r_[10.0 ** (-0.1 * (7 - t[:8])), 0.0, 0.0],  # zeros past a length
        "GRU": jnp.ones(10),
    }
    fig = plot.plot_grad_norms(curves)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == list(curves)
    assert ax.get_yscale() == "log"
    np.testing.assert_allclose(lines[0].get_ydata(), curves["tanh RNN"])
    assert np.isnan(lines[1].get_ydata()[8:]).all()  # zeros are left out of the log plot
    path = tmp_path / "norms.png"
    fig.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eigenvalue_plot_shows_every_eigenvalue_and_the_unit_circle(tmp_path):
    eigs = np.array([[0.5 + 0.5j, 0.5 - 0.5j, -1.5 + 0.0j], [0.1j, -0.1j, 0.9 + 0.0j]])
    fig = plot.plot_eigenvalues({"J_t": eigs, "W_hh": np.array([1.0 + 0.0j, -0.2 + 0.0j])})
    (ax,) = fig.axes
    (circle,) = ax.get_lines()
    np.testing.assert_allclose(np.hypot(circle.get_xdata(), circle.get_ydata()), 1.0)
    offsets = [c.get_offsets() for c in ax.collections]
    assert [len(o) for o in offsets] == [6, 2]
    np.testing.assert_allclose(offsets[0][:, 0] + 1j * offsets[0][:, 1], eigs.ravel())
    assert ax.get_xlim()[1] >= 1.5  # the eigenvalue outside the unit circle is in view
    fig.savefig(tmp_path / "eigs.png")
    assert (tmp_path / "eigs.png").stat().st_size > 0


def test_gate_histogram_plot_has_one_axes_per_gate(lstm_stats, tmp_path):
    fig = plot.plot_gate_histograms(lstm_stats)
    assert [ax.get_title().split(":")[0] for ax in fig.axes] == ["f", "i", "g", "o"]
    for ax, gate in zip(fig.axes, ["f", "i", "g", "o"], strict=True):
        heights = np.array([p.get_height() for p in ax.patches])
        assert len(heights) == 10
        counts = np.asarray(lstm_stats.hist[gate]).sum(axis=0)
        np.testing.assert_allclose(heights, counts / counts.sum(), rtol=1e-6)
    fig = plot.plot_gate_histograms(lstm_stats, gates=["f"])
    assert len(fig.axes) == 1
    fig.savefig(tmp_path / "gates.png")
    with pytest.raises(ValueError, match=r"expected a non-empty subset of \['f', 'i', 'g', 'o'\]"):
        plot.plot_gate_histograms(lstm_stats, gates=["z"])


def test_plot_errors_name_the_bad_input():
    with pytest.raises(ValueError, match=r"curve 'x' has shape \(2, 3\), expected \[T\]"):
        plot.plot_grad_norms({"x": np.ones((2, 3))})
    with pytest.raises(ValueError, match=r"non-empty mapping"):
        plot.plot_grad_norms({})


def test_importing_diagnostics_does_not_load_matplotlib():
    code = "import sys, seqjax.diagnostics; assert 'matplotlib' not in sys.modules, 'loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
