"""Hyper-parameter sweeps: the grid times the seeds in one program, or one program per shape.

A config's ``sweep`` maps dotted config keys to lists of values; the grid is their product::

    sweep:
      optimizer.learning_rate: [1.0e-3, 3.0e-3, 1.0e-2]    # traced: one program
      model.hidden_size: [32, 64]                          # shape: one program per value

* Keys of `TRACED` change no shape: their values become traced arrays, so the whole grid
  trains in the program that trains the seeds. The leading axis of every state leaf and
  metric is then ``[grid * seeds]``, grid-major: run ``i`` is grid cell ``i // len(seeds)``
  (cells in `grid_cells` order, the product of the ``sweep`` lists in key order) with seed
  ``seeds[i % len(seeds)]``.
* Any other key (hidden size, layers, cell type, task length, zoneout, ...) expands into
  separate programs (`program_configs`), run one after another by `run_sweep`, each with the
  traced part of the sweep vmapped inside.

How a traced value enters the program: the run's builders (`seqjax.experiment.Experiment`)
are called, inside ``jax.vmap``, on a copy of the config whose swept fields hold the traced
scalars (`with_values`); the learning rate reaches the Optax schedule, the clipping threshold
Optax's clipping, the forget-gate bias and the recurrent scale the cell's ``init``, the weight
decay the optimiser chain (`optimizer_from_hyper`), the dropout rates the masks of
`seqjax.layers` (a traced rate always draws its mask, from the same keys as the written-in
rate; at 0 the mask keeps everything). A swept run therefore computes what the run with that
value written in its config computes (equal up to float rounding: a traced scalar can change
how XLA fuses the arithmetic around it).

Zoneout is not traced: its rate decides in Python how the carry is mixed, so it is swept as
separate programs.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from seqjax.config import (
    ConfigError,
    ExperimentConfig,
    OptimizerConfig,
    config_from_data,
    dump_config,
    parse_yaml,
)
from seqjax.parallel import SEEDS, map_runs, seed_batch_for
from seqjax.train import Trainer, get_optimizer, optimizer_from_config, schedule_from_config

__all__ = [
    "TRACED",
    "check_one_program",
    "grid_cells",
    "grid_trainer",
    "optimizer_from_hyper",
    "program_configs",
    "run_sweep",
    "split_sweep",
    "with_values",
    "write_sweep_report",
]

TRACED: dict[str, str] = {
    "optimizer.learning_rate": "the (peak) learning rate of the schedule",
    "optimizer.clip.threshold": "the gradient clipping threshold (clip.method not 'none')",
    "optimizer.weight_decay": "L2 / decoupled weight decay",
    "model.forget_bias": "the LSTM forget-gate bias at initialisation (lstm, chrono off)",
    "model.recurrent_scale": "the factor on the recurrent weights at init (rnn, irnn)",
    "model.dropout": "dropout between stacked layers (model.num_layers > 1)",
    "model.input_dropout": "dropout on the model's input sequence",
    "model.output_dropout": "dropout on the recurrent output before the readout",
    "model.recurrent_dropout": "variational dropout on the recurrent state",
}
"""Sweepable keys that change no shape: vmapped with the seeds in one program."""


def split_sweep(sweep: dict[str, list[Any]]) -> tuple[dict[str, list], dict[str, list]]:
    """``(traced, programs)``: the keys of `TRACED`, and those that need separate programs."""
    traced = {k: v for k, v in sweep.items() if k in TRACED}
    programs = {k: v for k, v in sweep.items() if k not in TRACED}
    return traced, programs


def _product(sweep: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(sweep)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*sweep.values())]


def grid_cells(cfg: ExperimentConfig) -> list[dict[str, float]]:
    """The traced grid cells of ``cfg.sweep`` in program order (one empty cell if none)."""
    traced, _ = split_sweep(cfg.sweep)
    return _product(traced)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError([(f"sweep.{key}", f"{'.'.join(parts[: i + 1])} is not a section")])
        node = child
    node[parts[-1]] = value


def _with_config_values(cfg: ExperimentConfig, values: dict[str, Any], sweep: dict) -> Any:
    """``cfg`` with ``values`` written in and ``sweep`` as its sweep, validated again."""
    data = parse_yaml(dump_config(cfg))
    data["sweep"] = {}
    for key, value in values.items():
        _set_dotted(data, key, value)
    try:
        out = config_from_data(data, "sweep")
    except ConfigError as e:
        given = ", ".join(f"{k}={v!r}" for k, v in values.items())
        raise ConfigError(e.errors, f"sweep value ({given})") from None
    return dataclasses.replace(out, sweep=sweep) if sweep else out


def program_configs(cfg: ExperimentConfig) -> list[tuple[dict[str, Any], ExperimentConfig]]:
    """One ``(values, config)`` per program: the product of the shape-changing sweep keys.

    Each config has those values written in and keeps only the traced part of the sweep, so
    it is one program (``seqjax train`` runs it as it is). Every value is validated like a
    ``--set`` override, and every traced value is checked to change the run.

    Raises:
      ConfigError: naming the sweep key and value that is unknown or invalid.
    """
    traced, programs = split_sweep(cfg.sweep)
    out = []
    for values in _product(programs):
        program = _with_config_values(cfg, values, traced)
        check_one_program(program)
        out.append((values, program))
    return out


def _uses(cfg: ExperimentConfig, key: str) -> str | None:
    """Why a traced key would not change ``cfg``'s run (None: it does)."""
    model = cfg.model
    if key.startswith("model.") and model.kind != "recurrent":
        return f"model.kind={model.kind!r} has no recurrent cell"
    if key == "model.forget_bias" and (model.cell != "lstm" or model.chrono is not None):
        return "it applies to cell 'lstm' without chrono initialisation"
    if key == "model.recurrent_scale" and model.cell not in ("rnn", "irnn"):
        return "it applies to cells 'rnn' and 'irnn'"
    if key == "model.dropout" and model.num_layers < 2:
        return "it applies between stacked layers (model.num_layers > 1)"
    if key == "optimizer.clip.threshold" and cfg.optimizer.clip.method == "none":
        return "optimizer.clip.method is 'none'"
    return None


def check_one_program(cfg: ExperimentConfig) -> None:
    """Checks that ``cfg.sweep`` holds only traced keys, each with valid values that matter.

    Raises:
      ValueError: naming a shape-changing key (run it with ``seqjax sweep``) or a key that
        has no effect on this run.
      ConfigError: naming a bad value.
    """
    traced, programs = split_sweep(cfg.sweep)
    if programs:
        raise ValueError(
            f"sweep over {sorted(programs)} needs one program per value (these keys change "
            f"shapes or Python control flow; traced in one program: {sorted(TRACED)}); run the "
            f"config with `seqjax sweep` (seqjax.sweep.run_sweep)"
        )
    for key, values in traced.items():
        why = _uses(cfg, key)
        if why is not None:
            raise ValueError(f"sweep.{key} has no effect on this run: {why}")
        for value in values:
            _with_config_values(cfg, {key: value}, {})


def with_values(cfg: Any, values: dict[str, Any]) -> Any:
    """A copy of a config record with dotted fields replaced, *without* validation.

    Only for putting traced scalars where the builders read floats; anything else should go
    through ``dataclasses.replace`` (which validates).
    """
    out = copy.copy(cfg)
    heads: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        head, _, rest = key.partition(".")
        if rest:
            heads.setdefault(head, {})[rest] = value
        else:
            object.__setattr__(out, head, value)
    for head, sub in heads.items():
        object.__setattr__(out, head, with_values(getattr(out, head), sub))
    return out


def optimizer_from_hyper(
    cfg: OptimizerConfig, hyper: dict[str, jax.Array]
) -> optax.GradientTransformation:
    """`seqjax.train.optimizer_from_config` (without clipping) with traced hyper-parameters.

    Args:
      cfg: the optimiser section.
      hyper: traced scalars by the keys of `TRACED` under ``optimizer.``
        (``"optimizer.learning_rate"``, ``"optimizer.weight_decay"``); missing ones come
        from ``cfg``.

    Returns:
      The same chain ``[L2 weight decay] -> optimiser(schedule)`` as the config's, whose
      updates are those of the config with the traced values written in. A traced weight
      decay always adds its term (for a value 0 it adds ``0 * params``, the same numbers).
    """
    lr = hyper.get("optimizer.learning_rate", cfg.learning_rate)
    if "optimizer.weight_decay" not in hyper:
        return optimizer_from_config(with_values(cfg, {"learning_rate": lr}), include_clip=False)
    decay = hyper["optimizer.weight_decay"]
    schedule = schedule_from_config(cfg.schedule, lr)
    if cfg.name == "adamw":
        base = get_optimizer(
            "adamw", schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=decay
        )
        return optax.chain(base)
    plain = optimizer_from_config(
        with_values(cfg, {"learning_rate": lr, "weight_decay": 0.0}), include_clip=False
    )
    return optax.chain(optax.add_decayed_weights(decay), plain)


def _trainer_at(cfg: ExperimentConfig, hyper: dict[str, jax.Array]) -> Trainer:
    """The trainer of ``cfg`` with the traced values ``hyper`` (one grid cell) written in."""
    from seqjax.experiment import Experiment

    shadow = with_values(cfg, {**hyper, "sweep": {}})
    optimizer = optimizer_from_hyper(shadow.optimizer, hyper)
    return Experiment(shadow, optimizer=optimizer).trainer


def grid_trainer(cfg: ExperimentConfig, *, mesh: Mesh | None = None) -> Trainer:
    """The trainer over the leading ``[grid * seeds]`` axis of a one-program sweep.

    ``init(keys [grid * seeds])`` and ``run(state, data_keys, num_steps)`` are jitted, like
    ``Experiment.vmapped_trainer``'s; run ``i`` trains grid cell ``i // len(cfg.seeds)``.
    Keys come from ``Experiment.seed_keys``, so every cell sees the same seeds and batches.
    With a ``mesh`` the run axis is split over its `SEEDS` axis (`seqjax.parallel`).
    """
    check_one_program(cfg)
    spmd_axis_name = None if mesh is None else SEEDS
    cells = grid_cells(cfg)
    n = len(cfg.seeds)
    hyper = {key: jnp.repeat(jnp.asarray([float(c[key]) for c in cells]), n) for key in cells[0]}

    def init(keys):
        return jax.vmap(lambda k, h: _trainer_at(cfg, h).init(k), spmd_axis_name=spmd_axis_name)(
            keys, hyper
        )

    def prepare(state, data_key):
        return jax.vmap(
            lambda s, d, h: _trainer_at(cfg, h).prepare(s, d), spmd_axis_name=spmd_axis_name
        )(state, data_key, hyper)

    def train_step(state, batch):
        return jax.vmap(
            lambda s, b, h: _trainer_at(cfg, h).train_step(s, b), spmd_axis_name=spmd_axis_name
        )(state, batch, hyper)

    def update(state, data_key):
        return jax.vmap(
            lambda s, d, h: _trainer_at(cfg, h).update(s, d), spmd_axis_name=spmd_axis_name
        )(state, data_key, hyper)

    def run(state, data_key, num_steps):
        def one(s, d, h):
            return _trainer_at(cfg, h).run(s, d, num_steps)

        return map_runs(
            one,
            (state, data_key, hyper),
            batch=seed_batch_for(cfg, len(cells) * n, mesh),
            mesh=mesh,
        )

    return Trainer(
        init=jax.jit(init),
        prepare=jax.jit(prepare),
        train_step=jax.jit(train_step),
        update=update,
        run=jax.jit(run, static_argnums=2),
    )


# -------------------------------------------------------------------------------- run a sweep


def _folder_name(index: int, values: dict[str, Any]) -> str:
    parts = [f"{k.rsplit('.', 1)[-1]}={v}" for k, v in values.items()]
    name = "-".join([f"{index:02d}", *parts])
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", name)


def run_sweep(
    cfg: ExperimentConfig,
    out: str | os.PathLike = "runs",
    *,
    progress: bool | None = None,
) -> Path:
    """Runs every program of ``cfg.sweep`` one after another and writes a combined report.

    Writes ``<out>/<name>-sweep-<timestamp>/``: one run folder per program (``00-...``,
    ``01-...``, each as ``seqjax train`` writes it, with a leading ``[grid * seeds]`` axis on
    its metrics, see the module doc), ``sweep.json`` (one row per grid cell and program),
    ``report.md`` and ``plots/sweep.png`` (final metric against a swept hyper-parameter).

    Returns:
      The sweep folder.
    """
    from seqjax.experiment import Experiment, new_run_dir, run_experiment
    from seqjax.parallel import agree_on_path, is_main_process
    from seqjax.runs import write_text_atomic

    if not cfg.sweep:
        raise ValueError("run_sweep: the config has no sweep section; use seqjax train")
    programs = program_configs(cfg)
    for _, program in programs:  # every error before anything is written or trained
        Experiment(program)
    main = is_main_process()  # several hosts: process 0 writes, every process trains
    root = agree_on_path(new_run_dir(out, f"{cfg.name}-sweep") if main else None)
    if main:
        write_text_atomic(root / "config.yaml", dump_config(cfg))
    folders = []
    for i, (values, program) in enumerate(programs):
        folder = root / _folder_name(i, values)
        run_experiment(program, run_dir=folder, progress=progress)
        folders.append((values, program, folder))
    if main:
        write_sweep_report(root, folders)
    return root


def _rows(folders: list[tuple[dict, ExperimentConfig, Path]]) -> list[dict[str, Any]]:
    rows = []
    for values, program, folder in folders:
        summary = json.loads((folder / "summary.json").read_text())
        n = len(program.seeds)
        metric = summary.get("metric", "loss")
        for g, cell in enumerate(grid_cells(program)):
            row: dict[str, Any] = {"folder": folder.name, **values, **cell}
            for name, value in summary["eval"].items():
                v = np.asarray(value, dtype=np.float64).reshape(-1)[g * n : (g + 1) * n]
                row[name] = v.tolist()
            row["metric"] = metric
            rows.append(row)
    return rows


def _fmt(v: list[float]) -> str:
    a = np.asarray(v)
    return f"{a.mean():.4g}" if a.size == 1 else f"{a.mean():.4g} ± {a.std():.2g}"


def write_sweep_report(root: Path, folders: list[tuple[dict, ExperimentConfig, Path]]) -> Path:
    """Writes ``sweep.json``, ``report.md`` and ``plots/sweep.png`` of a finished sweep.

    The plot puts the first swept key (a traced one if any) on the x axis and the final eval
    metric (mean over seeds, min-max band) on the y axis, one line per combination of the
    other swept values; the table has one row per grid cell and program.
    """
    from seqjax.runs import write_json_atomic, write_text_atomic

    rows = _rows(folders)
    program_keys = list(folders[0][0])
    traced_keys = list(grid_cells(folders[0][1])[0])
    keys = traced_keys + program_keys
    metric = rows[0]["metric"]
    write_json_atomic(root / "sweep.json", {"keys": keys, "metric": metric, "rows": rows})

    png = root / "plots" / "sweep.png"
    _plot(rows, keys, metric, png)
    head = ["program", *keys, "eval loss"] + ([metric] if metric != "loss" else [])
    lines = [
        "# seqjax sweep",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        cols = [f"[{r['folder']}]({r['folder']})", *(str(r[k]) for k in keys), _fmt(r["loss"])]
        if metric != "loss":
            cols.append(_fmt(r[metric]))
        lines.append("| " + " | ".join(cols) + " |")
    lines += [
        "",
        "Final evaluation, mean ± standard deviation over seeds. Each program folder is a run "
        "folder whose metrics carry a leading [grid * seeds] axis, grid-major.",
        "",
        f"![final {metric} against {keys[0] if keys else 'run'}](plots/sweep.png)",
        "",
    ]
    report = root / "report.md"
    write_text_atomic(report, "\n".join(lines))
    return report


def _plot(rows: list[dict], keys: list[str], metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
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
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
