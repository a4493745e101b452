"""Shared helpers of the claim experiments: configs, training, tables, figures, CLI.

Every experiment script builds its configs from the YAML files in ``configs/`` with
overrides (`config`), trains them in memory with `seqjax.run` (all seeds vmapped in one
program, `train`), and writes a Markdown + JSON table and a PNG figure under its out
folder (`write_result`). Each script's ``main(argv)`` takes ``--seeds`` (e.g. ``0,1,2,3,4`` or
``0-4``), ``--tiny`` (a seconds-long smoke run) and ``--out DIR``.

Statistics and verdicts come from `experiments.claims.stats`; `setting` summarises one setting's
seeds (every seed's value, mean with its 95% bootstrap interval, solved fraction, updates to
solve) and `cell` formats it for a table.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import seqjax
from seqjax.experiment import (
    ExperimentConfig,
    config_from_data,
    dump_config,
    grid_cells,
    parse_yaml,
    task_from_config,
)
from seqjax.experiment.runs import write_atomic, write_json_atomic
from seqjax.train import NonFiniteError

try:
    from experiments.claims import stats
except ImportError:  # run as a script
    import stats  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
DEFAULT_OUT = ROOT / "experiments" / "results" / "claims"
SEEDS = [0, 1, 2, 3, 4]
"""The default training seeds of a full run (at least 5 for an interval)."""
TINY_SEEDS = [0, 1]
"""The default seeds of a ``--tiny`` smoke run."""


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` (or a mix, ``"0-2,7"``) as a sorted list of distinct seeds.

    Raises:
      ValueError: naming ``--seeds`` and the text received.
    """
    seeds: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = part.split("-", 1)
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                seeds.update(range(a, b + 1))
            else:
                seeds.add(int(part))
    except ValueError:
        raise ValueError(
            f"--seeds: expected whole numbers >= 0 separated by commas, or ranges a-b "
            f"(e.g. 0,1,2,3,4 or 0-4), got {text!r}"
        ) from None
    if not seeds or min(seeds) < 0:
        raise ValueError(f"--seeds: expected seeds >= 0 (e.g. 0-4), got {text!r}")
    return sorted(seeds)


def parse_args(
    argv: list[str] | None, description: str, parser: argparse.ArgumentParser | None = None
) -> argparse.Namespace:
    """``--seeds``, ``--tiny`` (smoke-test size) and ``--out DIR``.

    ``--seeds`` defaults to `SEEDS` (`TINY_SEEDS` with ``--tiny``) and is parsed into a list
    of ints (`parse_seeds`). ``--out`` defaults to ``experiments/results/claims``, or to a
    fresh temporary folder with ``--tiny`` (so a smoke run never overwrites real results).

    Args:
      argv: the arguments (None: ``sys.argv[1:]``).
      description: the script's one-line description.
      parser: a parser holding the script's own flags, to which these three are added.
    """
    parser = parser or argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--seeds", default=None, help=f"training seeds, e.g. 0,1,2,3,4 or 0-4 (default {SEEDS})"
    )
    parser.add_argument("--tiny", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--out", default=None, help="folder for tables and figures")
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = list(TINY_SEEDS if args.tiny else SEEDS)
    else:
        args.seeds = parse_seeds(args.seeds)
    if args.out is None:
        args.out = tempfile.mkdtemp(prefix="claims-tiny-") if args.tiny else str(DEFAULT_OUT)
    return args


def parse_cells(text: str, choices: tuple[str, ...], script: str) -> tuple[str, ...]:
    """A ``--cells`` value (comma-separated names from ``choices``) as a tuple in the order of
    ``choices`` (the tables' order).

    Raises:
      ValueError: naming ``script``, the unknown names (or that none was given) and the choices.
    """
    chosen = [c for c in text.split(",") if c]
    unknown = [c for c in chosen if c not in choices]
    if unknown or not chosen:
        raise ValueError(f"{script}: --cells {unknown or '(none)'}; choose from {choices}")
    return tuple(c for c in choices if c in chosen)


def setting(
    seeds: list[int],
    values: Any,
    *,
    threshold: float,
    higher_is_better: bool = False,
    curves: tuple[Any, Any] | None = None,
) -> tuple[dict[str, Any], stats.Interval]:
    """One setting's JSON record (`stats.summarize`) and its `stats.Interval`.

    A diverged seed (NaN final value) counts as the worst value: inf for a loss, 0 for an
    accuracy, so it never solves and pulls the interval the honest way.

    Args:
      seeds: the training seeds, one per value.
      values: ``[S]`` each seed's final value.
      threshold: the success threshold, stated in the script before it runs.
      higher_is_better: True for an accuracy.
      curves: ``(steps [K], values [K, S])`` as `train` returns them (``res["steps"]``,
        ``res["loss"]``), for updates to solve; None leaves it out.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = np.where(np.isnan(v), 0.0 if higher_is_better else np.inf, v)
    per_seed = None
    if curves is not None:
        steps, curve = curves
        curve = np.asarray(curve, dtype=np.float64).reshape(len(steps), v.size)
        per_seed = (np.asarray(steps).astype(int), curve.T)
    record = stats.summarize(
        seeds, v, threshold=threshold, higher_is_better=higher_is_better, curves=per_seed
    )
    return record, stats.bootstrap_interval(v)


def cell(record: dict[str, Any], digits: int = 3) -> str:
    """A table entry: ``"mean [low, high] k/n"`` (k of n seeds solved), from `setting`'s record."""

    def num(x: float | None) -> str:
        return "inf" if x is None else f"{x:.{digits}g}"

    low, high = record["ci95"]
    k, n = sum(record["solved"]), len(record["solved"])
    return f"{num(record['mean'])} [{num(low)}, {num(high)}] {k}/{n}"


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def config(yaml_path: str, *, tiny: bool = False, **sections: Any) -> ExperimentConfig:
    """The config of ``configs/<yaml_path>`` with nested overrides, quiet (no bar, no plots).

    Args:
      yaml_path: relative to ``configs/``, e.g. ``"adding/lstm.yaml"``.
      **sections: nested dicts merged into the YAML data, e.g. ``task={"length": 50}``;
        a key whose value is None is removed (e.g. ``model={"chrono": None}`` would be kept as
        None, so use it only for optional keys).
      tiny: evaluate on one small batch (the smoke-test size).

    Raises:
      FileNotFoundError: naming the missing YAML file.
    """
    path = CONFIGS / yaml_path
    if not path.is_file():
        raise FileNotFoundError(f"config: {path} does not exist (yaml_path={yaml_path!r})")
    data = parse_yaml(path.read_text(), str(path))
    data = _merge(data, {"log": {"progress": False, "plots": False}})
    data = _merge(data, sections)
    if tiny:
        data = _merge(data, {"log": {"eval_batch_size": 8, "eval_batches": 1}})
    return config_from_data(data, f"config {yaml_path}")


def train(cfg: ExperimentConfig) -> dict[str, Any]:
    """Trains ``cfg`` in memory (`seqjax.run`, nothing written); returns what the tables and
    figures need.

    The curves are the values a run folder's ``metrics.jsonl`` logs (`logged`): the mean of
    each chunk's updates, every ``log.every`` steps (default: every chunk) and at the end.

    Returns:
      ``{"summary": the summary.json dict, "steps": [N], "loss": [N, S], "grad_norm": [N, S],
      "eval_loss": [S], "eval_accuracy": [S] or None, "wall_s": float, "config": YAML,
      "diagnostics": the ``diagnostics.npz`` arrays when ``cfg.diagnostics`` is set, else
      None}``. When every run diverged (`seqjax.train.NonFiniteError`), that is the setting's
      result: `diverged_result`.
    """
    start = time.perf_counter()
    try:
        result = seqjax.run(cfg, progress=False)
    except NonFiniteError as err:
        return diverged_result(cfg, str(err), time.perf_counter() - start)
    wall = time.perf_counter() - start
    steps, curves = logged(cfg, result.metrics, ("loss", "grad_norm"))
    final = result.summary["eval"]
    acc = final.get("accuracy")
    return {
        "summary": result.summary,
        "steps": steps,
        "loss": curves["loss"],
        "grad_norm": curves["grad_norm"],
        "eval_loss": np.atleast_1d(np.asarray(final["loss"], dtype=np.float64)),
        "eval_accuracy": None if acc is None else np.atleast_1d(np.asarray(acc, np.float64)),
        "wall_s": wall,
        "config": dump_config(cfg),
        "diagnostics": result.diagnostics,
    }


def diverged_result(cfg: ExperimentConfig, message: str, wall_s: float) -> dict[str, Any]:
    """`train`'s result for a config whose every run diverged: final values NaN for every run
    (which `setting` counts as the worst), no logged curve, the summary's ``"diverged"`` True
    for every run (as a run's summary flags its diverged runs), ``"error"`` the error's message
    and ``"baseline"`` the task's; the other summary figures None."""
    runs = len(cfg.seeds) * len(grid_cells(cfg))
    nan = np.full(runs, np.nan)
    empty = np.zeros((0, runs))
    return {
        "summary": {
            "baseline": task_from_config(cfg.task).baseline,
            "diverged": [True] * runs,
            "error": message,
            "steps_per_s": None,
            "compile_time_s": None,
            "num_params": None,
        },
        "steps": np.zeros(0, dtype=int),
        "loss": empty,
        "grad_norm": empty,
        "eval_loss": nan,
        "eval_accuracy": nan.copy(),
        "wall_s": wall_s,
        "config": dump_config(cfg),
        "diagnostics": None,
    }


def logged(
    cfg: ExperimentConfig, metrics: dict[str, np.ndarray], keys: tuple[str, ...]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The training curves ``metrics.jsonl`` would hold, from every update's metrics.

    `seqjax.train.fit` trains ``train.chunk_size`` updates at a time; a run logs the mean of
    a chunk's updates after each chunk that ends on a multiple of ``log.every`` (default:
    every chunk) or at ``train.steps``.

    Args:
      cfg: the run's config.
      metrics: `seqjax.RunResult.metrics`, ``name -> [runs, steps]``.
      keys: the metrics to return.

    Returns:
      The logged steps ``[N]`` and, for each key, its values ``[N, runs]`` (float64).
    """
    chunk, total = cfg.train.chunk_size, cfg.train.steps
    every = cfg.log.every or chunk
    trained = next(iter(metrics.values())).shape[-1]
    steps, rows = [], []
    for first in range(0, trained, chunk):
        last = min(first + chunk, trained)
        if last % every == 0 or last == total:
            steps.append(last)
            rows.append({k: np.mean(np.asarray(metrics[k])[:, first:last], axis=-1) for k in keys})
    curves = {
        k: np.asarray([r[k] for r in rows], dtype=np.float64).reshape(len(rows), -1) for k in keys
    }
    return np.asarray(steps, dtype=np.float64), curves


def mean_std(values: Any, digits: int = 3) -> str:
    """``"m ± s"`` over seeds (``"m"`` for one value)."""
    v = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if v.size == 1:
        return f"{v[0]:.{digits}g}"
    return f"{v.mean():.{digits}g} ± {v.std():.2g}"


def markdown_table(columns: list[str], rows: list[list[Any]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def figure():
    """``matplotlib.pyplot`` on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, png: Path) -> Path:
    """Saves ``fig`` as the PNG every claim page shows (110 dpi, tight) and closes it."""
    fig.savefig(png, dpi=110, bbox_inches="tight")
    figure().close(fig)
    return png


def write_result(
    out: str | Path,
    name: str,
    *,
    title: str,
    claim: str,
    table: str,
    data: dict[str, Any],
    setup: str,
    seeds: list[int],
    wall_s: float,
    verdict: str,
    notes: str = "",
    fig=None,
    verdicts: dict[str, Any] | None = None,
    published: str = "",
) -> Path:
    """Writes ``<out>/<name>.md``, ``<name>.json`` and (if ``fig``) ``<name>.png``.

    The Markdown section is what ``run_all.py`` pastes into ``experiments/RESULTS.md``:
    title, claim, setup, table, figure, verdict, published figures, notes.

    Args:
      verdicts: the per-model verdicts (`stats.verdicts`), kept in the JSON under
        ``"verdicts"``; ``verdict`` is their sentence for the page.
      published: the published figures beside ours, with their source and how their setting
        differs (a paragraph or a Markdown table).

    Returns:
      The path of the Markdown file.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    png = None if fig is None else save_figure(fig, out / f"{name}.png")
    parts = [
        f"## {title}",
        "",
        f"**Claim.** {claim}",
        "",
        f"**Setup.** {setup} Seeds {seeds} (vmapped, one program per configuration). "
        f"Wall time {wall_s:.0f} s on this machine.",
        "",
        table,
        "",
    ]
    if png is not None:
        parts += [f"![{name}](results/claims/{png.name})", ""]
    parts += [f"**Verdict.** {verdict}", ""]
    if published:
        parts += [f"**Published.** {published}", ""]
    if notes:
        parts += [notes, ""]
    md = out / f"{name}.md"
    write_atomic(md, "\n".join(parts))
    payload = {"name": name, "title": title, "seeds": seeds, "wall_time_s": wall_s, **data}
    if verdicts is not None:
        payload["verdicts"] = verdicts
    write_json_atomic(out / f"{name}.json", json.loads(json.dumps(payload, default=_plain)))
    return md


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
