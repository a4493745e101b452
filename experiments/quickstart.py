"""The main job (``make run``): LSTM vs tanh RNN on the adding problem at T=150.

Trains ``configs/quickstart.yaml`` as it is and with ``model.cell=rnn``, then writes a report
comparing them. Expected: the LSTM ends far below the trivial baseline (MSE 1/6), the RNN
near it. Extra ``--set`` overrides apply to both runs, e.g.
``python experiments/quickstart.py --set train.steps=200``.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import seqjax
from seqjax.experiment import load_config, write_report

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml"


def main() -> None:
    seqjax.xla.configure()  # before JAX starts: XLA reads its flags once
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default="runs")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    root = Path(args.out) / f"quickstart-{stamp}"
    runs = []
    for cell in ("lstm", "rnn"):
        cfg = load_config(CONFIG, [*args.set, f"model.cell={cell}", f"name=adding-{cell}"])
        print(f"training {cfg.name}: {cell} on adding T={cfg.task.options['length']}")
        result = seqjax.run(cfg, run_dir=root / cell, progress=not args.no_progress)
        runs.append(result.run_dir)
    report = write_report(runs, root)
    print(report.read_text())
    print(f"results and plots: {root}/ (report: {report})")


if __name__ == "__main__":
    main()
