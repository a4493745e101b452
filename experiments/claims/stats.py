"""Statistics and verdicts of the claim experiments, one set of rules for every claim.

Every rule here is fixed before a run and applied unchanged to its result:

* every seed's value is kept (`summarize` returns them beside the summaries);
* the mean over seeds comes with a 95% percentile-bootstrap interval (`bootstrap_interval`:
  NumPy, seeded, 10 000 resamples of the seeds with replacement);
* a seed *solves* a setting when its value is below a threshold stated in the script before
  it runs (above, for a metric where higher is better, such as accuracy): `solved`,
  `solved_fraction`; *updates to solve* is the first logged step that does so
  (`updates_to_solve`);
* the verdict is per model, never per "best of": **reproduces**, **contradicted** or
  **inconclusive** (`verdict`, `verdicts`).

Example::

    lstm = bootstrap_interval([0.004, 0.002, 0.009, 0.003, 0.005])
    rnn = bootstrap_interval([0.166, 0.167, 0.165, 0.168, 0.166])
    left = left_baseline(lstm, baseline=1 / 6)                  # True
    verdict(lstm, rnn, claim="better", any_left_baseline=left)  # "reproduces"
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "CLAIMS",
    "CONFIDENCE",
    "CONTRADICTED",
    "INCONCLUSIVE",
    "REPRODUCES",
    "RESAMPLES",
    "VERDICTS",
    "Interval",
    "bootstrap_interval",
    "exact",
    "left_baseline",
    "overlap",
    "solved",
    "solved_fraction",
    "summarize",
    "updates_to_solve",
    "verdict",
    "verdicts",
]

REPRODUCES = "reproduces"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
VERDICTS = (REPRODUCES, CONTRADICTED, INCONCLUSIVE)
CLAIMS = ("better", "worse")
CONFIDENCE = 0.95
RESAMPLES = 10_000


class Interval(NamedTuple):
    """A mean over seeds and its confidence interval.

    Attributes:
      mean: the mean of the values.
      low: the lower end of the interval.
      high: the upper end.
      n: the number of values (seeds); None for an exact number such as a baseline (`exact`).
    """

    mean: float
    low: float
    high: float
    n: int | None


def exact(value: float) -> Interval:
    """An exact number (a baseline, a published figure) as a zero-width `Interval`."""
    v = float(value)
    return Interval(v, v, v, None)


def _values(values: Any, where: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(
            f"{where}: `values` must be a non-empty 1-D sequence (one value per seed), got "
            f"shape {v.shape}."
        )
    if np.any(np.isnan(v)):
        raise ValueError(
            f"{where}: `values` holds NaN at seeds {np.flatnonzero(np.isnan(v)).tolist()}; "
            f"record a diverged run as inf (the worst loss) before summarising it."
        )
    return v


def bootstrap_interval(
    values: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The mean over seeds with a percentile-bootstrap confidence interval.

    Percentile bootstrap (Efron & Tibshirani 1993, ch. 13): draw ``resamples`` sets of n
    values from the n seeds with replacement (``numpy.random.default_rng(seed)``), take the
    mean of each, and report the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
    quantiles of those means (``method="inverted_cdf"``: each end is one of the resampled
    means, so an infinite value stays infinite instead of turning into NaN). With one value the
    interval has zero width and `verdict` calls the comparison inconclusive.

    Args:
      values: one value per seed; inf is allowed (a diverged run), NaN is an error.
      confidence: the coverage, in (0, 1).
      resamples: the number of bootstrap resamples, >= 1.
      seed: the seed of the resampling, so the interval is reproducible.

    Returns:
      `Interval` ``(mean, low, high, n)``.
    """
    v = _values(values, "bootstrap_interval")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"bootstrap_interval: `confidence` must be in (0, 1), got {confidence}.")
    if resamples < 1:
        raise ValueError(f"bootstrap_interval: `resamples` must be >= 1, got {resamples}.")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(resamples, v.size))].mean(axis=1)
    low, high = np.quantile(
        means, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0], method="inverted_cdf"
    )
    return Interval(float(v.mean()), float(low), float(high), int(v.size))


def solved(values: Any, threshold: float, *, higher_is_better: bool = False) -> np.ndarray:
    """Which seeds solve the setting: value < threshold (> threshold if higher is better).

    The threshold is stated in the script before it runs (adding: eval MSE below 0.01); NaN
    never solves.

    Returns:
      ``[n]`` bool, one per seed.
    """
    v = np.asarray(values, dtype=np.float64)
    return v > threshold if higher_is_better else v < threshold


def solved_fraction(values: Any, threshold: float, *, higher_is_better: bool = False) -> float:
    """The fraction of seeds that solve the setting (`solved`), in [0, 1]."""
    return float(np.mean(solved(values, threshold, higher_is_better=higher_is_better)))


def updates_to_solve(
    steps: Sequence[int], values: Sequence[float], threshold: float, *, higher_is_better=False
) -> int | None:
    """The first logged step whose value solves the setting (`solved`); None if none does.

    Args:
      steps: ``[K]`` the logged update counts, increasing.
      values: ``[K]`` one seed's logged values at those steps.
      threshold: as in `solved`.
      higher_is_better: as in `solved`.

    Returns:
      The step (an int), or None when the run never got below (above) the threshold.
    """
    s, v = np.asarray(steps), np.asarray(values, dtype=np.float64)
    if s.shape != v.shape or s.ndim != 1:
        raise ValueError(
            f"updates_to_solve: `steps` and `values` must be 1-D of one length (one value per "
            f"logged step), got shapes {s.shape} and {v.shape}."
        )
    hits = np.flatnonzero(solved(v, threshold, higher_is_better=higher_is_better))
    return int(s[hits[0]]) if hits.size else None


def overlap(a: Interval, b: Interval) -> bool:
    """Whether two intervals share a point (touching ends count as overlapping)."""
    return a.low <= b.high and b.low <= a.high


def left_baseline(
    interval: Interval, baseline: float, *, best: float = 0.0, margin: float = 0.1
) -> bool:
    """Whether a model left the baseline: its whole interval is past ``margin`` of the way from
    the baseline to the best possible value.

    The rule: with ``best < baseline`` (a loss; 0 by default) the model left the baseline when
    ``high < baseline - margin (baseline - best)``; with ``best > baseline`` (an accuracy,
    best = 1) when ``low > baseline + margin (best - baseline)``. The margin (10% of the way)
    keeps a model that sits on the plateau with a tight interval, a hair under the baseline,
    from counting as having learnt.

    Args:
      interval: the model's `Interval` over seeds.
      baseline: the task's baseline (`Task.baseline`, or chance accuracy), in the same units.
      best: the best possible value (0 for a loss, 1 for an accuracy).
      margin: the fraction of the way from baseline to best, in [0, 1).
    """
    if best == baseline or not 0.0 <= margin < 1.0:
        raise ValueError(
            f"left_baseline: need best != baseline and margin in [0, 1), got best={best}, "
            f"baseline={baseline}, margin={margin}."
        )
    edge = baseline + margin * (best - baseline)
    return interval.high < edge if best < baseline else interval.low > edge


def verdict(
    model: Interval,
    reference: Interval,
    *,
    claim: str,
    any_left_baseline: bool,
    higher_is_better: bool = False,
) -> str:
    """The verdict on one model's claim against a reference (another model, or `exact`).

    The rule, in order:

    1. **inconclusive** when no model of the setting left the baseline (`left_baseline`):
       the budget, not the models, decided the outcome;
    2. **inconclusive** when either interval comes from fewer than two seeds, or the two
       intervals overlap (`overlap`);
    3. otherwise **reproduces** when the model is on the claimed side of the reference
       (``claim="better"``: lower loss, or higher accuracy with ``higher_is_better``;
       ``claim="worse"``: the opposite), and **contradicted** when it is on the other side.

    Args:
      model: the model's `Interval`.
      reference: what the claim compares it with.
      claim: ``"better"`` or ``"worse"``: what the claim says of the model.
      any_left_baseline: whether any model of the setting left the baseline.
      higher_is_better: the direction of the metric (False for a loss).

    Returns:
      ``"reproduces"``, ``"contradicted"`` or ``"inconclusive"``.
    """
    if claim not in CLAIMS:
        raise ValueError(f"verdict: `claim` must be one of {CLAIMS}, got {claim!r}.")
    if not any_left_baseline:
        return INCONCLUSIVE
    if any(x.n is not None and x.n < 2 for x in (model, reference)) or overlap(model, reference):
        return INCONCLUSIVE
    model_better = model.low > reference.high if higher_is_better else model.high < reference.low
    return REPRODUCES if model_better == (claim == "better") else CONTRADICTED


def verdicts(
    intervals: Mapping[str, Interval],
    claims: Mapping[str, tuple[str, str]],
    *,
    baseline: float,
    best: float = 0.0,
    margin: float = 0.1,
) -> dict[str, str]:
    """One verdict per model of a setting (`verdict`), never one for the best of them.

    Args:
      intervals: model name -> its `Interval` over seeds.
      claims: model name -> ``(claim, reference)``: ``"better"`` or ``"worse"`` than the model
        named ``reference`` (a key of ``intervals``) or than ``"baseline"``.
      baseline: the setting's baseline; whether any model left it (`left_baseline` with
        ``best`` and ``margin``) decides rule 1 of `verdict`.
      best: the best possible value; ``best > baseline`` means higher is better.
      margin: as in `left_baseline`.

    Returns:
      model name -> verdict, for each model in ``claims``.

    Example:
      >>> verdicts({"lstm": lstm, "rnn": rnn}, {"lstm": ("better", "rnn")}, baseline=1 / 6)
    """
    any_left = any(left_baseline(x, baseline, best=best, margin=margin) for x in intervals.values())
    out = {}
    for name, (claim, reference) in claims.items():
        if name not in intervals or (reference != "baseline" and reference not in intervals):
            raise ValueError(
                f"verdicts: claim {name!r} -> {reference!r} names a model without an interval; "
                f"known: {sorted(intervals)} and 'baseline'."
            )
        ref = exact(baseline) if reference == "baseline" else intervals[reference]
        out[name] = verdict(
            intervals[name],
            ref,
            claim=claim,
            any_left_baseline=any_left,
            higher_is_better=best > baseline,
        )
    return out


def summarize(
    seeds: Sequence[int],
    values: Sequence[float],
    *,
    threshold: float,
    higher_is_better: bool = False,
    curves: tuple[Sequence[int], Sequence[Sequence[float]]] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The JSON record of one setting: every seed's value, the mean with its 95% bootstrap
    interval, which seeds solve it and the solved fraction, and updates to solve.

    Args:
      seeds: the training seeds, one per value.
      values: each seed's final value (e.g. eval MSE).
      threshold: the success threshold stated before the run (`solved`).
      higher_is_better: the direction of the metric.
      curves: ``(steps [K], per-seed values [n, K])`` of the logged curve, for
        ``updates_to_solve``; None leaves it out.
      seed: the seed of the bootstrap.

    Returns:
      A JSON-ready dict: ``seeds``, ``values``, ``mean``, ``ci95`` ``[low, high]``,
      ``threshold``, ``solved`` (one bool per seed), ``solved_fraction`` and, with ``curves``,
      ``updates_to_solve`` (one int or None per seed). Infinite values are written as None.
    """
    v = _values(values, "summarize")
    if len(seeds) != v.size:
        raise ValueError(
            f"summarize: {len(seeds)} seeds but {v.size} values; give one value per seed."
        )
    interval = bootstrap_interval(v, seed=seed)
    record: dict[str, Any] = {
        "seeds": [int(s) for s in seeds],
        "values": [_finite_or_none(x) for x in v],
        "mean": _finite_or_none(interval.mean),
        "ci95": [_finite_or_none(interval.low), _finite_or_none(interval.high)],
        "threshold": float(threshold),
        "solved": solved(v, threshold, higher_is_better=higher_is_better).tolist(),
        "solved_fraction": solved_fraction(v, threshold, higher_is_better=higher_is_better),
    }
    if curves is not None:
        steps, per_seed = curves
        if len(per_seed) != v.size:
            raise ValueError(
                f"summarize: `curves` holds {len(per_seed)} seeds' curves, expected {v.size}."
            )
        record["updates_to_solve"] = [
            updates_to_solve(steps, c, threshold, higher_is_better=higher_is_better)
            for c in per_seed
        ]
    return record


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
