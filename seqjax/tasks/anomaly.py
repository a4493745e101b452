"""Anomaly detection in a synthetic multichannel sensor stream.

The recipe of forecasting-based detectors (e.g. Malhotra, Vig, Shroff & Agarwal 2015, "Long
Short Term Memory Networks for Anomaly Detection in Time Series", ESANN): train a next-step
forecaster on normal data, then score each step of a test stream by its forecasting error and
compare the scores with the true anomaly labels (`seqjax.tasks.auroc`,
`seqjax.tasks.precision_recall`).

* `sensor_anomaly` is the training `Task`: clean streams, next-step forecasting with MSE.
* `sensor_anomaly_eval` returns a labelled sampler ``(key, batch_size) -> (Batch, labels)``
  of streams with injected anomalies; for the same key its clean signal equals the training
  sampler's, so ``labels`` mark exactly the perturbed target steps.

The stream of one example, C channels mixing K latent sines (all drawn per example)::

    x_c(t) = sum_k W_ck sin(2 pi f_k t + phi_k) + sigma eps_{c,t},    t = 0 .. T
    W_ck ~ N(0, 1 / K),  f_k ~ U[min_freq, max_freq],  phi_k ~ U[0, 2 pi),  eps ~ N(0, 1)

and ``inputs[t] = x(t)``, ``targets[t] = x(t + 1)`` for t < T.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from seqjax.checks import check_float, check_int
from seqjax.tasks.base import (
    Batch,
    Task,
    make_sampler,
    steps,
)

__all__ = ["ANOMALY_KINDS", "sensor_anomaly", "sensor_anomaly_eval"]

ANOMALY_KINDS = ("spike", "level_shift", "noise_burst")
"""Injected anomaly kinds, by id: a one-step spike of about +-3 magnitude, a level shift of
about +-magnitude, and a burst of extra Gaussian noise of standard deviation magnitude."""

_SPIKE_SCALE = 3.0


class _Stream:
    """Checked arguments and the clean-stream generator shared by the two samplers."""

    def __init__(self, where, length, num_channels, num_sources, noise_std, min_freq, max_freq):
        self.length = check_int(where, "length", length, 1)
        self.channels = check_int(where, "num_channels", num_channels, 1)
        self.sources = check_int(where, "num_sources", num_sources, 1)
        self.sigma = check_float(where, "noise_std", noise_std, 0.0, math.inf)
        self.f_min = check_float(where, "min_freq", min_freq, 0.0, 0.5, low_open=True)
        self.f_max = check_float(where, "max_freq", max_freq, self.f_min, 0.5)
        self.t = jnp.arange(self.length + 1, dtype=jnp.float32)

    def clean(self, key: jax.Array) -> jax.Array:
        """The clean stream ``[T + 1, C]``."""
        k_w, k_f, k_phi, k_eps = jax.random.split(key, 4)
        c, k = self.channels, self.sources
        mixing = jax.random.normal(k_w, (c, k), jnp.float32) / math.sqrt(k)
        freq = jax.random.uniform(k_f, (k,), jnp.float32, self.f_min, self.f_max)
        phase = jax.random.uniform(k_phi, (k,), jnp.float32, 0.0, 2.0 * math.pi)
        sources = jnp.sin(2.0 * math.pi * self.t[:, None] * freq[None, :] + phase[None, :])
        noise = self.sigma * jax.random.normal(k_eps, (self.length + 1, c), jnp.float32)
        return sources @ mixing.T + noise

    def batch(self, x: jax.Array) -> Batch:
        return Batch(
            x[:-1],
            x[1:],
            jnp.ones((self.length,), jnp.float32),
            jnp.asarray(self.length, jnp.int32),
        )

    def baseline(self) -> float:
        """min(persistence, zero predictor) MSE per channel, in closed form."""
        w_lo, w_hi = 2.0 * math.pi * self.f_min, 2.0 * math.pi * self.f_max
        mean_cos = (
            math.cos(w_lo) if w_hi == w_lo else (math.sin(w_hi) - math.sin(w_lo)) / (w_hi - w_lo)
        )
        persistence = (1.0 - mean_cos) + 2.0 * self.sigma**2
        zero = 0.5 + self.sigma**2
        return min(persistence, zero)


def sensor_anomaly(
    length: int = 200,
    num_channels: int = 4,
    num_sources: int = 3,
    noise_std: float = 0.05,
    min_freq: float = 0.01,
    max_freq: float = 0.1,
) -> Task:
    """Training task for forecasting-based anomaly detection: forecast a clean sensor stream.

    See the module docstring for the stream. Next-step forecasting with MSE over the C
    channels; the batches carry no anomalies and no labels (use `sensor_anomaly_eval` for
    labelled test streams). Baseline: the better of persistence (x(t+1) ~ x(t)),
    ``1 - E[cos(2 pi f)] + 2 sigma^2``, and the zero predictor, ``1/2 + sigma^2``, per
    channel in closed form.

    Args:
      length: T >= 1.
      num_channels: C >= 1.
      num_sources: K >= 1 latent sines.
      noise_std: sigma >= 0, the sensor noise.
      min_freq: lowest frequency, in (0, 0.5] cycles per step.
      max_freq: highest frequency, in [min_freq, 0.5].

    Returns:
      A many_to_many `Task`: inputs and targets ``[B, T, C]`` float32, mask ``[B, T]``.
    """
    where = "sensor_anomaly"
    stream = _Stream(where, length, num_channels, num_sources, noise_std, min_freq, max_freq)

    def example(key: jax.Array) -> Batch:
        k_clean, _ = jax.random.split(key)
        return stream.batch(stream.clean(k_clean))

    return Task(
        name=where,
        sample=make_sampler(where, example),
        input_size=stream.channels,
        output_size=stream.channels,
        pattern="many_to_many",
        loss="mse",
        metric="mse",
        baseline=stream.baseline(),
    )


def sensor_anomaly_eval(
    length: int = 200,
    num_channels: int = 4,
    num_sources: int = 3,
    noise_std: float = 0.05,
    min_freq: float = 0.01,
    max_freq: float = 0.1,
    *,
    num_anomalies: int = 2,
    magnitude: float = 1.0,
    max_duration: int = 10,
) -> Callable[[jax.Array, int], tuple[Batch, jax.Array]]:
    """A labelled sampler of sensor streams with injected anomalies.

    The stream is that of `sensor_anomaly` with the same arguments (and, for the same key,
    the same clean signal). Into the ``T + 1`` points, ``num_anomalies`` segments are injected,
    each on one uniformly chosen channel, of a kind uniform over `ANOMALY_KINDS`:

    * spike: one step, ``+-3 * magnitude * u``;
    * level shift: ``+-magnitude * u`` over a duration uniform on ``[1, max_duration]``;
    * noise burst: ``magnitude * N(0, 1)`` per step over such a duration;

    with u ~ U[0.5, 1.5] and a uniform sign, at a start uniform among the positions where the
    segment fits. ``labels[t]`` is 1.0 when
    ``targets[t] = x(t + 1)`` lies in any segment (segments may overlap). Score each step by
    its forecasting error (e.g. the squared error summed over channels) and evaluate with
    ``auroc(scores, labels)``.

    Args:
      length: as in `sensor_anomaly`.
      num_channels: as in `sensor_anomaly`.
      num_sources: as in `sensor_anomaly`.
      noise_std: as in `sensor_anomaly`.
      min_freq: as in `sensor_anomaly`.
      max_freq: as in `sensor_anomaly`.
      num_anomalies: segments per stream, >= 0.
      magnitude: the anomaly scale, >= 0.
      max_duration: the longest level shift or noise burst, in [1, T].

    Returns:
      ``sample(key, batch_size) -> (Batch, labels [B, T] float32)``; jittable with
      ``batch_size`` static.
    """
    where = "sensor_anomaly_eval"
    stream = _Stream(where, length, num_channels, num_sources, noise_std, min_freq, max_freq)
    num_anomalies = check_int(where, "num_anomalies", num_anomalies, 0)
    magnitude = check_float(where, "magnitude", magnitude, 0.0, math.inf)
    max_duration = check_int(where, "max_duration", max_duration, 1)
    if max_duration > stream.length:
        raise ValueError(
            f"{where}: `max_duration` must be <= length={stream.length}, got {max_duration}."
        )
    total = stream.length + 1
    t = steps(total)

    def segment(key: jax.Array) -> tuple[jax.Array, jax.Array]:
        k_kind, k_dur, k_start, k_chan, k_sign, k_size, k_noise = jax.random.split(key, 7)
        kind = jax.random.randint(k_kind, (), 0, len(ANOMALY_KINDS), dtype=jnp.int32)
        duration = jax.random.randint(k_dur, (), 1, max_duration + 1, dtype=jnp.int32)
        duration = jnp.where(kind == 0, 1, duration)
        start = jax.random.randint(k_start, (), 0, total - duration + 1, dtype=jnp.int32)
        channel = jax.random.randint(k_chan, (), 0, stream.channels, dtype=jnp.int32)
        sign = jnp.where(jax.random.bernoulli(k_sign), jnp.float32(1.0), jnp.float32(-1.0))
        sign = sign * jax.random.uniform(k_size, (), jnp.float32, 0.5, 1.5)
        noise = jax.random.normal(k_noise, (total,), jnp.float32)
        size = jnp.where(kind == 0, _SPIKE_SCALE * magnitude * sign, magnitude * sign)
        size = jnp.where(kind == 2, magnitude * noise, size)  # [total]
        active = (t >= start) & (t < start + duration)
        bump = jnp.where(active, size, jnp.float32(0.0))
        delta = bump[:, None] * jax.nn.one_hot(channel, stream.channels, dtype=jnp.float32)[None]
        return delta, active

    def example(key: jax.Array) -> tuple[Batch, jax.Array]:
        k_clean, k_anomaly = jax.random.split(key)
        x = stream.clean(k_clean)
        labels = jnp.zeros((total,), bool)
        for k_seg in jax.random.split(k_anomaly, num_anomalies):
            delta, active = segment(k_seg)
            x = x + delta
            labels = labels | active
        return stream.batch(x), labels[1:].astype(jnp.float32)

    return make_sampler(where, example)  # type: ignore[arg-type]  # returns (Batch, labels)
