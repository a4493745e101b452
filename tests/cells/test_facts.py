"""What the framework knows about a cell lives on its `Cell` record, never in a name test.

Checks, for every registered cell (and its ``fast=True`` variant where there is one), that the
facts agree with the cell's own parameters and behaviour; that a user's cell built from the
five positional fields works everywhere a cell goes; and that no module of the library outside
``seqjax/cells/`` compares a cell's name with a string literal.
"""

import ast
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import cells
from seqjax.cells import Cell
from seqjax.diagnostics.gates import gate_stats
from seqjax.diagnostics.model import gate_names, model_diagnostics
from seqjax.layers import recurrent_dropout_cell, stack
from seqjax.models import many_to_one
from seqjax.tasks import Batch
from seqjax.unroll import AUTO_STEP_REMAT_MIN_STEPS, auto_remat, unroll

H, F, T = 4, 3, 6
SEQJAX = Path(__file__).resolve().parents[2] / "seqjax"

# (id, cell): every registered cell, and the fused variants.
REGISTERED = [(name, cells.get_cell(name, H)) for name in sorted(cells.CELLS)] + [
    ("lstm_fast", cells.lstm(H, fast=True)),
    ("gru_fast", cells.gru(H, fast=True)),
    ("rnn_fast", cells.rnn(H, fast=True)),
]
# The gates each cell's equations name, from the gate records of the cell modules.
EXPECTED_GATES = {"rnn": (), "irnn": (), "lstm": ("f", "i", "g", "o"), "gru": ("r", "z", "n")}
EXPECTED_GATES.update(indrnn=(), exprnn=(), cornn=())  # ungated nonlinear long-range cells
# The linear recurrences: gates from the input only, no [H, H] recurrent weights.
LINEAR_GATES = {"lru": (), "min_gru": ("z",), "min_lstm": ("f", "i")}


def _base_name(case_id: str) -> str:
    return case_id.removesuffix("_fast")


@pytest.mark.parametrize(("case_id", "cell"), REGISTERED, ids=[c for c, _ in REGISTERED])
def test_facts_agree_with_the_cell(case_id, cell, key):
    params = cell.init(key, F)
    if case_id in LINEAR_GATES:
        assert cell.gates == LINEAR_GATES[case_id] == gate_names(cell)
        assert (cell.gate_spec is not None) == bool(cell.gates)
        assert "w_h" not in params and cell.weight_blocks == ()
        assert cell.scan is not None and cell.scan_on_cpu is False
        return
    gated = _base_name(case_id) in ("lstm", "gru")
    assert cell.gates == EXPECTED_GATES[_base_name(case_id)]
    assert bool(cell.gates) == gated
    assert gate_names(cell) == cell.gates
    # One name per [H, H] block of the recurrent weights; a gated cell has one per gate.
    assert len(cell.weight_blocks) == (params["w_h"].shape[1] // H if "w_h" in params else 0)
    if gated:
        assert cell.weight_blocks == cell.gates
    # Gated cells recompute every step from fewer steps than the generic threshold.
    if gated:
        assert isinstance(cell.remat_min_steps, int)
        assert 1 <= cell.remat_min_steps < AUTO_STEP_REMAT_MIN_STEPS
    else:
        assert cell.remat_min_steps is None
    assert (cell.masked_step is not None) == (_base_name(case_id) == "gru")


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn"])
def test_fast_variant_carries_the_same_facts(name):
    slow, fast = cells.get_cell(name, H), cells.get_cell(name, H, fast=True)
    assert fast.scan is not None and slow.scan is None
    assert fast.gates == slow.gates
    assert fast.weight_blocks == slow.weight_blocks
    assert fast.remat_min_steps == slow.remat_min_steps
    assert (fast.masked_step is None) == (slow.masked_step is None)


@pytest.mark.parametrize(("case_id", "cell"), REGISTERED, ids=[c for c, _ in REGISTERED])
def test_gate_stats_and_model_diagnostics_follow_the_facts(case_id, cell, key):
    k_p, k_x = jax.random.split(key)
    xs = jax.random.normal(k_x, (T, F))
    if cell.gates:
        stats = gate_stats(cell, cell.init(key, F), xs)
        assert set(stats.values) == set(cell.gates)
    model = many_to_one(cell, F, 2)
    params = model.init(k_p)
    batch = Batch(
        inputs=xs[None],
        targets=jnp.zeros((1,), jnp.int32),
        mask=jnp.ones((1,), jnp.float32),
        length=jnp.full((1,), T, jnp.int32),
    )
    if case_id == "lru":  # its output is a readout of its state, not the carry's hidden part
        with pytest.raises(ValueError, match=r"the lru cell's carry has a hidden part of shape"):
            model_diagnostics(cell, "many_to_one", "cross_entropy", params, batch)
        return
    diag = model_diagnostics(cell, "many_to_one", "cross_entropy", params, batch)
    assert diag.gate_saturation.shape == (len(cell.gates),)
    assert diag.weight_radius.shape == (len(cell.weight_blocks),)


def _np_gru_masked(p, h, x, m):
    # Recurrent dropout of the GRU: the three recurrent products read m * h, the interpolation
    # z * h reads the unmasked state (written from the gru docstring, float64).
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    blk = [slice(k * H, (k + 1) * H) for k in range(3)]
    zx = [x @ p["w_i"][:, s] + p["b_i"][s] for s in blk]
    zh = [(m * h) @ p["w_h"][:, s] for s in blk]
    r, z = sig(zx[0] + zh[0]), sig(zx[1] + zh[1])
    n = np.tanh(zx[2] + r * (zh[2] + p["b_hn"]))
    return (1.0 - z) * n + z * h


def test_gru_masked_step_matches_reference_and_not_the_generic_masking(key, x64):
    cell = cells.gru(H, dtype=jnp.float64)
    k_p, k_h, k_x, k_m = jax.random.split(key, 4)
    params = jax.tree.map(
        lambda a: a + 0.3 * jax.random.normal(k_p, a.shape, a.dtype), cell.init(k_p, F)
    )
    h = jax.random.normal(k_h, (H,), jnp.float64)
    x = jax.random.normal(k_x, (F,), jnp.float64)
    mask = jax.random.bernoulli(k_m, 0.5, (H,)).astype(h.dtype) * 2.0
    _, out = cell.masked_step(params, h, x, mask)
    p = jax.tree.map(np.asarray, params)
    np.testing.assert_allclose(out, _np_gru_masked(p, *map(np.asarray, (h, x, mask))), rtol=1e-12)
    # A mask of ones is the plain step; the generic masking (of the whole carry) differs.
    np.testing.assert_array_equal(
        cell.masked_step(params, h, x, jnp.ones(H, jnp.float64))[1], cell.step(params, h, x)[1]
    )
    assert not np.allclose(out, cell.step(params, h * mask, x)[1])


@pytest.mark.parametrize("name", ["rnn", "irnn", "lstm"])
def test_recurrent_dropout_without_masked_step_is_the_generic_masking(name, key):
    cell = cells.get_cell(name, H)
    params = cell.init(key, F)
    mask = jnp.array([2.0, 0.0, 2.0, 0.0])
    xs = jax.random.normal(key, (T, F))
    _, hs = unroll(recurrent_dropout_cell(cell, mask), params, xs)
    carry, expected = cell.initial_carry(), []
    for x in xs:
        if isinstance(carry, jax.Array):
            masked = carry * mask
        else:
            masked = carry._replace(h=carry.h * mask)
        carry, h = cell.step(params, masked, x)
        expected.append(h)
    np.testing.assert_allclose(hs, jnp.stack(expected), rtol=1e-5, atol=1e-6)


def _user_cell(name: str) -> Cell:
    """A leaky tanh RNN written by a user: only the five positional fields of `Cell`."""

    def init(key, input_size):
        k_i, k_h = jax.random.split(key)
        return {
            "w_i": jax.random.normal(k_i, (input_size, H)) / input_size,
            "w_h": jax.random.normal(k_h, (H, H)) / H,
        }

    def step(params, carry, x):
        h = 0.5 * carry + 0.5 * jnp.tanh(x @ params["w_i"] + carry @ params["w_h"])
        return h, h

    return Cell(init, lambda: jnp.zeros((H,)), step, H, name)


# Named like built-in cells on purpose: nothing may read the name.
@pytest.mark.parametrize("name", ["leaky", "gru", "lstm"])
def test_user_cell_with_positional_fields_works_everywhere(name, key):
    cell = _user_cell(name)
    assert (cell.scan, cell.gates, cell.weight_blocks) == (None, (), ())
    assert cell.masked_step is None and cell.remat_min_steps is None
    params = cell.init(key, F)
    xs = jax.random.normal(key, (T, F))

    carry, expected = cell.initial_carry(), []
    for x in xs[:4]:
        carry, h = cell.step(params, carry, x)
        expected.append(h)
    final, hs = unroll(cell, params, xs, length=4)
    np.testing.assert_allclose(hs[:4], jnp.stack(expected), rtol=1e-6)
    np.testing.assert_array_equal(hs[4:], 0.0)
    np.testing.assert_allclose(final, carry, rtol=1e-6)

    assert auto_remat(cell, 50) is False  # the generic threshold, whatever the name
    step = "step" if jax.default_backend() == "cpu" else False
    assert auto_remat(cell, AUTO_STEP_REMAT_MIN_STEPS) == step

    layer = stack([cell, _user_cell(name)], recurrent_dropout=0.5, dropout=0.2)
    lparams = layer.init(key, F)
    _, out = layer.apply(lparams, xs, key=jax.random.key(1))
    _, det = layer.apply(lparams, xs)
    assert out.shape == det.shape == (T, H)
    assert bool(jnp.all(jnp.isfinite(out)))
    grads = jax.grad(lambda p: jnp.sum(layer.apply(p, xs, key=jax.random.key(2))[1] ** 2))(lparams)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


# ---------------------------------------------------------------------------------------------
# No name tests outside the cells.


def _string_collections(tree: ast.Module) -> set[str]:
    """Module-level names bound to a tuple, list or set of string literals."""
    names = set()
    for node in tree.body:
        targets, value = [], None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        if _is_strings(value):
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def _is_strings(node: ast.AST | None) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return bool(node.elts) and all(_is_strings(e) for e in node.elts)
    return False


def _is_cell_name(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "name"
        and "cell" in ast.unparse(node.value).lower()
    )


def cell_name_comparisons(source: str) -> list[str]:
    """The comparisons of a cell's ``.name`` with string literals in ``source``."""
    tree = ast.parse(source)
    literal_names = _string_collections(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        if not any(_is_cell_name(o) for o in operands):
            continue
        if any(
            _is_strings(o) or (isinstance(o, ast.Name) and o.id in literal_names) for o in operands
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_scan_finds_name_tests():
    source = 'GATED = ("lstm", "gru")\nif cell.name == "gru": pass\nx = cell.name in GATED\n'
    assert len(cell_name_comparisons(source)) == 2
    assert cell_name_comparisons('x = cell.gates == ()\ny = f"{cell.name}"\n') == []


def test_no_module_outside_cells_tests_a_cell_by_its_name():
    offenders = {}
    for path in sorted(SEQJAX.rglob("*.py")):
        if (SEQJAX / "cells") in path.parents:
            continue
        found = cell_name_comparisons(path.read_text())
        if found:
            offenders[str(path.relative_to(SEQJAX.parent))] = found
    assert offenders == {}, f"cell name tests outside seqjax/cells: {offenders}"
