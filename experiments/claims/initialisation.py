"""Claim 7: the LSTM's forget-gate initialisation matters on long memory tasks.

Copy memory with an LSTM whose forget-gate bias starts at 0, at 1 (Gers et al. 2000;
Jozefowicz et al. 2015) or from chrono initialisation (Tallec & Ollivier 2018,
``b_f ~ log U(1, T_max - 1)``, ``b_i = -b_f``).

    python experiments/claims/initialisation.py [--tiny] [--out DIR]
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

NAME = "initialisation"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = common.parse_args(argv, __doc__.splitlines()[0])
    if args.tiny:
        delay, steps, hidden, batch, seeds = 3, 10, 8, 8, [0, 1]
    else:
        delay, steps, hidden, batch, seeds = 30, 600, 32, 32, common.SEEDS
    t_max = float(delay + 20)
    variants = [
        ("forget bias 0", "copy_memory/lstm.yaml", {"forget_bias": 0.0}),
        ("forget bias 1", "copy_memory/lstm.yaml", {"forget_bias": 1.0}),
        (f"chrono T_max={t_max:g}", "copy_memory/lstm_chrono.yaml", {"chrono": t_max}),
    ]
    if args.tiny:
        variants = variants[::2]
    start = time.perf_counter()
    rows, data, curves = [], [], []
    for label, path, extra in variants:
        cfg = common.config(
            path,
            tiny=args.tiny,
            name="init",
            seeds=seeds,
            task={"delay": delay},
            model={"hidden_size": hidden, **extra},
            train={
                "steps": steps,
                "batch_size": batch,
                "chunk_size": min(100, steps),
                "eval_every": None,
            },
        )
        res = common.train(cfg)
        base = res["summary"]["baseline"]
        ratio = res["loss"] / base
        below = np.argmax(ratio.mean(1) < 0.5) if np.any(ratio.mean(1) < 0.5) else None
        rows.append(
            [
                label,
                common.mean_std(res["eval_loss"] / base),
                common.mean_std(res["eval_accuracy"]),
                "-" if below is None else int(res["steps"][below]),
            ]
        )
        data.append(
            {
                "init": label,
                "eval_loss_vs_baseline": res["eval_loss"] / base,
                "accuracy": res["eval_accuracy"],
                "first_step_below_half_baseline": None
                if below is None
                else int(res["steps"][below]),
                "wall_s": res["wall_s"],
            }
        )
        curves.append((label, res["steps"], ratio))
    wall = time.perf_counter() - start

    plt = common.figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, steps_, ratio in curves:
        line = ax.plot(steps_, ratio.mean(1), label=label)[0]
        ax.fill_between(steps_, ratio.min(1), ratio.max(1), alpha=0.2, color=line.get_color())
    ax.axhline(1.0, ls="--", c="k", lw=0.8, label="baseline 10 ln 8 / (T+20)")
    ax.set(
        xlabel="update",
        ylabel="train loss / baseline",
        yscale="log",
        title=f"copy memory, delay {delay}, LSTM H={hidden}",
    )
    ax.legend(fontsize=8)
    final = {d["init"]: float(np.mean(d["eval_loss_vs_baseline"])) for d in data}
    verdict = "Final eval loss / baseline: " + ", ".join(f"{k} {v:.3f}" for k, v in final.items())
    vals = list(final.values())
    if len(vals) == 3:
        if vals[0] > vals[1] and vals[0] > vals[2]:
            verdict += ". Reproduces: forget bias 0 is the worst of the three."
        else:
            verdict += ". Does not reproduce: forget bias 0 is not the worst at this budget."
    return {
        "md": common.write_result(
            args.out,
            NAME,
            title="Forget-gate initialisation on copy memory (claim 7)",
            claim="A positive forget bias (1) or chrono initialisation learns long memory faster "
            "than a zero forget bias.",
            table=common.markdown_table(
                [
                    "initialisation",
                    "eval loss / baseline",
                    "eval accuracy",
                    "first logged step < 0.5 baseline",
                ],
                rows,
            ),
            data={"delay": delay, "runs": data},
            setup=f"`configs/copy_memory/lstm.yaml` / `lstm_chrono.yaml` with task.delay={delay} "
            f"(T={delay + 20}), LSTM H={hidden}, Adam 1e-2, clip 1.0, batch {batch}, {steps} "
            f"updates.",
            seeds=seeds,
            wall_s=wall,
            verdict=verdict,
            notes="Published reference: Jozefowicz, Zaremba & Sutskever 2015 recommend a forget "
            "bias of 1; Tallec & Ollivier 2018 ('Can recurrent neural networks warp time?') show "
            "chrono initialisation solving copy at delays of hundreds to thousands of steps "
            "where the standard initialisation plateaus at the baseline. Our delay is short "
            "(30), where all three may learn; differences then show in speed, not in the end "
            "point.",
            fig=fig,
        ),
        "data": data,
    }


if __name__ == "__main__":
    seqjax.xla.configure()  # before JAX starts: XLA reads its flags once
    print(main()["md"])
