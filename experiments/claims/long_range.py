"""Claim 1: gated cells learn long-range dependencies that a tanh RNN cannot.

Tanh RNN, LSTM and GRU on the adding problem and the copy-memory task over a range of
lengths; the table gives the final evaluation loss divided by the task's memoryless baseline
(adding: 1/6 = 0.167 MSE; copy: 10 ln 8 / (T + 20) nats), mean ± std over seeds.

    python experiments/claims/long_range.py [--tiny] [--out DIR]
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import seqjax

try:
    from experiments.claims import common
except ImportError:  # run as a script
    import common  # type: ignore[no-redef]

NAME = "long_range"
CELLS = ["rnn", "lstm", "gru"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = common.parse_args(argv, __doc__.splitlines()[0])
    if args.tiny:
        grid = {"adding": [6], "copy_memory": [3]}
        cells, steps, hidden, batch, seeds = ["rnn", "lstm"], 10, 8, 8, [0, 1]
    else:
        grid = {"adding": [25, 100], "copy_memory": [10, 40]}
        cells, steps, hidden, batch, seeds = CELLS, 600, 32, 32, common.SEEDS
    start = time.perf_counter()
    data, rows = [], []
    for task, lengths in grid.items():
        for length in lengths:
            row = [task, f"T={length}" if task == "adding" else f"delay={length} (T={length + 20})"]
            for cell in cells:
                arg = {"length": length} if task == "adding" else {"delay": length}
                folder = "adding" if task == "adding" else "copy_memory"
                model = {"hidden_size": hidden}
                if cell == "rnn":
                    base = "adding/rnn.yaml" if task == "adding" else "copy_memory/lstm.yaml"
                    model["cell"] = "rnn"
                else:
                    base = f"{folder}/{cell}.yaml"
                cfg = common.config(
                    base,
                    tiny=args.tiny,
                    name=f"{task}-{length}-{cell}",
                    seeds=seeds,
                    task=arg,
                    model=model,
                    train={
                        "steps": steps,
                        "batch_size": batch,
                        "chunk_size": min(100, steps),
                        "eval_every": None,
                    },
                )
                res = common.train(cfg)
                ratio = res["eval_loss"] / res["summary"]["baseline"]
                row.append(common.mean_std(ratio))
                data.append(
                    {
                        "task": task,
                        "length": length,
                        "cell": cell,
                        "baseline": res["summary"]["baseline"],
                        "eval_loss": res["eval_loss"],
                        "loss_vs_baseline": ratio,
                        "accuracy": res["eval_accuracy"],
                        "wall_s": res["wall_s"],
                    }
                )
            rows.append(row)
    wall = time.perf_counter() - start

    plt = common.figure()
    fig, axes = plt.subplots(1, len(grid), figsize=(5 * len(grid), 4), squeeze=False)
    for ax, task in zip(axes[0], grid, strict=True):
        for cell in cells:
            pts = [d for d in data if d["task"] == task and d["cell"] == cell]
            xs = [d["length"] for d in pts]
            ys = np.array([d["loss_vs_baseline"] for d in pts])
            ax.errorbar(xs, ys.mean(1), yerr=ys.std(1), marker="o", capsize=3, label=cell)
        ax.axhline(1.0, ls="--", c="k", lw=0.8, label="baseline")
        ax.set(
            xlabel="T" if task == "adding" else "delay", ylabel="eval loss / baseline", title=task
        )
        ax.set_yscale("log")
        ax.legend()
    verdict = _verdict(data, grid)
    return {
        "md": common.write_result(
            args.out,
            NAME,
            title="Long-range dependencies: tanh RNN vs LSTM vs GRU (claim 1)",
            claim="The tanh RNN stays near the memoryless baseline at long T; the gated cells "
            "solve lengths the RNN cannot.",
            table=common.markdown_table(["task", "length", *cells], rows),
            data={"grid": grid, "runs": data},
            setup=f"`configs/adding/{{rnn,lstm,gru}}.yaml` and `configs/copy_memory/"
            f"{{lstm,gru}}.yaml` (the RNN on copy: the LSTM file with model.cell=rnn), H={hidden}, "
            f"Adam 1e-2, global-norm clip 1.0, batch {batch}, {steps} updates. Entries: final "
            f"eval loss / baseline on 1024 held-out sequences (8 in --tiny), mean ± std over "
            f"seeds.",
            seeds=seeds,
            wall_s=wall,
            verdict=verdict,
            notes="Published reference (Arjovsky, Shah & Bengio 2016, 'Unitary evolution "
            "recurrent neural networks'): the same baselines, 0.167 MSE for adding and "
            "10 ln 8 / (T + 20) for copy. They train for far longer (10^4+ updates) with larger "
            "models and report the LSTM solving adding up to T = 750 while the tanh RNN fails "
            "from a few hundred steps, and the LSTM stuck at the copy baseline at delays of "
            "several hundred. Our budget is a few hundred updates at small T, so only the "
            "ordering, not their absolute numbers, is comparable.",
            fig=fig,
        ),
        "data": data,
    }


def _verdict(data: list[dict[str, Any]], grid: dict[str, list[int]]) -> str:
    lines = []
    for task, lengths in grid.items():
        longest = max(lengths)
        at = {
            d["cell"]: float(np.mean(d["loss_vs_baseline"]))
            for d in data
            if d["task"] == task and d["length"] == longest
        }
        rnn = at.get("rnn")
        gated = {c: v for c, v in at.items() if c != "rnn"}
        if rnn is None or not gated:
            continue
        best = min(gated.values())
        ok = rnn > 0.5 and best < 0.5 * rnn
        lines.append(
            f"{task} at the longest length ({longest}): RNN {rnn:.3f} x baseline, "
            + ", ".join(f"{c} {v:.3f}" for c, v in gated.items())
            + (" - reproduces." if ok else " - does not reproduce at this budget.")
        )
    return " ".join(lines) or "No comparison (tiny run)."


if __name__ == "__main__":
    seqjax.xla.configure()  # before JAX starts: XLA reads its flags once
    print(main()["md"])
