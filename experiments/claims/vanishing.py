"""Vanishing gradients: ||dL/dh_t|| against t per cell, and the decay rate against the recurrent scale.

Two measurements on the adding problem at T = `LENGTH` (loss at the last step only, so every
``dL/dh_t`` is carried back from the end through the recurrence; Arjovsky et al. 2016, Figure 4's
view):

1. **Per cell**, for the tanh RNN, the IRNN, the LSTM (forget bias 1) and the GRU of
   ``configs/adding/{rnn,irnn,lstm,gru}.yaml``: ``||dL/dh_t||`` for every t, at initialisation
   and after `STEPS` updates, recorded by the run's ``diagnostics`` section
   (`seqjax.experiment.recorder`: the mean over a fixed batch of `DIAG_BATCH` examples); for
   the LSTM also ``||dL/dc_t||`` (`cell_grad_norms`, the same loss on the same batch).
2. **Per recurrent scale** s in {0.5, 0.9, 1.0, 1.1, 1.5} and initialiser of the tanh RNN's
   ``w_h`` (Gaussian ``N(0, 1/H)``, whose spectral radius tends to 1 as H grows, or orthogonal,
   radius exactly 1), multiplied by s (what ``seqjax.rnn(..., recurrent_scale=s)`` does):
   ``||dL/dh_t||`` at initialisation, no training.

The decay rate of a curve is the slope of a least-squares line through ``log10 ||dL/dh_t||``
against the steps back from the end (`seqjax.diagnostics.decay_rate`, `_slopes`), in decades per
step: negative when gradients vanish going back in time, positive when they grow. Each seed's
slope is kept, with the mean's 95% bootstrap interval.

Thresholds, stated before the run: a curve *keeps its gradient* when its slope is above
``-2 / (T - 1)`` (`keep_threshold`: less than a factor 100 lost over the whole sequence); a
trained model *solves* the adding problem below eval MSE 0.01 (about 6% of the 1/6 baseline);
in the scale sweep a seed counts as *growing* when its slope is above 0.

Verdicts (`stats.verdict`, per model): the LSTM's ``||dL/dh_t||`` and ``||dL/dc_t||`` and the
GRU's decay more slowly than the tanh RNN's (claim "better" on the slope), at initialisation
and after training; scale < 1 decays (slope below 0) and scale > 1 grows (slope above 0), per
initialiser; scale 1 is the boundary and gets no verdict. At initialisation nothing was trained,
so rule 1 of `stats.verdict` (no model left the baseline: the budget decided) does not apply;
after training it applies to the eval MSE against 1/6.

Sizes, fixed from the budget before any run: H = 64, batch 64, the configs' optimisers (Adam
1e-2, the IRNN 1e-4; global-norm clipping at 1), `STEPS` = 2000 updates (the configs' own
length; the quickstart's LSTM leaves the plateau after about 1000 at T = 150). At the reference
speeds (T = 100: LSTM 17, GRU 27, tanh RNN and IRNN about 70 updates/s, 5 seeds vmapped) the
four programs take about 4.5 minutes plus compilation; the scale sweep needs no training.

    python experiments/claims/vanishing.py [--seeds 0-4] [--tiny] [--out DIR]
"""

from __future__ import annotations

import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import seqjax
from seqjax.diagnostics import batch_hidden_grad_norms, decay_rate, model_diagnostics
from seqjax.diagnostics.model import example_loss
from seqjax.experiment import Experiment, layer_from_config
from seqjax.experiment.recorder import diagnostics_batch
from seqjax.layers import last_step
from seqjax.models import dense

try:
    from experiments.claims import common, stats
except ImportError:  # run as a script
    import common  # type: ignore[no-redef]
    import stats  # type: ignore[no-redef]

NAME = "vanishing"
BUDGET_MIN = 7

LENGTH = 100
HIDDEN = 64
BATCH = 64
STEPS = 2000
CHUNK = 100
DIAG_BATCH = 64

CELLS = {
    "tanh RNN": ("adding/rnn.yaml", {}),
    "IRNN": ("adding/irnn.yaml", {}),
    "LSTM": ("adding/lstm.yaml", {"forget_bias": 1.0}),
    "GRU": ("adding/gru.yaml", {}),
}
"""Cell name -> (config, model overrides)."""
SCALES = (0.5, 0.9, 1.0, 1.1, 1.5)
INITIALISERS = ("Gaussian", "orthogonal")
SOLVED_MSE = 0.01
"""Eval MSE below which a trained model solves the adding problem (~6% of the 1/6 baseline)."""
ADDING_BASELINE = 1.0 / 6.0
GRADIENT_CLAIMS = (("LSTM", "h"), ("LSTM", "c"), ("GRU", "h"))
"""(cell, state): each claimed to decay more slowly than the tanh RNN's ``||dL/dh_t||``."""


def keep_threshold(length: int) -> float:
    """The slope above which a curve keeps its gradient: less than 2 decades lost over
    ``length`` steps (a factor 100, beyond which the earliest steps' terms of the BPTT sum are
    lost next to the latest ones)."""
    return -2.0 / (length - 1)


def _slopes(curves: np.ndarray) -> np.ndarray:
    """Decay slope (decades per step back) of each ``[S, T]`` curve."""
    fit = jax.vmap(decay_rate)(jnp.asarray(curves, dtype=jnp.float32))
    return np.asarray(fit.slope, dtype=np.float64)


def cell_grad_norms(cell: seqjax.Cell, params: dict, batch: Any) -> tuple[jax.Array, jax.Array]:
    """``||dL_b/dh_t||`` and ``||dL_b/dc_t||`` of an LSTM many-to-one model, mean over a batch.

    The loss is the one `seqjax.diagnostics.model_diagnostics` differentiates (the task loss of
    a dense readout of the last valid hidden state), so the ``h`` curve equals its
    ``grad_norm``; the ``c`` curve is the cell-state part of the same backward pass.

    Args:
      cell: the LSTM (its carry is ``LSTMCarry(h, c)``).
      params: ``{"encoder": cell params, "readout": {"w", "b"}}`` of one run.
      batch: a many-to-one MSE task batch (``inputs [B, T, F]``, ``targets``, ``mask``,
        ``length [B]``).

    Returns:
      ``(h [T], c [T])``.
    """
    readout = params["readout"]

    def loss_fn(hs: jax.Array, final: Any, tgt: tuple) -> jax.Array:
        del final
        target, mask, length = tgt
        return example_loss("mse", dense(readout, last_step(hs, length)), target, mask)

    norms = batch_hidden_grad_norms(
        cell,
        params["encoder"],
        batch.inputs,
        loss_fn,
        targets=(batch.targets, batch.mask, batch.length),
        length=batch.length,
    )
    return norms.mean.h, norms.mean.carry.c


def _config(cell: str, *, tiny: bool, seeds: list[int], sizes: dict):
    path, overrides = CELLS[cell]
    return common.config(
        path,
        tiny=tiny,
        name=f"vanishing-{cell.replace(' ', '-')}",
        seeds=seeds,
        task={"length": sizes["length"]},
        model={"hidden_size": sizes["hidden"], **overrides},
        train={
            "steps": sizes["steps"],
            "batch_size": sizes["batch"],
            "chunk_size": sizes["chunk"],
            "eval_every": None,
        },
        diagnostics={"every": sizes["steps"], "batch_size": sizes["diag_batch"]},
    )


def _train_cell(cell: str, *, tiny: bool, seeds: list[int], sizes: dict) -> dict[str, Any]:
    """Trains one cell; returns its gradient curves ``[S, T]`` at init and trained (and the
    LSTM's cell-state curves), eval MSE ``[S]`` and the wall time.

    Trains with `seqjax.run` directly rather than `common.train`, which does not return the
    final parameters that ``||dL/dc_t||`` needs.
    """
    cfg = _config(cell, tiny=tiny, seeds=seeds, sizes=sizes)
    start = time.perf_counter()
    result = seqjax.run(cfg, progress=False)
    wall = time.perf_counter() - start
    diag = result.diagnostics
    if diag is None:
        raise RuntimeError(f"vanishing: the {cell} run recorded no diagnostics ({cfg.model})")
    grad = np.asarray(diag["grad_norm"], dtype=np.float64)  # [N, S, T]
    out = {
        "h": {"init": grad[0], "trained": grad[-1]},
        "eval_mse": np.atleast_1d(np.asarray(result.summary["eval"]["loss"], np.float64)),
        "trained_steps": int(diag["step"][-1]),
        "wall_s": wall,
    }
    if cell == "LSTM":
        program = Experiment(cfg)
        init_params = program.trainer.init(program.run_keys())[0].params
        lstm = layer_from_config(cfg.model)
        batch = diagnostics_batch(program.task, sizes["diag_batch"])
        norms = jax.jit(jax.vmap(lambda p: cell_grad_norms(lstm, p, batch)))
        out["c"] = {
            when: np.asarray(norms(p)[1], dtype=np.float64)
            for when, p in (("init", init_params), ("trained", result.params))
        }
    return out


def scale_sweep(seeds: list[int], sizes: dict) -> dict[tuple[str, float], dict[str, Any]]:
    """``||dL/dh_t||`` of the tanh RNN at initialisation for every initialiser and scale.

    The model is `seqjax.many_to_one` over ``seqjax.rnn(H)`` on the adding problem, initialised
    from ``jax.random.key(seed)``; its ``w_h`` is drawn by the initialiser (the other parameters
    are the same for both) and multiplied by the scale, as ``recurrent_scale`` does.

    Returns:
      ``(initialiser, scale) -> {"curves": [S, T], "radius": [S]}`` (the spectral radius of
      ``w_h``).
    """
    hidden, length = sizes["hidden"], sizes["length"]
    task = seqjax.tasks.adding(length=length)
    batch = diagnostics_batch(task, sizes["diag_batch"])
    inits = {
        "Gaussian": jax.nn.initializers.normal(stddev=1.0 / math.sqrt(hidden)),
        "orthogonal": "orthogonal",
    }
    cell = seqjax.rnn(hidden)
    keys = jnp.stack([jax.random.key(s) for s in seeds])
    diagnose = jax.jit(jax.vmap(lambda p: model_diagnostics(cell, "many_to_one", "mse", p, batch)))
    out = {}
    for name in INITIALISERS:
        model = seqjax.many_to_one(seqjax.rnn(hidden, recurrent_init=inits[name]), 2, 1)
        params = jax.vmap(model.init)(keys)
        for scale in SCALES:
            scaled = {
                **params,
                "encoder": {**params["encoder"], "w_h": scale * params["encoder"]["w_h"]},
            }
            diag = diagnose(scaled)
            out[(name, scale)] = {
                "curves": np.asarray(diag.grad_norm, dtype=np.float64),
                "radius": np.asarray(diag.weight_radius[:, 0], dtype=np.float64),
            }
    return out


def _decades_lost(curves: np.ndarray) -> np.ndarray:
    """``log10(||g_last|| / ||g_0||)`` per seed, ``g_last`` the last nonzero norm: the orders of
    magnitude lost from the end back to t = 0 (the LSTM's ``dL/dc_{T-1}`` is zero: the loss reads
    ``h_{T-1}``, and ``c_t``'s gradient comes through the later steps only)."""
    out = []
    for curve in curves:
        nonzero = np.flatnonzero(curve > 0)
        if nonzero.size == 0 or curve[0] <= 0:
            out.append(math.inf)  # underflowed to zero at t = 0: every decade lost
        else:
            out.append(float(np.log10(curve[nonzero[-1]] / curve[0])))
    return np.asarray(out)


def _log_band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mean over seeds of ``log10`` of each step's norm, with its bootstrap interval; NaN
    (not drawn) at a step where some seed's norm is zero (underflowed, or the LSTM's
    ``dL/dc_{T-1}``)."""
    bands = []
    for column in curves.T:
        if np.all(column > 0):
            bands.append(stats.bootstrap_interval(np.log10(column)))
        else:
            bands.append(stats.Interval(np.nan, np.nan, np.nan, None))
    return tuple(np.asarray([getattr(b, k) for b in bands]) for k in ("mean", "low", "high"))


def _curves_json(curves: np.ndarray) -> list:
    return [[float(v) if math.isfinite(v) else None for v in row] for row in curves]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = common.parse_args(argv, __doc__.splitlines()[0])
    seeds = args.seeds
    if args.tiny:
        cells = ("LSTM",)  # one program: the LSTM has both curves (h and c)
        sizes = {"length": 8, "hidden": 8, "batch": 8, "steps": 10, "chunk": 10, "diag_batch": 8}
    else:
        cells = tuple(CELLS)
        sizes = {
            "length": LENGTH,
            "hidden": HIDDEN,
            "batch": BATCH,
            "steps": STEPS,
            "chunk": CHUNK,
            "diag_batch": DIAG_BATCH,
        }
    length = sizes["length"]
    keep = keep_threshold(length)
    start = time.perf_counter()

    records: list[dict[str, Any]] = []
    slopes: dict[tuple[str, str, str], stats.Interval] = {}
    mse: dict[str, stats.Interval] = {}
    runs: dict[str, dict[str, Any]] = {}
    rows = []
    for cell in cells:
        run = runs[cell] = _train_cell(cell, tiny=args.tiny, seeds=seeds, sizes=sizes)
        mse_record, mse[cell] = common.setting(seeds, run["eval_mse"], threshold=SOLVED_MSE)
        mse_record.update(kind="eval_mse", cell=cell, length=length, wall_s=run["wall_s"])
        records.append(mse_record)
        for state in ("h", "c"):
            if state not in run:
                continue
            entries = []
            for when in ("init", "trained"):
                curves = run[state][when]
                record, slopes[(cell, state, when)] = common.setting(
                    seeds, _slopes(curves), threshold=keep, higher_is_better=True
                )
                record.update(
                    kind="slope",
                    cell=cell,
                    state=state,
                    when=when,
                    length=length,
                    step=0 if when == "init" else run["trained_steps"],
                    curves=_curves_json(curves),
                )
                records.append(record)
                entries.append(common.cell(record))
            ends = _decades_lost(run[state]["init"])
            mse_entry = common.cell(mse_record) if state == "h" else "(same run)"
            rows.append([cell, f"dL/d{state}_t", *entries, common.mean_std(ends), mse_entry])

    sweep = scale_sweep(seeds, sizes)
    scale_rows, scale_intervals = [], {}
    for (init, scale), got in sweep.items():
        record, scale_intervals[(init, scale)] = common.setting(
            seeds, _slopes(got["curves"]), threshold=0.0, higher_is_better=True
        )
        record.update(
            kind="scale",
            cell="tanh RNN",
            init=init,
            scale=scale,
            length=length,
            radius=got["radius"],
            curves=_curves_json(got["curves"]),
        )
        records.append(record)
        scale_rows.append(
            [init, f"{scale:g}", common.mean_std(got["radius"]), common.cell(record, digits=2)]
        )
    wall = time.perf_counter() - start

    verdicts = _verdicts(slopes, mse, scale_intervals)
    table = "\n\n".join(
        [
            f"Per cell (slope in decades per step back; k/n: seeds above {keep:.3g}, i.e. "
            f"less than a factor 100 lost over T = {length}):",
            common.markdown_table(
                [
                    "cell",
                    "gradient",
                    "slope at init [95% CI] k/n",
                    f"slope after {sizes['steps']} updates [95% CI] k/n",
                    "decades lost from the end back to t = 0, at init",
                    f"eval MSE [95% CI] k/n < {SOLVED_MSE}",
                ],
                rows,
            ),
            "Tanh RNN at initialisation, by initialiser and scale of w_h (k/n: seeds whose "
            "gradient grows, slope > 0):",
            common.markdown_table(
                ["w_h initialiser", "scale", "spectral radius of w_h", "slope [95% CI] k/n"],
                scale_rows,
            ),
        ]
    )
    setup = (
        f"Adding problem, T = {length} (loss at the last step), "
        f"`configs/adding/{{rnn,irnn,lstm,gru}}.yaml` (LSTM forget bias 1) at H = "
        f"{sizes['hidden']}, batch {sizes['batch']}, the configs' optimisers, "
        f"{sizes['steps']} updates (fixed from the budget, not tuned); ||dL/dh_t|| is the "
        f"mean over a fixed batch of {sizes['diag_batch']} examples, recorded at step 0 and at "
        f"the end (`diagnostics` section); ||dL/dc_t|| from the same backward pass. Scale "
        f"sweep: a tanh RNN H = {sizes['hidden']} with w_h ~ N(0, 1/H) or orthogonal, times "
        f"the scale, at initialisation (seed = init key). Slope: least-squares line through "
        f"log10 ||dL/dh_t|| against the steps back from the end "
        f"(`seqjax.diagnostics.decay_rate`)."
    )
    published = (
        "Arjovsky, Shah & Bengio 2016 (ICML, 'Unitary Evolution Recurrent Neural Networks', "
        "Figure 4): ||dC/dh_t|| against t at the start of training and after some training; "
        "the tanh RNN's and the LSTM's norms fall by orders of magnitude going back in time "
        "while the uRNN's stay nearly flat; their values are not quoted here, and their "
        "models and sizes differ from ours (we have no uRNN; the IRNN and GRU are ours). "
        "Pascanu, Mikolov & Bengio 2013 (ICML, 'On the difficulty of training recurrent "
        "neural networks', section 2.1): with |phi'| <= gamma (gamma = 1 for tanh), a largest "
        "singular value of W_hh below 1/gamma is sufficient for the long-term gradient "
        "components to vanish, and one above 1/gamma is necessary (not sufficient) for them "
        "to explode. So scale < 1 must decay for the orthogonal W_hh "
        "(singular values = scale) and, for the Gaussian one, once its largest singular value "
        "(about 2 x scale for N(0, 1/H)) is below 1; scale > 1 allows growth but the tanh's "
        "saturation can still make the gradient decay."
    )
    md = common.write_result(
        args.out,
        NAME,
        title="Vanishing gradients at initialisation and after training (whitepaper §8.1, §9, "
        "§15, §20)",
        claim="||dL/dh_t|| shrinks exponentially going back in time when the effective "
        "recurrent Jacobian's eigenvalues are below 1 and grows when they exceed 1 (§9); the "
        "LSTM's additive cell-state path (and the GRU's gating) lets the gradient reach far "
        "further back than in a tanh RNN (§15, §20).",
        table=table,
        data={
            "settings": records,
            "length": length,
            "hidden_size": sizes["hidden"],
            "steps": sizes["steps"],
            "keep_threshold": keep,
            "solved_mse": SOLVED_MSE,
            "scales": list(SCALES),
        },
        setup=setup,
        seeds=seeds,
        wall_s=wall,
        verdict=_summary(verdicts),
        verdicts=verdicts,
        published=published,
        notes="A slope of -0.1 means a factor 10 lost every 10 steps back. Error bars and "
        "bands are 95% bootstrap intervals over seeds of the mean of log10 ||dL/dh_t||. "
        "||dL/dc_t|| is the gradient with respect to the cell state as part of the carry "
        "(h_t, c_t): at t = T-1 it is zero, since the loss reads h_{T-1} only, and the fit "
        "leaves zero norms out.",
        fig=_figure(runs, sweep, sizes),
    )
    return {"md": md, "data": records}


def _verdicts(
    slopes: dict[tuple[str, str, str], stats.Interval],
    mse: dict[str, stats.Interval],
    scale_intervals: dict[tuple[str, float], stats.Interval],
) -> dict[str, str]:
    out = {}
    trained_left = any(stats.left_baseline(x, ADDING_BASELINE) for x in mse.values())
    for when, any_left in (("init", True), ("trained", trained_left)):
        reference = slopes.get(("tanh RNN", "h", when))
        for cell, state in GRADIENT_CLAIMS:
            model = slopes.get((cell, state, when))
            if model is None or reference is None:
                continue
            out[f"{cell} ||dL/d{state}_t|| vs tanh RNN ||dL/dh_t|| @ {when}"] = stats.verdict(
                model,
                reference,
                claim="better",
                any_left_baseline=any_left,
                higher_is_better=True,
            )
    for (init, scale), interval in scale_intervals.items():
        if scale == 1.0:
            continue
        claim = "worse" if scale < 1.0 else "better"  # below / above a slope of 0
        out[f"tanh RNN, {init} w_h x {scale:g}, {'decays' if scale < 1 else 'grows'} @ init"] = (
            stats.verdict(
                interval,
                stats.exact(0.0),
                claim=claim,
                any_left_baseline=True,
                higher_is_better=True,
            )
        )
    return out


def _summary(verdicts: dict[str, str]) -> str:
    parts = []
    for key, word in verdicts.items():
        if " vs " in key:
            parts.append(
                f"{key.split(' vs ')[0]} decays more slowly than the tanh RNN "
                f"({key.rsplit('@ ', 1)[1]}): {word}."
            )
    for init in INITIALISERS:
        for kind in ("decays", "grows"):
            found = [
                (k.split(" x ")[1].split(",")[0], v)
                for k, v in verdicts.items()
                if k.startswith(f"tanh RNN, {init} ") and f", {kind} " in k
            ]
            if found:
                scales = "; ".join(f"x{s}: {v}" for s, v in found)
                parts.append(f"Tanh RNN, {init} w_h, {kind} at initialisation: {scales}.")
    return " ".join(parts)


def _figure(runs: dict[str, dict], sweep: dict, sizes: dict):
    plt = common.figure()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    t = np.arange(sizes["length"])
    for ax, when in zip(axes[:2], ("init", "trained"), strict=True):
        for i, (cell, run) in enumerate(runs.items()):
            for state, style in (("h", "-"), ("c", "--")):
                if state not in run:
                    continue
                mean, low, high = _log_band(run[state][when])
                label = cell if state == "h" else f"{cell} ||dL/dc_t||"
                ax.plot(t, 10.0**mean, style, color=f"C{i}", label=label)
                ax.fill_between(t, 10.0**low, 10.0**high, color=f"C{i}", alpha=0.2)
        ax.set(yscale="log", xlabel="timestep t (loss at t = T-1)")
    axes[0].set(title="at initialisation", ylabel="||dL/dh_t|| (geometric mean, 95% CI)")
    axes[1].set(title=f"after {sizes['steps']} updates")
    axes[0].legend(fontsize=7)
    for j, init in enumerate(INITIALISERS):
        means, lows, highs = [], [], []
        for scale in SCALES:
            s = _slopes(sweep[(init, scale)]["curves"])
            interval = stats.bootstrap_interval(s)
            means.append(interval.mean)
            lows.append(interval.low)
            highs.append(interval.high)
        means, lows, highs = map(np.asarray, (means, lows, highs))
        axes[2].errorbar(
            np.asarray(SCALES) + 0.01 * (2 * j - 1),
            means,
            yerr=[means - lows, highs - means],
            marker="o",
            capsize=3,
            label=f"{init} w_h",
        )
    axes[2].axhline(0.0, ls=":", c="k", lw=0.8)
    axes[2].axvline(1.0, ls=":", c="grey", lw=0.8)
    axes[2].set(
        xlabel="scale of w_h",
        ylabel="slope at init (decades per step back, 95% CI)",
        title=f"tanh RNN H={sizes['hidden']}, T={sizes['length']}",
    )
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    seqjax.xla.configure()  # before JAX starts: XLA reads its flags once
    print(main()["md"])
