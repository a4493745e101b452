"""The ``seqjax`` command: train, sweep, eval, report, list.

    seqjax train configs/adding/lstm.yaml --set model.hidden_size=256 --set train.steps=500
    seqjax train --resume runs/adding-lstm-20261125-120000   # from its latest checkpoint
    seqjax train my_config.yaml --import my_cells      # a module that registers its own cells
    seqjax sweep configs/adding/lstm.yaml --set 'sweep={optimizer.learning_rate: [1e-3, 1e-2]}'
    seqjax sweep cfg.yaml --shard 0/4 --dir runs/my-sweep   # every 4th program, shared folder
    seqjax sweep --resume runs/my-sweep                       # finish what is not finished
    seqjax sweep cfg.yaml --launcher ray --ray-address HOST:6379   # programs as Ray tasks
    seqjax eval runs/<run>/
    seqjax report runs/<run-a>/ runs/<run-b>/
    seqjax report runs/my-sweep/                              # a sweep's report, shards merged
    seqjax list

Each command is a thin writer over `seqjax.experiment` (`run`, `run_sweep`, `evaluate_run`,
`write_report`). Before anything else, `main` applies seqjax's XLA:CPU flag
(`seqjax.xla.configure`) and imports the ``--import`` modules, so cells and tasks they
register can be named in a config.

Errors a user can fix (a missing file, bad YAML, an unknown key or task) are printed as one
line on stderr, with exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from seqjax import xla
from seqjax.cells import CELLS
from seqjax.experiment import (
    ConfigError,
    evaluate_run,
    load_config,
    run,
    run_sweep,
    write_report,
)
from seqjax.experiment.report import is_sweep_dir, write_sweep_folder_report
from seqjax.experiment.runner import LAUNCHERS, ProgramsFailed, RunFinished, parse_shard
from seqjax.parallel import initialize, is_main_process
from seqjax.tasks import TASKS
from seqjax.train import OPTIMIZERS


class UsageError(Exception):
    """A mistake in how the command was called (reported in one line, exit status 2)."""


def _start_processes(args: argparse.Namespace) -> None:
    """Several hosts: ``jax.distributed.initialize`` from the flags or SEQJAX_* variables."""
    try:
        initialize(args.coordinator, args.num_processes, args.process_id)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _add_run_flags(parser: argparse.ArgumentParser, what: str, set_example: str) -> None:
    """``--set``, ``--out``, ``--no-progress`` and the multi-process flags of train and sweep."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config field, {set_example}",
    )
    parser.add_argument(
        "--out", default="runs", help=f"parent folder of the {what} (default: runs)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_process_flags(parser)


def _add_process_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "several hosts", "start every process with the same flags but its own --process-id"
    )
    group.add_argument(
        "--coordinator", metavar="HOST:PORT", help="process 0's address (SEQJAX_COORDINATOR)"
    )
    group.add_argument(
        "--num-processes", type=int, metavar="N", help="processes in all (SEQJAX_NUM_PROCESSES)"
    )
    group.add_argument(
        "--process-id", type=int, metavar="I", help="this process, 0..N-1 (SEQJAX_PROCESS_ID)"
    )


def _import_modules(names: list[str]) -> None:
    """Imports each ``--import`` module (a module path, e.g. ``my_cells``, found on sys.path
    or in the working directory), for the cells and tasks it registers."""
    if "" not in sys.path:
        sys.path.insert(0, "")  # the working directory, as ``python -m`` has it
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is not None and name.startswith(e.name):
                raise UsageError(
                    f"--import {name}: no module named {e.name!r} (give a module path like "
                    f"my_cells, importable from the working directory or sys.path)"
                ) from None
            raise


def _train(args: argparse.Namespace) -> int:
    _start_processes(args)

    if args.resume is not None:
        run_dir = Path(args.resume)
        config = run_dir / "config.yaml"
        if not config.exists():
            raise UsageError(f"--resume {run_dir}: not a run folder (no config.yaml)")
        if args.config is not None:
            if load_config(args.config, args.set) != load_config(config, args.set):
                raise UsageError(
                    f"--resume {run_dir}: its config.yaml differs from {args.config}; a resumed "
                    f"run continues with its own config (drop the CONFIG argument)"
                )
    else:
        if args.config is None:
            raise UsageError("train: give a CONFIG file (or --resume RUN)")
        config, run_dir = args.config, None
    try:
        result = run(
            config,
            overrides=args.set,
            out=args.out,
            run_dir=run_dir,
            progress=not args.no_progress,
            command=args.command_line,
        )
    except RunFinished as done:
        if is_main_process():
            print(f"{done}; nothing was written")
        return 0
    if is_main_process():
        _print_summary(result.run_dir, result.summary)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    if args.launcher != "ray":
        ray_flags = [
            flag
            for flag, value in (
                ("--ray-address", args.ray_address),
                ("--ray-num-cpus", args.ray_num_cpus),
                ("--ray-num-gpus", args.ray_num_gpus),
            )
            if value is not None
        ]
        if ray_flags:
            raise UsageError(
                f"{', '.join(ray_flags)}: only with --launcher ray (add it, or drop them)"
            )
    _start_processes(args)
    shard = None
    if args.shard is not None:
        try:
            shard = parse_shard(args.shard)
        except ValueError as e:
            raise UsageError(f"--{e}") from None
    if args.resume is not None:
        if args.dir is not None:
            raise UsageError("give --resume DIR or --dir DIR, not both (--resume needs DIR)")
        config = Path(args.resume) / "config.yaml"
        if not config.is_file():
            raise UsageError(f"--resume {args.resume}: not a sweep folder (no config.yaml)")
        if args.config is not None:
            config = args.config  # run_sweep checks it is the folder's
    elif args.config is None:
        raise UsageError("sweep: give a CONFIG file (or --resume DIR)")
    else:
        config = args.config
    if shard is not None and args.resume is None and args.dir is None:
        raise UsageError(
            "--shard needs --dir DIR, the sweep folder itself, the same for every shard "
            "(e.g. --shard 0/4 --dir runs/my-sweep)"
        )
    cfg = load_config(config, args.set)
    if not cfg.sweep:
        raise UsageError(f"sweep: {config} has no sweep section (e.g. --set sweep={{...}})")
    try:
        root = run_sweep(
            cfg,
            out=args.out,
            progress=not args.no_progress,
            sweep_dir=args.dir,
            resume=args.resume,
            shard=shard,
            launcher=args.launcher,
            ray_address=args.ray_address,
            ray_num_cpus=args.ray_num_cpus,
            ray_num_gpus=args.ray_num_gpus,
        )
    except ProgramsFailed as failed:
        for name, error in failed.errors.items():
            print(f"--- {name}:\n{error}", file=sys.stderr)  # the worker's traceback
        print(f"seqjax sweep: error: {failed}", file=sys.stderr)
        return 1
    if not is_main_process():
        return 0
    if shard is not None:
        print(f"shard {shard[0]}/{shard[1]} done; when every shard is: seqjax report {root}")
    else:
        print((root / "report.md").read_text())
    print(f"results: {root}")
    return 0


def _print_summary(run_dir: Path, summary: dict) -> None:
    loss = float(np.mean(summary["eval"]["loss"]))
    line = (
        f"{summary['name']}: {summary['model']} on {summary['task']}, {summary['steps']} steps, "
        f"eval loss {loss:.4f} (baseline {summary['baseline']:.4f}, ratio "
        f"{summary['eval_vs_baseline']:.3f})"
    )
    if "accuracy" in summary["eval"]:
        line += f", accuracy {float(np.mean(summary['eval']['accuracy'])):.3f}"
    print(line)
    print(f"results: {run_dir}")


def _eval(args: argparse.Namespace) -> int:
    for run_dir in args.runs:
        values = evaluate_run(run_dir)
        print(f"{run_dir}: " + ", ".join(f"{k} {v}" for k, v in values.items()))
    return 0


def _report(args: argparse.Namespace) -> int:
    if len(args.runs) == 1 and is_sweep_dir(args.runs[0]):
        if args.out is not None:
            raise UsageError("report: --out is for run folders; a sweep's report goes in it")
        path, missing = write_sweep_folder_report(args.runs[0])
        print(path.read_text())
        if missing:
            print(f"not finished ({len(missing)}): {', '.join(missing)}")
        print(f"report: {path}")
        return 0
    path = write_report(args.runs, args.out)
    print(path.read_text())
    print(f"report: {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    del args

    def first_line(obj: object) -> str:
        doc = (getattr(obj, "__doc__", None) or "").strip()
        return doc.splitlines()[0] if doc else ""

    for title, table in (("tasks", TASKS), ("cells", CELLS), ("optimizers", OPTIMIZERS)):
        print(f"{title}:")
        width = max(len(n) for n in table)
        for name, obj in table.items():
            print(f"  {name:<{width}}  {first_line(obj)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqjax", description="Train and study recurrent sequence models."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    imports = argparse.ArgumentParser(add_help=False)
    imports.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module first, e.g. one that registers its own cells or tasks (repeatable)",
    )

    train = sub.add_parser("train", parents=[imports], help="train a config and write a run folder")
    train.add_argument("config", nargs="?", help="a YAML config file")
    _add_run_flags(train, "run", "e.g. --set train.steps=500 (repeatable)")
    train.add_argument(
        "--resume",
        metavar="RUN",
        help="continue a stopped run from its latest checkpoint (a run without checkpoints is "
        "an error; a finished run is left as it is)",
    )
    train.set_defaults(func=_train)

    sweep = sub.add_parser(
        "sweep", parents=[imports], help="train a config's sweep grid; one folder, one report"
    )
    sweep.add_argument(
        "config", nargs="?", help="a YAML config file with a sweep section (none with --resume)"
    )
    _add_run_flags(sweep, "sweep", "e.g. --set 'sweep={optimizer.learning_rate: [0.1, 1]}'")
    sweep.add_argument(
        "--dir",
        metavar="DIR",
        help="the sweep folder itself, in place of a new one under --out: made if missing, "
        "continued if it holds this sweep (finished programs are kept)",
    )
    sweep.add_argument(
        "--resume",
        metavar="DIR",
        help="finish an interrupted sweep folder: finished programs are kept, checkpointed "
        "ones resumed, the others trained again; then the report is written",
    )
    sweep.add_argument(
        "--shard",
        metavar="I/N",
        help="run only the programs whose grid index is I mod N into --dir (no report; "
        "`seqjax report DIR` merges the shards), e.g. for a scheduler's job array",
    )
    ray = sweep.add_argument_group(
        "Ray", "train the programs as tasks on a Ray cluster (pip install 'seqjax[ray]')"
    )
    ray.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="local",
        help="local: the programs one after another here (default); ray: each program as a "
        "Ray task, writing into the same sweep folder (on a file system every node shares)",
    )
    ray.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the Ray cluster, e.g. HOST:6379 (default: RAY_ADDRESS, a cluster started on this "
        "machine, else a new local instance)",
    )
    ray.add_argument(
        "--ray-num-cpus",
        type=float,
        metavar="N",
        help="CPUs each program's task asks Ray for (default 1)",
    )
    ray.add_argument(
        "--ray-num-gpus",
        type=float,
        metavar="N",
        help="GPUs each program's task asks Ray for (default 0; 1 on GPU nodes)",
    )
    sweep.set_defaults(func=_sweep)

    ev = sub.add_parser("eval", parents=[imports], help="evaluate the final checkpoint of runs")
    ev.add_argument("runs", nargs="+")
    ev.set_defaults(func=_eval)

    report = sub.add_parser(
        "report",
        help="a Markdown report with plots comparing runs, or the report of a sweep folder "
        "(merging its shards)",
    )
    report.add_argument("runs", nargs="+", help="run folders, or one sweep folder")
    report.add_argument("--out", help="folder of report.md (default: next to the runs)")
    report.set_defaults(func=_report)

    ls = sub.add_parser(
        "list", parents=[imports], help="tasks, cells and optimizers, one line each"
    )
    ls.set_defaults(func=_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    xla.configure(warn=False)  # before JAX starts a backend: XLA reads its flags once
    args = build_parser().parse_args(argv)
    # The command line, for the run's summary.json.
    args.command_line = shlex.join(sys.argv if argv is None else ["seqjax", *argv])
    try:
        _import_modules(getattr(args, "imports", []))
        return args.func(args)
    except (ConfigError, UsageError, FileNotFoundError, yaml.YAMLError) as e:
        message = str(e).strip().replace("\n", " ")
        print(f"seqjax {args.command}: error: {message}", file=sys.stderr)
        return 2
    except ValueError as e:  # a bad value found while building the experiment
        print(f"seqjax {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
