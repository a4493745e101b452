"""experiments/claims/clipping.py at its tiny size, its spike counter and its one-unit surface."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.claims import clipping, stats
from tests.claims.conftest import TINY_SEEDS, check_result, run_tiny


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("clipping")
    return out, run_tiny(clipping, out)


def test_tiny_result(tiny):
    out, data = tiny
    check_result(out, clipping, data)
    radii = clipping.TINY["radii"]
    settings = data["settings"]
    assert [(r["radius"], r["clipping"]) for r in settings] == [
        (r, c) for r in radii for c in ("none", f"global_norm {clipping.CLIP_THRESHOLD:g}")
    ]
    assert set(data["verdicts"]) == {f"clipped vs unclipped @ radius {r:g}" for r in radii}
    for record in settings:
        n = len(TINY_SEEDS)
        assert len(record["spikes"]) == len(record["max_grad_norm"]) == n
        assert all(
            0 <= s <= clipping.TINY["steps"] // clipping.TINY["chunk"] for s in record["spikes"]
        )
        for first, top in zip(record["first_grad_norm"], record["max_grad_norm"], strict=True):
            assert first is None or top is None or top >= first - 1e-6 * abs(first)
        assert record["baseline"] == pytest.approx(1 / 6)


def test_verdicts_recomputed_from_the_json(tiny):
    """Each radius's verdict is `stats.verdicts` on the bootstrap intervals of the seeds' values."""
    _, data = tiny
    by = {(r["radius"], r["clipping"] != "none"): r for r in data["settings"]}

    def interval(record):
        values = [np.inf if v is None else v for v in record["values"]]
        return stats.bootstrap_interval(values)

    for radius in clipping.TINY["radii"]:
        found = stats.verdicts(
            {"clipped": interval(by[radius, True]), "unclipped": interval(by[radius, False])},
            {"clipped": ("better", "unclipped")},
            baseline=1 / 6,
        )
        assert data["verdicts"][f"clipped vs unclipped @ radius {radius:g}"] == found["clipped"]


def test_spikes_against_a_plain_loop():
    rng = np.random.default_rng(0)
    loss = np.exp(rng.normal(size=(40, 3)))
    loss[25, 1] = 1e3
    loss[30, 2] = np.nan
    expected = np.zeros(3, dtype=np.int64)
    for j in range(3):
        for i in range(10, 40):
            window = [v for v in loss[i - 10 : i, j] if np.isfinite(v)]
            ref = sorted(window)[len(window) // 2] if len(window) % 2 else np.median(window)
            if not np.isfinite(loss[i, j]) or loss[i, j] > 3 * ref:
                expected[j] += 1
    np.testing.assert_array_equal(clipping._spikes(loss), expected)
    assert expected[1] >= 1 and expected[2] >= 1


def test_one_unit_surface_against_jax_grad(x64):
    """Loss by a plain loop, gradient by `jax.grad` of that loop, at points on and off the cliff."""

    def loss_fn(w, b, steps, x0, target):
        x = x0
        for _ in range(steps):
            x = w * jax.nn.sigmoid(x) + b
        return (x - target) ** 2

    steps, x0, target = 30, 0.0, 4.0
    ws = np.array([1.0, 5.0, 8.0])
    bs = np.array([-4.0, -1.0, 0.5])
    loss, grad = clipping.one_unit_surface(ws, bs, steps=steps, x0=x0, target=target)
    assert loss.shape == grad.shape == (3, 3)
    for i, b in enumerate(bs):
        for j, w in enumerate(ws):
            args = (jnp.float64(w), jnp.float64(b), steps, jnp.float64(x0), jnp.float64(target))
            value = loss_fn(*args)
            gw, gb = jax.grad(loss_fn, argnums=(0, 1))(*args)
            assert loss[i, j] == pytest.approx(float(value), rel=1e-9, abs=1e-12)
            assert grad[i, j] == pytest.approx(float(jnp.hypot(gw, gb)), rel=1e-6, abs=1e-9)


def test_one_unit_surface_has_a_cliff():
    """For w > 4, w sigmoid(x) - w/2 = (w/2) tanh(x/2) is odd, so with x_0 = 0 the wall is the
    line b = -w/2 (x_0 is then the unstable fixed point, slope w/4 > 1): across it the state
    falls to the other attractor, the loss jumps, and on it the gradient grows like (w/4)^T."""
    steps, x0, target = clipping.SURFACE_STEPS, clipping.SURFACE_X0, clipping.SURFACE_TARGET
    assert x0 == 0.0
    for w in (6.0, 8.0, 10.0):
        ws = np.array([w])
        near = np.array([-w / 2 - 1e-6, -w / 2, -w / 2 + 1e-6])
        far = np.array([-w / 2 - 1.0, -w / 2 + 1.0])
        loss, grad = clipping.one_unit_surface(ws, near, steps=steps, x0=x0, target=target)
        _, grad_far = clipping.one_unit_surface(ws, far, steps=steps, x0=x0, target=target)
        assert abs(loss[0, 0] - loss[2, 0]) > 10.0  # a jump over a change of 2e-6 in b
        assert grad[1, 0] > 0.1 * (w / 4) ** steps and np.all(grad_far < 100.0)
    with pytest.raises(ValueError, match="steps"):
        clipping.one_unit_surface(ws, far, steps=0, x0=0.0, target=1.0)
