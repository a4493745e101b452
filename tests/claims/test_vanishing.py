"""experiments/claims/vanishing.py at --tiny: the result's shape, the slopes against
numpy.polyfit, the LSTM's cell-state gradients against a plain loop, and the verdicts."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from experiments.claims import stats, vanishing
from seqjax.diagnostics import model_diagnostics
from tests.claims.conftest import TINY_SEEDS, check_result, run_tiny


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("vanishing")
    return out, run_tiny(vanishing, out)


def _polyfit_slope(curve) -> float:
    """Least squares of log10 ||g_t|| against the steps back from the end, zero norms left out."""
    g = np.asarray([np.nan if v is None else v for v in curve], dtype=np.float64)
    back = np.arange(g.size)[::-1]
    use = np.isfinite(g) & (g > 0)
    return float(np.polyfit(back[use], np.log10(g[use]), 1)[0])


def test_result(result):
    out, data = result
    check_result(out, vanishing, data)
    kinds = {r["kind"] for r in data["settings"]}
    assert kinds == {"eval_mse", "slope", "scale"}
    lstm = {(r["state"], r["when"]) for r in data["settings"] if r["kind"] == "slope"}
    assert lstm == {(s, w) for s in ("h", "c") for w in ("init", "trained")}


def test_slopes_against_numpy_polyfit(result):
    _, data = result
    (record,) = [
        r
        for r in data["settings"]
        if r["kind"] == "slope" and (r["state"], r["when"]) == ("h", "init")
    ]
    curve = np.asarray(record["curves"][0], dtype=np.float64)
    assert curve.shape == (data["length"],) and np.all(curve > 0)
    slope = np.polyfit(np.arange(curve.size)[::-1], np.log10(curve), 1)[0]
    np.testing.assert_allclose(vanishing._slopes(curve[None]), [slope], rtol=1e-4, atol=1e-6)
    for r in data["settings"]:
        if r["kind"] in ("slope", "scale"):
            expected = [_polyfit_slope(c) for c in r["curves"]]
            np.testing.assert_allclose(r["values"], expected, rtol=1e-3, atol=1e-5)


def test_thresholds(result):
    _, data = result
    for r in data["settings"]:
        if r["kind"] == "slope":
            assert r["threshold"] == pytest.approx(-2.0 / (data["length"] - 1))
            assert r["solved"] == [v > r["threshold"] for v in r["values"]]
        elif r["kind"] == "scale":
            assert r["threshold"] == 0.0
        else:
            assert r["threshold"] == vanishing.SOLVED_MSE


def test_orthogonal_scale_is_the_spectral_radius(result):
    _, data = result
    scales = set()
    for r in data["settings"]:
        if r["kind"] == "scale":
            scales.add(r["scale"])
            assert len(r["radius"]) == len(TINY_SEEDS)
            if r["init"] == "orthogonal":
                np.testing.assert_allclose(r["radius"], r["scale"], rtol=1e-5)
            else:
                assert all(x > 0 for x in r["radius"])
    assert scales == set(vanishing.SCALES)


def test_scale_verdicts_recomputed_from_the_values(result):
    _, data = result
    for r in data["settings"]:
        if r["kind"] != "scale" or r["scale"] == 1.0:
            continue
        word = "decays" if r["scale"] < 1 else "grows"
        key = f"tanh RNN, {r['init']} w_h x {r['scale']:g}, {word} @ init"
        ci = stats.bootstrap_interval(r["values"])
        if r["scale"] < 1:  # the whole interval below a slope of 0
            expected = "reproduces" if ci.high < 0 else "contradicted" if ci.low > 0 else None
        else:
            expected = "reproduces" if ci.low > 0 else "contradicted" if ci.high < 0 else None
        assert data["verdicts"][key] == (expected or "inconclusive")


def test_cell_comparison_verdicts():
    iv = stats.Interval
    slopes = {
        ("tanh RNN", "h", "init"): iv(-0.10, -0.11, -0.09, 5),
        ("LSTM", "h", "init"): iv(-0.02, -0.03, -0.01, 5),  # slower decay: reproduces
        ("LSTM", "c", "init"): iv(-0.10, -0.12, -0.08, 5),  # overlaps: inconclusive
        ("GRU", "h", "init"): iv(-0.30, -0.32, -0.28, 5),  # faster decay: contradicted
        ("tanh RNN", "h", "trained"): iv(-0.10, -0.11, -0.09, 5),
        ("LSTM", "h", "trained"): iv(-0.02, -0.03, -0.01, 5),
    }
    on_plateau = {"tanh RNN": iv(0.16, 0.15, 0.17, 5), "LSTM": iv(0.16, 0.15, 0.17, 5)}
    got = vanishing._verdicts(slopes, on_plateau, {})
    assert got == {
        "LSTM ||dL/dh_t|| vs tanh RNN ||dL/dh_t|| @ init": "reproduces",
        "LSTM ||dL/dc_t|| vs tanh RNN ||dL/dh_t|| @ init": "inconclusive",
        "GRU ||dL/dh_t|| vs tanh RNN ||dL/dh_t|| @ init": "contradicted",
        # no model left the adding baseline: the budget decided (rule 1)
        "LSTM ||dL/dh_t|| vs tanh RNN ||dL/dh_t|| @ trained": "inconclusive",
    }
    solved = {**on_plateau, "LSTM": iv(0.002, 0.001, 0.003, 5)}
    got = vanishing._verdicts(slopes, solved, {})
    assert got["LSTM ||dL/dh_t|| vs tanh RNN ||dL/dh_t|| @ trained"] == "reproduces"


def test_cell_grad_norms_against_a_plain_loop():
    length, hidden = 5, 3
    cell = seqjax.lstm(hidden)
    model = seqjax.many_to_one(cell, 2, 1)
    params = model.init(jax.random.key(0))
    batch = seqjax.tasks.adding(length=length).sample(jax.random.key(1), 2)

    def loss_of(deltas, x, target):  # carry-state perturbations added after each step
        carry = cell.initial_carry()
        for t in range(length):
            carry, _ = cell.step(params["encoder"], carry, x[t])
            carry = seqjax.LSTMCarry(carry.h + deltas[0][t], carry.c + deltas[1][t])
        out = carry.h @ params["readout"]["w"] + params["readout"]["b"]
        return jnp.mean((out - target) ** 2)

    zeros = (jnp.zeros((length, hidden)), jnp.zeros((length, hidden)))
    norms_h, norms_c = [], []
    for b in range(2):
        gh, gc = jax.grad(loss_of)(zeros, batch.inputs[b], batch.targets[b])
        norms_h.append(jnp.linalg.norm(gh, axis=-1))
        norms_c.append(jnp.linalg.norm(gc, axis=-1))
    h, c = vanishing.cell_grad_norms(cell, params, batch)
    np.testing.assert_allclose(h, np.mean(norms_h, axis=0), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(c, np.mean(norms_c, axis=0), rtol=1e-4, atol=1e-7)
    assert float(c[-1]) == 0.0 and float(c[0]) > 0  # the loss reads h_{T-1} only
    diag = model_diagnostics(cell, "many_to_one", "mse", params, batch)
    np.testing.assert_allclose(h, diag.grad_norm, rtol=1e-5, atol=1e-8)
