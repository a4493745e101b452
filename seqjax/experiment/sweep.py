"""Hyper-parameter sweeps: the grid times the seeds in one program, or one program per shape.

A config's ``sweep`` maps dotted config keys to lists of values; the grid is their product::

    sweep:
      optimizer.learning_rate: [1.0e-3, 3.0e-3, 1.0e-2]    # traced: one program
      model.hidden_size: [32, 64]                          # shape: one program per value

* Keys of `seqjax.experiment.builders.TRACED` change no shape: their values become traced
  arrays, so the whole grid trains in the program that trains the seeds. The leading axis of
  every state leaf and metric is then ``[grid * seeds]``, grid-major: run ``i`` is grid cell
  ``i // len(seeds)`` (cells in `grid_cells` order, the product of the ``sweep`` lists in key
  order) with seed ``seeds[i % len(seeds)]``.
* Any other key (hidden size, layers, cell type, task length, zoneout, ...) expands into
  separate programs (`program_configs`), each with the traced part of the sweep vmapped
  inside; ``seqjax sweep`` runs them one after another (`seqjax.experiment.run_sweep`).

How a traced value enters the program: `grid_hyper` stacks the grid's values into a
`seqjax.experiment.builders.Hyper` of ``[grid * seeds]`` arrays, and the run's builders
receive one run's `Hyper` inside ``jax.vmap``: the learning rate reaches the Optax schedule,
the clipping threshold Optax's clipping, the weight decay the optimiser chain, the forget-gate
bias and the recurrent scale the cell's factory, the dropout rates the masks of
`seqjax.layers` (a traced rate always draws its mask, from the same keys as a written-in
rate; at 0 the mask keeps everything). Zoneout is not traced: its rate decides in Python how
the carry is mixed, so it is swept as separate programs.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import jax.numpy as jnp

from seqjax.cells import CELLS
from seqjax.experiment.builders import TRACED, Hyper
from seqjax.experiment.config import (
    ConfigError,
    ExperimentConfig,
    config_from_data,
    dump_config,
    factory_takes,
    parse_yaml,
)

__all__ = [
    "check_one_program",
    "grid_cells",
    "grid_hyper",
    "program_configs",
    "split_sweep",
]


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
    name = key.removeprefix("model.")
    if name in ("forget_bias", "recurrent_scale") and name not in factory_takes(CELLS[model.cell]):
        users = sorted(c for c, f in CELLS.items() if name in factory_takes(f))
        return f"cell {model.cell!r} takes no {name} (the cells that do: {users})"
    if key == "model.forget_bias" and model.chrono is not None:
        return "chrono initialisation sets the forget-gate bias (model.chrono is set)"
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
            f"config with `seqjax sweep` (seqjax.experiment.run_sweep)"
        )
    for key, values in traced.items():
        why = _uses(cfg, key)
        if why is not None:
            raise ValueError(f"sweep.{key} has no effect on this run: {why}")
        for value in values:
            _with_config_values(cfg, {key: value}, {})


def grid_hyper(cfg: ExperimentConfig) -> Hyper:
    """The traced values of every run, ``[grid * seeds]`` grid-major; an empty `Hyper` (all
    fields None) when the config has no sweep."""
    cells = grid_cells(cfg)
    n = len(cfg.seeds)
    values = {
        TRACED[key]: jnp.repeat(jnp.asarray([float(c[key]) for c in cells]), n) for key in cells[0]
    }
    return Hyper(**values)
