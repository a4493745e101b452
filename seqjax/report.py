"""``seqjax report``: a Markdown report with plots comparing one or more run folders.

The report reads only what a run wrote (``summary.json``, ``metrics.jsonl``), so it works on
runs from other machines and older versions, and never re-runs anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from seqjax.runs import read_metrics, read_summary, series, write_text_atomic


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


def plot_runs(runs: list[tuple[str, Path, dict]], key: str, path: Path, *, log: bool) -> Path:
    """One axis, one line per run (mean over seeds, min-max band), baselines dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (label, run_dir, summary) in enumerate(runs):
        steps, values = series(read_metrics(run_dir), key)
        if steps.size == 0:
            continue
        color = f"C{i % 10}"
        ax.plot(steps, values.mean(axis=1), color=color, label=label)
        if values.shape[1] > 1:
            ax.fill_between(steps, values.min(axis=1), values.max(axis=1), color=color, alpha=0.2)
        baseline = summary.get("baseline")
        if key == "loss" and baseline:
            ax.axhline(baseline, color=color, linestyle="--", linewidth=1)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(key + (" (dashed: trivial baseline)" if key == "loss" else ""))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
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
        "| metric | wall time | steps/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, run_dir, s in runs:
        final = s.get("eval", {})
        metric_name = s.get("metric", "metric")
        lines.append(
            f"| [{label}]({os.path.relpath(run_dir, out_dir)}) | {s.get('task', '-')} "
            f"| {s.get('model', '-')} | {s.get('steps', '-')} | {len(s.get('seeds', [0]))} "
            f"| {_mean_spread(final.get('loss', []))} | {_mean_spread(s.get('baseline', []))} "
            f"| {_ratio(final.get('loss', []), s.get('baseline'))} "
            f"| {metric_name} {_mean_spread(final.get(metric_name, []))} "
            f"| {s.get('wall_time_s', 0):.1f} s | {s.get('steps_per_s', 0):.1f} |"
        )
    lines += [
        "",
        "Eval loss: mean ± standard deviation over seeds. The baseline is the loss of the best "
        "memoryless predictor of the task; a ratio near 1 means nothing long-range was learned.",
        "",
        f"![training loss]({os.path.relpath(loss_png, out_dir)})",
        "",
        f"![gradient norm]({os.path.relpath(grad_png, out_dir)})",
        "",
    ]
    from seqjax.diagnostics.record import plot_diagnostics

    for label, run_dir, _ in runs:
        plots = plot_diagnostics(run_dir, out_dir / "plots", label)
        if plots:
            lines += [f"## Gradient-flow diagnostics: {label}", ""]
            lines += [f"![{title}]({os.path.relpath(p, out_dir)})\n" for title, p in plots]
    report = out_dir / "report.md"
    write_text_atomic(report, "\n".join(lines))
    return report
