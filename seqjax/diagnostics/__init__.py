"""Gradient-flow diagnostics: per-timestep gradient norms, Jacobians, gate statistics.

Everything works on one cell over one sequence ``xs: [T, F]`` (masked by ``length`` as in
`seqjax.unroll`), is jittable and is batched with ``jax.vmap`` (``batch_hidden_grad_norms``
does it for the gradient norms)::

    loss_fn = lambda hs, carry: jnp.sum(hs[-1] ** 2)            # any readout of the outputs
    norms = hidden_grad_norms(cell, params, xs, loss_fn)          # ||dL/dh_t||, [T]
    print(describe_decay(decay_rate(norms.h)))                    # "gradients vanish by 10^k ..."
    jac = jacobian_norms(cell, params, xs)                        # ||ds_T/ds_t||, spectra, FTLE
    gates = gate_stats(cell, params, xs)                          # gated cells only
    terms = weight_grad_contributions(cell, params, xs, loss_fn)  # ||dL/dW_hh|_t||, [T]

For a whole model (a readout over one cell, as training builds it) `model_diagnostics` gives
the mean ``||dL_b/dh_t||`` over a task batch, the recurrent spectral radius and the gate
saturation; a config section ``diagnostics: {every: N}`` records them during training into
``diagnostics.npz`` (`seqjax.experiment.recorder`, which also reads them back).

Plots live in `seqjax.diagnostics.plot` (``from seqjax.diagnostics import plot``), which is not
imported here so that matplotlib stays optional and unloaded.
"""

from seqjax.diagnostics._common import masked_scan
from seqjax.diagnostics.gates import GateSpec, GateStats, gate_stats
from seqjax.diagnostics.gradients import (
    BatchGradNorms,
    DecayFit,
    HiddenGradNorms,
    WeightGradContributions,
    batch_hidden_grad_norms,
    decay_rate,
    describe_decay,
    hidden_grad_norms,
    hidden_grads,
    weight_grad_contributions,
)
from seqjax.diagnostics.jacobians import (
    JacobianNorms,
    end_jacobians,
    jacobian_norms,
    lyapunov_exponents,
    recurrent_eigenvalues,
    recurrent_spectral_radius,
    step_jacobians,
)
from seqjax.diagnostics.model import ModelDiagnostics, model_diagnostics

__all__ = [
    "BatchGradNorms",
    "DecayFit",
    "GateSpec",
    "GateStats",
    "HiddenGradNorms",
    "JacobianNorms",
    "ModelDiagnostics",
    "WeightGradContributions",
    "batch_hidden_grad_norms",
    "decay_rate",
    "describe_decay",
    "end_jacobians",
    "gate_stats",
    "hidden_grad_norms",
    "hidden_grads",
    "jacobian_norms",
    "lyapunov_exponents",
    "masked_scan",
    "model_diagnostics",
    "recurrent_eigenvalues",
    "recurrent_spectral_radius",
    "step_jacobians",
    "weight_grad_contributions",
]
