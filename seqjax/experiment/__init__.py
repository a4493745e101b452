"""The experiment layer: the only code that reads an `ExperimentConfig`.

    result = seqjax.run("configs/adding/lstm.yaml", overrides=["train.steps=500"])
    train = seqjax.experiment.train_from_config(cfg)     # train(keys) -> (state, metrics)

Modules, bottom to top: `config` (schema, YAML, ``--set``), `builders` (the
``*_from_config`` functions and `Hyper`, a sweep's traced values), `sweep` (the grid),
`program` (`Experiment`: every run of a config in one compiled program), `runs` (run
folders), `recorder` (gradient-flow diagnostics during a run), `report` (Markdown and plots),
`runner` (`run`, `run_sweep`, `evaluate_run`).
"""

from seqjax.experiment.builders import (
    TRACED,
    Hyper,
    bptt_from_config,
    cell_from_config,
    checkpoint_manager_from_config,
    clipping_from_config,
    early_stopping_from_config,
    layer_from_config,
    make_eval_fn,
    make_loss_fn,
    mesh_from_config,
    model_from_config,
    optimizer_from_config,
    schedule_from_config,
    seed_batch_from_config,
    task_from_config,
)
from seqjax.experiment.config import (
    ConfigError,
    ExperimentConfig,
    config_from_data,
    dump_config,
    load_config,
    parse_yaml,
    resolve_config,
)
from seqjax.experiment.program import Experiment, train_from_config
from seqjax.experiment.report import write_report
from seqjax.experiment.runner import (
    LAUNCHERS,
    ProgramsFailed,
    RunResult,
    evaluate_run,
    run,
    run_sweep,
)
from seqjax.experiment.sweep import grid_cells, program_configs

__all__ = [
    "LAUNCHERS",
    "TRACED",
    "ConfigError",
    "Experiment",
    "ExperimentConfig",
    "Hyper",
    "ProgramsFailed",
    "RunResult",
    "bptt_from_config",
    "cell_from_config",
    "checkpoint_manager_from_config",
    "clipping_from_config",
    "config_from_data",
    "dump_config",
    "early_stopping_from_config",
    "evaluate_run",
    "grid_cells",
    "layer_from_config",
    "load_config",
    "make_eval_fn",
    "make_loss_fn",
    "mesh_from_config",
    "model_from_config",
    "optimizer_from_config",
    "parse_yaml",
    "program_configs",
    "resolve_config",
    "run",
    "run_sweep",
    "schedule_from_config",
    "seed_batch_from_config",
    "task_from_config",
    "train_from_config",
    "write_report",
]
