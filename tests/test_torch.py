"""Tests of the PyTorch interop against torch itself, in float64.

The independent reference is torch: a ``torch.nn.LSTM`` / ``GRU`` / ``RNN`` (random weights,
every bias non-zero, random initial states) runs a padded batch of sequences of different
lengths through ``pack_padded_sequence``; seqjax runs the converted params on the same batch
with ``length=`` under ``jax.vmap``. Outputs, final states, and gradients with respect to the
inputs and to torch's own weights (through the differentiable `params_from_torch`) must agree.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import seqjax
import seqjax.torch as st

B, T, F, H = 4, 7, 3, 5
LENGTHS = [7, 3, 5, 1]
ATOL = 1e-10

# (torch class, options, seqjax cell name): every kind, every layout, both RNN nonlinearities.
CASES = {
    "lstm": (torch.nn.LSTM, {}, "lstm"),
    "lstm_bi": (torch.nn.LSTM, {"bidirectional": True}, "lstm"),
    "lstm_2": (torch.nn.LSTM, {"num_layers": 2}, "lstm"),
    "lstm_2_bi": (torch.nn.LSTM, {"num_layers": 2, "bidirectional": True}, "lstm"),
    "gru": (torch.nn.GRU, {}, "gru"),
    "gru_2_bi": (torch.nn.GRU, {"num_layers": 2, "bidirectional": True}, "gru"),
    "rnn_tanh_bi": (torch.nn.RNN, {"bidirectional": True}, "rnn"),
    "rnn_relu_3": (torch.nn.RNN, {"num_layers": 3, "nonlinearity": "relu"}, "rnn"),
}


def _module(case_id, seed):
    kind, options, _ = CASES[case_id]
    torch.manual_seed(seed)
    module = kind(F, H, batch_first=True, dtype=torch.float64, **options)
    with torch.no_grad():
        for p in module.parameters():  # every weight and bias random, well away from zero
            p.copy_(0.5 * torch.randn_like(p) + 0.1)
    return module


def _apply(cell_or_layer, params, xs, length, carry):
    """One sequence ``[T, F]`` through the converted cell or layer."""
    if isinstance(cell_or_layer, seqjax.Cell):
        return seqjax.unroll(cell_or_layer, params, xs, carry=carry, length=length)
    return cell_or_layer.apply(params, xs, length=length, carry=carry)


def _final_states(carry, is_lstm):
    """The seqjax carry as ``[L * D, B, H]`` arrays in torch's order, read off its leaves
    (tree order is layer-major, forward before backward, h before c)."""
    leaves = jax.tree.leaves(carry)
    if is_lstm:
        return jnp.stack(leaves[0::2]), jnp.stack(leaves[1::2])
    return (jnp.stack(leaves),)


@pytest.fixture(scope="module")
def results():
    """Per case: torch's outputs, final states and gradients, and seqjax's, all float64."""
    out = {}
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((B, T, F))
        for seed, case_id in enumerate(CASES):
            module = _module(case_id, seed)
            is_lstm = CASES[case_id][0] is torch.nn.LSTM
            num = module.num_layers * (2 if module.bidirectional else 1)
            h0 = rng.standard_normal((num, B, H))
            c0 = rng.standard_normal((num, B, H))
            w_out = rng.standard_normal((B, T, H * (2 if module.bidirectional else 1)))
            w_state = rng.standard_normal((2, num, B, H))

            # torch: packed sequences of different lengths, loss on outputs and final states.
            xt = torch.tensor(x, requires_grad=True)
            packed = pack_padded_sequence(xt, LENGTHS, batch_first=True, enforce_sorted=False)
            state0 = (torch.tensor(h0), torch.tensor(c0)) if is_lstm else torch.tensor(h0)
            ys, state = module(packed, state0)
            ys, _ = pad_packed_sequence(ys, batch_first=True, total_length=T)
            states = state if is_lstm else (state,)
            loss = (ys * torch.tensor(w_out)).sum()
            loss = loss + sum(
                (s * torch.tensor(w)).sum()
                for s, w in zip(states, w_state[: len(states)], strict=True)
            )
            loss.backward()
            want = {
                "ys": ys.detach().numpy(),
                "states": [s.detach().numpy() for s in states],
                "dx": xt.grad.numpy(),
                "dweights": {k: p.grad.numpy() for k, p in module.named_parameters()},
            }

            # seqjax: the converted params, vmapped over the batch with length=.
            layer, params = st.from_torch(module)
            carry0 = st.carry_from_torch(
                (h0, c0) if is_lstm else h0, bidirectional=module.bidirectional
            )
            carry0 = jax.tree.map(jnp.asarray, carry0)
            weights = {k: jnp.asarray(v.detach().numpy()) for k, v in module.state_dict().items()}

            def run(state_dict, xs, carry0=carry0, layer=layer, is_lstm=is_lstm):
                p = st.params_from_torch(state_dict)
                return jax.vmap(lambda x, n, c: _apply(layer, p, x, n, c))(
                    xs, jnp.asarray(LENGTHS), carry0
                )

            def loss_fn(state_dict, xs, run=run, w_out=w_out, w_state=w_state, is_lstm=is_lstm):
                carry, hs = run(state_dict, xs)
                finals = _final_states(carry, is_lstm)
                total = jnp.sum(hs * w_out)
                for s, w in zip(finals, w_state[: len(finals)], strict=True):
                    total = total + jnp.sum(s * w)
                return total, (carry, hs)

            (_, (carry, hs)), (dweights, dx) = jax.jit(
                jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)
            )(weights, jnp.asarray(x))
            got = {
                "ys": np.asarray(hs),
                "states": [np.asarray(s) for s in _final_states(carry, is_lstm)],
                "dx": np.asarray(dx),
                "dweights": {k: np.asarray(v) for k, v in dweights.items()},
                "carry": carry,
                "params": params,
                "layer": layer,
            }
            out[case_id] = (module, want, got)
    return out


@pytest.mark.parametrize("case_id", list(CASES))
def test_outputs_and_final_states_match_torch(case_id, results):
    _, want, got = results[case_id]
    np.testing.assert_allclose(got["ys"], want["ys"], atol=ATOL, rtol=0)
    # padded steps are zero in both
    assert np.all(got["ys"][3, 1:] == 0)
    assert len(got["states"]) == len(want["states"])
    for g, w in zip(got["states"], want["states"], strict=True):
        np.testing.assert_allclose(g, w, atol=ATOL, rtol=0)
    # carry_to_torch gives torch's h_n (and c_n) from the seqjax carry
    back = st.carry_to_torch(got["carry"])
    back = back if isinstance(back, tuple) else (back,)
    for g, w in zip(back, want["states"], strict=True):
        assert isinstance(g, torch.Tensor)
        np.testing.assert_allclose(g.numpy(), w, atol=ATOL, rtol=0)


@pytest.mark.parametrize("case_id", list(CASES))
def test_gradients_match_torch(case_id, results):
    _, want, got = results[case_id]
    np.testing.assert_allclose(got["dx"], want["dx"], atol=ATOL, rtol=0)
    assert np.abs(want["dx"]).max() > 1e-3
    assert set(got["dweights"]) == set(want["dweights"])
    for k, w in want["dweights"].items():
        np.testing.assert_allclose(got["dweights"][k], w, atol=ATOL, rtol=0, err_msg=k)


@pytest.mark.parametrize("case_id", list(CASES))
def test_layout_matches_the_experiment_layers(case_id, results):
    module, _, got = results[case_id]
    layer, params = got["layer"], got["params"]
    name = CASES[case_id][2]
    if module.num_layers == 1 and not module.bidirectional:
        assert isinstance(layer, seqjax.Cell) and layer.name == name
        assert isinstance(params, dict)
    elif module.num_layers == 1:
        assert layer.name == f"bidirectional({name}, {name}, concat)"
        assert set(params) == {"fw", "bw"}
    else:
        assert layer.name.startswith("stack(")
        assert len(params) == module.num_layers
    assert jax.tree.leaves(params)[0].dtype == jnp.float64


@pytest.mark.parametrize("case_id", list(CASES))
def test_round_trip_params_torch_params_is_exact(case_id, results, x64):
    module, _, got = results[case_id]
    params = got["params"]
    nonlinearity = getattr(module, "nonlinearity", "tanh")
    back_module = st.to_torch(params, nonlinearity=nonlinearity, batch_first=True)
    assert type(back_module) is type(module)
    assert back_module.num_layers == module.num_layers
    assert back_module.bidirectional == module.bidirectional
    _, again = st.from_torch(back_module)
    assert jax.tree.structure(again) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The module built from the params computes what the original torch module computes (its
    # biases regrouped: the sum in bias_ih).
    x = torch.randn(2, T, F, dtype=torch.float64)
    with torch.no_grad():
        np.testing.assert_allclose(back_module(x)[0].numpy(), module(x)[0].numpy(), atol=ATOL)


def test_lstm_gate_order_and_bias_sum():
    # torch fuses i, f, g, o; seqjax f, i, g, o; seqjax's bias is b_ih + b_hh.
    module = _module("lstm", 11).float()
    _, params = st.from_torch(module)
    sd = module.state_dict()
    np.testing.assert_array_equal(params["w_i"][:, :H], sd["weight_ih_l0"][H : 2 * H].numpy().T)
    np.testing.assert_array_equal(params["w_h"][:, H : 2 * H], sd["weight_hh_l0"][:H].numpy().T)
    b = (sd["bias_ih_l0"] + sd["bias_hh_l0"]).numpy()
    np.testing.assert_array_equal(params["b"][3 * H :], b[3 * H :])
    assert params["w_i"].dtype == jnp.float32


def test_state_dict_without_biases_and_with_a_prefix():
    module = torch.nn.GRU(F, H, bias=False, num_layers=2)
    outer = {f"encoder.{k}": v for k, v in module.state_dict().items()}
    outer["head.weight"] = torch.zeros(2, 2)
    layer, params = st.from_torch(outer, prefix="encoder.")
    assert len(params) == 2
    assert np.all(np.asarray(params[1]["b_i"]) == 0) and np.all(np.asarray(params[0]["b_hn"]) == 0)
    xs = torch.randn(T, 1, F)
    with torch.no_grad():
        want = module(xs)[0][:, 0].numpy()
    _, hs = layer.apply(params, jnp.asarray(xs[:, 0].numpy()))
    np.testing.assert_allclose(np.asarray(hs), want, atol=1e-5)


def test_rnn_state_dict_takes_its_nonlinearity():
    module = torch.nn.RNN(F, H, nonlinearity="relu")
    cell, params = st.from_torch(module.state_dict(), nonlinearity="relu")
    xs = torch.randn(T, F)
    with torch.no_grad():
        want = module(xs)[0].numpy()
    _, hs = seqjax.unroll(cell, params, jnp.asarray(xs.numpy()))
    np.testing.assert_allclose(np.asarray(hs), want, atol=1e-5)
    tanh_cell, _ = st.from_torch(module.state_dict())  # torch's default
    _, hs_tanh = seqjax.unroll(tanh_cell, params, jnp.asarray(xs.numpy()))
    assert np.abs(np.asarray(hs_tanh) - want).max() > 1e-3


def test_errors_name_what_was_received():
    with pytest.raises(ValueError, match="proj_size"):
        st.from_torch(torch.nn.LSTM(F, H, proj_size=2))
    with pytest.raises(TypeError, match=r"unsupported module Linear; expected torch\.nn\.LSTM"):
        st.from_torch(torch.nn.Linear(F, H))
    with pytest.raises(ValueError, match="nonlinearity='relu' but the module's is 'tanh'"):
        st.from_torch(torch.nn.RNN(F, H), nonlinearity="relu")
    sd = torch.nn.LSTM(F, H, num_layers=2).state_dict()
    with pytest.raises(ValueError, match=r"unexpected keys \['head\.bias'\].*prefix="):
        st.params_from_torch({**sd, "head.bias": torch.zeros(1)})
    del sd["bias_hh_l1"]
    with pytest.raises(ValueError, match=r"missing \['bias_hh_l1'\] of a 2-layer LSTM"):
        st.params_from_torch(sd)
    with pytest.raises(ValueError, match="no 'weight_hh_l0'"):
        st.params_from_torch({"weight": torch.zeros(2)})
    layer = seqjax.bidirectional(seqjax.gru(H), merge="sum")
    stacked = [layer.init(jax.random.key(0), F), layer.init(jax.random.key(1), H)]
    with pytest.raises(ValueError, match=r"layers\[1\]\.fw\.w_i has shape \(5, 15\).*size 10"):
        st.to_torch(stacked)
    with pytest.raises(ValueError, match=r"not those of seqjax\.lstm"):
        st.params_to_torch(seqjax.indrnn(H).init(jax.random.key(0), F))
    with pytest.raises(ValueError, match=r"expected \[num_layers \* 2, \*batch, H\]"):
        st.carry_from_torch(torch.zeros(3, 2, H), bidirectional=True)


def test_missing_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(ImportError, match=r"pip install seqjax\[torch\]"):
        st.to_torch(seqjax.lstm(H).init(jax.random.key(0), F))


def test_seqjax_params_drive_torch_modules():
    # The other direction on a stack built by seqjax itself: 2 layers of bidirectional LSTMs.
    layer = seqjax.stack([seqjax.bidirectional(seqjax.lstm(H))] * 2)
    params = layer.init(jax.random.key(3), F)
    module = st.to_torch(params)
    xs = np.random.default_rng(1).standard_normal((T, F)).astype(np.float32)
    with torch.no_grad():
        want, (h_n, c_n) = module(torch.from_numpy(xs))
    carry, hs = layer.apply(params, jnp.asarray(xs))
    np.testing.assert_allclose(np.asarray(hs), want.numpy(), atol=1e-5)
    got_h, got_c = st.carry_to_torch(carry)
    np.testing.assert_allclose(got_h.numpy(), h_n.numpy(), atol=1e-5)
    np.testing.assert_allclose(got_c.numpy(), c_n.numpy(), atol=1e-5)
