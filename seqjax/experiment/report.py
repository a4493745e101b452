"""Reports: Markdown with plots comparing run folders (``seqjax report``), the plots a run
writes into its folder, and the report of a sweep.

A report reads only what runs wrote (``summary.json``, ``metrics.jsonl``,
``diagnostics.npz``), so it works on runs from other machines and never re-runs anything.
Figures are built with ``matplotlib.figure.Figure`` (`seqjax.diagnostics.plot.new_figure`),
never pyplot, so no backend is switched.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from seqjax.diagnostics.plot import new_figure, plot_grad_norms
from seqjax.experiment.config import ExperimentConfig, load_config
from seqjax.experiment.recorder import read_diagnostics
from seqjax.experiment.runs import (
    CONFIG,
    SUMMARY,
    read_metrics,
    read_summary,
    series,
    write_atomic,
    write_json_atomic,
)
from seqjax.experiment.sweep import grid_cells, program_configs


def _mean_spread(values: Any) -> str:
    v = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if v.size == 0:
        return "-"
    if v.size == 1:
        return f"{v[0]:.4g}"
    return f"{v.mean():.4g} ± {v.std():.2g}"


def _ratio(values: Any, baseline: float | None) -> str:
    if not baseline:
        return "-"
    v = np.atleast_1d(np.asarray(values, dtype=np.float64))
    return f"{v.mean() / baseline:.3f}" if v.size else "-"


def _diverged_text(flags: Any) -> str:
    """``"-"`` when no run diverged, else how many of them did, ``"1/2"``."""
    v = np.atleast_1d(np.asarray(flags if flags is not None else [], dtype=bool))
    return f"{int(v.sum())}/{v.size}" if v.any() else "-"


def _live(values: Any, flags: Any) -> Any:
    """The values of the runs that did not diverge (``flags``, one per run); all of them
    when none or every run diverged."""
    v = np.atleast_1d(np.asarray(values, dtype=np.float64))
    f = np.atleast_1d(np.asarray(flags if flags is not None else [], dtype=bool))
    if f.shape != v.shape or not f.any() or f.all():
        return values
    return v[~f]


def _band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over runs ``[steps, runs]``, leaving out NaN (a diverged run's
    masked steps); NaN where every run is."""
    gone = np.isnan(values).all(axis=1)
    filled = np.where(gone[:, None], 0.0, values)
    mean, low, high = (np.nanmean(filled, 1), np.nanmin(filled, 1), np.nanmax(filled, 1))
    return tuple(np.where(gone, np.nan, a) for a in (mean, low, high))


def plot_runs(runs: list[tuple[str, Path, dict]], key: str, path: Path, *, log: bool) -> Path:
    """One axis, one line per run (mean over seeds, min-max band, both leaving out diverged
    runs' masked steps), baselines dashed."""
    fig = new_figure((7, 4))
    ax = fig.add_subplot()
    for i, (label, run_dir, summary) in enumerate(runs):
        steps, values = series(read_metrics(run_dir), key)
        if steps.size == 0:
            continue
        color = f"C{i % 10}"
        mean, low, high = _band(np.asarray(values, dtype=np.float64))
        ax.plot(steps, mean, color=color, label=label)
        if values.shape[1] > 1:
            ax.fill_between(steps, low, high, color=color, alpha=0.2)
        baseline = summary.get("baseline")
        if key == "loss" and baseline:
            ax.axhline(baseline, color=color, linestyle="--", linewidth=1)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(key + (" (dashed: trivial baseline)" if key == "loss" else ""))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def write_report(
    run_dirs: list[str | os.PathLike], out_dir: str | os.PathLike | None = None
) -> Path:
    """Writes ``report.md`` and ``plots/compare_*.png`` comparing the given runs.

    Args:
      run_dirs: finished run folders (each with a ``summary.json``).
      out_dir: where to write; the single run's folder, or the parent of the first run's.

    Returns:
      The path of ``report.md``.
    """
    if not run_dirs:
        raise ValueError("report: give at least one run folder")
    runs = []
    for d in run_dirs:
        d = Path(d)
        if not d.is_dir():
            raise FileNotFoundError(f"report: run folder {d} does not exist")
        summary = read_summary(d)
        runs.append((summary.get("name", d.name), d, summary))
    if out_dir is None:
        out_dir = run_dirs[0] if len(run_dirs) == 1 else Path(run_dirs[0]).parent
    out_dir = Path(out_dir)
    loss_png = plot_runs(runs, "loss", out_dir / "plots" / "compare_loss.png", log=True)
    grad_png = plot_runs(runs, "grad_norm", out_dir / "plots" / "compare_grad_norm.png", log=True)

    lines = [
        "# seqjax report",
        "",
        "| run | task | model | steps | seeds | eval loss | baseline | loss / baseline "
        "| metric | diverged | wall time | steps/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, run_dir, s in runs:
        final = {k: _live(v, s.get("diverged")) for k, v in s.get("eval", {}).items()}
        metric_name = s.get("metric", "metric")
        lines.append(
            f"| [{label}]({os.path.relpath(run_dir, out_dir)}) | {s.get('task', '-')} "
            f"| {s.get('model', '-')} | {s.get('steps', '-')} | {len(s.get('seeds', [0]))} "
            f"| {_mean_spread(final.get('loss', []))} | {_mean_spread(s.get('baseline', []))} "
            f"| {_ratio(final.get('loss', []), s.get('baseline'))} "
            f"| {metric_name} {_mean_spread(final.get(metric_name, []))} "
            f"| {_diverged_text(s.get('diverged'))} "
            f"| {s.get('wall_time_s', 0):.1f} s | {s.get('steps_per_s', 0):.1f} |"
        )
    lines += [
        "",
        "Eval loss: mean ± standard deviation over the seeds that did not diverge. The baseline "
        "is the loss of the best memoryless predictor of the task; a ratio near 1 means nothing "
        "long-range was learned. "
        "Diverged: runs stopped after train.max_bad_steps consecutive non-finite updates "
        "(parameters frozen at their last finite values, later training metrics NaN).",
        "",
        f"![training loss]({os.path.relpath(loss_png, out_dir)})",
        "",
        f"![gradient norm]({os.path.relpath(grad_png, out_dir)})",
        "",
    ]
    for label, run_dir, _ in runs:
        plots = plot_diagnostics(run_dir, out_dir / "plots", label)
        if plots:
            lines += [f"## Gradient-flow diagnostics: {label}", ""]
            lines += [f"![{title}]({os.path.relpath(p, out_dir)})\n" for title, p in plots]
    report = out_dir / "report.md"
    write_atomic(report, "\n".join(lines))
    return report


# ---------------------------------------------------------------------------- diagnostics plots


def _pick_records(num: int, most: int = 5) -> list[int]:
    return sorted(set(np.linspace(0, num - 1, min(num, most)).round().astype(int).tolist()))


def _over_training(steps, values, names, title, ylabel, path, log):
    fig = new_figure((6.0, 4.0))
    ax = fig.add_subplot()
    for j, name in enumerate(names):
        v = values[:, :, j]  # [N, S]
        ax.plot(steps, v.mean(axis=1), marker="o", markersize=3, label=str(name), color=f"C{j}")
        if v.shape[1] > 1:
            ax.fill_between(steps, v.min(axis=1), v.max(axis=1), alpha=0.2, color=f"C{j}")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.savefig(path, dpi=100)
    return path


def plot_diagnostics(run_dir: str | os.PathLike, out_dir: str | os.PathLike, label: str):
    """Writes a run's diagnostics plots; returns ``[(title, path)]`` (empty without the file).

    Plots: gradient norm vs timestep at up to five training steps (log scale, mean over
    seeds), the recurrent spectral radius over training, and (LSTM / GRU) gate saturation
    over training (mean over seeds, min-max band).
    """
    data = read_diagnostics(run_dir)
    if data is None or data["step"].size == 0:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(run_dir).resolve().name
    steps = data["step"]
    curves = {
        f"step {steps[i]}": data["grad_norm"][i].mean(axis=0) for i in _pick_records(len(steps))
    }
    fig = plot_grad_norms(curves, title=f"{label}: gradient norm vs timestep")
    grad_png = out_dir / f"{stem}_diag_grad_norms.png"
    fig.savefig(grad_png, dpi=100)
    out = [("gradient norm vs timestep", grad_png)]
    blocks = [str(b) for b in data["block_names"]] or [
        str(j) for j in range(data["weight_radius"].shape[-1])
    ]
    out.append(
        (
            "spectral radius of the recurrent weights",
            _over_training(
                steps,
                data["weight_radius"],
                blocks,
                f"{label}: recurrent spectral radius",
                "spectral radius",
                out_dir / f"{stem}_diag_spectral_radius.png",
                log=False,
            ),
        )
    )
    if data["gate_saturation"].shape[-1] > 0:
        out.append(
            (
                "gate saturation",
                _over_training(
                    steps,
                    data["gate_saturation"],
                    [str(g) for g in data["gate_names"]],
                    f"{label}: gate saturation",
                    "fraction of saturated units",
                    out_dir / f"{stem}_diag_gate_saturation.png",
                    log=False,
                ),
            )
        )
    return out


# ---------------------------------------------------------------------------------- sweeps


def _rows(folders: list[tuple[dict, ExperimentConfig, Path]]) -> list[dict[str, Any]]:
    rows = []
    for values, program, folder in folders:
        summary = read_summary(folder)
        n = len(program.seeds)
        metric = summary.get("metric", "loss")
        for g, cell in enumerate(grid_cells(program)):
            row: dict[str, Any] = {"folder": folder.name, **values, **cell}
            for name, value in summary["eval"].items():
                v = np.asarray(value, dtype=np.float64).reshape(-1)[g * n : (g + 1) * n]
                row[name] = v.tolist()
            flags = summary.get("diverged") or [False] * (n * len(grid_cells(program)))
            row["diverged"] = [bool(f) for f in flags[g * n : (g + 1) * n]]
            row["metric"] = metric
            rows.append(row)
    return rows


def _fmt(v: list[float]) -> str:
    a = np.asarray(v)
    return f"{a.mean():.4g}" if a.size == 1 else f"{a.mean():.4g} ± {a.std():.2g}"


def write_sweep_report(
    root: Path,
    folders: list[tuple[dict, ExperimentConfig, Path]],
    *,
    missing: list[str] | tuple[str, ...] = (),
) -> Path:
    """Writes ``sweep.json``, ``report.md`` and ``plots/sweep.png`` of a sweep's finished
    programs.

    The plot puts the first swept key (a traced one if any) on the x axis and the final eval
    metric (mean over seeds, min-max band) on the y axis, one line per combination of the
    other swept values; the table has one row per grid cell and program.

    Args:
      root: the sweep folder.
      folders: ``(values, config, folder)`` of each finished program (`program_folders`).
      missing: the folder names of the programs not finished yet, listed in ``sweep.json``
        (``"missing"``) and under the table.
    """
    rows = _rows(folders)
    program_keys = list(folders[0][0])
    traced_keys = list(grid_cells(folders[0][1])[0])
    keys = traced_keys + program_keys
    metric = rows[0]["metric"]
    write_json_atomic(
        root / "sweep.json",
        {"keys": keys, "metric": metric, "rows": rows, "missing": list(missing)},
    )

    png = root / "plots" / "sweep.png"
    _plot(rows, keys, metric, png)
    head = ["program", *keys, "eval loss"] + ([metric] if metric != "loss" else []) + ["diverged"]
    lines = [
        "# seqjax sweep",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        live = {name: _live(r[name], r["diverged"]) for name in {"loss", metric}}
        cols = [f"[{r['folder']}]({r['folder']})", *(str(r[k]) for k in keys), _fmt(live["loss"])]
        if metric != "loss":
            cols.append(_fmt(live[metric]))
        cols.append(_diverged_text(r["diverged"]))
        lines.append("| " + " | ".join(cols) + " |")
    lines += [
        "",
        "Final evaluation, mean ± standard deviation over the seeds that did not diverge. Each "
        "program folder is a run folder whose metrics carry a leading [grid * seeds] axis, "
        "grid-major. Diverged: seeds "
        "stopped after train.max_bad_steps consecutive non-finite updates (final evaluation of "
        "their last finite parameters).",
        "",
        f"![final {metric} against {keys[0] if keys else 'run'}](plots/sweep.png)",
        "",
    ]
    if missing:
        lines += [
            f"Not finished ({len(missing)} of {len(missing) + len(folders)} programs, not in the "
            f"table): {', '.join(missing)}.",
            "",
        ]
    report = root / "report.md"
    write_atomic(report, "\n".join(lines))
    return report


def _plot(rows: list[dict], keys: list[str], metric: str, path: Path) -> None:
    fig = new_figure((6, 4))
    ax = fig.add_subplot()
    x_key = keys[0] if keys else None
    others = keys[1:]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in others), []).append(r)
    numeric = x_key is not None and all(isinstance(r[x_key], (int, float)) for r in rows)
    for i, (label, group) in enumerate(groups.items()):
        xs = [r[x_key] if numeric else j for j, r in enumerate(group)] if x_key else [0]
        ys = np.asarray([np.mean(r[metric]) for r in group])
        lo = np.asarray([np.min(r[metric]) for r in group])
        hi = np.asarray([np.max(r[metric]) for r in group])
        name = ", ".join(f"{k}={v}" for k, v in zip(others, label, strict=True)) or metric
        ax.plot(xs, ys, marker="o", color=f"C{i % 10}", label=name)
        ax.fill_between(xs, lo, hi, color=f"C{i % 10}", alpha=0.2)
        if not numeric and x_key:
            ax.set_xticks(xs, [str(r[x_key]) for r in group])
    if numeric:
        xs_all = [r[x_key] for r in rows]
        if min(xs_all) > 0 and max(xs_all) / min(xs_all) >= 10:
            ax.set_xscale("log")
    ax.set_xlabel(x_key or "")
    ax.set_ylabel(f"final eval {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


# ------------------------------------------------------------------------------ sweep folders


def program_folder_name(index: int, values: dict[str, Any]) -> str:
    """The folder of a sweep's program ``index`` (its place in `program_configs` order) with
    the shape-changing ``values``: ``"01-hidden_size=3"``. The same in every shard."""
    parts = [f"{k.rsplit('.', 1)[-1]}={v}" for k, v in values.items()]
    name = "-".join([f"{index:02d}", *parts])
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", name)


def program_folders(
    cfg: ExperimentConfig, root: str | os.PathLike
) -> list[tuple[dict[str, Any], ExperimentConfig, Path]]:
    """``(values, config, folder)`` of every program of a sweep config, in grid order, with
    its folder under the sweep folder ``root`` (`program_folder_name`)."""
    root = Path(root)
    return [
        (values, program, root / program_folder_name(i, values))
        for i, (values, program) in enumerate(program_configs(cfg))
    ]


def run_finished(summary: dict[str, Any], cfg: ExperimentConfig) -> bool:
    """Whether a run's ``summary.json`` says its training is complete: its steps reach
    ``train.steps`` or it stopped early (the rule `seqjax.experiment.run` resumes by)."""
    return (
        summary.get("stop_reason") == "early_stopping"
        or int(summary.get("steps", 0)) >= cfg.train.steps
    )


def finished_program(folder: Path, cfg: ExperimentConfig) -> bool:
    """Whether the program folder holds a finished run of ``cfg`` (`run_finished`)."""
    return (folder / SUMMARY).is_file() and run_finished(read_summary(folder), cfg)


def is_sweep_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a sweep folder (``seqjax sweep``): a ``config.yaml`` with a
    ``sweep`` section, and no ``summary.json`` or ``metrics.jsonl`` of a run of its own."""
    path = Path(path)
    if not (path / CONFIG).is_file() or (path / SUMMARY).is_file():
        return False
    if (path / "metrics.jsonl").is_file():
        return False
    return bool(load_config(path / CONFIG).sweep)


def write_sweep_folder_report(root: str | os.PathLike) -> tuple[Path, list[str]]:
    """Merges the finished programs of a sweep folder (from one run or from its shards) into
    its report (`write_sweep_report`), reading only what they wrote.

    Args:
      root: a sweep folder (`is_sweep_dir`).

    Returns:
      The path of ``report.md`` and the folder names of the programs not finished yet
      (missing or interrupted), in grid order; the report lists them too.

    Raises:
      ValueError: no program of the sweep has finished (naming the folder and the programs).
    """
    root = Path(root)
    cfg = load_config(root / CONFIG)
    folders, missing = [], []
    for values, program, folder in program_folders(cfg, root):
        if finished_program(folder, program):
            folders.append((values, program, folder))
        else:
            missing.append(folder.name)
    if not folders:
        raise ValueError(
            f"report: sweep folder {root} has no finished program yet (expected "
            f"{', '.join(missing)}); run its shards (seqjax sweep CONFIG --shard i/n --dir "
            f"{root}) or resume it (seqjax sweep --resume {root}) first"
        )
    return write_sweep_report(root, folders, missing=missing), missing
