"""Forecasting tasks: a noisy sum of sines, and the Mackey-Glass chaotic time series.

Both are many-to-many regression with MSE: ``inputs[t] = x_t`` and ``targets[t] = x_{t+h}``
for a horizon h, so each step predicts h steps ahead. Both evaluate on series that training
never sees (`Task.sample_eval`): Mackey-Glass on a held-out later segment of its series, the
sines on starting phases that training never draws.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.checks import check_float, check_int
from seqjax.tasks.base import Batch, Task, make_sampler

__all__ = ["mackey_glass", "mackey_glass_series", "sine_forecast"]

_AMPLITUDE_RANGE = (0.5, 1.5)


def _horizon_batch(series: jax.Array, length: int, h: int) -> Batch:
    """One example from ``length + h`` values: inputs ``x_t``, targets ``x_{t+h}``, all valid."""
    return Batch(
        series[:length, None],
        series[h:, None],
        jnp.ones((length,), jnp.float32),
        jnp.asarray(length, jnp.int32),
    )


def _forecast_task(where: str, example: Any, eval_example: Any, baseline: float) -> Task:
    """A univariate many-to-many MSE forecasting task around per-example samplers for training
    and for evaluation."""
    return Task(
        name=where,
        sample=make_sampler(where, example),
        input_size=1,
        output_size=1,
        pattern="many_to_many",
        loss="mse",
        metric="mse",
        baseline=baseline,
        sample_eval=make_sampler(where, eval_example),
    )


def _mean_cos(omega_min: float, omega_max: float) -> float:
    """E[cos(w)] for w uniform on [omega_min, omega_max]."""
    if omega_max == omega_min:
        return math.cos(omega_min)
    return (math.sin(omega_max) - math.sin(omega_min)) / (omega_max - omega_min)


def sine_forecast(
    length: int = 100,
    num_components: int = 3,
    noise_std: float = 0.1,
    horizon: int = 1,
    min_freq: float = 0.01,
    max_freq: float = 0.1,
) -> Task:
    """Forecast a noisy sum of sines h steps ahead.

    A standard synthetic forecasting benchmark; this exact definition is ours. Each sequence
    draws its own K = ``num_components`` sines, so the model must infer them from the past::

        x_t = sum_k a_k sin(2 pi f_k t + phi_k) + sigma eps_t,     t = 0 .. T + h - 1
        a_k ~ U[0.5, 1.5],  f_k ~ U[min_freq, max_freq] (cycles per step),
        phi_k ~ U[0, 2 pi),  eps_t ~ N(0, 1)  (all independent)

    ``inputs[t] = x_t``, ``targets[t] = x_{t+h}`` (noisy), t < T.

    Held-out phases: training (``sample``) draws each phase with ``phi_k mod (pi / 2)`` in
    ``[0, pi / 4)``, evaluation (``sample_eval``) in ``[pi / 4, pi / 2)``; each is uniform on
    its half of the circle, four arcs of pi / 4 a quarter turn apart. A noise-free window
    determines its (a, f, phi), so no evaluation series is a training series. Both halves are
    unchanged by a quarter turn, so ``E[exp(i phi)] = E[exp(2 i phi)] = 0`` for each, as for
    the full circle: the first two moments of x, and with them the baseline, are those of
    ``phi ~ U[0, 2 pi)``.

    Baseline: the better of the two trivial predictors, in closed form,

    * persistence (x_{t+h} ~ x_t): ``K E[a^2] (1 - E[cos(2 pi f h)]) + 2 sigma^2``,
    * the mean (x_{t+h} ~ 0): ``K E[a^2] / 2 + sigma^2``,

    with ``E[a^2] = 13/12`` and ``E[cos(2 pi f h)] = (sin(2 pi h f_max) - sin(2 pi h f_min)) /
    (2 pi h (f_max - f_min))``.

    Args:
      length: T >= 1.
      num_components: K >= 1.
      noise_std: sigma >= 0.
      horizon: h >= 1.
      min_freq: lowest frequency, in (0, 0.5] cycles per step.
      max_freq: highest frequency, in [min_freq, 0.5].

    Returns:
      A many_to_many `Task`: inputs and targets ``[B, T, 1]`` float32, mask ``[B, T]``.
    """
    where = "sine_forecast"
    length = check_int(where, "length", length, 1)
    k = check_int(where, "num_components", num_components, 1)
    sigma = check_float(where, "noise_std", noise_std, 0.0, math.inf)
    h = check_int(where, "horizon", horizon, 1)
    f_min = check_float(where, "min_freq", min_freq, 0.0, 0.5, low_open=True)
    f_max = check_float(where, "max_freq", max_freq, f_min, 0.5)
    lo, hi = _AMPLITUDE_RANGE
    mean_a2 = (hi**3 - lo**3) / (3.0 * (hi - lo))
    mean_cos = _mean_cos(2.0 * math.pi * h * f_min, 2.0 * math.pi * h * f_max)
    persistence = k * mean_a2 * (1.0 - mean_cos) + 2.0 * sigma**2
    mean_predictor = k * mean_a2 / 2.0 + sigma**2
    t = jnp.arange(length + h, dtype=jnp.float32)

    def example_of(held_out: int):
        def example(key: jax.Array) -> Batch:
            k_a, k_f, k_phi, k_eps = jax.random.split(key, 4)
            amp = jax.random.uniform(k_a, (k,), jnp.float32, lo, hi)
            freq = jax.random.uniform(k_f, (k,), jnp.float32, f_min, f_max)
            # u uniform on [0, 4): quarter turn floor(u), then half of that quarter by held_out
            u = jax.random.uniform(k_phi, (k,), jnp.float32, 0.0, 4.0)
            quarter = jnp.floor(u)
            phase = (0.5 * math.pi) * (quarter + 0.5 * (u - quarter + held_out))
            angle = 2.0 * math.pi * t[:, None] * freq[None, :] + phase[None, :]
            x = jnp.sum(amp[None, :] * jnp.sin(angle), axis=1)
            x = x + sigma * jax.random.normal(k_eps, (length + h,), jnp.float32)
            return _horizon_batch(x, length, h)

        return example

    return _forecast_task(where, example_of(0), example_of(1), min(persistence, mean_predictor))


@functools.lru_cache(maxsize=8)
def _mackey_glass_cached(
    num_points: int,
    tau: float,
    dt: float,
    beta: float,
    gamma: float,
    n: float,
    x0: float,
    washout: int,
) -> np.ndarray:
    delay = round(tau / dt)
    sub = round(1.0 / dt)
    total = (washout + num_points) * sub + 1
    x = np.empty(total + delay, dtype=np.float64)
    x[: delay + 1] = x0  # x(t) = x0 for t in [-tau, 0]

    def f(xt: float, xd: float) -> float:
        return beta * xd / (1.0 + xd**n) - gamma * xt

    for i in range(delay, delay + total - 1):  # x[i] is x(t = (i - delay) dt)
        k1 = f(x[i], x[i - delay])
        predictor = x[i] + dt * k1
        k2 = f(predictor, x[i + 1 - delay])
        x[i + 1] = x[i] + 0.5 * dt * (k1 + k2)
    series = x[delay + washout * sub :: sub][:num_points].astype(np.float32)
    series.setflags(write=False)
    return series


def mackey_glass_series(
    num_points: int,
    tau: float = 17.0,
    *,
    dt: float = 0.1,
    beta: float = 0.2,
    gamma: float = 0.1,
    n: float = 10.0,
    x0: float = 1.2,
    washout: int = 500,
) -> np.ndarray:
    """The Mackey-Glass series, sampled once per time unit.

    Mackey & Glass (1977), "Oscillation and chaos in physiological control systems", Science
    197(4300), with the constants of the usual forecasting benchmark (e.g. Jaeger & Haas 2004,
    "Harnessing Nonlinearity", Science 304(5667)), chaotic for tau = 17::

        dx/dt = beta x(t - tau) / (1 + x(t - tau)^n) - gamma x(t),   x(t) = x0 for t <= 0

    integrated with Heun's method (explicit trapezoid, second order) on a grid of step
    ``dt`` (0.1 by default; ``tau`` and 1 must be multiples of ``dt`` so the delayed values lie
    on the grid), in float64 with NumPy at task-build time. The first ``washout`` time units
    are discarded; then one point per time unit is kept.

    Args:
      num_points: the number of samples N >= 1.
      tau: the delay, > 0.
      dt: the integration step.
      beta: the production rate.
      gamma: the decay rate.
      n: the Hill exponent.
      x0: the constant initial history.
      washout: time units discarded at the start.

    Returns:
      ``[N]`` float32, read-only (cached).
    """
    where = "mackey_glass_series"
    num_points = check_int(where, "num_points", num_points, 1)
    tau = check_float(where, "tau", tau, 0.0, math.inf, low_open=True)
    dt = check_float(where, "dt", dt, 0.0, 1.0, low_open=True)
    for name, value in (("tau", tau), ("1", 1.0)):
        ratio = value / dt
        if abs(ratio - round(ratio)) > 1e-9:
            raise ValueError(
                f"{where}: `dt`={dt} must divide {name}={value} (the delayed values and the "
                f"samples must lie on the integration grid); e.g. use dt=0.1."
            )
    washout = check_int(where, "washout", washout, 0)
    return _mackey_glass_cached(
        num_points, float(tau), float(dt), float(beta), float(gamma), float(n), float(x0), washout
    )


def _window_baseline(series: np.ndarray, length: int, horizon: int) -> float:
    """Exact expected MSE of the best trivial predictor over uniformly drawn windows."""
    x = series.astype(np.float64)
    starts = x.shape[0] - length - horizon + 1
    # weight of target index j = s + h + i, over starts s and offsets i
    weights = np.convolve(np.ones(starts), np.ones(length))  # [starts + length - 1]
    targets = x[horizon : horizon + weights.shape[0]]
    previous = x[: weights.shape[0]]
    persistence = np.sum(weights * (targets - previous) ** 2) / np.sum(weights)
    mean = np.sum(weights * targets) / np.sum(weights)
    constant = np.sum(weights * (targets - mean) ** 2) / np.sum(weights)
    return float(min(persistence, constant))


def mackey_glass(
    length: int = 100,
    horizon: int = 1,
    tau: float = 17.0,
    num_points: int = 10_000,
    eval_fraction: float = 0.2,
) -> Task:
    """Forecast the Mackey-Glass chaotic series h steps ahead.

    The series is `mackey_glass_series` (Mackey & Glass 1977; beta = 0.2, gamma = 0.1,
    n = 10, tau = 17, Heun's method with dt = 0.1, one sample per time unit, 500 time units
    of washout), computed once at task-build time. Each example is a window of it at a
    uniformly random start s: ``inputs[t] = x_{s+t}``, ``targets[t] = x_{s+t+h}``, t < T.

    Held-out segment: the last ``round(eval_fraction N)`` points are the evaluation segment.
    Training windows (``sample``) lie wholly in the points before it, evaluation windows
    (``sample_eval``) wholly in it, so no evaluation window shares a point, input or target,
    with a training window; evaluation forecasts the future of the training series.

    Baseline: the better of persistence (x_{t+h} ~ x_t) and the best constant, computed
    exactly over the training windows at build time.

    Args:
      length: T >= 1.
      horizon: h >= 1.
      tau: the delay of the equation (17 is the classic chaotic regime).
      num_points: the length N of the stored series; each segment must hold a window of
        T + h points.
      eval_fraction: the fraction of the series held out for evaluation, in (0, 1).

    Returns:
      A many_to_many `Task`: inputs and targets ``[B, T, 1]`` float32, mask ``[B, T]``.
    """
    where = "mackey_glass"
    length = check_int(where, "length", length, 1)
    h = check_int(where, "horizon", horizon, 1)
    num_points = check_int(
        where, "num_points", num_points, length + h, hint="The series must hold one window."
    )
    fraction = check_float(
        where, "eval_fraction", eval_fraction, 0.0, 1.0, low_open=True, high_open=True
    )
    num_eval = round(fraction * num_points)
    num_train = num_points - num_eval
    if min(num_train, num_eval) < length + h:
        raise ValueError(
            f"{where}: with num_points={num_points} and eval_fraction={fraction} the training "
            f"segment holds {num_train} points and the evaluation segment {num_eval}; each must "
            f"hold a window of length + horizon = {length + h}. Raise num_points or move "
            f"eval_fraction toward 0.5."
        )
    series_np = mackey_glass_series(num_points, tau)
    baseline = _window_baseline(series_np[:num_train], length, h)
    series = jnp.asarray(series_np)

    def example_in(first: int, last: int):
        """Windows starting in [first, last - T - h]: wholly inside points [first, last)."""

        def example(key: jax.Array) -> Batch:
            start = jax.random.randint(key, (), first, last - length - h + 1, dtype=jnp.int32)
            window = jax.lax.dynamic_slice(series, (start,), (length + h,))
            return _horizon_batch(window, length, h)

        return example

    return _forecast_task(
        where, example_in(0, num_train), example_in(num_train, num_points), baseline
    )
